//! Tasks: what a model is asked. A task file is JSONL, one task per line, with an id, a prompt, an
//! optional gold answer and a kind (reasoning | conversation). Other datasets' layouts load as they
//! are: the field names are auto-detected from a list of known layouts (aime2024's
//! `index`/`origin_prompt`/`gold_answer`, MATH's `problem`/`answer`, GSM8K's `question`/`answer`)
//! or given explicitly (`prompt=origin_prompt`). Errors name the file and the line.

use crate::error::{json_type, EvalError, Result};
use crate::io::{read_jsonl_objects, string_or_int};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Reasoning tasks have a checkable answer and get the step-by-step suffix; conversation tasks
/// are open prompts, judged only for language and relatedness (levels I-III).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Reasoning,
    Conversation,
}

impl TaskKind {
    pub fn parse(s: &str) -> Option<TaskKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "reasoning" | "math" => Some(TaskKind::Reasoning),
            "conversation" | "chat" => Some(TaskKind::Conversation),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    pub kind: TaskKind,
}

/// Which input field holds each task field. `None` = auto-detect from [`KNOWN_FIELDS`]. The id
/// may be the pseudo-field `@line` (the 1-based line number) for datasets without ids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldMap {
    pub id: Option<String>,
    pub prompt: Option<String>,
    pub answer: Option<String>,
    pub kind: Option<String>,
}

/// Candidate input names per task field, in order of preference (first present wins, decided on
/// the first record so a file is read with one layout throughout).
pub const KNOWN_FIELDS: [(&str, &[&str]); 4] = [
    ("id", &["id", "index", "idx", "task_id", "unique_id", "problem_id"]),
    ("prompt", &["prompt", "origin_prompt", "question", "problem", "input", "instruction"]),
    ("answer", &["answer", "gold_answer", "gold", "expected_answer", "final_answer", "target"]),
    ("kind", &["kind"]),
];

/// The pseudo-field that makes the line number the id.
pub const LINE_ID: &str = "@line";

impl FieldMap {
    /// Parse `--field prompt=origin_prompt` style assignments (several allowed).
    pub fn parse_assignments<S: AsRef<str>>(specs: &[S]) -> Result<FieldMap> {
        let mut map = FieldMap::default();
        for spec in specs {
            let spec = spec.as_ref();
            let bad = |why: &str| EvalError::FieldMapping { spec: spec.to_string(), why: why.to_string() };
            let (key, value) = spec.split_once('=').ok_or_else(|| bad("expected TASK_FIELD=INPUT_FIELD"))?;
            let (key, value) = (key.trim(), value.trim());
            if value.is_empty() {
                return Err(bad("the input field name is empty"));
            }
            let slot = match key {
                "id" => &mut map.id,
                "prompt" => &mut map.prompt,
                "answer" => &mut map.answer,
                "kind" => &mut map.kind,
                _ => return Err(bad("the task field must be one of id, prompt, answer, kind")),
            };
            if slot.is_some() {
                return Err(bad("this task field is mapped twice"));
            }
            *slot = Some(value.to_string());
        }
        Ok(map)
    }
}

/// How to read a task file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub fields: FieldMap,
    /// Kind for records without a kind field. `None`: reasoning when the record has an answer,
    /// conversation otherwise.
    pub default_kind: Option<TaskKind>,
}

/// A loaded task file and the field layout that was used (recorded in result files).
#[derive(Debug, Clone)]
pub struct TaskSet {
    pub path: PathBuf,
    pub tasks: Vec<Task>,
    /// The input field used for each task field (`None`: absent from the file).
    pub resolved: FieldMap,
}

impl TaskSet {
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<TaskSet> {
        let records = read_jsonl_objects(path)?;
        let Some(first) = records.first() else {
            return Err(EvalError::EmptyTaskFile { path: path.into() });
        };
        let resolve = |explicit: &Option<String>, task_field: &str| -> Option<String> {
            if explicit.is_some() {
                return explicit.clone();
            }
            let candidates = KNOWN_FIELDS.iter().find(|(f, _)| *f == task_field).map(|(_, c)| *c).unwrap_or(&[]);
            candidates.iter().find(|c| first.fields.contains_key(**c)).map(|c| c.to_string())
        };
        let resolved = FieldMap {
            id: resolve(&opts.fields.id, "id"),
            prompt: resolve(&opts.fields.prompt, "prompt"),
            answer: resolve(&opts.fields.answer, "answer"),
            kind: resolve(&opts.fields.kind, "kind"),
        };

        let mut tasks = Vec::with_capacity(records.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for rec in &records {
            let missing = |task_field: &str, mapped: &Option<String>| {
                let present = rec.fields.keys().map(|k| k.as_str()).collect::<Vec<_>>().join(", ");
                let (field, hint) = match mapped {
                    Some(name) => (name.clone(), format!("; mapped from task field `{task_field}`")),
                    None => {
                        let tried = KNOWN_FIELDS.iter().find(|(f, _)| *f == task_field).map(|(_, c)| c.join(", "));
                        (
                            task_field.to_string(),
                            format!(
                                "; looked for {}; name it with --field {task_field}=NAME",
                                tried.unwrap_or_default()
                            ),
                        )
                    }
                };
                EvalError::MissingField { path: path.into(), line: rec.line, field, present, hint }
            };
            let wrong_type = |field: &str, expected: &'static str, v: &serde_json::Value| EvalError::FieldType {
                path: path.into(),
                line: rec.line,
                field: field.to_string(),
                expected,
                found: json_type(v),
            };

            let id = match resolved.id.as_deref() {
                Some(LINE_ID) => rec.line.to_string(),
                Some(name) => match rec.fields.get(name) {
                    Some(v) => string_or_int(v).ok_or_else(|| wrong_type(name, "a string or an integer", v))?,
                    None => return Err(missing("id", &resolved.id)),
                },
                None => return Err(missing("id", &None)),
            };
            let prompt = match resolved.prompt.as_deref().and_then(|name| rec.fields.get(name).map(|v| (name, v))) {
                Some((_, serde_json::Value::String(s))) => s.clone(),
                Some((name, v)) => return Err(wrong_type(name, "a string", v)),
                None => return Err(missing("prompt", &resolved.prompt)),
            };
            let answer = match resolved.answer.as_deref().and_then(|name| rec.fields.get(name).map(|v| (name, v))) {
                None | Some((_, serde_json::Value::Null)) => None,
                Some((name, v)) => match v {
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    serde_json::Value::String(s) => Some(s.clone()),
                    other => return Err(wrong_type(name, "a string or a number", other)),
                },
            };
            let kind = match resolved.kind.as_deref().and_then(|name| rec.fields.get(name).map(|v| (name, v))) {
                Some((_, serde_json::Value::String(s))) => TaskKind::parse(s)
                    .ok_or_else(|| EvalError::UnknownKind { path: path.into(), line: rec.line, kind: s.clone() })?,
                Some((name, v)) => return Err(wrong_type(name, "a string", v)),
                None => opts.default_kind.unwrap_or(if answer.is_some() {
                    TaskKind::Reasoning
                } else {
                    TaskKind::Conversation
                }),
            };
            if let Some(&first_line) = seen.get(&id) {
                return Err(EvalError::DuplicateId { path: path.into(), line: rec.line, id, first_line });
            }
            seen.insert(id.clone(), rec.line);
            tasks.push(Task { id, prompt, answer, kind });
        }
        Ok(TaskSet { path: path.to_path_buf(), tasks, resolved })
    }
}

/// Write tasks as a native task file (id, prompt, answer, kind; with the worked solution as
/// `completion` for `Worked` problems, which makes it a training file too), atomically.
pub fn write_tasks<T: Serialize>(path: &Path, tasks: &[T]) -> Result<()> {
    let mut text = String::new();
    for t in tasks {
        text.push_str(&serde_json::to_string(t)?);
        text.push('\n');
    }
    Ok(sfn_run::write_atomic(path, text.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_assignments_parse_and_reject_nonsense() {
        let m = FieldMap::parse_assignments(&["prompt=origin_prompt", "id = index"]).unwrap();
        assert_eq!(m.prompt.as_deref(), Some("origin_prompt"));
        assert_eq!(m.id.as_deref(), Some("index"));
        assert!(FieldMap::parse_assignments(&["prompt"]).is_err());
        assert!(FieldMap::parse_assignments(&["question=x"]).is_err());
        assert!(FieldMap::parse_assignments(&["id=a", "id=b"]).is_err());
    }
}
