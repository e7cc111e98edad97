//! Bar chart: one bar per category with optional range whiskers, individual-value dots and value
//! labels (e.g. mean relative change per module kind, whiskers = min..max over layers, dots = layers).
//!
//! Bars always start at zero (a bar's length is its value); negative values hang below the axis.
//! Missing values (NaN) get no bar and an "n/a" label instead of silently looking like zero.

use crate::error::{invalid, Result};
use crate::font::fit_text;
use crate::output::SvgDocument;
use crate::scale::{fmt_tick, fmt_value, nice_bounds, nice_step, nice_ticks, Color, PALETTE};
use crate::svg::{Anchor, Svg, TextStyle, AXIS, GRID, INK, MUTED};
use crate::Figure;

/// One category of a [`BarChart`].
#[derive(Clone, Debug, Default)]
pub struct Bar {
    pub label: String,
    /// Bar height; NaN means missing.
    pub value: f64,
    /// Whisker from lo to hi (e.g. min..max over layers, or mean ± std).
    pub range: Option<(f64, f64)>,
    /// Individual values drawn as dots over the bar (e.g. one per layer).  `[points]`
    pub points: Vec<f64>,
    /// Bar colour; `None` uses the chart's default blue.
    pub color: Option<Color>,
}

impl Bar {
    pub fn new(label: impl Into<String>, value: f64) -> Self {
        Bar { label: label.into(), value, ..Default::default() }
    }
}

/// A bar chart with a y axis, optional whiskers, dots and value labels.
#[derive(Clone, Debug, Default)]
pub struct BarChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub bars: Vec<Bar>,
    /// Print each bar's value above (or, when negative, below) it.
    pub value_labels: bool,
    /// Fixed y range; `None` fits the data (always including zero).
    pub y_range: Option<(f64, f64)>,
    /// Legend text for the whiskers and for the dots; empty = no legend entry.
    pub range_label: String,
    pub points_label: String,
}

impl BarChart {
    pub fn new(title: impl Into<String>, y_label: impl Into<String>, bars: Vec<Bar>) -> Self {
        BarChart { title: title.into(), y_label: y_label.into(), bars, value_labels: true, ..Default::default() }
    }

    /// All finite numbers that must be visible on the y axis, including zero.
    fn extent(&self) -> (f64, f64) {
        let mut lo: f64 = 0.0;
        let mut hi: f64 = 0.0;
        for b in &self.bars {
            let mut vals = vec![b.value];
            if let Some((a, c)) = b.range {
                vals.extend([a, c]);
            }
            vals.extend(&b.points);
            for v in vals.into_iter().filter(|v| v.is_finite()) {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        (lo, hi)
    }

    /// Highest and lowest drawn element of one bar (to put its value label clear of everything).
    fn bar_extent(b: &Bar) -> (f64, f64) {
        let mut lo = if b.value.is_finite() { b.value.min(0.0) } else { 0.0 };
        let mut hi = if b.value.is_finite() { b.value.max(0.0) } else { 0.0 };
        let extra = b.range.map(|(a, c)| vec![a, c]).unwrap_or_default();
        for v in extra.iter().chain(&b.points).filter(|v| v.is_finite()) {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
        (lo, hi)
    }
}

const MARGIN: f64 = 16.0;
const TITLE: f64 = 15.0;
const AXIS_TITLE: f64 = 12.0;
const TICK: f64 = 10.0;
const CAT: f64 = 11.0;
const DEFAULT_BAR: Color = PALETTE[0];

impl Figure for BarChart {
    fn to_svg(&self) -> Result<SvgDocument> {
        if self.bars.is_empty() {
            return Err(invalid(&self.title, "bar chart has no bars"));
        }
        let n = self.bars.len();
        let (ylo, yhi) = match self.y_range {
            Some((a, b)) if a.is_finite() && b.is_finite() && a < b => (a, b),
            Some((a, b)) => {
                return Err(invalid(&self.title, format!("y range ({a}, {b}) must be finite and increasing")))
            }
            None => {
                let (lo, hi) = self.extent();
                // Headroom so value labels above the tallest bar stay inside the plot.
                let pad = if self.value_labels { 0.1 * (hi - lo) } else { 0.0 };
                let lo = if lo < 0.0 { lo - pad } else { lo };
                let hi = if hi > 0.0 || lo >= 0.0 { hi + pad } else { hi };
                nice_bounds(lo, hi, 5)
            }
        };
        let step = nice_step(yhi - ylo, 5);
        let ticks: Vec<(f64, String)> = nice_ticks(ylo, yhi, 5).into_iter().map(|v| (v, fmt_tick(v, step))).collect();

        let slot = (520.0 / n as f64).clamp(22.0, 80.0).max(260.0 / n as f64);
        let bar_w = (slot * 0.68).min(56.0);
        let plot_w = slot * n as f64;
        let plot_h = 300.0;

        let cat_style = TextStyle::new(CAT);
        let cats: Vec<String> = self.bars.iter().map(|b| fit_text(&b.label, CAT, false, 160.0)).collect();
        let cat_w = cats.iter().map(|s| Svg::measure(s, &cat_style)).fold(0.0, f64::max);
        let rotate = cat_w > slot - 4.0;
        let s45 = std::f64::consts::FRAC_1_SQRT_2;
        let cat_band = if rotate { (cat_w + CAT) * s45 + 10.0 } else { CAT + 10.0 };
        let overhang = if rotate { (cat_w * s45 - slot / 2.0).max(0.0) } else { 0.0 };

        let tick_style = TextStyle::new(TICK).anchor(Anchor::End);
        let tick_w = ticks.iter().map(|(_, s)| Svg::measure(s, &tick_style)).fold(0.0, f64::max);
        let y_title_w = if self.y_label.is_empty() { 0.0 } else { AXIS_TITLE + 8.0 };
        let x0 = (MARGIN + y_title_w + tick_w + 8.0).max(MARGIN + overhang);

        // Legend entries (whiskers / dots) sit in one line under the title.
        let legend: Vec<(&str, &str)> = [("range", self.range_label.as_str()), ("dots", self.points_label.as_str())]
            .into_iter()
            .filter(|(_, l)| !l.is_empty())
            .collect();
        let title_style = TextStyle::new(TITLE).bold().anchor(Anchor::Middle);
        let legend_w: f64 = legend.iter().map(|(_, t)| 32.0 + Svg::measure(t, &TextStyle::new(TICK))).sum();
        let mut width = (x0 + plot_w + MARGIN + 8.0).max(x0 + legend_w + MARGIN);
        let title_w = Svg::measure(&self.title, &title_style);
        width = width.max((title_w + 2.0 * MARGIN).min(1000.0));
        let title = fit_text(&self.title, TITLE, true, width - 2.0 * MARGIN);
        let mut y0 = if title.is_empty() { MARGIN + 6.0 } else { MARGIN + TITLE + 16.0 };
        if !legend.is_empty() {
            y0 += 18.0;
        }
        let x_title_y = y0 + plot_h + cat_band + AXIS_TITLE;
        let height = if self.x_label.is_empty() { y0 + plot_h + cat_band + MARGIN } else { x_title_y + MARGIN - 2.0 };
        let mut svg = Svg::new(width, height);

        if !title.is_empty() {
            let tx = (x0 + plot_w / 2.0)
                .clamp(MARGIN + title_w / 2.0, (svg.width() - MARGIN - title_w / 2.0).max(MARGIN + title_w / 2.0));
            svg.text(tx, MARGIN + TITLE, &title, &title_style);
        }
        let ymap = |v: f64| y0 + plot_h * (1.0 - (v.clamp(ylo, yhi) - ylo) / (yhi - ylo));

        // Grid and y axis.
        for (v, label) in &ticks {
            let y = ymap(*v);
            svg.line(x0, y, x0 + plot_w, y, GRID, 0.8);
            svg.line(x0 - 4.0, y, x0, y, AXIS, 0.8);
            svg.text_centered(x0 - 6.0, y, label, &tick_style);
        }
        if !self.y_label.is_empty() {
            let st = TextStyle::new(AXIS_TITLE).anchor(Anchor::Middle).rotate(-90.0);
            let label = fit_text(&self.y_label, AXIS_TITLE, false, plot_h + 40.0);
            svg.text(MARGIN + AXIS_TITLE - 2.0, y0 + plot_h / 2.0, &label, &st);
        }

        // Value labels: one size for all, shrunk if needed, dropped if they still cannot fit.
        let labels: Vec<String> = self.bars.iter().map(|b| fmt_value(b.value)).collect();
        let widest = |size: f64| labels.iter().map(|s| Svg::measure(s, &TextStyle::new(size))).fold(0.0, f64::max);
        let value_size = if widest(9.5) <= slot - 2.0 {
            Some(9.5)
        } else if widest(8.0) <= slot - 2.0 {
            Some(8.0)
        } else {
            None
        };

        for (i, b) in self.bars.iter().enumerate() {
            let cx = x0 + (i as f64 + 0.5) * slot;
            let color = b.color.unwrap_or(DEFAULT_BAR).hex();
            if b.value.is_finite() {
                let (ya, yb) = (ymap(b.value), ymap(0.0f64.clamp(ylo, yhi)));
                let tip = format!("{}: {}", b.label, fmt_value(b.value));
                svg.rect_with_tooltip(cx - bar_w / 2.0, ya.min(yb), bar_w, (ya - yb).abs().max(0.5), &color, &tip);
            }
            if let Some((a, c)) = b.range.filter(|(a, c)| a.is_finite() && c.is_finite()) {
                let (ya, yc) = (ymap(a), ymap(c));
                let cap = (bar_w * 0.35).max(4.0) / 2.0;
                svg.line(cx, ya, cx, yc, INK, 1.2);
                svg.line(cx - cap, ya, cx + cap, ya, INK, 1.2);
                svg.line(cx - cap, yc, cx + cap, yc, INK, 1.2);
            }
            let pts: Vec<f64> = b.points.iter().copied().filter(|v| v.is_finite()).collect();
            for (k, v) in pts.iter().enumerate() {
                // Deterministic spread across the bar instead of random jitter: same input, same file.
                let off = if pts.len() > 1 { (k as f64 / (pts.len() - 1) as f64 - 0.5) * bar_w * 0.7 } else { 0.0 };
                svg.circle(
                    cx + off,
                    ymap(*v),
                    2.2,
                    r##"fill="#222222" fill-opacity="0.55" stroke="#ffffff" stroke-width="0.4""##,
                );
            }
            if let (true, Some(size)) = (self.value_labels, value_size) {
                let (lo, hi) = Self::bar_extent(b);
                let st =
                    TextStyle::new(size).anchor(Anchor::Middle).fill(if b.value.is_finite() { INK } else { MUTED });
                let y = if b.value.is_finite() && b.value < 0.0 { ymap(lo) + 6.0 + size } else { ymap(hi) - 6.0 };
                svg.text(cx, y, &labels[i], &st);
            }
            // Category label and tick.
            let yb = y0 + plot_h;
            if rotate {
                svg.text(cx + 3.0, yb + 9.0, &cats[i], &TextStyle::new(CAT).anchor(Anchor::End).rotate(-45.0));
            } else {
                svg.text(cx, yb + 5.0 + CAT, &cats[i], &TextStyle::new(CAT).anchor(Anchor::Middle));
            }
        }
        // Axes drawn last so bars never cover them; the zero line is emphasised when inside.
        svg.line(x0, y0, x0, y0 + plot_h, AXIS, 1.0);
        svg.line(x0, y0 + plot_h, x0 + plot_w, y0 + plot_h, AXIS, 1.0);
        if ylo < 0.0 && yhi > 0.0 {
            svg.line(x0, ymap(0.0), x0 + plot_w, ymap(0.0), AXIS, 0.8);
        }
        if !self.x_label.is_empty() {
            svg.text(x0 + plot_w / 2.0, x_title_y, &self.x_label, &TextStyle::new(AXIS_TITLE).anchor(Anchor::Middle));
        }

        // Legend line.
        let mut lx = x0 + 4.0;
        let ly = y0 - 14.0;
        for (kind, text) in legend {
            if kind == "range" {
                svg.line(lx + 5.0, ly - 5.0, lx + 5.0, ly + 5.0, INK, 1.2);
                svg.line(lx + 2.0, ly - 5.0, lx + 8.0, ly - 5.0, INK, 1.2);
                svg.line(lx + 2.0, ly + 5.0, lx + 8.0, ly + 5.0, INK, 1.2);
            } else {
                svg.circle(lx + 5.0, ly, 2.6, r##"fill="#222222" fill-opacity="0.55""##);
            }
            let st = TextStyle::new(TICK).fill(MUTED);
            svg.text_centered(lx + 14.0, ly, text, &st);
            lx += 14.0 + Svg::measure(text, &st) + 18.0;
        }
        Ok(svg.finish())
    }
}
