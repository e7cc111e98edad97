//! The Delta stethoscope: how much, and how, every tensor changed from checkpoint A to B.
//!
//! For each tensor present in both with the same shape: ‖B−A‖₂, ‖A‖₂, ‖B‖₂, relative change,
//! cosine(A, B), max |B−A|, non-finite counts, the histogram of the element-wise relative change
//! (B−A)/(|A|+1e-8) clipped to [−1, 1] over the whole tensor, and its bimodality. Tensors in one
//! checkpoint only, or with different shapes, are listed (an error under `strict`).
//!
//! - `plan`: which tensors are compared;
//! - `compare`: the streaming comparison (any dtype on either side, bounded memory, all cores);
//! - `stats`: the per-element kernel; `bimodality`: Hartigan's dip of a histogram;
//! - `aggregate`: module × layer cells, per-module summaries and the verdict;
//! - `write` and `figures`: delta.json, delta.csv, the terminal table and the figures.
//!
//! [`run`] is the entry point of `sfn delta` (and of study files and the lab): a [`DeltaSpec`]
//! into a run directory.

pub mod aggregate;
pub mod bimodality;
pub mod compare;
pub mod figures;
pub mod plan;
pub mod stats;
pub mod write;

pub use compare::{compare, delta, rel_change, DeltaResult, Histogram, NonFinite, TensorDelta};
pub use plan::{Plan, ShapeMismatch};

use crate::error::Result;
use aggregate::{Aggregates, Metric};
use sfn_checkpoint::selector::Selector;
use sfn_checkpoint::Checkpoint;
use sfn_run::{Context, Provenance, RunDir, Unit};
use std::path::{Path, PathBuf};

/// Default number of histogram bins over [−1, 1].
pub const DEFAULT_BINS: usize = 200;
/// Upper limit for `bins` (the bimodality measure is O(bins) per bisection step).
pub const MAX_BINS: usize = 100_000;
/// Stored bytes per work item (of the wider side): large enough that scheduling and the
/// re-faults caused by releasing pages cost little, small enough that a 1.5B model gives 16
/// cores dozens of items, and that threads × 2 items in flight stay far below 0.5 GB.
pub const DEFAULT_CHUNK_BYTES: usize = 8 << 20;
/// Elements accumulated at a time inside a work item: where A or B must be converted, its f32
/// buffer (64 KiB) stays in the L2 cache.
const SUB_ELEMS: usize = 16 << 10;

#[derive(Debug, Clone)]
pub struct DeltaOptions {
    /// Histogram bins over [−1, 1].
    pub bins: usize,
    /// Compare only the tensors this selector matches (an error when it matches none).
    pub selector: Option<Selector>,
    /// Fail when the checkpoints do not hold the same (selected) tensors with the same shapes.
    pub strict: bool,
    /// Worker threads; 0 = one per core.
    pub threads: usize,
    /// Elements per work item (rounded to the granules); 0 = `DEFAULT_CHUNK_BYTES` worth.
    pub chunk_elems: usize,
}

impl Default for DeltaOptions {
    fn default() -> Self {
        DeltaOptions { bins: DEFAULT_BINS, selector: None, strict: false, threads: 0, chunk_elems: 0 }
    }
}

fn default_bins() -> usize {
    DEFAULT_BINS
}

/// `sfn delta A B`: which modules changed from A to B, and how.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct DeltaSpec {
    /// Base checkpoint A: directory, .safetensors file or .gguf file.
    pub a: PathBuf,
    /// Changed (fine-tuned) checkpoint B of the same architecture.
    pub b: PathBuf,
    /// Compare only these modules (e.g. `o_proj`, `attn,mlp`, `layers[5..30].mlp`, `!embed`).
    #[cfg_attr(feature = "cli", arg(long, short = 's'))]
    #[serde(default)]
    pub select: Option<String>,
    /// Restrict to these layers (`5..30`, `0..=3,10`); with --select, applies to its terms.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub layers: Option<String>,
    /// Histogram bins over [-1, 1] for the element-wise relative change.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = DEFAULT_BINS))]
    #[serde(default = "default_bins")]
    pub bins: usize,
    /// What ranks module kinds and the verdict: `rel` (‖B−A‖/‖A‖) or `l2` (‖B−A‖, the paper's
    /// Fig. 2 quantity, which grows with matrix size).
    #[cfg_attr(feature = "cli", arg(long, default_value = "rel"))]
    #[serde(default)]
    pub metric: Metric,
    /// Histogram grid: every k-th layer as a row (default: at most 8 rows).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub hist_every: Option<usize>,
    /// Fail when A and B do not hold the same tensors with the same shapes.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub strict: bool,
    /// Worker threads (default: one per core). Does not change any number.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0))]
    #[serde(default)]
    pub threads: usize,
    /// Write only delta.json and delta.csv.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub no_figures: bool,
}

impl DeltaSpec {
    /// The comparison's options (the selector parsed and restricted to the layers).
    pub fn options(&self) -> Result<DeltaOptions> {
        let selector = match (&self.select, &self.layers) {
            (None, None) => None,
            (sel, layers) => {
                let s = Selector::parse(sel.as_deref().unwrap_or("all"))?;
                Some(match layers {
                    Some(l) => s.with_layers(l)?,
                    None => s,
                })
            }
        };
        Ok(DeltaOptions { bins: self.bins, selector, strict: self.strict, threads: self.threads, chunk_elems: 0 })
    }
}

/// What a Delta run produced.
pub struct DeltaOutcome {
    pub result: DeltaResult,
    pub aggregates: Aggregates,
    /// The run directory and the files written into it.
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
}

/// Run `sfn delta` as `spec` says into the run directory `out`: delta.json, delta.csv and the
/// figures. Progress: one stage over the stored bytes of both checkpoints.
pub fn run(spec: &DeltaSpec, out: &Path, ctx: &Context) -> Result<DeltaOutcome> {
    // The checkpoint errors name the path already; say only which side it is.
    let a = Checkpoint::open(&spec.a).map_err(|e| crate::Error::Side("A", Box::new(e.into())))?;
    let b = Checkpoint::open(&spec.b).map_err(|e| crate::Error::Side("B", Box::new(e.into())))?;
    let opts = spec.options()?;
    let plan = Plan::new(&a, &b, &opts)?;
    let spec_json = serde_json::to_value(spec).expect("plain data");
    let provenance = Provenance::new(ctx.command.clone(), spec_json, vec![a.input("a")?, b.input("b")?], None);
    // The run directory is checked and created before the long part, so a bad -o fails at once.
    let run = RunDir::create(out, "delta", provenance)?;
    let (outcome, _) = run.finish_with(|run| -> Result<DeltaOutcome> {
        ctx.progress.stage("delta", plan.total_bytes, Unit::Bytes);
        let result = compare(&a, &b, &plan, &opts, &|n| ctx.progress.advance(n))?;
        ctx.progress.finish();
        let aggregates = Aggregates::of(&result.tensors, spec.metric);
        let mut files = write::write_results(run, &result, &aggregates, &opts)?;
        if !spec.no_figures {
            files.extend(figures::write_figures(run, &result, &aggregates, spec.hist_every)?);
        }
        Ok(DeltaOutcome { result, aggregates, dir: run.path().to_path_buf(), files })
    })?;
    Ok(outcome)
}
