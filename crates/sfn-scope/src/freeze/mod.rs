//! The Freeze stethoscope: fine-tune A with only chosen modules trainable (`sfn freeze`), and the
//! paper's Table 2 over several trainable sets (`sfn freeze-sweep`, in `sweep`).
//!
//! A run: A loads as f32 master weights (any dtype, GGUF dequantized); the trainable set is a
//! selector (`--train`, with `--layers`), reported before training (count and share; a tied
//! embedding and head are one tensor and the report says so); the data file is tokenized with A's
//! tokenizer, its prompts built and encoded as `sfn eval` builds them under the same settings
//! (`--mode`, `--suffix`, `--system`); sfn-train's loop runs (log, saves, resume); with `--task`,
//! the model is evaluated before training, every `--eval-every` steps and after, in memory. OUT is
//! a run directory that ends up a Hugging Face checkpoint (`output`): trained tensors in A's dtype,
//! frozen ones written exactly as they were read, config, tokenizer and chat template from A.

pub mod output;
pub mod sweep;

use crate::error::{Error, Result};
use output::{EvalPoint, TrainSummary};
use serde::{Deserialize, Serialize};
use sfn_checkpoint::selector::Selector;
use sfn_checkpoint::Checkpoint;
use sfn_eval::runtime::{evaluate_source, LoadedReference, Reference};
use sfn_eval::{EvalSettings, TaskSet};
use sfn_model::{RuntimeSpec, Tokenizer};
use sfn_run::rundir::absolute;
use sfn_run::{Context, Input, Provenance, RunDir, Unit};
use sfn_train::data::{self, DataOptions};
use sfn_train::trainer::{self, TrainSettings};
use sfn_train::view::TrainedWeights;
use sfn_train::{TrainModel, Trainable, EMBED, LM_HEAD};
use std::path::{Path, PathBuf};

/// `sfn freeze A --data D --train SEL`: fine-tune A with only the selected modules trainable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct FreezeSpec {
    /// Model A to fine-tune: checkpoint directory or .gguf file.
    pub a: PathBuf,
    /// Training data, JSONL: {"prompt", "completion"} (task lines with a completion), {"messages"},
    /// or {"input_ids", "labels"}.
    #[cfg_attr(feature = "cli", arg(long))]
    pub data: PathBuf,
    /// What to train, as a selector; everything else stays frozen (`o_proj,norms,embed,lm_head`,
    /// `all`, `layers[5..30].mlp`).
    #[cfg_attr(feature = "cli", arg(long))]
    pub train: String,
    /// Restrict every term of --train to these layers (`5..30`).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub layers: Option<String>,
    /// Evaluate on this task file before training, every --eval-every steps, and after.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    #[serde(default)]
    pub task: Option<PathBuf>,
    /// With --task: also evaluate every N steps.
    #[cfg_attr(feature = "cli", arg(long, requires = "task"))]
    #[serde(default)]
    pub eval_every: Option<u64>,
    /// Store the trained checkpoint as f32, f16, bf16 or f64 (default: A's dtype; f32 for a
    /// quantized GGUF A).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub dtype: Option<String>,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub training: TrainSettings,
    /// Prompt settings shape the training prompts too (mode, suffix, system), so the model is
    /// trained on the prompts it is evaluated on.
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub eval: EvalSettings,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub runtime: RuntimeSpec,
}

/// What a freeze run produced.
pub struct FreezeOutcome {
    pub summary: TrainSummary,
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
}

/// Run `sfn freeze` as `spec` says into `out` (resumed from its last save when it was interrupted
/// with the same spec).
pub fn run(spec: &FreezeSpec, out: &Path, ctx: &Context) -> Result<FreezeOutcome> {
    train_run(spec, out, ctx, true)
}

/// The trainable set's report: how many parameters, which share, and the tied note.
pub struct TrainableReport {
    pub names: Vec<String>,
    pub params: usize,
    pub total: usize,
    pub note: Option<String>,
}

impl TrainableReport {
    fn of(model: &TrainModel) -> TrainableReport {
        let names: Vec<String> = model.trainable_names().iter().map(|n| n.to_string()).collect();
        let (total, params) = model.num_params();
        let note = (model.tied() && names.iter().any(|n| n == EMBED)).then(|| {
            format!("{EMBED} is also the output projection ({LM_HEAD}): the embeddings are tied, so training either trains both")
        });
        TrainableReport { names, params, total, note }
    }

    pub fn line(&self) -> String {
        format!(
            "training {} of {} parameters ({:.2}%) in {} tensors{}",
            self.params,
            self.total,
            100.0 * self.params as f64 / self.total.max(1) as f64,
            self.names.len(),
            self.note.as_ref().map(|n| format!("; {n}")).unwrap_or_default()
        )
    }
}

/// A run of `spec` into `out`; `eval_before`: evaluate the untrained model first (a sweep
/// evaluates A once for all its runs instead).
pub(crate) fn train_run(spec: &FreezeSpec, out: &Path, ctx: &Context, eval_before: bool) -> Result<FreezeOutcome> {
    spec.runtime.init()?;
    let a = Checkpoint::open(&spec.a).map_err(|e| Error::Side("A", Box::new(e.into())))?;
    let mut selector = Selector::parse(&spec.train)?;
    if let Some(l) = &spec.layers {
        selector = selector.with_layers(l)?;
    }
    let mut model = TrainModel::load(&a, Trainable::Selector(&selector))?;
    let report = TrainableReport::of(&model);
    let tokenizer = Tokenizer::for_source(&a).map_err(|e| e.context("tokenizer of A"))?;
    let config = spec.eval.config(spec.training.seed, spec.eval.reference.is_some())?;
    let max_len = spec.training.max_seq_len.unwrap_or(model.max_positions()).min(model.max_positions());
    let data_opts = DataOptions {
        prompt: config.prompt.clone(),
        max_len,
        truncate: spec.training.truncate,
        vocab_size: model.config().vocab_size,
    };
    let data = data::load(&spec.data, &tokenizer, &data_opts)?;
    let tasks = spec.task.as_deref().map(|t| spec.eval.tasks(t)).transpose()?;

    let mut inputs = vec![a.input("a")?, Input::file("data", &spec.data)?];
    if let Some(t) = &spec.task {
        inputs.push(Input::file("tasks", t)?);
    }
    let spec_json = serde_json::to_value(spec).expect("plain data");
    // A save may only be resumed by the same spec on the same inputs.
    let fingerprint = sfn_run::fingerprint::sha256_hex(
        serde_json::to_string(&(&spec_json, inputs.iter().map(|i| &i.files).collect::<Vec<_>>()))
            .expect("plain data")
            .as_bytes(),
    );
    let provenance = Provenance::new(ctx.command.clone(), spec_json.clone(), inputs.clone(), Some(spec.training.seed));
    let run = RunDir::create(out, "freeze", provenance)?;
    ctx.progress.note(&report.line());
    let reference = LoadedReference::open(spec.eval.reference.as_deref(), &spec.runtime)?;
    let (outcome, _) = run.finish_with(|run| -> Result<FreezeOutcome> {
        sfn_run::memory::reset_peak_rss();
        let evaluator = Evaluator {
            root: run.path().to_path_buf(),
            spec,
            a: &a,
            tasks: tasks.as_ref(),
            reference: reference.as_ref().map(|r| r.get()),
            inputs: &inputs,
            spec_json: &spec_json,
            ctx,
        };
        let mut points = vec![];
        if eval_before {
            points.extend(evaluator.eval(&model, "before", 0)?);
        }
        let total = trainer::Plan::new(&data, &spec.training, max_len)?.total_steps;
        ctx.progress.stage("training", total, Unit::Steps);
        let trained = trainer::train::<Error>(
            &mut model,
            &data,
            &spec.training,
            run.path(),
            &fingerprint,
            spec.eval.fresh,
            &mut |rec, m| {
                ctx.progress.set(rec.step, total);
                if spec.eval_every.is_some_and(|n| rec.step % n == 0) && rec.step < total {
                    // Evaluations write their own run directories; the stage bar comes back after.
                    points.extend(evaluator.eval(m, &format!("step-{:06}", rec.step), rec.step)?);
                    ctx.progress.stage("training", total, Unit::Steps);
                    ctx.progress.set(rec.step, total);
                }
                Ok(())
            },
        )?;
        ctx.progress.finish();
        points.extend(evaluator.eval(&model, "after", trained.log.last().map_or(0, |r| r.step))?);
        for p in &points {
            run.record(&format!("eval/{}", p.name))?;
        }
        let peak = sfn_run::memory::peak_rss_bytes();
        let files = output::write(run, &a, &model, &tokenizer, spec, &report, &data, &trained, points, peak, ctx)?;
        let summary = output::TrainSummary::read(run.path())?;
        Ok(FreezeOutcome { summary, dir: run.path().to_path_buf(), files })
    })?;
    Ok(outcome)
}

/// Evaluates the model being trained, in memory, on the spec's task file, into the run's
/// `eval/<name>/` (one evaluation run directory each).
struct Evaluator<'a> {
    root: PathBuf,
    spec: &'a FreezeSpec,
    a: &'a Checkpoint,
    tasks: Option<&'a TaskSet>,
    reference: Option<Reference<'a>>,
    inputs: &'a [Input],
    spec_json: &'a serde_json::Value,
    ctx: &'a Context<'a>,
}

impl Evaluator<'_> {
    /// Evaluate `model` as it is at `step` (nothing without a task file).
    fn eval(&self, model: &TrainModel, name: &str, step: u64) -> Result<Option<EvalPoint>> {
        let Some(tasks) = self.tasks else { return Ok(None) };
        let dir = self.root.join("eval").join(name);
        let reference = self.reference.is_some();
        let mut job =
            self.spec.eval.job(tasks, &dir, self.spec.training.seed, reference, self.spec_json.clone(), self.ctx)?;
        job.models = self.inputs.to_vec();
        let view = TrainedWeights { model, base: self.a };
        let describe = serde_json::json!({
            "a": absolute(&self.a.path),
            "trained": self.spec.train,
            "step": step,
            "runtime": self.spec.runtime.describe(),
        });
        let (runtime, progress) = (&self.spec.runtime, self.ctx.progress);
        progress.stage(&format!("evaluating ({name})"), tasks.tasks.len() as u64, Unit::Tasks);
        let outcome = evaluate_source(&job, &view, self.a, describe, runtime, self.reference.as_ref(), progress)?;
        Ok(Some(EvalPoint::of(name, step, &outcome.summary)))
    }
}
