//! The Merge and Destruction stethoscopes on one variant: `sfn merge` (A with chosen modules
//! taken from, or mixed with, B) and `sfn destroy` (A with chosen modules zeroed, re-initialised,
//! scaled, or whole layers removed). The edited model is a lazy view over A (and B): written as a
//! Hugging Face checkpoint (streamed, atomic, with a README.md model card and run.json), and/or
//! evaluated in memory into a results directory, without writing any weights.
//!
//! The plans come from sfn-checkpoint's `merge_plan` / `destroy_plan`, the same functions the
//! sweeps use, so a single command and a sweep variant with the same settings are the same model.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sfn_checkpoint::edit::{destroy_plan, merge_plan, Damage, EditPlan, EditView, Method};
use sfn_checkpoint::writer::{model_card, weight_files, write_checkpoint, WriteSpec, WriteSummary};
use sfn_checkpoint::Checkpoint;
use sfn_eval::runtime::{evaluate_source, LoadedReference};
use sfn_eval::{EvalOutcome, EvalSettings};
use sfn_model::RuntimeSpec;
use sfn_run::rundir::absolute;
use sfn_run::{Context, Manifest, Provenance, Unit, RUN_FILE};
use std::path::PathBuf;

/// Which checkpoint config.json, the tokenizer (and chat template) and the generation config come
/// from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Side {
    #[default]
    A,
    B,
}

/// Evaluate the edited model in memory (`--eval TASK --results DIR`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct InMemoryEval {
    /// Evaluate the edited model in memory on this task file (then -o is optional).
    #[cfg_attr(feature = "cli", arg(long = "eval", value_name = "TASK", requires = "results"))]
    #[serde(default)]
    pub task: Option<PathBuf>,
    /// --eval: the results directory (samples.jsonl, summary.json; resumable).
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR", requires = "task"))]
    #[serde(default)]
    pub results: Option<PathBuf>,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub settings: EvalSettings,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub runtime: RuntimeSpec,
}

/// `sfn merge A B --take SEL`: A with the selected modules taken from B (or mixed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct MergeSpec {
    /// Base checkpoint A (everything not taken comes from here).
    pub a: PathBuf,
    /// Checkpoint B, same architecture as A.
    pub b: PathBuf,
    /// Modules to take from B, as a selector (`o_proj`, `qkv`, `layers[5..30].mlp`, ...).
    #[cfg_attr(feature = "cli", arg(long))]
    pub take: String,
    /// Mix instead of take: alpha·A + (1 − alpha)·B for the selected modules (0 = B, 1 = A).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub alpha: Option<f64>,
    /// Restrict every selector term to these layers (`5..30`, `0..=3,10`).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub layers: Option<String>,
    /// Where config.json, the tokenizer (and chat template) and the generation config come from
    /// (also the tokenizer used by --eval).
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value = "a"))]
    #[serde(default)]
    pub files_from: Side,
    /// Seed of sampling and of the bootstrap interval (with --eval). Recorded.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0))]
    #[serde(default)]
    pub seed: u64,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub write: WriteSpec,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub eval: InMemoryEval,
}

fn default_std() -> f64 {
    0.02
}

/// `sfn destroy A --select SEL --layers R --method M`: A with the selected modules damaged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct DestroySpec {
    /// Checkpoint A to damage.
    pub a: PathBuf,
    /// Modules to destroy, as a selector (`o_proj`, `mlp`, `attn`, ...). With `--method remove`,
    /// omit it (whole layers go).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub select: Option<String>,
    /// Layers to act on (`5..30` = 5 to 29).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub layers: Option<String>,
    /// zero, reinit (N(mean, std), seeded), remove (whole layers) or scale (by --factor).
    #[cfg_attr(feature = "cli", arg(long))]
    pub method: Method,
    /// reinit: standard deviation.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = default_std()))]
    #[serde(default = "default_std")]
    pub std: f64,
    /// reinit: mean.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.0))]
    #[serde(default)]
    pub mean: f64,
    /// Seed of reinit (recorded in the model card) and, with --eval, of sampling and the bootstrap.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0))]
    #[serde(default)]
    pub seed: u64,
    /// scale: factor.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub factor: Option<f64>,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub write: WriteSpec,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub eval: InMemoryEval,
}

/// What a merge or destruction produced.
pub struct EditOutcome {
    /// The written checkpoint, with -o.
    pub written: Option<WriteSummary>,
    pub tensors: usize,
    pub edited_tensors: usize,
    /// The in-memory evaluation, with --eval.
    pub eval: Option<EvalOutcome>,
}

/// Run `sfn merge` as `spec` says.
pub fn merge(spec: &MergeSpec, ctx: &Context) -> Result<EditOutcome> {
    let a = Checkpoint::open(&spec.a).map_err(|e| Error::Side("A", Box::new(e.into())))?;
    let b = Checkpoint::open(&spec.b).map_err(|e| Error::Side("B", Box::new(e.into())))?;
    let plan = merge_plan(&spec.take, spec.layers.as_deref(), spec.alpha)?;
    let view = EditView::new(&a, Some(&b), plan)?;
    let from_b = spec.files_from == Side::B;
    let job = EditJob { kind: "merge", title: "Merged checkpoint", files_from_b: from_b, seed: spec.seed };
    job.run(&view, &spec.write, &spec.eval, serde_json::to_value(spec).expect("plain data"), ctx)
}

/// Run `sfn destroy` as `spec` says.
pub fn destroy(spec: &DestroySpec, ctx: &Context) -> Result<EditOutcome> {
    let a = Checkpoint::open(&spec.a)?;
    let damage = Damage { mean: spec.mean, std: spec.std, seed: spec.seed, factor: spec.factor };
    let plan = destroy_plan(spec.method, spec.select.as_deref(), spec.layers.as_deref(), damage)?;
    let view = EditView::new(&a, None, plan)?;
    let job = EditJob { kind: "destroy", title: "Destroyed checkpoint", files_from_b: false, seed: spec.seed };
    job.run(&view, &spec.write, &spec.eval, serde_json::to_value(spec).expect("plain data"), ctx)
}

/// What merge and destroy share once the view is built.
struct EditJob {
    kind: &'static str,
    title: &'static str,
    files_from_b: bool,
    seed: u64,
}

impl EditJob {
    fn run(
        &self,
        view: &EditView,
        write: &WriteSpec,
        eval: &InMemoryEval,
        spec: serde_json::Value,
        ctx: &Context,
    ) -> Result<EditOutcome> {
        let requested = eval.task.is_some() && eval.results.is_some();
        if write.out.is_none() && !requested {
            return Err(Error::Options(
                "give -o OUT to write the edited checkpoint, --eval TASK --results DIR to evaluate it in memory, or both"
                    .into(),
            ));
        }
        let mut inputs = vec![view.a.input("a")?];
        if let Some(b) = view.b {
            inputs.push(b.input("b")?);
        }
        let provenance = Provenance::new(ctx.command.clone(), spec, inputs, Some(self.seed));
        let written = match write.out {
            Some(_) => Some(self.write(view, write, provenance.clone(), ctx)?),
            None => None,
        };
        let eval = match (&eval.task, &eval.results) {
            (Some(task), Some(results)) => Some(self.evaluate(view, eval, task, results, &provenance, ctx)?),
            _ => None,
        };
        let edited_tensors = view.tensors().iter().filter(|t| t.edit.is_some()).count();
        Ok(EditOutcome { written, tensors: view.tensors().len(), edited_tensors, eval })
    }

    /// Write the view as a checkpoint, with a README.md model card that records the plan, the
    /// inputs and the command line, run.json, and the plan in every shard's metadata.
    /// config.json, the tokenizer and the generation config come from A, or from B.
    fn write(&self, view: &EditView, write: &WriteSpec, provenance: Provenance, ctx: &Context) -> Result<WriteSummary> {
        let mut sources = vec![view.a];
        sources.extend(view.b);
        if self.files_from_b {
            sources.reverse();
        }
        let mut opts = write.options(&sources)?;
        if let Some(cfg) = view.config_json()? {
            opts.config_json = Some(cfg);
        }
        let plan_json = serde_json::to_string(&view.plan).expect("plain data");
        opts.metadata.insert("sfn_plan".into(), plan_json.clone());
        let edited: Vec<_> = view.tensors().iter().filter(|t| t.edit.is_some()).collect();
        let edited_params: u64 = edited.iter().map(|t| t.shape.iter().product::<usize>() as u64).sum();
        let mut facts = vec![("A", format!("`{}`", view.a.path.display()))];
        if let Some(b) = view.b {
            facts.push(("B", format!("`{}`", b.path.display())));
        }
        facts.push(("plan", format!("`{plan_json}`")));
        facts.push((
            "edited tensors",
            format!("{} ({edited_params} parameters); removed layers: {}", edited.len(), removed(&view.plan)),
        ));
        facts.push(("command", format!("`{}`", ctx.command.join(" "))));
        let list = edited.iter().map(|t| format!("- `{}`", t.name)).collect::<Vec<_>>().join("\n");
        opts.extra_files.push(model_card(self.title, &facts, &[("Edited tensors", list)]));
        let specs = view.specs(write.dtype()?);
        let mut files = weight_files(&specs, opts.max_shard_bytes);
        files.extend(opts.extra_files.iter().map(|(name, _)| name.clone()));
        let manifest = Manifest::complete(self.kind, provenance, files);
        opts.extra_files.push((RUN_FILE.into(), manifest.to_json()));
        ctx.progress.stage("writing", specs.iter().map(|s| s.nbytes()).sum(), Unit::Bytes);
        let summary = write_checkpoint(write.out()?, &specs, &opts, |spec, w| {
            let planned = view.get(&spec.name).expect("specs come from the view");
            view.write_tensor(planned, spec.dtype, w)?;
            ctx.progress.advance(spec.nbytes());
            Ok(())
        })?;
        ctx.progress.finish();
        Ok(summary)
    }

    /// Evaluate the view in memory into `results`, with the tokenizer of A (or B).
    fn evaluate(
        &self,
        view: &EditView,
        eval: &InMemoryEval,
        task: &std::path::Path,
        results: &std::path::Path,
        provenance: &Provenance,
        ctx: &Context,
    ) -> Result<EvalOutcome> {
        eval.runtime.init()?;
        let tasks = eval.settings.tasks(task)?;
        let reference = eval.settings.reference.is_some();
        let mut job = eval.settings.job(&tasks, results, self.seed, reference, provenance.spec.clone(), ctx)?;
        job.models = provenance.inputs.clone();
        let describe = serde_json::json!({
            "a": absolute(&view.a.path),
            "b": view.b.map(|b| absolute(&b.path)),
            "plan": view.plan,
            "runtime": eval.runtime.describe(),
        });
        let tokenizer_from = match (self.files_from_b, view.b) {
            (true, Some(b)) => b,
            _ => view.a,
        };
        let loaded = LoadedReference::open(eval.settings.reference.as_deref(), &eval.runtime)?;
        let reference = loaded.as_ref().map(|r| r.get());
        ctx.progress.stage("evaluating", tasks.tasks.len() as u64, Unit::Tasks);
        let outcome =
            evaluate_source(&job, view, tokenizer_from, describe, &eval.runtime, reference.as_ref(), ctx.progress)?;
        ctx.progress.finish();
        Ok(outcome)
    }
}

fn removed(plan: &EditPlan) -> String {
    if plan.remove_layers.is_empty() {
        "none".into()
    } else {
        format!("{:?}", plan.remove_layers)
    }
}
