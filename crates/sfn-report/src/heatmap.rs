//! Heatmap of one value per (layer, module kind): the Delta stethoscope's overview figure.
//!
//! Rows are drawn top to bottom in the given order, columns left to right. Missing values (NaN,
//! infinities, or non-positive values on a log scale) are hatched, never coloured as if they were
//! data. Sizes adapt so that 4 to 100 rows stay readable: cells get shorter and row labels thin
//! out to every 2nd/5th/10th row rather than overlap; long column labels are rotated.

use std::fmt::Write as _;

use crate::error::{invalid, Result};
use crate::font::fit_text;
use crate::output::SvgDocument;
use crate::scale::{fmt_tick, fmt_value, log_ticks, nice_step, nice_ticks, thin_labels, Colormap};
use crate::svg::{n, Anchor, Svg, TextStyle, AXIS, ID, INK, MUTED};
use crate::Figure;

/// One value per cell, coloured on a sequential colormap with a labelled colorbar.
#[derive(Clone, Debug, Default)]
pub struct Heatmap {
    pub title: String,
    /// One label per row, e.g. layer indices `"0"`, `"1"`, ...  `[rows]`
    pub row_labels: Vec<String>,
    /// One label per column, e.g. module kinds `"q_proj"`, ...  `[cols]`
    pub col_labels: Vec<String>,
    /// Cell values; NaN (or any non-finite value) means missing.  `[rows][cols]`
    pub values: Vec<Vec<f64>>,
    /// What the colour means, written beside the colorbar (e.g. "relative change ‖ΔW‖/‖W‖").
    pub value_label: String,
    /// Axis titles; empty strings are not drawn.
    pub x_label: String,
    pub y_label: String,
    /// Colour by log10(value); non-positive values are then shown as missing.
    pub log_scale: bool,
    pub colormap: Colormap,
    /// Fixed colour range (lo, hi) to compare several heatmaps; values outside are clamped.
    /// `None` uses the data's range.
    pub range: Option<(f64, f64)>,
    /// Print each value inside its cell when the cell is large enough.
    pub annotate: bool,
}

impl Heatmap {
    /// A heatmap with default styling ("layer" / "module" axes, viridis, linear scale).
    pub fn new(
        title: impl Into<String>,
        row_labels: Vec<String>,
        col_labels: Vec<String>,
        values: Vec<Vec<f64>>,
    ) -> Self {
        Heatmap {
            title: title.into(),
            row_labels,
            col_labels,
            values,
            x_label: "module".into(),
            y_label: "layer".into(),
            ..Default::default()
        }
    }

    fn check(&self) -> Result<()> {
        let t = &self.title;
        if self.values.len() != self.row_labels.len() {
            return Err(invalid(
                t,
                format!("values has {} rows but row_labels has {}", self.values.len(), self.row_labels.len()),
            ));
        }
        if self.values.is_empty() || self.col_labels.is_empty() {
            return Err(invalid(t, "heatmap has no rows or no columns to draw"));
        }
        if let Some((r, row)) = self.values.iter().enumerate().find(|(_, row)| row.len() != self.col_labels.len()) {
            return Err(invalid(
                t,
                format!("row {r} has {} values but col_labels has {}", row.len(), self.col_labels.len()),
            ));
        }
        if let Some((lo, hi)) = self.range {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) || (self.log_scale && lo <= 0.0) {
                return Err(invalid(
                    t,
                    format!("colour range ({lo}, {hi}) must be finite, increasing, and > 0 on a log scale"),
                ));
            }
        }
        Ok(())
    }

    fn is_drawable(&self, v: f64) -> bool {
        v.is_finite() && (!self.log_scale || v > 0.0)
    }

    /// The colour range: explicit, or the data's, widened when all values are equal.
    fn color_range(&self) -> (f64, f64) {
        if let Some(r) = self.range {
            return r;
        }
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for &v in self.values.iter().flatten().filter(|v| self.is_drawable(**v)) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if lo > hi {
            return if self.log_scale { (1.0, 10.0) } else { (0.0, 1.0) };
        }
        if lo == hi {
            return if self.log_scale {
                (lo / 2.0, hi * 2.0)
            } else {
                let pad = if lo == 0.0 { 0.5 } else { lo.abs() * 0.05 };
                (lo - pad, hi + pad)
            };
        }
        (lo, hi)
    }

    /// Position of `v` on the colormap, 0..=1.
    fn unit(&self, v: f64, lo: f64, hi: f64) -> f64 {
        let t = if self.log_scale { (v.ln() - lo.ln()) / (hi.ln() - lo.ln()) } else { (v - lo) / (hi - lo) };
        t.clamp(0.0, 1.0)
    }
}

const MARGIN: f64 = 16.0;
const TITLE: f64 = 15.0;
const AXIS_TITLE: f64 = 12.0;
const ROW_LABEL: f64 = 10.0;
const COL_LABEL: f64 = 11.0;
const TICK_LABEL: f64 = 10.0;
const CB_WIDTH: f64 = 14.0;
const MAX_LABEL_W: f64 = 150.0;

impl Figure for Heatmap {
    fn to_svg(&self) -> Result<SvgDocument> {
        self.check()?;
        let rows = self.values.len();
        let cols = self.col_labels.len();
        let (lo, hi) = self.color_range();

        // Cell sizes: aim at a ~560 px tall, ~600 px wide plot.
        let cell_h = (560.0 / rows as f64).clamp(7.0, 22.0);
        let cell_w = (600.0 / cols as f64).clamp(14.0, 56.0);
        let plot_w = cell_w * cols as f64;
        let plot_h = cell_h * rows as f64;

        // Row labels: every k-th row, k from 1-2-5-10..., so labels are >= 12 px apart.
        let row_step = [1usize, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
            .into_iter()
            .find(|k| *k as f64 * cell_h >= 12.0)
            .unwrap_or(rows.max(1));
        let row_style = TextStyle::new(ROW_LABEL).anchor(Anchor::End);
        let row_labels: Vec<(usize, String)> = (0..rows)
            .step_by(row_step)
            .map(|r| (r, fit_text(&self.row_labels[r], ROW_LABEL, false, MAX_LABEL_W)))
            .collect();
        let row_label_w = row_labels.iter().map(|(_, s)| Svg::measure(s, &row_style)).fold(0.0, f64::max);

        // Column labels: horizontal when they fit their cell, else rotated 45 degrees.
        let col_labels: Vec<String> =
            self.col_labels.iter().map(|s| fit_text(s, COL_LABEL, false, MAX_LABEL_W)).collect();
        let col_style = TextStyle::new(COL_LABEL);
        let col_label_w = col_labels.iter().map(|s| Svg::measure(s, &col_style)).fold(0.0, f64::max);
        let rotate_cols = col_label_w > cell_w - 4.0;
        let s45 = std::f64::consts::FRAC_1_SQRT_2;
        let col_band = if rotate_cols { (col_label_w + COL_LABEL) * s45 + 10.0 } else { COL_LABEL + 10.0 };
        // A rotated first label reaches left of the plot by this much.
        let col_overhang = if rotate_cols { (col_label_w * s45 - cell_w / 2.0).max(0.0) } else { 0.0 };

        // Colorbar ticks and their label width.
        let mut cb_ticks: Vec<(f64, String)> = if self.log_scale {
            log_ticks(lo, hi)
        } else {
            let step = nice_step(hi - lo, 5);
            nice_ticks(lo, hi, 5).into_iter().map(|v| (v, fmt_tick(v, step))).collect()
        };
        let cb_h = plot_h.max(120.0);
        thin_labels(&mut cb_ticks, |v| cb_h * self.unit(v, lo, hi), TICK_LABEL * 1.4);
        let tick_style = TextStyle::new(TICK_LABEL);
        let cb_label_w = cb_ticks.iter().map(|(_, s)| Svg::measure(s, &tick_style)).fold(0.0, f64::max);
        let has_missing = self.values.iter().flatten().any(|v| !self.is_drawable(*v));

        // Horizontal layout, left to right.
        let y_title_w = if self.y_label.is_empty() { 0.0 } else { AXIS_TITLE + 8.0 };
        let x0 = (MARGIN + y_title_w + row_label_w + 8.0).max(MARGIN + col_overhang);
        let cb_x = x0 + plot_w + 16.0;
        let cb_text_x = cb_x + CB_WIDTH + 5.0;
        let value_title_x = cb_text_x + cb_label_w + 8.0;
        let mut right = if self.value_label.is_empty() { cb_text_x + cb_label_w } else { value_title_x + AXIS_TITLE };
        let missing_label = if self.log_scale { "missing / ≤ 0" } else { "missing" };
        if has_missing {
            right = right.max(cb_x + 14.0 + Svg::measure(missing_label, &tick_style));
        }
        let mut width = right + MARGIN;

        // Title: centred over the plot if it fits there, otherwise over the whole figure.
        let title_style = TextStyle::new(TITLE).bold().anchor(Anchor::Middle);
        let title_w = Svg::measure(&self.title, &title_style);
        width = width.max((title_w + 2.0 * MARGIN).min(1000.0));
        let title = fit_text(&self.title, TITLE, true, width - 2.0 * MARGIN);

        // Vertical layout, top to bottom.
        let top = if title.is_empty() { MARGIN } else { MARGIN + TITLE + 14.0 };
        let y0 = top;
        let below_plot = y0 + plot_h.max(cb_h);
        let x_title_y = y0 + plot_h + col_band + AXIS_TITLE;
        let mut height = below_plot.max(y0 + plot_h + col_band) + MARGIN;
        if !self.x_label.is_empty() {
            height = height.max(x_title_y + MARGIN - 2.0);
        }
        if has_missing {
            height = height.max(y0 + cb_h + 26.0 + MARGIN);
        }

        let mut svg = Svg::new(width, height);
        svg.def(&format!(
            r##"<pattern id="{ID}missing" patternUnits="userSpaceOnUse" width="5" height="5" patternTransform="rotate(45)"><rect width="5" height="5" fill="#f4f4f4"/><line x1="0" y1="0" x2="0" y2="5" stroke="#b8b8b8" stroke-width="1.6"/></pattern>"##
        ));

        if !title.is_empty() {
            let tx = if title_w <= plot_w + 40.0 { x0 + plot_w / 2.0 } else { svg.width() / 2.0 };
            let tx =
                tx.clamp(MARGIN + title_w / 2.0, (svg.width() - MARGIN - title_w / 2.0).max(MARGIN + title_w / 2.0));
            svg.text(tx, MARGIN + TITLE, &title, &title_style);
        }

        // Cells.
        for (r, row) in self.values.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                let x = x0 + c as f64 * cell_w;
                let y = y0 + r as f64 * cell_h;
                let tip = format!(
                    "{} · {}: {}",
                    self.row_labels[r],
                    self.col_labels[c],
                    if self.is_drawable(v) { fmt_value(v) } else { "missing".into() }
                );
                // Cells overlap by a hair so anti-aliasing leaves no light seams between them.
                let fill = if self.is_drawable(v) {
                    self.colormap.at(self.unit(v, lo, hi)).hex()
                } else {
                    format!("url(#{ID}missing)")
                };
                let pad = if self.is_drawable(v) { 0.3 } else { 0.0 };
                svg.rect_with_tooltip(x, y, cell_w + pad, cell_h + pad, &fill, &tip);
            }
        }
        if self.annotate {
            self.annotate_cells(&mut svg, x0, y0, cell_w, cell_h, lo, hi);
        }
        svg.rect(x0, y0, plot_w, plot_h, "none", &format!(r#"stroke="{AXIS}" stroke-width="0.8""#));

        // Row labels and ticks.
        for (r, label) in &row_labels {
            let cy = y0 + (*r as f64 + 0.5) * cell_h;
            svg.line(x0 - 3.0, cy, x0, cy, AXIS, 0.8);
            svg.text_centered(x0 - 5.0, cy, label, &row_style);
        }
        // Column labels and ticks.
        for (c, label) in col_labels.iter().enumerate() {
            let cx = x0 + (c as f64 + 0.5) * cell_w;
            let yb = y0 + plot_h;
            svg.line(cx, yb, cx, yb + 3.0, AXIS, 0.8);
            if rotate_cols {
                let st = TextStyle::new(COL_LABEL).anchor(Anchor::End).rotate(-45.0);
                svg.text(cx + 3.0, yb + 9.0, label, &st);
            } else {
                svg.text(cx, yb + 5.0 + COL_LABEL, label, &TextStyle::new(COL_LABEL).anchor(Anchor::Middle));
            }
        }
        // Axis titles.
        if !self.y_label.is_empty() {
            let st = TextStyle::new(AXIS_TITLE).anchor(Anchor::Middle).rotate(-90.0);
            let label = fit_text(&self.y_label, AXIS_TITLE, false, plot_h.max(cb_h));
            // On a very short plot, hang the label from the plot's top instead of poking above it.
            let cy = y0 + (plot_h / 2.0).max(Svg::measure(&label, &st) / 2.0);
            svg.text(MARGIN + AXIS_TITLE - 2.0, cy, &label, &st);
        }
        if !self.x_label.is_empty() {
            svg.text(x0 + plot_w / 2.0, x_title_y, &self.x_label, &TextStyle::new(AXIS_TITLE).anchor(Anchor::Middle));
        }

        // Colorbar: a vertical gradient in colormap order, low at the bottom.
        let mut grad = format!(r#"<linearGradient id="{ID}cbar" x1="0" y1="1" x2="0" y2="0">"#);
        for i in 0..=32 {
            let t = i as f64 / 32.0;
            let _ = write!(grad, r#"<stop offset="{}" stop-color="{}"/>"#, n(t), self.colormap.at(t).hex());
        }
        grad.push_str("</linearGradient>");
        svg.def(&grad);
        svg.rect(
            cb_x,
            y0,
            CB_WIDTH,
            cb_h,
            &format!("url(#{ID}cbar)"),
            &format!(r#"stroke="{AXIS}" stroke-width="0.6""#),
        );
        for (v, label) in &cb_ticks {
            let y = y0 + cb_h * (1.0 - self.unit(*v, lo, hi));
            // Minor (unlabelled) log ticks are shorter.
            let len = if label.is_empty() { 2.0 } else { 3.5 };
            svg.line(cb_x + CB_WIDTH, y, cb_x + CB_WIDTH + len, y, AXIS, 0.8);
            svg.text_centered(cb_text_x, y, label, &tick_style);
        }
        if !self.value_label.is_empty() {
            // Keep the rotated label within the colorbar's height: smaller font first, then "…".
            let w = Svg::measure(&self.value_label, &TextStyle::new(AXIS_TITLE));
            let size = if w <= cb_h { AXIS_TITLE } else { (AXIS_TITLE * cb_h / w).max(9.0) };
            let label = fit_text(&self.value_label, size, false, cb_h + 10.0);
            let st = TextStyle::new(size).anchor(Anchor::Middle).rotate(90.0);
            svg.text(value_title_x, y0 + cb_h / 2.0, &label, &st);
        }
        if has_missing {
            let y = y0 + cb_h + 10.0;
            svg.rect(
                cb_x,
                y,
                10.0,
                10.0,
                &format!("url(#{ID}missing)"),
                &format!(r#"stroke="{AXIS}" stroke-width="0.5""#),
            );
            svg.text_centered(cb_x + 14.0, y + 5.0, missing_label, &TextStyle::new(TICK_LABEL).fill(MUTED));
        }
        Ok(svg.finish())
    }
}

impl Heatmap {
    #[allow(clippy::too_many_arguments)]
    fn annotate_cells(&self, svg: &mut Svg, x0: f64, y0: f64, cell_w: f64, cell_h: f64, lo: f64, hi: f64) {
        let size = (cell_h * 0.55).min(9.5);
        if size < 7.0 {
            return; // too small to read: the colorbar has to do
        }
        for (r, row) in self.values.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                if !self.is_drawable(v) {
                    continue;
                }
                let s = fmt_value(v);
                let color = self.colormap.at(self.unit(v, lo, hi));
                let fill = if color.luminance() < 0.35 { "#ffffff" } else { INK };
                let st = TextStyle::new(size).anchor(Anchor::Middle).fill(fill);
                if Svg::measure(&s, &st) > cell_w - 3.0 {
                    continue;
                }
                svg.text_centered(x0 + (c as f64 + 0.5) * cell_w, y0 + (r as f64 + 0.5) * cell_h, &s, &st);
            }
        }
    }
}
