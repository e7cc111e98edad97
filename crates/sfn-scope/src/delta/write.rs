//! The Delta stethoscope's result files and terminal table.
//!
//! delta.json holds every number: provenance, run summary, the verdict, per-module summaries,
//! the layer × module grids, the cells (with summed histograms) and one record per tensor
//! (`TensorDelta`: name, layer, module, norms, cosine, max |Δ|, non-finite counts, histogram,
//! bimodality). delta.csv has one row per tensor with the scalar columns. Figures are drawn from
//! the same numbers by `figures`.

use super::aggregate::{Aggregates, Cell, Metric, ModuleSummary};
use super::stats::{CLIP, REL_EPS};
use super::{DeltaOptions, DeltaResult, ShapeMismatch, TensorDelta};
use crate::error::Result;
use sfn_run::{Provenance, RunDir};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub const JSON_FILE: &str = "delta.json";
pub const CSV_FILE: &str = "delta.csv";

/// delta.json, as written and as read back (`DeltaReport::read`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeltaReport {
    pub kind: String,
    #[serde(flatten)]
    pub provenance: Provenance,
    /// The settings that decide the numbers, with their derived constants (range, eps).
    pub options: serde_json::Value,
    pub summary: RunSummary,
    pub verdict: String,
    pub metric: Metric,
    pub modules: Vec<ModuleSummary>,
    pub grid: Grid,
    pub cells: Vec<Cell>,
    pub tensors: Vec<TensorDelta>,
}

impl DeltaReport {
    /// delta.json of the run directory `dir`.
    pub fn read(dir: &Path) -> Result<DeltaReport> {
        Ok(sfn_run::rundir::read_json(&dir.join(JSON_FILE))?)
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunSummary {
    pub compared: usize,
    pub parameters_compared: u64,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    pub shape_mismatch: Vec<ShapeMismatch>,
    pub nonfinite_pairs: u64,
    pub bins: usize,
    pub bytes_read: u64,
    pub elapsed_s: f64,
    pub bytes_per_s: f64,
    pub threads: usize,
}

/// Layer × module tables (rows `layers`, columns `modules`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Grid {
    pub layers: Vec<usize>,
    pub modules: Vec<String>,
    pub rel_change: Vec<Vec<Option<f64>>>,
    pub l2_diff: Vec<Vec<Option<f64>>>,
}

/// Write delta.json and delta.csv into the run directory. Returns the paths written.
pub fn write_results(
    run: &mut RunDir,
    result: &DeltaResult,
    agg: &Aggregates,
    opts: &DeltaOptions,
) -> Result<Vec<PathBuf>> {
    let doc = DeltaReport {
        kind: "sfn.delta".into(),
        provenance: run.manifest().provenance.clone(),
        options: serde_json::json!({
            "bins": opts.bins,
            "range": [-CLIP, CLIP],
            "eps": REL_EPS,
            "select": opts.selector.as_ref().map(|s| s.to_string()),
            "strict": opts.strict,
            "metric": agg.metric.name(),
        }),
        summary: RunSummary {
            compared: result.tensors.len(),
            parameters_compared: result.tensors.iter().map(|t| t.numel).sum(),
            only_in_a: result.only_in_a.clone(),
            only_in_b: result.only_in_b.clone(),
            shape_mismatch: result.shape_mismatch.clone(),
            nonfinite_pairs: result.tensors.iter().map(|t| t.nonfinite.pairs).sum(),
            bins: result.bins,
            bytes_read: result.bytes_read,
            elapsed_s: result.elapsed_s,
            bytes_per_s: result.bytes_read as f64 / result.elapsed_s.max(1e-9),
            threads: result.threads,
        },
        verdict: agg.verdict.clone(),
        metric: agg.metric,
        modules: agg.summary.clone(),
        grid: Grid {
            layers: agg.layers.clone(),
            modules: agg.modules.clone(),
            rel_change: agg.grid(Metric::RelChange),
            l2_diff: agg.grid(Metric::L2Diff),
        },
        cells: agg.cells.clone(),
        tensors: result.tensors.clone(),
    };
    let json_path = run.write_json(JSON_FILE, &doc)?;
    let csv_path = run.write(CSV_FILE, csv(&result.tensors).as_bytes())?;
    Ok(vec![json_path, csv_path])
}

/// One row per tensor. Undefined values (rel_change of an all-zero A, cosine of a zero tensor)
/// are empty cells.
pub fn csv(tensors: &[TensorDelta]) -> String {
    let mut s = String::from(
        "name,layer,module,param,shape,numel,dtype_a,dtype_b,l2_diff,l2_a,l2_b,rel_change,cosine,max_abs_diff,\
         nonfinite_a,nonfinite_b,clipped_low,clipped_high,dip,sarle_bc,bimodal,modes\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:e}"));
    for t in tensors {
        let shape = t.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x");
        let modes = t.bimodality.modes.iter().map(|m| format!("{m:.4}")).collect::<Vec<_>>().join(" ");
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{:e},{:e},{:e},{},{},{:e},{},{},{},{},{:.6},{},{},{}",
            csv_field(&t.name),
            t.layer.map_or(String::new(), |l| l.to_string()),
            t.module,
            t.param,
            shape,
            t.numel,
            t.dtype_a,
            t.dtype_b,
            t.l2_diff,
            t.l2_a,
            t.l2_b,
            opt(t.rel_change),
            opt(t.cosine),
            t.max_abs_diff,
            t.nonfinite.a,
            t.nonfinite.b,
            t.hist.clipped_low,
            t.hist.clipped_high,
            t.bimodality.dip,
            t.bimodality.sarle_bc.map_or(String::new(), |v| format!("{v:.6}")),
            t.bimodality.bimodal,
            modes
        );
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A compact number for tables: 4 significant digits, scientific outside [1e-3, 1e4).
fn num(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(0.0) => "0".into(),
        Some(v) if (1e-3..1e4).contains(&v.abs()) => format!("{v:.4}"),
        Some(v) => format!("{v:.3e}"),
    }
}

/// The table printed on the terminal: one row per module kind (ranked), the verdict, and what
/// could not be compared.
pub fn table(result: &DeltaResult, agg: &Aggregates) -> String {
    let mut s = String::new();
    let metric_cols = match agg.metric {
        Metric::RelChange => "median rel   mean rel    max rel",
        Metric::L2Diff => " median ‖Δ‖   mean ‖Δ‖    max ‖Δ‖",
    };
    let _ = writeln!(
        s,
        "{:>4}  {:<15}{:>6}  {metric_cols}  {:>9}  {:>8}  {:>8}",
        "rank", "module", "cells", "mean rank", "first", "bimodal"
    );
    for m in &agg.summary {
        let spread = match agg.metric {
            Metric::RelChange => m.rel_change,
            Metric::L2Diff => m.l2_diff,
        };
        let _ = writeln!(
            s,
            "{:>4}  {:<15}{:>6}  {:>10} {:>10} {:>10}  {:>9}  {:>8}  {:>8}",
            m.rank,
            m.module,
            m.cells,
            num(spread.map(|x| x.median)),
            num(spread.map(|x| x.mean)),
            num(spread.map(|x| x.max)),
            m.mean_layer_rank.map_or("–".into(), |r| format!("{r:.2}")),
            if m.ranked_layers > 0 { format!("{}/{}", m.first_in_layers, m.ranked_layers) } else { "–".into() },
            format!("{}/{}", m.bimodal_cells, m.cells),
        );
    }
    let _ = writeln!(s, "\n{}", agg.verdict);
    let nonfinite: u64 = result.tensors.iter().map(|t| t.nonfinite.pairs).sum();
    if nonfinite > 0 {
        let _ = writeln!(s, "note: {nonfinite} element pairs with NaN/Inf were left out of the statistics");
    }
    let list = |v: &[String]| {
        let mut l = v.iter().take(4).cloned().collect::<Vec<_>>().join(", ");
        if v.len() > 4 {
            l.push_str(&format!(", … {} more", v.len() - 4));
        }
        l
    };
    if !result.only_in_a.is_empty() {
        let _ = writeln!(s, "only in A ({}): {}", result.only_in_a.len(), list(&result.only_in_a));
    }
    if !result.only_in_b.is_empty() {
        let _ = writeln!(s, "only in B ({}): {}", result.only_in_b.len(), list(&result.only_in_b));
    }
    for m in result.shape_mismatch.iter().take(4) {
        let _ = writeln!(s, "different shapes: {} {:?} vs {:?}", m.name, m.shape_a, m.shape_b);
    }
    if result.shape_mismatch.len() > 4 {
        let _ = writeln!(s, "… {} more with different shapes", result.shape_mismatch.len() - 4);
    }
    s
}
