//! Prompt building: turns a task into what the model is given.
//! - "generate" mode: one raw text (few-shot examples, then the task prompt, then the suffix) that a
//!   base model continues.
//! - "chat" mode: a list of messages (optional system message, few-shot user/assistant pairs, the
//!   task as the last user message); the runtime renders them with the model's own chat template,
//!   so no template text lives here.
//!
//! Reasoning tasks get [`DEFAULT_REASONING_SUFFIX`] unless another suffix is given; conversation
//! tasks get none.

use crate::error::{EvalError, Result};
use crate::io::read_jsonl_objects;
use crate::task::{Task, TaskKind};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The suffix of the paper's (and Qwen2.5-Math / DeepSeek-R1's) math evaluation.
pub const DEFAULT_REASONING_SUFFIX: &str = "Please reason step by step, and put your final answer within \\boxed{}.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum PromptMode {
    #[default]
    Generate,
    Chat,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// The role's name in chat templates.
    pub fn name(&self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// A worked example shown before the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FewShot {
    pub prompt: String,
    pub response: String,
}

/// How tasks become prompts. Recorded in result files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptConfig {
    pub mode: PromptMode,
    /// Text after the task prompt. `None`: [`DEFAULT_REASONING_SUFFIX`] for reasoning tasks,
    /// nothing for conversation tasks; `Some("")`: no suffix at all.
    pub suffix: Option<String>,
    /// Chat mode only: a system message.
    pub system: Option<String>,
    pub few_shot: Vec<FewShot>,
}

/// What a generator receives for one task: raw text, or messages for the chat template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PromptBody {
    Text(String),
    Chat(Vec<Message>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    /// The task id, so generations can be matched back to tasks.
    pub id: String,
    pub body: PromptBody,
}

impl PromptConfig {
    pub fn suffix_for(&self, kind: TaskKind) -> &str {
        match (&self.suffix, kind) {
            (Some(s), _) => s,
            (None, TaskKind::Reasoning) => DEFAULT_REASONING_SUFFIX,
            (None, TaskKind::Conversation) => "",
        }
    }

    /// The prompt for one task. Task and example prompts are trimmed: dataset prompts often carry
    /// stray newlines at both ends (aime2024's do), which would otherwise shift the suffix.
    pub fn build(&self, task: &Task) -> Prompt {
        let suffix = self.suffix_for(task.kind);
        let with_suffix = |p: &str| {
            let p = p.trim();
            if suffix.is_empty() {
                p.to_string()
            } else {
                format!("{p}\n{suffix}")
            }
        };
        let body = match self.mode {
            PromptMode::Generate => {
                let mut text = String::new();
                for ex in &self.few_shot {
                    text.push_str(&with_suffix(&ex.prompt));
                    text.push('\n');
                    text.push_str(ex.response.trim());
                    text.push_str("\n\n");
                }
                text.push_str(&with_suffix(&task.prompt));
                // A base model continues the text: end on a newline so it starts a fresh line.
                text.push('\n');
                PromptBody::Text(text)
            }
            PromptMode::Chat => {
                let mut messages = Vec::new();
                if let Some(system) = &self.system {
                    messages.push(Message { role: Role::System, content: system.clone() });
                }
                for ex in &self.few_shot {
                    messages.push(Message { role: Role::User, content: with_suffix(&ex.prompt) });
                    messages.push(Message { role: Role::Assistant, content: ex.response.trim().to_string() });
                }
                messages.push(Message { role: Role::User, content: with_suffix(&task.prompt) });
                PromptBody::Chat(messages)
            }
        };
        Prompt { id: task.id.clone(), body }
    }
}

/// Read few-shot examples from JSONL lines `{"prompt": ..., "response": ...}`.
pub fn load_few_shot(path: &Path) -> Result<Vec<FewShot>> {
    let records = read_jsonl_objects(path)?;
    if records.is_empty() {
        return Err(EvalError::EmptyFile { path: path.into() });
    }
    records
        .into_iter()
        .map(|rec| {
            let get = |field: &str| match rec.fields.get(field) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(v) => Err(EvalError::FieldType {
                    path: path.into(),
                    line: rec.line,
                    field: field.into(),
                    expected: "a string",
                    found: crate::error::json_type(v),
                }),
                None => Err(EvalError::MissingField {
                    path: path.into(),
                    line: rec.line,
                    field: field.into(),
                    present: rec.fields.keys().cloned().collect::<Vec<_>>().join(", "),
                    hint: String::new(),
                }),
            };
            Ok(FewShot { prompt: get("prompt")?, response: get("response")? })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(kind: TaskKind) -> Task {
        Task { id: "t1".into(), prompt: "\nWhat is 2+3?\n".into(), answer: Some("5".into()), kind }
    }

    #[test]
    fn generate_mode_appends_the_default_suffix_to_reasoning_tasks_only() {
        let cfg = PromptConfig::default();
        assert_eq!(
            cfg.build(&task(TaskKind::Reasoning)).body,
            PromptBody::Text(format!("What is 2+3?\n{DEFAULT_REASONING_SUFFIX}\n"))
        );
        assert_eq!(cfg.build(&task(TaskKind::Conversation)).body, PromptBody::Text("What is 2+3?\n".into()));
    }

    #[test]
    fn chat_mode_gives_messages_with_few_shot_pairs() {
        let cfg = PromptConfig {
            mode: PromptMode::Chat,
            suffix: Some("Answer briefly.".into()),
            system: Some("You are helpful.".into()),
            few_shot: vec![FewShot { prompt: "1+1?".into(), response: "2".into() }],
        };
        let PromptBody::Chat(m) = cfg.build(&task(TaskKind::Reasoning)).body else { panic!("chat") };
        let roles: Vec<_> = m.iter().map(|m| m.role.clone()).collect();
        assert_eq!(roles, [Role::System, Role::User, Role::Assistant, Role::User]);
        assert_eq!(m[1].content, "1+1?\nAnswer briefly.");
        assert_eq!(m[3].content, "What is 2+3?\nAnswer briefly.");
    }

    #[test]
    fn few_shot_examples_precede_the_task_in_generate_mode() {
        let cfg = PromptConfig {
            suffix: Some(String::new()),
            few_shot: vec![FewShot { prompt: "1+1?".into(), response: "2".into() }],
            ..Default::default()
        };
        assert_eq!(cfg.build(&task(TaskKind::Reasoning)).body, PromptBody::Text("1+1?\n2\n\nWhat is 2+3?\n".into()));
    }
}
