//! Specs of evaluation, as the CLI flags, study files and the lab write them:
//! - [`EvalSettings`]: how tasks are read, prompted, decoded and judged — shared by every
//!   evaluating command (`sfn eval`, merge/destroy in memory, the sweeps);
//! - [`EvalSpec`]: `sfn eval` (a model, or recorded outputs, on a task file), run by [`run`].
//!
//! Specs are plain serde data that refuse unknown keys (a typo in a study file is an error naming
//! the key, not a silent default); with the `cli` feature they are also the command's flags.

use crate::error::{EvalError, Result};
use crate::judge::{JudgeConfig, DEFAULT_MAX_REF_LOSS};
use crate::prompt::{load_few_shot, PromptConfig, PromptMode};
use crate::run::{grade_recorded, EvalConfig, EvalJob, EvalOutcome};
use crate::runtime::{evaluate_source, LoadedReference, ModelRunner};
use crate::server::{evaluate_server, ServerSpec};
use crate::task::{FieldMap, LoadOptions, TaskKind, TaskSet};
use crate::{BudgetForcing, DecodeSettings, ReferenceScorer, Sampling};
use serde::{Deserialize, Serialize};
use sfn_checkpoint::Checkpoint;
use sfn_model::RuntimeSpec;
use sfn_run::rundir::absolute;
use sfn_run::Context;
use std::path::{Path, PathBuf};

fn default_max_new() -> usize {
    2048
}
fn default_samples() -> usize {
    1
}
fn default_cue() -> String {
    "Wait".into()
}
fn default_batch_size() -> usize {
    16
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[cfg_attr(feature = "cli", command(next_help_heading = "Evaluation"))]
#[serde(deny_unknown_fields)]
pub struct EvalSettings {
    /// Name the input field of a task field, e.g. `--field prompt=origin_prompt` (repeatable;
    /// `--field id=@line` numbers the lines). Known layouts such as aime2024's are detected.
    #[cfg_attr(feature = "cli", arg(long = "field", value_name = "TASK=INPUT"))]
    #[serde(default)]
    pub fields: Vec<String>,
    /// Kind of tasks without a kind field (default: reasoning when there is an answer).
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    #[serde(default)]
    pub kind: Option<TaskKind>,
    /// Prompting: generate (raw text + suffix, for base models) or chat (the model's template).
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value = "generate"))]
    #[serde(default)]
    pub mode: PromptMode,
    /// Text after each prompt. Default: the step-by-step \boxed{} instruction for reasoning tasks;
    /// "" for none.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub suffix: Option<String>,
    /// Chat mode: the system message.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub system: Option<String>,
    /// Few-shot examples: JSONL lines {"prompt": ..., "response": ...}.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    #[serde(default)]
    pub few_shot: Option<PathBuf>,
    /// Manual levels that win over the judge: {"ID": "III", "ID#k": "IV"} or JSONL {"id", "level"}.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    #[serde(default)]
    pub overrides: Option<PathBuf>,
    /// Most new tokens per sample (budget-forcing cues included).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = default_max_new()))]
    #[serde(default = "default_max_new")]
    pub max_new: usize,
    /// Sampling temperature (0 = greedy). Sampling is seeded by the run's seed.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.0))]
    #[serde(default)]
    pub temperature: f64,
    /// Sample only among the k most likely tokens.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Sample only among the most likely tokens whose probabilities sum to p.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Samples per task (pass@k and maj@k need more than one; needs a temperature > 0).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = default_samples()))]
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// Stop a sample after this string (repeatable; the end-of-sequence token always stops it).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub stop: Vec<String>,
    /// Budget forcing: when the model ends, append the cue and continue, up to N times.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0, value_name = "N"))]
    #[serde(default)]
    pub budget_forcing: u32,
    /// The budget-forcing cue.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = default_cue()))]
    #[serde(default = "default_cue")]
    pub cue: String,
    /// Tasks per generation batch (and between syncs of samples.jsonl).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = default_batch_size()))]
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// A reference model whose mean token loss on each output is saved with the judge's signals
    /// (e.g. the intact base model when judging a damaged one).
    #[cfg_attr(feature = "cli", arg(long, value_name = "MODEL"))]
    #[serde(default)]
    pub reference: Option<PathBuf>,
    /// Judge outputs whose reference loss (nats/token) is above this as level I (default 3.5,
    /// calibrated on real SmolLM2 outputs; see the judge's docs).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub max_ref_loss: Option<f64>,
    /// Discard results already in the results directory instead of resuming. (How to run, not
    /// what: not part of a spec.)
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(skip)]
    pub fresh: bool,
}

impl Default for EvalSettings {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every field has a default")
    }
}

impl EvalSettings {
    /// The task file at `path`, read with these settings' field mapping and kind.
    pub fn tasks(&self, path: &Path) -> Result<TaskSet> {
        let fields = FieldMap::parse_assignments(&self.fields)?;
        TaskSet::load(path, &LoadOptions { fields, default_kind: self.kind })
    }

    /// The run's settings; `seed` seeds sampling; `reference`: whether a reference model will
    /// score the outputs (then the default loss threshold applies).
    pub fn config(&self, seed: u64, reference: bool) -> Result<EvalConfig> {
        let few_shot = match &self.few_shot {
            Some(p) => load_few_shot(p)?,
            None => vec![],
        };
        let sampling = Sampling { temperature: self.temperature, top_k: self.top_k, top_p: self.top_p, seed };
        let config = EvalConfig {
            prompt: PromptConfig {
                mode: self.mode,
                suffix: self.suffix.clone(),
                system: self.system.clone(),
                few_shot,
            },
            decode: DecodeSettings {
                max_new_tokens: self.max_new,
                sampling,
                n: self.samples,
                stop: self.stop.clone(),
                budget_forcing: (self.budget_forcing > 0)
                    .then(|| BudgetForcing { times: self.budget_forcing, cue: self.cue.clone() }),
            },
            judge: JudgeConfig {
                max_ref_loss: self.max_ref_loss.or(reference.then_some(DEFAULT_MAX_REF_LOSS)),
                ..Default::default()
            },
            batch_size: self.batch_size,
        };
        config.decode.validate()?;
        Ok(config)
    }

    /// An evaluation job of these settings on `tasks` into `out`, for the run described by
    /// `spec` (recorded); `reference`: whether a reference model scores the outputs.
    pub fn job<'a>(
        &'a self,
        tasks: &'a TaskSet,
        out: &'a Path,
        seed: u64,
        reference: bool,
        spec: serde_json::Value,
        ctx: &Context,
    ) -> Result<EvalJob<'a>> {
        Ok(EvalJob {
            tasks,
            out_dir: out,
            config: self.config(seed, reference)?,
            overrides: self.overrides.as_deref(),
            seed,
            command: ctx.command.clone(),
            spec,
            models: vec![],
            fresh: self.fresh,
        })
    }
}

/// `sfn eval`: a model generates on a task file and is graded, or outputs recorded elsewhere are
/// graded (`grade`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// The model to evaluate: checkpoint directory or .gguf file.
    #[cfg_attr(feature = "cli", arg(conflicts_with = "grade"))]
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// Instead of running a model, grade recorded outputs: JSONL lines {"id": ..., "output": ...};
    /// repeated ids are several samples. A run's own samples.jsonl works too (to re-judge).
    #[cfg_attr(feature = "cli", arg(long, value_name = "OUTPUTS.jsonl"))]
    #[serde(default)]
    pub grade: Option<PathBuf>,
    /// Task file (JSONL: id, prompt, answer, kind).
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    #[serde(default)]
    pub task: Option<PathBuf>,
    /// Seed of sampling and of the bootstrap interval. Recorded.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0))]
    #[serde(default)]
    pub seed: u64,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub settings: EvalSettings,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub runtime: RuntimeSpec,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub server: ServerSpec,
}

/// Run `sfn eval` as `spec` says into the results directory `out` (resumable; see `run_job`).
pub fn run(spec: &EvalSpec, out: &Path, ctx: &Context) -> Result<EvalOutcome> {
    let task = spec.task.as_deref().ok_or_else(|| EvalError::InvalidSettings("a task file is required".into()))?;
    let tasks = spec.settings.tasks(task)?;
    let spec_json = serde_json::to_value(spec)?;
    let reference_given = spec.settings.reference.is_some();
    let mut job = spec.settings.job(&tasks, out, spec.seed, reference_given, spec_json, ctx)?;
    spec.runtime.init()?;
    let reference = LoadedReference::open(spec.settings.reference.as_deref(), &spec.runtime)?;
    if spec.server.url.is_some() {
        if spec.grade.is_some() || spec.model.is_some() {
            return Err(EvalError::InvalidSettings(
                "--server generates through the server: give no local model and no --grade".into(),
            ));
        }
        let reference = reference.as_ref().map(|r| r.get());
        let server_reference = spec.server.server_reference.then_some(&spec.server);
        return evaluate_server(job, &spec.server, reference.as_ref(), server_reference, ctx.progress);
    }
    match (&spec.grade, &spec.model) {
        (Some(outputs), None) => {
            let mut scorer = reference.as_ref().map(|r| {
                let r = r.get();
                ModelRunner::new(r.model, r.tokenizer, r.describe)
            });
            let scorer = scorer.as_mut().map(|s| s as &mut dyn ReferenceScorer);
            grade_recorded(&job, outputs, scorer, ctx.progress)
        }
        (None, Some(model)) => {
            let ck = Checkpoint::open(model)?;
            job.models.push(ck.input("model")?);
            let describe = serde_json::json!({"model": absolute(model), "runtime": spec.runtime.describe()});
            let reference = reference.as_ref().map(|r| r.get());
            evaluate_source(&job, &ck, &ck, describe, &spec.runtime, reference.as_ref(), ctx.progress)
        }
        (Some(_), Some(_)) => {
            Err(EvalError::InvalidSettings("give a model or recorded outputs to grade, not both".into()))
        }
        (None, None) => Err(EvalError::InvalidSettings("give a model to evaluate or recorded outputs to grade".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_have_the_flag_defaults_and_refuse_unknown_keys() {
        let s = EvalSettings::default();
        assert_eq!((s.max_new, s.samples, s.batch_size, s.cue.as_str()), (2048, 1, 16, "Wait"));
        let err = serde_json::from_value::<EvalSettings>(serde_json::json!({"max_neww": 3})).unwrap_err();
        assert!(err.to_string().contains("max_neww"), "{err}");
        let err = serde_json::from_value::<EvalSpec>(serde_json::json!({"task": "t", "sed": 3})).unwrap_err();
        assert!(err.to_string().contains("sed"), "{err}");
    }
}
