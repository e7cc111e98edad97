//! `sfn freeze-sweep A --data D --task T --sets F1,F2,F3,F4 -o DIR`: the paper's Table 2. A is
//! evaluated once (DIR/A/), then one freeze run per trainable set (DIR/<set>/, each resumable, each
//! evaluated after training), then the table: set, modules, trainable parameters, steps/s,
//! tokens/s, peak memory, accuracy before and after with 95% intervals, output levels — as
//! freeze_sweep.json (read back by `FreezeSweepReport::read`), freeze_sweep.md (also printed) and
//! the loss curves of every set in one figure.
//!
//! Sets are the paper's (F1 embed + lm_head + norms; F2 F1 + o_proj; F3 F1 + q, k, v, o; F4
//! everything), `NAME=SELECTOR` entries, or a TOML file of `NAME = "SELECTOR"` lines.

use super::output::{EvalPoint, TrainSummary};
use super::{train_run, FreezeSpec};
use crate::error::{Error, Result};
use crate::figure;
use serde::{Deserialize, Serialize};
use sfn_checkpoint::Checkpoint;
use sfn_eval::runtime::{evaluate_source, LoadedReference};
use sfn_eval::EvalSettings;
use sfn_model::RuntimeSpec;
use sfn_run::rundir::absolute;
use sfn_run::{Context, Provenance, RunDir, Unit};
use sfn_train::trainer::{read_log, TrainSettings, LOG_FILE};
use std::path::{Path, PathBuf};

/// The paper's trainable sets.
pub const PAPER_SETS: [(&str, &str); 4] = [
    ("F1", "embed,lm_head,norms"),
    ("F2", "embed,lm_head,norms,o_proj"),
    ("F3", "embed,lm_head,norms,q_proj,k_proj,v_proj,o_proj"),
    ("F4", "all"),
];

fn paper_set_names() -> Vec<String> {
    PAPER_SETS.iter().map(|(n, _)| n.to_string()).collect()
}

/// `sfn freeze-sweep`: one freeze run per trainable set, then Table 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct FreezeSweepSpec {
    /// Model A to fine-tune.
    pub a: PathBuf,
    /// Training data (see `sfn freeze --help`).
    #[cfg_attr(feature = "cli", arg(long))]
    pub data: PathBuf,
    /// Task file every model is evaluated on (A before, each set after training).
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub task: PathBuf,
    /// Trainable sets: F1..F4 (the paper's) or NAME=SELECTOR, comma-separated.
    #[cfg_attr(feature = "cli", arg(long, value_delimiter = ',', default_value = "F1,F2,F3,F4"))]
    #[serde(default = "paper_set_names")]
    pub sets: Vec<String>,
    /// A TOML file of `NAME = "SELECTOR"` lines, instead of --sets.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    #[serde(default)]
    pub sets_file: Option<PathBuf>,
    /// Restrict every set to these layers.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub layers: Option<String>,
    /// Store the trained checkpoints in this dtype (default: A's; f32 for a quantized GGUF A).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub dtype: Option<String>,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub training: TrainSettings,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub eval: EvalSettings,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub runtime: RuntimeSpec,
}

impl FreezeSweepSpec {
    /// (name, selector) of every set, in order.
    pub fn resolved_sets(&self) -> Result<Vec<(String, String)>> {
        if let Some(path) = &self.sets_file {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            let table: toml::Table =
                toml::from_str(&text).map_err(|e| Error::Options(format!("{}: {e}", path.display())))?;
            return table
                .into_iter()
                .map(|(name, v)| match v.as_str() {
                    Some(sel) => Ok((name, sel.to_string())),
                    None => Err(Error::Options(format!("{}: `{name}` must be a selector string", path.display()))),
                })
                .collect();
        }
        self.sets
            .iter()
            .map(|s| match s.split_once('=') {
                Some((name, sel)) => Ok((name.trim().to_string(), sel.trim().to_string())),
                None => PAPER_SETS
                    .iter()
                    .find(|(n, _)| n == s)
                    .map(|(n, sel)| (n.to_string(), sel.to_string()))
                    .ok_or_else(|| Error::Options(format!("set `{s}`: use F1, F2, F3, F4 or NAME=SELECTOR"))),
            })
            .collect()
    }
}

/// One row of Table 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreezeRow {
    pub set: String,
    pub selector: String,
    pub trainable_params: usize,
    pub trainable_share: f64,
    pub steps: u64,
    pub steps_per_s: f64,
    pub tokens_per_s: f64,
    pub peak_rss_bytes: Option<u64>,
    pub final_loss: Option<f64>,
    pub before: Option<EvalPoint>,
    pub after: Option<EvalPoint>,
    pub results_dir: PathBuf,
}

/// freeze_sweep.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FreezeSweepReport {
    pub provenance: Provenance,
    pub rows: Vec<FreezeRow>,
}

pub const JSON_FILE: &str = "freeze_sweep.json";
pub const MARKDOWN_FILE: &str = "freeze_sweep.md";

impl FreezeSweepReport {
    pub fn read(dir: &Path) -> Result<FreezeSweepReport> {
        Ok(sfn_run::rundir::read_json(&dir.join(JSON_FILE))?)
    }
}

/// What a freeze sweep produced.
pub struct FreezeSweepOutcome {
    pub rows: Vec<FreezeRow>,
    pub files: Vec<PathBuf>,
}

/// Run `sfn freeze-sweep` as `spec` says into the run directory `out`.
pub fn run(spec: &FreezeSweepSpec, out: &Path, ctx: &Context) -> Result<FreezeSweepOutcome> {
    let sets = spec.resolved_sets()?;
    if sets.is_empty() {
        return Err(Error::Options("no trainable sets".into()));
    }
    spec.runtime.init()?;
    let a = Checkpoint::open(&spec.a).map_err(|e| Error::Side("A", Box::new(e.into())))?;
    let inputs =
        vec![a.input("a")?, sfn_run::Input::file("data", &spec.data)?, sfn_run::Input::file("tasks", &spec.task)?];
    let spec_json = serde_json::to_value(spec).expect("plain data");
    let provenance = Provenance::new(ctx.command.clone(), spec_json.clone(), inputs.clone(), Some(spec.training.seed));
    let run = RunDir::create(out, "freeze-sweep", provenance)?;
    let (outcome, _) = run.finish_with(|run| -> Result<FreezeSweepOutcome> {
        // A, once: the "before" of every row.
        let tasks = spec.eval.tasks(&spec.task)?;
        let dir = run.join("A");
        let mut job =
            spec.eval.job(&tasks, &dir, spec.training.seed, spec.eval.reference.is_some(), spec_json.clone(), ctx)?;
        job.models = vec![inputs[0].clone()];
        let loaded = LoadedReference::open(spec.eval.reference.as_deref(), &spec.runtime)?;
        let reference = loaded.as_ref().map(|r| r.get());
        let describe = serde_json::json!({"model": absolute(&a.path), "runtime": spec.runtime.describe()});
        ctx.progress.stage("evaluating A", tasks.tasks.len() as u64, Unit::Tasks);
        let base = evaluate_source(&job, &a, &a, describe, &spec.runtime, reference.as_ref(), ctx.progress)?;
        run.record("A")?;
        let before = EvalPoint::of("before", 0, &base.summary);
        let mut rows = vec![];
        for (name, selector) in &sets {
            ctx.progress.note(&format!("freeze run {name}: train `{selector}`"));
            let one = FreezeSpec {
                a: spec.a.clone(),
                data: spec.data.clone(),
                train: selector.clone(),
                layers: spec.layers.clone(),
                task: Some(spec.task.clone()),
                eval_every: None,
                dtype: spec.dtype.clone(),
                training: spec.training.clone(),
                eval: spec.eval.clone(),
                runtime: spec.runtime.clone(),
            };
            let dir = run.join(name);
            let o = train_run(&one, &dir, ctx, false)?;
            run.record(name)?;
            rows.push(row(name, selector, &o.summary, Some(before.clone()), &dir));
        }
        let files = write(run, &rows)?;
        Ok(FreezeSweepOutcome { rows, files })
    })?;
    Ok(outcome)
}

fn row(set: &str, selector: &str, s: &TrainSummary, before: Option<EvalPoint>, dir: &Path) -> FreezeRow {
    FreezeRow {
        set: set.into(),
        selector: selector.into(),
        trainable_params: s.trainable_params,
        trainable_share: s.trainable_share,
        steps: s.steps,
        steps_per_s: s.steps_per_s,
        tokens_per_s: s.tokens_per_s,
        peak_rss_bytes: s.peak_rss_bytes,
        final_loss: s.final_loss,
        before,
        after: s.eval_after().cloned(),
        results_dir: dir.to_path_buf(),
    }
}

fn write(run: &mut RunDir, rows: &[FreezeRow]) -> Result<Vec<PathBuf>> {
    let report = FreezeSweepReport { provenance: run.manifest().provenance.clone(), rows: rows.to_vec() };
    let mut files = vec![run.write_json(JSON_FILE, &report)?, run.write(MARKDOWN_FILE, markdown(rows).as_bytes())?];
    let series = rows
        .iter()
        .map(|r| {
            let log = read_log(&r.results_dir.join(LOG_FILE)).unwrap_or_default();
            sfn_report::Series::new(&r.set, log.iter().map(|l| (l.step as f64, l.loss)).collect())
        })
        .collect();
    let fig = sfn_report::LineChart::new(
        "Training loss per trainable set",
        "optimizer step",
        "mean cross-entropy (nats/token)",
        series,
    );
    files.extend(figure::save(run, &fig, "freeze_loss")?);
    Ok(files)
}

/// Table 2 as markdown.
pub fn markdown(rows: &[FreezeRow]) -> String {
    let pct = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{:.1}%", 100.0 * v));
    let acc = |p: &Option<EvalPoint>| match p {
        Some(p) => match p.ci95 {
            Some([lo, hi]) => format!("{} [{}, {}]", pct(p.accuracy), pct(Some(lo)), pct(Some(hi))),
            None => pct(p.accuracy),
        },
        None => "n/a".into(),
    };
    let levels = |p: &Option<EvalPoint>| match p {
        Some(p) => {
            let n = p.levels.iter().sum::<usize>().max(1) as f64;
            p.levels.iter().map(|&l| format!("{:.0}%", 100.0 * l as f64 / n)).collect::<Vec<_>>().join(" / ")
        }
        None => "n/a".into(),
    };
    let mut md = String::from(
        "# Freeze sweep\n\n| set | trained modules | trainable params | share | steps/s | tokens/s | peak memory | loss | accuracy before | accuracy after | levels after (I/II/III/IV) |\n|---|---|---:|---:|---:|---:|---:|---:|---|---|---|\n",
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | `{}` | {} | {:.2}% | {:.3} | {:.0} | {} | {} | {} | {} | {} |\n",
            r.set,
            r.selector,
            r.trainable_params,
            100.0 * r.trainable_share,
            r.steps_per_s,
            r.tokens_per_s,
            r.peak_rss_bytes.map_or("n/a".into(), |b| format!("{:.0} MiB", b as f64 / (1 << 20) as f64)),
            r.final_loss.map_or("n/a".into(), |l| format!("{l:.3}")),
            acc(&r.before),
            acc(&r.after),
            levels(&r.after),
        ));
    }
    md.push_str("\nAccuracy with its bootstrap 95% interval; levels: I nonsense, II fluent but off the task, III on the task but wrong, IV correct.\n");
    md
}
