//! From per-tensor deltas to the questions people ask: which module kind changed most, in which
//! layers, and is its change bimodal.
//!
//! - Cells (paper Fig. 2): one per (module kind, layer). A module's parameters (weight and bias)
//!   are summed as one vector: ‖Δ‖² and ‖A‖² add, histogram counts add. (Biases are tiny next to
//!   their weights, so this is ‖Δw‖ to three digits, but it keeps every parameter counted once.)
//! - Module summaries: per kind, mean / median / min / max over its cells of the chosen metric,
//!   the rank of the kind within each layer (1 = changed most in that layer) averaged over layers
//!   and the number of layers where it ranks first — "o_proj changes most in 27 of 28 layers" is
//!   the paper's observation.
//! - The verdict: kinds ordered by the median over layers (a single odd layer cannot win it),
//!   compared with the runner-up.
//!
//! Metric: relative change ‖ΔW‖/‖W‖ by default, because absolute ‖ΔW‖ grows with the matrix size
//! (Qwen2.5-1.5B's MLP matrices are 5.8× o_proj's), which ranks big matrices first for no
//! reason; the absolute norm, the paper's Fig. 2 quantity, is available as `Metric::L2`.

use super::bimodality::Bimodality;
use super::{rel_change, TensorDelta};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// ‖B−A‖₂ / ‖A‖₂.
    #[default]
    #[serde(alias = "rel")]
    RelChange,
    /// ‖B−A‖₂.
    #[serde(alias = "l2")]
    L2Diff,
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Metric, String> {
        Metric::parse(s).ok_or_else(|| format!("metric `{s}`: choose rel or l2"))
    }
}

impl Metric {
    pub fn parse(s: &str) -> Option<Metric> {
        match s {
            "rel" | "rel_change" | "relative" => Some(Metric::RelChange),
            "l2" | "l2_diff" | "abs" => Some(Metric::L2Diff),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Metric::RelChange => "rel_change",
            Metric::L2Diff => "l2_diff",
        }
    }
    /// Words for tables and verdicts.
    pub fn describe(self) -> &'static str {
        match self {
            Metric::RelChange => "relative change ‖B−A‖/‖A‖",
            Metric::L2Diff => "‖B−A‖₂",
        }
    }
    fn of(self, c: &Cell) -> Option<f64> {
        match self {
            Metric::RelChange => c.rel_change,
            Metric::L2Diff => Some(c.l2_diff),
        }
    }
}

/// One module kind in one layer (or a layerless module: embed, final_norm, lm_head).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Cell {
    pub module: String,
    pub layer: Option<usize>,
    pub tensors: Vec<String>,
    pub numel: u64,
    pub l2_diff: f64,
    pub l2_a: f64,
    pub l2_b: f64,
    pub rel_change: Option<f64>,
    /// Summed histogram of its tensors (same bins as theirs).
    pub hist_counts: Vec<u64>,
    pub clipped_low: u64,
    pub clipped_high: u64,
    pub bimodality: Bimodality,
}

/// Five numbers over a module kind's cells.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Spread {
    pub mean: f64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    fn of(mut v: Vec<f64>) -> Option<Spread> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) };
        Some(Spread { mean: v.iter().sum::<f64>() / n as f64, median, min: v[0], max: v[n - 1] })
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModuleSummary {
    pub module: String,
    /// Cells (layers; 1 for a layerless module).
    pub cells: usize,
    pub numel: u64,
    /// Over cells; None when no cell has a value (rel_change of an all-zero A).
    pub rel_change: Option<Spread>,
    pub l2_diff: Option<Spread>,
    /// Position by the median of the chosen metric, 1 = changed most.
    pub rank: usize,
    /// Mean over layers of its rank among the module kinds of that layer (None when layerless).
    pub mean_layer_rank: Option<f64>,
    /// Layers where it changed most / layers it was ranked in.
    pub first_in_layers: usize,
    pub ranked_layers: usize,
    /// Cells whose histogram is bimodal.
    pub bimodal_cells: usize,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Aggregates {
    pub metric: Metric,
    /// Layer indices present (rows of the grid).
    pub layers: Vec<usize>,
    /// Module kinds present, in block order (columns of the grid).
    pub modules: Vec<String>,
    /// All cells, module-major in `modules` order, layers ascending, layerless first.
    pub cells: Vec<Cell>,
    /// Ordered by `rank`.
    pub summary: Vec<ModuleSummary>,
    pub verdict: String,
}

/// Module kinds in the order a block reads, then anything else alphabetically.
fn module_order(name: &str) -> (usize, String) {
    use sfn_checkpoint::taxonomy::ModuleKind;
    let pos = ModuleKind::ALL.iter().position(|m| m.name() == name).unwrap_or(ModuleKind::ALL.len());
    (pos, name.to_string())
}

impl Aggregates {
    pub fn of(tensors: &[TensorDelta], metric: Metric) -> Aggregates {
        // Cells: group by (module in block order, layer).
        type Key = ((usize, String), Option<usize>);
        let mut groups: BTreeMap<Key, Vec<&TensorDelta>> = BTreeMap::new();
        for t in tensors {
            groups.entry((module_order(&t.module), t.layer)).or_default().push(t);
        }
        let cells: Vec<Cell> = {
            use rayon::prelude::*;
            let groups: Vec<_> = groups.into_iter().collect();
            groups.into_par_iter().map(|(((_, module), layer), ts)| cell(module, layer, &ts)).collect()
        };
        let mut modules: Vec<String> = Vec::new();
        for c in &cells {
            if modules.last() != Some(&c.module) {
                modules.push(c.module.clone());
            }
        }
        let mut layers: Vec<usize> = cells.iter().filter_map(|c| c.layer).collect();
        layers.sort_unstable();
        layers.dedup();

        // Rank of each module kind within each layer.
        let mut layer_ranks: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for &l in &layers {
            let mut in_layer: Vec<(&str, f64)> = cells
                .iter()
                .filter(|c| c.layer == Some(l))
                .map(|c| (c.module.as_str(), metric.of(c).unwrap_or(f64::INFINITY)))
                .collect();
            in_layer.sort_by(|x, y| y.1.total_cmp(&x.1));
            for (r, (m, _)) in in_layer.iter().enumerate() {
                layer_ranks.entry(m).or_default().push(r + 1);
            }
        }

        let mut summary: Vec<ModuleSummary> = modules
            .iter()
            .map(|m| {
                let mine: Vec<&Cell> = cells.iter().filter(|c| &c.module == m).collect();
                let ranks = layer_ranks.get(m.as_str());
                ModuleSummary {
                    module: m.clone(),
                    cells: mine.len(),
                    numel: mine.iter().map(|c| c.numel).sum(),
                    rel_change: Spread::of(mine.iter().filter_map(|c| c.rel_change).collect()),
                    l2_diff: Spread::of(mine.iter().map(|c| c.l2_diff).collect()),
                    rank: 0,
                    mean_layer_rank: ranks.map(|r| r.iter().sum::<usize>() as f64 / r.len() as f64),
                    first_in_layers: ranks.map_or(0, |r| r.iter().filter(|&&x| x == 1).count()),
                    ranked_layers: ranks.map_or(0, |r| r.len()),
                    bimodal_cells: mine.iter().filter(|c| c.bimodality.bimodal).count(),
                }
            })
            .collect();
        let key = |s: &ModuleSummary| -> f64 {
            match metric {
                Metric::RelChange => s.rel_change.map_or(f64::INFINITY, |x| x.median),
                Metric::L2Diff => s.l2_diff.map_or(0.0, |x| x.median),
            }
        };
        summary.sort_by(|x, y| {
            key(y).total_cmp(&key(x)).then_with(|| module_order(&x.module).cmp(&module_order(&y.module)))
        });
        for (i, s) in summary.iter_mut().enumerate() {
            s.rank = i + 1;
        }
        let verdict = verdict(&summary, tensors, metric, key);
        Aggregates { metric, layers, modules, cells, summary, verdict }
    }

    pub fn cell(&self, module: &str, layer: Option<usize>) -> Option<&Cell> {
        self.cells.iter().find(|c| c.module == module && c.layer == layer)
    }

    /// Layer × module grid of `metric` (rows = `layers`, columns = `modules`; None where the
    /// layer has no such module or the value is undefined).  // [layers, modules]
    pub fn grid(&self, metric: Metric) -> Vec<Vec<Option<f64>>> {
        self.layers
            .iter()
            .map(|&l| self.modules.iter().map(|m| self.cell(m, Some(l)).and_then(|c| metric.of(c))).collect())
            .collect()
    }
}

fn cell(module: String, layer: Option<usize>, ts: &[&TensorDelta]) -> Cell {
    let sq = |f: fn(&TensorDelta) -> f64| ts.iter().map(|t| f(t) * f(t)).sum::<f64>().sqrt();
    let (l2_diff, l2_a, l2_b) = (sq(|t| t.l2_diff), sq(|t| t.l2_a), sq(|t| t.l2_b));
    // Tensors of one run share the bin count, but a cell built from several runs might not:
    // sum only same-length histograms (the first tensor's).
    let bins = ts[0].hist.counts.len();
    let same: Vec<&&TensorDelta> = ts.iter().filter(|t| t.hist.counts.len() == bins).collect();
    let mut hist_counts = vec![0u64; bins];
    let mut interior = vec![0u64; bins];
    for t in &same {
        for (h, c) in hist_counts.iter_mut().zip(&t.hist.counts) {
            *h += c;
        }
        for (h, c) in interior.iter_mut().zip(t.hist.interior()) {
            *h += c;
        }
    }
    Cell {
        tensors: ts.iter().map(|t| t.name.clone()).collect(),
        numel: ts.iter().map(|t| t.numel).sum(),
        rel_change: rel_change(l2_diff, l2_a),
        l2_diff,
        l2_a,
        l2_b,
        clipped_low: same.iter().map(|t| t.hist.clipped_low).sum(),
        clipped_high: same.iter().map(|t| t.hist.clipped_high).sum(),
        // A cell of one tensor (a weight without bias) has that tensor's histogram.
        bimodality: match ts {
            [t] => t.bimodality.clone(),
            _ => Bimodality::of(&interior, ts[0].hist.min, ts[0].hist.max),
        },
        hist_counts,
        module,
        layer,
    }
}

/// Medians within this factor of each other count as a tie in the verdict.
const TIE: f64 = 1.1;

fn verdict(
    summary: &[ModuleSummary],
    tensors: &[TensorDelta],
    metric: Metric,
    key: impl Fn(&ModuleSummary) -> f64,
) -> String {
    if tensors.is_empty() {
        return "nothing compared: A and B have no tensor in common".into();
    }
    if tensors.iter().all(|t| t.l2_diff == 0.0) {
        return format!("no change: A and B are equal in all {} compared tensors", tensors.len());
    }
    let first = &summary[0];
    // Kinds whose median is within TIE of the largest: then no single kind stands out.
    let close: Vec<&str> = summary
        .iter()
        .take_while(|s| key(first).is_finite() && key(first) > 0.0 && key(s) >= key(first) / TIE)
        .map(|s| s.module.as_str())
        .collect();
    let mut v = match summary.get(1) {
        None => format!("largest change: {} (the only module kind compared)", first.module),
        Some(_) if close.len() > 1 => {
            let mut names = close.iter().take(5).copied().collect::<Vec<_>>().join(", ");
            if close.len() > 5 {
                names.push_str(&format!(", … {} more", close.len() - 5));
            }
            format!(
                "no single module kind stands out: {} ({} kinds) are within {:.0}% of the largest",
                names,
                close.len(),
                (TIE - 1.0) * 100.0
            )
        }
        Some(second) if key(second) > 0.0 && key(first).is_finite() => {
            format!("largest change: {}, {:.1}× the next ({})", first.module, key(first) / key(second), second.module)
        }
        Some(_) if key(first) == 0.0 => {
            // Every median is 0: some cells changed but fewer than half of every kind's.
            format!("largest change: none by median; changed tensors: {}", changed_list(tensors))
        }
        Some(second) => format!("largest change: {}; the next ({}) did not change", first.module, second.module),
    };
    v.push_str(&format!("; by median {} over layers", metric.describe()));
    if first.ranked_layers > 0 && close.len() <= 1 {
        v.push_str(&format!(", first in {} of {} layers", first.first_in_layers, first.ranked_layers));
    }
    let mut bimodal: Vec<&ModuleSummary> = summary.iter().filter(|s| s.bimodal_cells > 0).collect();
    bimodal.sort_by(|x, y| (y.bimodal_cells * x.cells).cmp(&(x.bimodal_cells * y.cells)));
    if bimodal.is_empty() {
        v.push_str("; no bimodal histogram");
    } else {
        let list: Vec<String> =
            bimodal.iter().map(|s| format!("{} in {} of {} layers", s.module, s.bimodal_cells, s.cells)).collect();
        v.push_str(&format!("; bimodal: {}", list.join(", ")));
    }
    v
}

fn changed_list(tensors: &[TensorDelta]) -> String {
    let changed: Vec<&str> = tensors.iter().filter(|t| t.l2_diff > 0.0).map(|t| t.name.as_str()).collect();
    let mut s = changed.iter().take(3).copied().collect::<Vec<_>>().join(", ");
    if changed.len() > 3 {
        s.push_str(&format!(", … {} more", changed.len() - 3));
    }
    s
}
