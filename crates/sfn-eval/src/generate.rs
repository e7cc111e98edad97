//! The seam between evaluation and a model. [`Generator`] is what a runtime implements to be
//! evaluated; [`ReferenceScorer`] is the optional reference model that fills the judge's
//! mean-token-loss signal. [`ReplayGenerator`] hands back outputs recorded earlier (that is
//! `sfn eval --grade`); [`crate::runtime::ModelRunner`] runs an sfn-model model.

use crate::decode::DecodeSettings;
use crate::error::{EvalError, GenerateError, Result};
use crate::io::{read_jsonl_objects, string_or_int};
use crate::prompt::Prompt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// What `token_count` counts: model tokens (a real runtime) or whitespace-separated words (when no
/// tokenizer is at hand, e.g. grading recorded outputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenCountKind {
    Tokens,
    Words,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model emitted its end-of-sequence token.
    Eos,
    /// A stop string was generated.
    Stop,
    /// `max_new_tokens` ran out.
    Length,
    /// Unknown (recorded outputs).
    Unknown,
}

/// One sample for one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// Generated text only (not the prompt); with budget forcing, including the inserted cues.
    pub text: String,
    pub token_count: usize,
    pub finish: FinishReason,
}

/// A text generator under evaluation.
pub trait Generator {
    /// For result files: model path, dtype, device... anything that identifies the run.
    fn describe(&self) -> serde_json::Value;

    /// What `Generation::token_count` counts.
    fn token_count_kind(&self) -> TokenCountKind;

    /// Generate for a batch of prompts, handing each prompt's samples to `deliver(index, samples)`
    /// as soon as they are all final, in any order: `settings.n` samples (a replay may give
    /// however many were recorded, at least one). Every prompt is delivered once before this
    /// returns; an error from `deliver` ends the call with that error.
    fn generate(
        &mut self,
        prompts: &[Prompt],
        settings: &DecodeSettings,
        deliver: &mut Deliver,
    ) -> std::result::Result<(), GenerateError>;
}

/// Where a [`Generator`] hands a prompt's finished samples. Delivering as each prompt finishes,
/// not at the end of the batch, is what lets an interrupted run keep every finished task.
pub type Deliver<'a> = dyn FnMut(usize, Vec<Generation>) -> std::result::Result<(), GenerateError> + 'a;

/// A reference language model that scores text: the judge's optional level-I signal. Fluent text
/// has a low loss under a good model; token soup has a high one.
pub trait ReferenceScorer {
    fn describe(&self) -> serde_json::Value;

    /// Mean per-token cross-entropy (nats) of `output` given `prompt`, under the reference model;
    /// None when the output has no tokens to score.
    fn mean_token_loss(&mut self, prompt: &Prompt, output: &str) -> std::result::Result<Option<f64>, GenerateError>;
}

/// Whitespace-separated words: the token count used when there is no tokenizer.
pub fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Outputs recorded earlier (lines `{"id": ..., "output": ...}`; several lines with one id are
/// several samples, in file order). Other fields are ignored, so a run's own samples.jsonl can be
/// re-graded as it is.
#[derive(Debug, Clone)]
pub struct ReplayGenerator {
    outputs: HashMap<String, Vec<String>>,
}

impl ReplayGenerator {
    /// Read an outputs file; `known_ids` are the task ids, and an output for any other id is an
    /// error (a typo or the wrong task file would otherwise grade nothing, silently).
    pub fn load(path: &Path, known_ids: &HashSet<&str>) -> Result<ReplayGenerator> {
        let records = read_jsonl_objects(path)?;
        if records.is_empty() {
            return Err(EvalError::EmptyFile { path: path.into() });
        }
        let mut outputs: HashMap<String, Vec<String>> = HashMap::new();
        for rec in records {
            let missing = |field: &str| EvalError::MissingField {
                path: path.into(),
                line: rec.line,
                field: field.into(),
                present: rec.fields.keys().cloned().collect::<Vec<_>>().join(", "),
                hint: String::new(),
            };
            let wrong = |field: &str, expected, v: &serde_json::Value| EvalError::FieldType {
                path: path.into(),
                line: rec.line,
                field: field.into(),
                expected,
                found: crate::error::json_type(v),
            };
            let id = match rec.fields.get("id") {
                Some(v) => string_or_int(v).ok_or_else(|| wrong("id", "a string or an integer", v))?,
                None => return Err(missing("id")),
            };
            let output = match rec.fields.get("output") {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => return Err(wrong("output", "a string", v)),
                None => return Err(missing("output")),
            };
            if !known_ids.contains(id.as_str()) {
                return Err(EvalError::UnknownId { path: path.into(), line: rec.line, id });
            }
            outputs.entry(id).or_default().push(output);
        }
        Ok(ReplayGenerator { outputs })
    }

    pub fn from_map(outputs: HashMap<String, Vec<String>>) -> Self {
        ReplayGenerator { outputs }
    }

    pub fn has_output(&self, id: &str) -> bool {
        self.outputs.get(id).is_some_and(|o| !o.is_empty())
    }
}

impl Generator for ReplayGenerator {
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"generator": "replay", "ids": self.outputs.len()})
    }

    fn token_count_kind(&self) -> TokenCountKind {
        TokenCountKind::Words
    }

    fn generate(
        &mut self,
        prompts: &[Prompt],
        _settings: &DecodeSettings,
        deliver: &mut Deliver,
    ) -> std::result::Result<(), GenerateError> {
        for (i, p) in prompts.iter().enumerate() {
            let texts = self
                .outputs
                .get(&p.id)
                .filter(|o| !o.is_empty())
                .ok_or_else(|| -> GenerateError { format!("no recorded output for id `{}`", p.id).into() })?;
            let samples = texts
                .iter()
                .map(|t| Generation { text: t.clone(), token_count: word_count(t), finish: FinishReason::Unknown })
                .collect();
            deliver(i, samples)?;
        }
        Ok(())
    }
}
