//! What the activation stethoscopes run models on: plain-text prompts (one per line), the prompts
//! of a task file (built as `sfn eval` builds them), or token ids. Shared by probe and patch.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sfn_eval::runtime::ModelRunner;
use sfn_eval::task::{LoadOptions, Task, TaskKind, TaskSet};
use sfn_eval::{PromptConfig, PromptMode};
use sfn_model::{Model, Tokenizer};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// Plain-text prompts, one per line (blank lines skipped).
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE", conflicts_with_all = ["task", "ids"]))]
    #[serde(default)]
    pub prompts: Option<PathBuf>,
    /// A task file (JSONL, as for `sfn eval`): its prompts, with the suffix `sfn eval` adds.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE", conflicts_with = "ids"))]
    #[serde(default)]
    pub task: Option<PathBuf>,
    /// Token ids, comma-separated (one sequence; no tokenizer needed).
    #[cfg_attr(feature = "cli", arg(long, value_delimiter = ','))]
    #[serde(default)]
    pub ids: Option<Vec<u32>>,
    /// `chat`: render each prompt as a user message with the model's chat template.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value = "generate"))]
    #[serde(default)]
    pub mode: PromptMode,
}

/// One token sequence to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub id: String,
    pub ids: Vec<u32>,
}

impl Inputs {
    /// The files among the inputs (for provenance).
    pub fn files(&self) -> Vec<(&'static str, &Path)> {
        let mut out = vec![];
        if let Some(p) = &self.prompts {
            out.push(("prompts", p.as_path()));
        }
        if let Some(t) = &self.task {
            out.push(("task", t.as_path()));
        }
        out
    }

    /// The sequences, encoded with `model`'s tokenizer as `sfn eval` would encode the prompts.
    pub fn sequences(&self, model: &Model, tokenizer: Option<&Tokenizer>) -> Result<Vec<Sequence>> {
        let tasks: Vec<Task> = match (&self.prompts, &self.task, &self.ids) {
            (None, None, Some(ids)) if !ids.is_empty() => {
                return Ok(vec![Sequence { id: "ids".into(), ids: ids.clone() }]);
            }
            (None, None, _) => return Err(Error::Options("give --prompts FILE, --task FILE or --ids 1,2,3".into())),
            (Some(path), _, _) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                text.lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                    .map(|(i, l)| Task {
                        id: format!("line-{}", i + 1),
                        prompt: l.to_string(),
                        answer: None,
                        kind: TaskKind::Conversation,
                    })
                    .collect()
            }
            (None, Some(path), _) => TaskSet::load(path, &LoadOptions::default())?.tasks,
        };
        if tasks.is_empty() {
            return Err(Error::Options(format!(
                "{}: no prompts",
                self.prompts.as_deref().or(self.task.as_deref()).unwrap_or(Path::new("?")).display()
            )));
        }
        let tokenizer = tokenizer
            .ok_or_else(|| Error::Options("prompts need the model's tokenizer, and it has none (give --ids)".into()))?;
        let runner = ModelRunner::new(model, tokenizer, serde_json::Value::Null);
        let config = PromptConfig { mode: self.mode, ..Default::default() };
        let max = model.max_positions();
        tasks
            .iter()
            .map(|t| {
                let ids = runner
                    .prompt_ids(&config.build(t))
                    .map_err(|e| Error::Options(format!("prompt `{}`: {e}", t.id)))?;
                if ids.is_empty() || ids.len() > max {
                    return Err(Error::Options(format!(
                        "prompt `{}` is {} tokens; the model takes 1 to {max}",
                        t.id,
                        ids.len()
                    )));
                }
                Ok(Sequence { id: t.id.clone(), ids })
            })
            .collect()
    }
}
