//! What a freeze run leaves in its directory besides train_log.jsonl: the trained model as a
//! Hugging Face checkpoint (trained tensors in A's dtype or the one asked for, frozen tensors
//! written exactly as they were read — byte copies where the dtype is kept; config.json, tokenizer
//! and chat template from A, or from a GGUF A its tokenizer as tokenizer.json), a README.md model
//! card, train_summary.json (read back by `TrainSummary::read`) and the loss curve.

use super::{FreezeSpec, TrainableReport};
use crate::error::Result;
use crate::figure;
use serde::{Deserialize, Serialize};
use sfn_checkpoint::writer::{model_card, weight_files, write_checkpoint_into, write_tensor_as, TensorSpec, WriteSpec};
use sfn_checkpoint::{Checkpoint, Format};
use sfn_eval::Summary;
use sfn_model::Tokenizer;
use sfn_run::{Context, Provenance, RunDir};
use sfn_train::data::Dataset;
use sfn_train::trainer::{StepRecord, Trained};
use sfn_train::{trained_tensor, TrainModel};
use std::path::{Path, PathBuf};

pub const SUMMARY_FILE: &str = "train_summary.json";

/// One evaluation of the model during a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalPoint {
    /// "before", "step-000040", "after": the directory under eval/.
    pub name: String,
    pub step: u64,
    pub accuracy: Option<f64>,
    pub ci95: Option<[f64; 2]>,
    pub mean_tokens: Option<f64>,
    /// Samples per level I, II, III, IV.
    pub levels: [usize; 4],
}

impl EvalPoint {
    pub fn of(name: &str, step: u64, s: &Summary) -> EvalPoint {
        EvalPoint {
            name: name.into(),
            step,
            accuracy: s.accuracy,
            ci95: s.ci95,
            mean_tokens: s.mean_tokens,
            levels: [s.levels.I, s.levels.II, s.levels.III, s.levels.IV],
        }
    }
}

/// train_summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    pub provenance: Provenance,
    /// The selector and the tensors it trains.
    pub train: String,
    pub trainable_tensors: Vec<String>,
    pub trainable_params: usize,
    pub total_params: usize,
    pub trainable_share: f64,
    /// Set when the embeddings are tied and the trainable set holds them.
    pub tied_note: Option<String>,
    pub examples: usize,
    pub data_tokens: usize,
    pub scored_tokens: usize,
    pub truncated: usize,
    pub steps: u64,
    pub epochs: f64,
    /// The step a resume started from, when the run was interrupted.
    pub resumed_from: Option<u64>,
    /// Seconds of training (across a resume), and the rates of the steps taken in the last call.
    pub train_seconds: f64,
    pub steps_per_s: f64,
    pub tokens_per_s: f64,
    /// Peak resident memory of the run (training and evaluation), bytes.
    pub peak_rss_bytes: Option<u64>,
    pub first_loss: Option<f64>,
    pub final_loss: Option<f64>,
    pub eval: Vec<EvalPoint>,
}

impl TrainSummary {
    pub fn read(dir: &Path) -> Result<TrainSummary> {
        Ok(sfn_run::rundir::read_json(&dir.join(SUMMARY_FILE))?)
    }

    pub fn eval_after(&self) -> Option<&EvalPoint> {
        self.eval.iter().find(|p| p.name == "after")
    }
}

/// Write the checkpoint, the card, the summary and the loss figure into the run directory.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write(
    run: &mut RunDir,
    a: &Checkpoint,
    model: &TrainModel,
    tokenizer: &Tokenizer,
    spec: &FreezeSpec,
    report: &TrainableReport,
    data: &Dataset,
    trained: &Trained,
    eval: Vec<EvalPoint>,
    peak_rss_bytes: Option<u64>,
    ctx: &Context,
) -> Result<Vec<PathBuf>> {
    let log = &trained.log;
    let summary = TrainSummary {
        provenance: run.manifest().provenance.clone(),
        train: spec.train.clone(),
        trainable_tensors: report.names.clone(),
        trainable_params: report.params,
        total_params: report.total,
        trainable_share: report.params as f64 / report.total.max(1) as f64,
        tied_note: report.note.clone(),
        examples: data.examples.len(),
        data_tokens: data.tokens(),
        scored_tokens: data.scored_tokens(),
        truncated: data.truncated,
        steps: log.last().map_or(0, |r| r.step),
        epochs: log.last().map_or(0.0, |r| r.epoch),
        resumed_from: trained.resumed_from,
        train_seconds: log.last().map_or(0.0, |r| r.seconds),
        steps_per_s: trained.steps_now as f64 / trained.seconds_now.max(1e-9),
        tokens_per_s: trained.tokens_now as f64 / trained.seconds_now.max(1e-9),
        peak_rss_bytes,
        first_loss: log.first().map(|r| r.loss),
        final_loss: log.last().map(|r| r.loss),
        eval,
    };
    let mut files = write_checkpoint(run, a, model, tokenizer, spec, &summary, ctx)?;
    files.push(run.write_json(SUMMARY_FILE, &summary)?);
    files.extend(loss_figure(run, log)?);
    Ok(files)
}

/// The trained model as a checkpoint in the run directory.
fn write_checkpoint(
    run: &mut RunDir,
    a: &Checkpoint,
    model: &TrainModel,
    tokenizer: &Tokenizer,
    spec: &FreezeSpec,
    summary: &TrainSummary,
    ctx: &Context,
) -> Result<Vec<PathBuf>> {
    let write = WriteSpec { dtype: spec.dtype.clone(), ..Default::default() };
    let forced = write.dtype()?;
    let trained = |name: &str| model.param(trained_tensor(name, model.tied())).filter(|p| p.trainable());
    let specs = TensorSpec::all_of(a, forced);
    let mut opts = write.options(&[a])?;
    if a.format == Format::Gguf {
        opts.extra_files.extend(tokenizer.hf_files()?);
    }
    let facts = [
        ("A", format!("`{}`", a.path.display())),
        ("data", format!("`{}`", spec.data.display())),
        ("trained", format!("`{}` — {} of {} parameters", spec.train, summary.trainable_params, summary.total_params)),
        (
            "steps",
            format!(
                "{} ({:.2} epochs), final loss {}",
                summary.steps,
                summary.epochs,
                summary.final_loss.map_or("n/a".into(), |l| format!("{l:.4}"))
            ),
        ),
        ("command", format!("`{}`", ctx.command.join(" "))),
    ];
    let list = summary.trainable_tensors.iter().map(|t| format!("- `{t}`")).collect::<Vec<_>>().join("\n");
    opts.extra_files.push(model_card("Fine-tuned checkpoint (sfn freeze)", &facts, &[("Trained tensors", list)]));
    write_checkpoint_into(run.path(), &specs, &opts, |s, w| {
        let t = a.tensor(&s.name)?;
        match trained(&s.name) {
            Some(p) => {
                let mut bytes = Vec::with_capacity(s.nbytes() as usize);
                sfn_checkpoint::dtype::from_f32(s.dtype, p.data, &mut bytes);
                w.write_all(&bytes).map_err(|e| sfn_checkpoint::Error::io(&s.name, e))
            }
            None => write_tensor_as(a, t, s.dtype, w),
        }
    })?;
    let mut names = weight_files(&specs, opts.max_shard_bytes);
    names.extend(opts.extra_files.iter().map(|(n, _)| n.clone()));
    if let Some(dir) = &opts.side_files_from {
        let side = sfn_checkpoint::writer::SIDE_FILES.iter().filter(|n| dir.join(n).is_file());
        names.extend(side.map(|n| n.to_string()));
    }
    if opts.config_json.is_some() {
        names.push("config.json".into());
    }
    names.sort();
    names.dedup();
    for n in &names {
        if run.join(n).exists() {
            run.record(n)?;
        }
    }
    Ok(names.iter().map(|n| run.join(n)).collect())
}

/// The training loss per step (train_loss.svg/png).
fn loss_figure(run: &mut RunDir, log: &[StepRecord]) -> Result<Vec<PathBuf>> {
    if log.is_empty() {
        return Ok(vec![]);
    }
    let points = log.iter().map(|r| (r.step as f64, r.loss)).collect();
    let fig = sfn_report::LineChart::new(
        "Training loss",
        "optimizer step",
        "mean cross-entropy (nats/token)",
        vec![sfn_report::Series::new("loss", points)],
    );
    figure::save(run, &fig, "train_loss")
}
