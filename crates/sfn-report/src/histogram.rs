//! Histogram grid (small multiples): rows = chosen layers, columns = module kinds, one histogram of
//! (e.g.) weight-delta values per cell, as in Figure 3 of "Who Reasons in the Large Language Models?".
//!
//! Histograms arrive pre-binned (`min`, `max`, equal-width `counts`), so huge tensors never reach
//! this crate. All cells share one x axis (ticks e.g. at -1, 0, 1, labelled under the bottom row);
//! each cell is scaled to its own peak, optionally on a log(1 + count) scale, and can carry a flag
//! such as "bimodal" drawn as a coloured frame, a small label and a legend entry.

use crate::error::{invalid, Result};
use crate::font::fit_text;
use crate::output::SvgDocument;
use crate::scale::{fmt_count, fmt_tick, fmt_value, nice_step, nice_ticks, Color, PALETTE};
use crate::svg::{n, Anchor, Svg, TextStyle, AXIS, INK, MUTED};
use crate::Figure;

/// Counts in equal-width bins over [min, max]. Empty `counts` (or all zero) means no data.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub min: f64,
    pub max: f64,
    /// `[bins]`
    pub counts: Vec<u64>,
}

impl Histogram {
    pub fn new(min: f64, max: f64, counts: Vec<u64>) -> Self {
        Histogram { min, max, counts }
    }

    fn is_empty(&self) -> bool {
        self.counts.iter().all(|&c| c == 0)
    }
}

/// One panel of a [`HistogramGrid`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramCell {
    pub histogram: Histogram,
    /// A short verdict to highlight the panel (e.g. "bimodal"); each distinct text gets a colour.
    pub flag: Option<String>,
}

impl From<Histogram> for HistogramCell {
    fn from(histogram: Histogram) -> Self {
        HistogramCell { histogram, flag: None }
    }
}

/// A grid of histograms sharing an x axis.
#[derive(Clone, Debug, Default)]
pub struct HistogramGrid {
    pub title: String,
    /// `[rows]`, e.g. "layer 5"
    pub row_labels: Vec<String>,
    /// `[cols]`, e.g. "q_proj"
    pub col_labels: Vec<String>,
    /// `[rows][cols]`
    pub cells: Vec<Vec<HistogramCell>>,
    /// Bar heights ∝ log(1 + count) instead of count (shows thin tails next to a tall peak).
    pub log_y: bool,
    /// Shared x range; `None` uses the union of all cells' [min, max].
    pub x_range: Option<(f64, f64)>,
    /// Shared x ticks; empty picks about three round values (-1, 0, 1 over [-1, 1]).
    pub x_ticks: Vec<f64>,
    pub x_label: String,
}

impl HistogramGrid {
    pub fn new(
        title: impl Into<String>,
        row_labels: Vec<String>,
        col_labels: Vec<String>,
        cells: Vec<Vec<HistogramCell>>,
    ) -> Self {
        HistogramGrid { title: title.into(), row_labels, col_labels, cells, ..Default::default() }
    }

    fn check(&self) -> Result<()> {
        let t = &self.title;
        if self.cells.len() != self.row_labels.len() {
            return Err(invalid(
                t,
                format!("cells has {} rows but row_labels has {}", self.cells.len(), self.row_labels.len()),
            ));
        }
        if self.cells.is_empty() || self.col_labels.is_empty() {
            return Err(invalid(t, "histogram grid has no rows or no columns to draw"));
        }
        for (r, row) in self.cells.iter().enumerate() {
            if row.len() != self.col_labels.len() {
                return Err(invalid(
                    t,
                    format!("row {r} has {} cells but col_labels has {}", row.len(), self.col_labels.len()),
                ));
            }
            for (c, cell) in row.iter().enumerate() {
                let h = &cell.histogram;
                if !h.is_empty() && !(h.min.is_finite() && h.max.is_finite() && h.min <= h.max) {
                    return Err(invalid(
                        t,
                        format!(
                            "cell ({}, {}): histogram range [{}, {}] is not finite and increasing",
                            self.row_labels[r], self.col_labels[c], h.min, h.max
                        ),
                    ));
                }
            }
        }
        if let Some((a, b)) = self.x_range {
            if !(a.is_finite() && b.is_finite() && a < b) {
                return Err(invalid(t, format!("x range ({a}, {b}) must be finite and increasing")));
            }
        }
        Ok(())
    }

    fn x_range(&self) -> (f64, f64) {
        if let Some(r) = self.x_range {
            return r;
        }
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for cell in self.cells.iter().flatten().filter(|c| !c.histogram.is_empty()) {
            lo = lo.min(cell.histogram.min);
            hi = hi.max(cell.histogram.max);
        }
        if lo > hi {
            (-1.0, 1.0)
        } else if lo == hi {
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.5 };
            (lo - pad, hi + pad)
        } else {
            (lo, hi)
        }
    }

    /// Distinct flags in order of first appearance, with their colours.
    fn flag_colors(&self) -> Vec<(String, Color)> {
        // Red first: the first flag is usually the one the figure is about.
        const ORDER: [usize; 8] = [2, 1, 6, 4, 0, 8, 3, 5];
        let mut out: Vec<(String, Color)> = Vec::new();
        for f in self.cells.iter().flatten().filter_map(|c| c.flag.as_ref()) {
            if !f.is_empty() && !out.iter().any(|(g, _)| g == f) {
                let color = PALETTE[ORDER[out.len() % ORDER.len()]];
                out.push((f.clone(), color));
            }
        }
        out
    }
}

const MARGIN: f64 = 16.0;
const TITLE: f64 = 15.0;
const AXIS_TITLE: f64 = 12.0;
const LABEL: f64 = 11.0;
const TICK: f64 = 9.5;
const SMALL: f64 = 8.0;
const GAP_X: f64 = 14.0;
const GAP_Y: f64 = 10.0;
const BAR_COLOR: &str = "#4e79a7";

impl Figure for HistogramGrid {
    fn to_svg(&self) -> Result<SvgDocument> {
        self.check()?;
        let rows = self.cells.len();
        let cols = self.col_labels.len();
        let (xlo, xhi) = self.x_range();
        let ticks: Vec<f64> = if self.x_ticks.is_empty() {
            // About three round ticks (-1, 0, 1 over [-1, 1]); a 1-2-5 step can leave fewer.
            (2..6).map(|t| nice_ticks(xlo, xhi, t)).find(|t| t.len() >= 3).unwrap_or_else(|| nice_ticks(xlo, xhi, 2))
        } else {
            self.x_ticks.iter().copied().filter(|v| v.is_finite() && *v >= xlo && *v <= xhi).collect()
        };
        let tick_step = if ticks.len() >= 2 { (ticks[1] - ticks[0]).abs() } else { nice_step(xhi - xlo, 2) };
        let flags = self.flag_colors();

        // Column labels decide the cell width (within limits); then shrink the font, then ellipsize.
        let label_w = |s: &str, size: f64| Svg::measure(s, &TextStyle::new(size));
        let widest_col = self.col_labels.iter().map(|s| label_w(s, LABEL)).fold(0.0, f64::max);
        let cell_w = (820.0 / cols as f64).clamp(64.0, 130.0).max((widest_col + 6.0).min(150.0));
        let col_size = if widest_col <= cell_w - 4.0 { LABEL } else { (LABEL * (cell_w - 4.0) / widest_col).max(8.5) };
        let cell_h = (cell_w * 0.58).clamp(44.0, 72.0);

        let row_style = TextStyle::new(LABEL).anchor(Anchor::End);
        let row_labels: Vec<String> = self.row_labels.iter().map(|s| fit_text(s, LABEL, false, 150.0)).collect();
        let row_w = row_labels.iter().map(|s| Svg::measure(s, &row_style)).fold(0.0, f64::max);

        let x0 = MARGIN + row_w + 10.0;
        let grid_w = cols as f64 * cell_w + (cols - 1) as f64 * GAP_X;
        let grid_h = rows as f64 * cell_h + (rows - 1) as f64 * GAP_Y;

        let title_style = TextStyle::new(TITLE).bold().anchor(Anchor::Middle);
        let title_w = Svg::measure(&self.title, &title_style);
        let note = if self.log_y {
            "y: log(1 + count), each panel scaled to its own peak"
        } else {
            "y: count, each panel scaled to its own peak"
        };
        let note_style = TextStyle::new(TICK).fill(MUTED);
        let legend_w: f64 = flags.iter().map(|(f, _)| 14.0 + label_w(f, TICK) + 16.0).sum();
        let footer_w = Svg::measure(note, &note_style) + 24.0 + legend_w;
        let width = (x0 + grid_w + MARGIN).max((title_w + 2.0 * MARGIN).min(1000.0)).max(x0 + footer_w + MARGIN);
        let title = fit_text(&self.title, TITLE, true, width - 2.0 * MARGIN);

        let y_cols = if title.is_empty() { MARGIN + LABEL } else { MARGIN + TITLE + 14.0 + LABEL };
        let y0 = y_cols + 8.0;
        let tick_label_y = y0 + grid_h + 6.0 + TICK;
        let x_title_y = tick_label_y + 8.0 + AXIS_TITLE;
        let footer_y = if self.x_label.is_empty() { tick_label_y + 18.0 } else { x_title_y + 16.0 };
        let height = footer_y + MARGIN - 4.0;
        let mut svg = Svg::new(width, height);

        if !title.is_empty() {
            let tx = (x0 + grid_w / 2.0)
                .clamp(MARGIN + title_w / 2.0, (svg.width() - MARGIN - title_w / 2.0).max(MARGIN + title_w / 2.0));
            svg.text(tx, MARGIN + TITLE, &title, &title_style);
        }
        for (c, label) in self.col_labels.iter().enumerate() {
            let cx = x0 + c as f64 * (cell_w + GAP_X) + cell_w / 2.0;
            let label = fit_text(label, col_size, false, cell_w + GAP_X - 2.0);
            svg.text(cx, y_cols, &label, &TextStyle::new(col_size).anchor(Anchor::Middle));
        }

        let xmap = |cx: f64, v: f64| cx + (v - xlo) / (xhi - xlo) * cell_w;
        for (r, row) in self.cells.iter().enumerate() {
            let cy = y0 + r as f64 * (cell_h + GAP_Y);
            svg.text_centered(x0 - 8.0, cy + cell_h / 2.0, &row_labels[r], &row_style);
            for (c, cell) in row.iter().enumerate() {
                let cx = x0 + c as f64 * (cell_w + GAP_X);
                let h = &cell.histogram;
                let total: u64 = h.counts.iter().fold(0u64, |a, &b| a.saturating_add(b));
                let peak = h.counts.iter().copied().max().unwrap_or(0);
                let mut tip =
                    format!("{} · {}: n = {}, peak = {}", self.row_labels[r], self.col_labels[c], total, peak);
                if !h.is_empty() {
                    tip.push_str(&format!(", range [{}, {}]", fmt_value(h.min), fmt_value(h.max)));
                }
                if let Some(f) = &cell.flag {
                    tip.push_str(&format!(" ({f})"));
                }
                let bg = if h.is_empty() { "#f7f7f7" } else { "#ffffff" };
                svg.rect_with_tooltip(cx, cy, cell_w, cell_h, bg, &tip);
                for &t in &ticks {
                    let x = xmap(cx, t);
                    svg.line(x, cy, x, cy + cell_h, "#ececec", 0.8);
                }
                if h.is_empty() {
                    svg.text_centered(
                        cx + cell_w / 2.0,
                        cy + cell_h / 2.0,
                        "no data",
                        &TextStyle::new(TICK).anchor(Anchor::Middle).fill(MUTED),
                    );
                } else {
                    self.draw_bars(&mut svg, h, peak, cx, cy + cell_h, cell_h * 0.8, &xmap);
                }
                for &t in &ticks {
                    let x = xmap(cx, t);
                    svg.line(x, cy + cell_h, x, cy + cell_h + 3.0, AXIS, 0.8);
                }
                // Frame: coloured and thicker for flagged panels.
                let flag = cell.flag.as_ref().and_then(|f| flags.iter().find(|(g, _)| g == f));
                let (stroke, sw) = match flag {
                    Some((_, color)) => (color.hex(), 1.8),
                    None => ("#bdbdbd".to_string(), 0.7),
                };
                svg.rect(cx, cy, cell_w, cell_h, "none", &format!(r#"stroke="{stroke}" stroke-width="{}""#, n(sw)));
                // Corner labels: flag on the right; the peak count on the left when room remains.
                let mut used = 0.0;
                if let Some((f, color)) = flag {
                    let f = fit_text(f, SMALL, true, cell_w - 6.0);
                    used = label_w(&f, SMALL) * 1.1 + 8.0;
                    let st = TextStyle::new(SMALL).bold().anchor(Anchor::End).fill(color.hex());
                    svg.text(cx + cell_w - 3.0, cy + SMALL + 2.0, &f, &st);
                }
                if !h.is_empty() {
                    let p = format!("max {}", fmt_count(peak));
                    if label_w(&p, SMALL) + used + 6.0 <= cell_w {
                        svg.text(cx + 3.0, cy + SMALL + 2.0, &p, &TextStyle::new(SMALL).fill(MUTED));
                    }
                }
            }
        }

        // Shared x tick labels under the bottom row.
        for c in 0..cols {
            let cx = x0 + c as f64 * (cell_w + GAP_X);
            for &t in &ticks {
                let label = fmt_tick(t, tick_step);
                let x = xmap(cx, t);
                // Labels at a panel's edges are pulled inwards so neighbouring panels' "1" and
                // "−1" do not run into each other across the gap.
                let half = label_w(&label, TICK) / 2.0;
                let anchor = if x - half < cx - GAP_X / 2.0 + 1.0 {
                    Anchor::Start
                } else if x + half > cx + cell_w + GAP_X / 2.0 - 1.0 {
                    Anchor::End
                } else {
                    Anchor::Middle
                };
                let x = match anchor {
                    Anchor::Start => x - label_w("0", TICK) / 2.0,
                    Anchor::End => x + label_w("0", TICK) / 2.0,
                    Anchor::Middle => x,
                };
                svg.text(x, tick_label_y, &label, &TextStyle::new(TICK).anchor(anchor));
            }
        }
        if !self.x_label.is_empty() {
            svg.text(x0 + grid_w / 2.0, x_title_y, &self.x_label, &TextStyle::new(AXIS_TITLE).anchor(Anchor::Middle));
        }
        // Footer: how y is scaled, then the flag legend.
        svg.text_centered(x0, footer_y, note, &note_style);
        let mut lx = x0 + Svg::measure(note, &note_style) + 24.0;
        for (f, color) in &flags {
            svg.rect(
                lx,
                footer_y - 5.0,
                10.0,
                10.0,
                "#ffffff",
                &format!(r#"stroke="{}" stroke-width="1.8""#, color.hex()),
            );
            svg.text_centered(lx + 14.0, footer_y, f, &TextStyle::new(TICK).fill(INK));
            lx += 14.0 + label_w(f, TICK) + 16.0;
        }
        Ok(svg.finish())
    }
}

impl HistogramGrid {
    /// Draws one histogram as a filled step outline standing on `base_y`, `max_h` px tall at `peak`.
    #[allow(clippy::too_many_arguments)]
    fn draw_bars(
        &self,
        svg: &mut Svg,
        h: &Histogram,
        peak: u64,
        cx: f64,
        base_y: f64,
        max_h: f64,
        xmap: &dyn Fn(f64, f64) -> f64,
    ) {
        let (xlo, xhi) = self.x_range();
        let scale = |c: u64| -> f64 {
            if peak == 0 {
                0.0
            } else if self.log_y {
                (c as f64).ln_1p() / (peak as f64).ln_1p()
            } else {
                c as f64 / peak as f64
            }
        };
        if h.min == h.max {
            // Every value identical: one spike at that value.
            if h.min >= xlo && h.min <= xhi {
                let x = xmap(cx, h.min);
                svg.rect(x - 0.75, base_y - max_h, 1.5, max_h, BAR_COLOR, "");
            }
            return;
        }
        let bins = h.counts.len() as f64;
        let bw = (h.max - h.min) / bins;
        let mut d = String::new();
        let mut open = false;
        let mut last_x = 0.0;
        for (i, &c) in h.counts.iter().enumerate() {
            let (a, b) = (h.min + i as f64 * bw, h.min + (i + 1) as f64 * bw);
            // Clip bins to the shared range; bins wholly outside are dropped.
            let (a, b) = (a.max(xlo), b.min(xhi));
            if a >= b {
                continue;
            }
            let (xa, xb, y) = (xmap(cx, a), xmap(cx, b), base_y - max_h * scale(c));
            if !open {
                d.push_str(&format!("M{} {}", n(xa), n(base_y)));
                open = true;
            }
            d.push_str(&format!("L{} {}L{} {}", n(xa), n(y), n(xb), n(y)));
            last_x = xb;
        }
        if open {
            d.push_str(&format!("L{} {}Z", n(last_x), n(base_y)));
            svg.path(&d, &format!(r#"fill="{BAR_COLOR}" fill-opacity="0.9" stroke="{BAR_COLOR}" stroke-width="0.5" stroke-linejoin="round""#));
        }
    }
}
