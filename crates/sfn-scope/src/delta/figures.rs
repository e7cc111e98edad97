//! The Delta stethoscope's figures, each as SVG + PNG (drawn by sfn-report):
//! - delta_heatmap_l2: layers × module kinds, ‖B−A‖₂ per cell (the paper's Fig. 2);
//! - delta_heatmap_rel: the same grid of relative change ‖B−A‖/‖A‖;
//! - delta_modules: one bar per module kind, the median over layers of the chosen metric,
//!   whiskers min..max, one dot per layer;
//! - delta_histograms: relative-change histograms, rows every k-th layer, columns the projection
//!   kinds, bimodal panels flagged (the paper's Fig. 3).
//!
//! Figures that would be empty (no per-layer modules selected) are skipped.

use super::aggregate::{Aggregates, Metric};
use super::DeltaResult;
use crate::error::Result;
use crate::figure;
use sfn_report::{Bar, BarChart, Heatmap, Histogram, HistogramCell, HistogramGrid};
use sfn_run::RunDir;
use std::path::PathBuf;

/// At most this many rows in the histogram grid unless the caller picks `every`.
const MAX_GRID_ROWS: usize = 8;

/// Draw every figure into the run directory (listed in run.json); `every`: layer step of the
/// histogram grid (None: automatic). Returns the files written (SVG and PNG of each).
pub fn write_figures(
    run: &mut RunDir,
    result: &DeltaResult,
    agg: &Aggregates,
    every: Option<usize>,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    // Columns of the grids: module kinds that occur per layer.
    let layered: Vec<&String> =
        agg.modules.iter().filter(|m| agg.cells.iter().any(|c| &&c.module == m && c.layer.is_some())).collect();
    if !agg.layers.is_empty() && !layered.is_empty() {
        for (metric, stem, title, label) in [
            (Metric::L2Diff, "delta_heatmap_l2", "‖B − A‖₂ per module and layer", "‖ΔW‖₂"),
            (
                Metric::RelChange,
                "delta_heatmap_rel",
                "Relative change ‖B − A‖₂ / ‖A‖₂ per module and layer",
                "‖ΔW‖/‖W‖",
            ),
        ] {
            let values = agg
                .layers
                .iter()
                .map(|&l| {
                    layered
                        .iter()
                        .map(|m| agg.cell(m, Some(l)).and_then(|c| metric_value(metric, c)).unwrap_or(f64::NAN))
                        .collect()
                })
                .collect();
            let mut fig = Heatmap::new(
                title,
                agg.layers.iter().map(|l| l.to_string()).collect(),
                layered.iter().map(|m| m.to_string()).collect(),
                values,
            );
            fig.value_label = label.into();
            written.extend(figure::save(run, &fig, stem)?);
        }
    }

    if !agg.summary.is_empty() {
        let metric = agg.metric;
        let bars = agg
            .summary
            .iter()
            .map(|s| {
                let spread = match metric {
                    Metric::RelChange => s.rel_change,
                    Metric::L2Diff => s.l2_diff,
                };
                let mut bar = Bar::new(&s.module, spread.map_or(f64::NAN, |x| x.median));
                if s.cells > 1 {
                    bar.range = spread.map(|x| (x.min, x.max));
                    bar.points = agg
                        .cells
                        .iter()
                        .filter(|c| c.module == s.module)
                        .filter_map(|c| metric_value(metric, c))
                        .collect();
                }
                bar
            })
            .collect();
        let mut fig = BarChart::new(
            format!("Median {} over layers, per module kind", metric.describe()),
            match metric {
                Metric::RelChange => "‖ΔW‖/‖W‖",
                Metric::L2Diff => "‖ΔW‖₂",
            },
            bars,
        );
        fig.x_label = "module".into();
        fig.range_label = "min … max over layers".into();
        fig.points_label = "one layer".into();
        written.extend(figure::save(run, &fig, "delta_modules")?);
    }

    // Histogram grid: the projections (norm vectors are too short for a shape to mean much).
    let columns: Vec<&String> = layered.iter().copied().filter(|m| !m.contains("norm")).collect();
    if !agg.layers.is_empty() && !columns.is_empty() {
        let step = every.unwrap_or_else(|| agg.layers.len().div_ceil(MAX_GRID_ROWS)).max(1);
        let rows: Vec<usize> = agg.layers.iter().copied().step_by(step).collect();
        let cells = rows
            .iter()
            .map(|&l| {
                columns
                    .iter()
                    .map(|m| match agg.cell(m, Some(l)) {
                        Some(c) => HistogramCell {
                            histogram: Histogram::new(-super::stats::CLIP, super::stats::CLIP, c.hist_counts.clone()),
                            flag: c.bimodality.bimodal.then(|| "bimodal".to_string()),
                        },
                        None => HistogramCell::default(),
                    })
                    .collect()
            })
            .collect();
        let mut fig = HistogramGrid::new(
            format!("Element-wise relative change (B − A)/(|A| + 1e-8), clipped to [−1, 1], {} bins", result.bins),
            rows.iter().map(|l| format!("layer {l}")).collect(),
            columns.iter().map(|m| m.to_string()).collect(),
            cells,
        );
        fig.x_range = Some((-super::stats::CLIP, super::stats::CLIP));
        fig.x_label = "relative change".into();
        written.extend(figure::save(run, &fig, "delta_histograms")?);
    }
    Ok(written)
}

fn metric_value(metric: Metric, c: &super::aggregate::Cell) -> Option<f64> {
    match metric {
        Metric::RelChange => c.rel_change,
        Metric::L2Diff => Some(c.l2_diff),
    }
}
