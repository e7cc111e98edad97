//! Line chart: several named series against one x axis (loss curves, accuracy vs layer, ...).
//!
//! Non-finite points (and non-positive y on a log axis) break a line instead of being joined
//! across, so gaps in the data stay visible. Series with few points get markers.

use std::fmt::Write as _;

use crate::error::{invalid, Result};
use crate::font::fit_text;
use crate::output::SvgDocument;
use crate::scale::{fmt_tick, log_ticks, nice_bounds, nice_step, nice_ticks, thin_labels, Color, PALETTE};
use crate::svg::{n, Anchor, Svg, TextStyle, AXIS, GRID, ID, INK};
use crate::Figure;

/// One named line.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub name: String,
    /// (x, y) pairs in drawing order.  `[points]`
    pub points: Vec<(f64, f64)>,
    /// `None` takes the next palette colour.
    pub color: Option<Color>,
    pub dashed: bool,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { name: name.into(), points, ..Default::default() }
    }
}

/// Lines with axes, grid and a legend to the right of the plot.
#[derive(Clone, Debug, Default)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub log_y: bool,
    /// Fixed axis ranges; `None` fits the data (x exactly, y rounded out to ticks).
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
}

impl LineChart {
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
        series: Vec<Series>,
    ) -> Self {
        LineChart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series,
            ..Default::default()
        }
    }

    fn usable(&self, (x, y): (f64, f64)) -> bool {
        x.is_finite() && y.is_finite() && (!self.log_y || y > 0.0)
    }

    fn ranges(&self) -> Result<((f64, f64), (f64, f64))> {
        let t = &self.title;
        for (name, r) in [("x", self.x_range), ("y", self.y_range)] {
            if let Some((a, b)) = r {
                if !(a.is_finite() && b.is_finite() && a < b) || (name == "y" && self.log_y && a <= 0.0) {
                    return Err(invalid(
                        t,
                        format!("{name} range ({a}, {b}) must be finite, increasing, and > 0 on a log axis"),
                    ));
                }
            }
        }
        let pts: Vec<(f64, f64)> =
            self.series.iter().flat_map(|s| s.points.iter().copied()).filter(|p| self.usable(*p)).collect();
        let fold = |f: fn(&(f64, f64)) -> f64| {
            pts.iter().map(f).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
        };
        let x = self.x_range.unwrap_or_else(|| {
            let (lo, hi) = fold(|p| p.0);
            if lo > hi {
                (0.0, 1.0)
            } else if lo == hi {
                (lo - 1.0, hi + 1.0)
            } else {
                // Round out to ticks only when that adds little (0..399 -> 0..400, but 0..27 stays:
                // 0..30 would leave a tenth of the plot empty).
                let (a, b) = nice_bounds(lo, hi, 6);
                if (b - a) <= (hi - lo) * 1.05 {
                    (a, b)
                } else {
                    (lo, hi)
                }
            }
        });
        let y = self.y_range.unwrap_or_else(|| {
            let (lo, hi) = fold(|p| p.1);
            if self.log_y {
                if lo > hi {
                    (1.0, 10.0)
                } else {
                    // Round out to 1-2-5 multiples so the axis ends on labelled values.
                    let down = |v: f64| {
                        let m = 10f64.powf(v.log10().floor());
                        [5.0, 2.0, 1.0].into_iter().map(|k| k * m).find(|c| *c <= v * (1.0 + 1e-9)).unwrap_or(m)
                    };
                    let up = |v: f64| {
                        let m = 10f64.powf(v.log10().floor());
                        [1.0, 2.0, 5.0, 10.0]
                            .into_iter()
                            .map(|k| k * m)
                            .find(|c| *c >= v * (1.0 - 1e-9))
                            .unwrap_or(10.0 * m)
                    };
                    let (a, b) = (down(lo), up(hi));
                    if a < b {
                        (a, b)
                    } else {
                        (a / 2.0, b * 2.0)
                    }
                }
            } else if lo > hi {
                (0.0, 1.0)
            } else {
                nice_bounds(lo, hi, 5)
            }
        });
        Ok((x, y))
    }
}

const MARGIN: f64 = 16.0;
const TITLE: f64 = 15.0;
const AXIS_TITLE: f64 = 12.0;
const TICK: f64 = 10.0;
const LEGEND: f64 = 10.5;
const PLOT_W: f64 = 520.0;
const PLOT_H: f64 = 320.0;

impl Figure for LineChart {
    fn to_svg(&self) -> Result<SvgDocument> {
        if self.series.is_empty() {
            return Err(invalid(&self.title, "line chart has no series"));
        }
        let ((xlo, xhi), (ylo, yhi)) = self.ranges()?;
        let xstep = nice_step(xhi - xlo, 6);
        let xticks: Vec<(f64, String)> = nice_ticks(xlo, xhi, 6).into_iter().map(|v| (v, fmt_tick(v, xstep))).collect();
        let yticks: Vec<(f64, String)> = if self.log_y {
            log_ticks(ylo, yhi)
        } else {
            let step = nice_step(yhi - ylo, 5);
            nice_ticks(ylo, yhi, 5).into_iter().map(|v| (v, fmt_tick(v, step))).collect()
        };

        let mut yticks = yticks;
        if self.log_y {
            thin_labels(&mut yticks, |v| PLOT_H * (v.ln() - ylo.ln()) / (yhi.ln() - ylo.ln()), TICK * 1.6);
        }
        let tick_style = TextStyle::new(TICK).anchor(Anchor::End);
        let ytick_w = yticks.iter().map(|(_, s)| Svg::measure(s, &tick_style)).fold(0.0, f64::max);
        let y_title_w = if self.y_label.is_empty() { 0.0 } else { AXIS_TITLE + 8.0 };
        let x0 = MARGIN + y_title_w + ytick_w + 8.0;

        let names: Vec<String> = self.series.iter().map(|s| fit_text(&s.name, LEGEND, false, 220.0)).collect();
        let show_legend = names.iter().any(|s| !s.is_empty());
        let legend_w = if show_legend {
            names.iter().map(|s| Svg::measure(s, &TextStyle::new(LEGEND))).fold(0.0, f64::max) + 32.0
        } else {
            0.0
        };
        let title_style = TextStyle::new(TITLE).bold().anchor(Anchor::Middle);
        let title_w = Svg::measure(&self.title, &title_style);
        let width = (x0 + PLOT_W + 14.0 + legend_w + MARGIN).max((title_w + 2.0 * MARGIN).min(1000.0));
        let title = fit_text(&self.title, TITLE, true, width - 2.0 * MARGIN);
        let y0 = if title.is_empty() { MARGIN + 6.0 } else { MARGIN + TITLE + 16.0 };
        // The legend may be taller than the plot when there are many series.
        let legend_h = self.series.len() as f64 * 18.0;
        let x_title_y = y0 + PLOT_H + 8.0 + TICK + 10.0 + AXIS_TITLE;
        let bottom = if self.x_label.is_empty() { y0 + PLOT_H + 8.0 + TICK } else { x_title_y };
        let height = bottom.max(y0 + legend_h) + MARGIN;
        let mut svg = Svg::new(width, height);

        if !title.is_empty() {
            let tx = (x0 + PLOT_W / 2.0)
                .clamp(MARGIN + title_w / 2.0, (svg.width() - MARGIN - title_w / 2.0).max(MARGIN + title_w / 2.0));
            svg.text(tx, MARGIN + TITLE, &title, &title_style);
        }
        let xmap = |x: f64| x0 + (x - xlo) / (xhi - xlo) * PLOT_W;
        let ymap = |y: f64| {
            let t = if self.log_y { (y.ln() - ylo.ln()) / (yhi.ln() - ylo.ln()) } else { (y - ylo) / (yhi - ylo) };
            y0 + PLOT_H * (1.0 - t)
        };

        // Grid, ticks and tick labels.
        for (v, label) in &yticks {
            let y = ymap(*v);
            if label.is_empty() {
                // Minor log tick: short mark, faint grid.
                svg.line(x0, y, x0 + PLOT_W, y, "#f3f3f3", 0.6);
                svg.line(x0 - 2.5, y, x0, y, AXIS, 0.6);
                continue;
            }
            svg.line(x0, y, x0 + PLOT_W, y, GRID, 0.8);
            svg.line(x0 - 4.0, y, x0, y, AXIS, 0.8);
            svg.text_centered(x0 - 6.0, y, label, &tick_style);
        }
        let xtick_style = TextStyle::new(TICK).anchor(Anchor::Middle);
        // Thin x labels if neighbours would touch.
        let xlabel_w = xticks.iter().map(|(_, s)| Svg::measure(s, &xtick_style)).fold(0.0, f64::max);
        let spacing = if xticks.len() > 1 { (xticks[1].0 - xticks[0].0) / (xhi - xlo) * PLOT_W } else { PLOT_W };
        let every = if spacing > 0.0 { ((xlabel_w + 8.0) / spacing).ceil().max(1.0) as usize } else { 1 };
        for (i, (v, label)) in xticks.iter().enumerate() {
            let x = xmap(*v);
            svg.line(x, y0, x, y0 + PLOT_H, GRID, 0.8);
            svg.line(x, y0 + PLOT_H, x, y0 + PLOT_H + 4.0, AXIS, 0.8);
            if i % every == 0 {
                svg.text(x, y0 + PLOT_H + 8.0 + TICK, label, &xtick_style);
            }
        }

        // Lines, clipped to the plot so fixed ranges cannot spill over the axes.
        // A few px of slack so markers on the plot's edge stay round.
        svg.def(&format!(
            r#"<clipPath id="{ID}plot"><rect x="{}" y="{}" width="{}" height="{}"/></clipPath>"#,
            n(x0 - 4.0),
            n(y0 - 4.0),
            n(PLOT_W + 8.0),
            n(PLOT_H + 8.0)
        ));
        let mut body = format!(r#"<g clip-path="url(#{ID}plot)">"#);
        for (i, s) in self.series.iter().enumerate() {
            let color = s.color.unwrap_or(PALETTE[i % PALETTE.len()]).hex();
            let mut d = String::new();
            let mut pen_down = false;
            for &p in &s.points {
                if self.usable(p) {
                    let _ = write!(d, "{}{} {}", if pen_down { "L" } else { "M" }, n(xmap(p.0)), n(ymap(p.1)));
                    pen_down = true;
                } else {
                    pen_down = false;
                }
            }
            let dash = if s.dashed { r#" stroke-dasharray="6 3""# } else { "" };
            if !d.is_empty() {
                let _ = writeln!(
                    body,
                    r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="1.8" stroke-linejoin="round" stroke-linecap="round"{dash}/>"#
                );
            }
            let usable = s.points.iter().filter(|p| self.usable(**p)).count();
            // Markers only where individual points are meaningful (not 1000-step loss curves);
            // a single point needs one to be visible at all.
            if usable <= 50 {
                for &p in s.points.iter().filter(|p| self.usable(**p)) {
                    let _ = writeln!(
                        body,
                        r##"<circle cx="{}" cy="{}" r="2.6" fill="{color}" stroke="#ffffff" stroke-width="0.6"/>"##,
                        n(xmap(p.0)),
                        n(ymap(p.1))
                    );
                }
            }
        }
        body.push_str("</g>");
        svg.raw(&body);

        // Axes (left and bottom only: the open frame reads cleaner in print).
        svg.line(x0, y0, x0, y0 + PLOT_H, AXIS, 1.0);
        svg.line(x0, y0 + PLOT_H, x0 + PLOT_W, y0 + PLOT_H, AXIS, 1.0);
        if !self.y_label.is_empty() {
            let st = TextStyle::new(AXIS_TITLE).anchor(Anchor::Middle).rotate(-90.0);
            let label = fit_text(&self.y_label, AXIS_TITLE, false, PLOT_H + 40.0);
            svg.text(MARGIN + AXIS_TITLE - 2.0, y0 + PLOT_H / 2.0, &label, &st);
        }
        if !self.x_label.is_empty() {
            svg.text(x0 + PLOT_W / 2.0, x_title_y, &self.x_label, &TextStyle::new(AXIS_TITLE).anchor(Anchor::Middle));
        }

        if show_legend {
            let lx = x0 + PLOT_W + 14.0;
            for (i, (s, name)) in self.series.iter().zip(&names).enumerate() {
                let y = y0 + 8.0 + i as f64 * 18.0;
                let color = s.color.unwrap_or(PALETTE[i % PALETTE.len()]).hex();
                let dash = if s.dashed { r#" stroke-dasharray="6 3""# } else { "" };
                svg.raw(&format!(
                    r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{color}" stroke-width="2.2"{dash}/>"#,
                    n(lx),
                    n(y),
                    n(lx + 20.0),
                    n(y)
                ));
                svg.text_centered(lx + 26.0, y, name, &TextStyle::new(LEGEND).fill(INK));
            }
        }
        Ok(svg.finish())
    }
}
