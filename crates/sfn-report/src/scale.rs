//! Colours, colormaps, tick placement and number formatting shared by all figures.
//!
//! Ticks follow the usual 1-2-5 rule; labels use a true minus sign and superscript powers of ten
//! (DejaVu has the glyphs), as in printed papers.

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Color(pub u8, pub u8, pub u8);

impl Color {
    /// `#rrggbb`, as SVG wants it.
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    /// Relative luminance in 0..1 (to pick black or white text on top of a colour).
    pub fn luminance(self) -> f64 {
        let lin = |c: u8| {
            let c = c as f64 / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(self.0) + 0.7152 * lin(self.1) + 0.0722 * lin(self.2)
    }

    fn lerp(a: Color, b: Color, t: f64) -> Color {
        let m = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * t).round().clamp(0.0, 255.0) as u8;
        Color(m(a.0, b.0), m(a.1, b.1), m(a.2, b.2))
    }
}

/// Categorical palette (Tableau 10): distinct hues that stay apart for most colour-blind readers.
pub(crate) const PALETTE: [Color; 10] = [
    Color(0x4e, 0x79, 0xa7),
    Color(0xf2, 0x8e, 0x2b),
    Color(0xe1, 0x57, 0x59),
    Color(0x76, 0xb7, 0xb2),
    Color(0x59, 0xa1, 0x4f),
    Color(0xed, 0xc9, 0x48),
    Color(0xb0, 0x7a, 0xa1),
    Color(0xff, 0x9d, 0xa7),
    Color(0x9c, 0x75, 0x5f),
    Color(0xba, 0xb0, 0xac),
];

/// A sequential colormap for heatmaps (perceptually uniform, readable in greyscale).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Colormap {
    /// Dark purple (low) to yellow (high), like matplotlib's default.
    #[default]
    Viridis,
    /// Black (low) through red to pale yellow (high).
    Magma,
}

// Ten evenly spaced samples of the matplotlib maps; linear interpolation between them stays
// within a few RGB units of the full 256-entry tables.
const VIRIDIS: [Color; 10] = [
    Color(0x44, 0x01, 0x54),
    Color(0x48, 0x28, 0x78),
    Color(0x3e, 0x4a, 0x89),
    Color(0x31, 0x68, 0x8e),
    Color(0x26, 0x82, 0x8e),
    Color(0x1f, 0x9e, 0x89),
    Color(0x35, 0xb7, 0x79),
    Color(0x6d, 0xcd, 0x59),
    Color(0xb4, 0xde, 0x2c),
    Color(0xfd, 0xe7, 0x25),
];
const MAGMA: [Color; 10] = [
    Color(0x00, 0x00, 0x04),
    Color(0x18, 0x0f, 0x3e),
    Color(0x45, 0x10, 0x77),
    Color(0x72, 0x1f, 0x81),
    Color(0x9f, 0x2f, 0x7f),
    Color(0xcd, 0x40, 0x71),
    Color(0xf1, 0x60, 0x5d),
    Color(0xfd, 0x95, 0x67),
    Color(0xfe, 0xc9, 0x8d),
    Color(0xfc, 0xfd, 0xbf),
];

impl Colormap {
    /// Colour at position `t` in 0..=1 (clamped; NaN maps to the low end).
    pub fn at(self, t: f64) -> Color {
        let stops: &[Color; 10] = match self {
            Colormap::Viridis => &VIRIDIS,
            Colormap::Magma => &MAGMA,
        };
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        let pos = t * (stops.len() - 1) as f64;
        let i = (pos.floor() as usize).min(stops.len() - 2);
        Color::lerp(stops[i], stops[i + 1], pos - i as f64)
    }
}

/// A 1-2-5 step giving roughly `target` intervals over `span`, as (multiplier, power of ten).
fn nice_step_parts(span: f64, target: usize) -> (f64, i32) {
    let raw = span / target.max(1) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return (1.0, 0);
    }
    let mut e = raw.log10().floor() as i32;
    let norm = raw / 10f64.powi(e);
    let m = if norm < 1.5 {
        1.0
    } else if norm < 3.0 {
        2.0
    } else if norm < 7.0 {
        5.0
    } else {
        e += 1;
        1.0
    };
    (m, e)
}

/// `k * m * 10^e` computed so that decimal ticks come out exact (0.6, not 0.6000000000000001).
fn scaled(k: f64, m: f64, e: i32) -> f64 {
    let v = if e < 0 { (k * m) / 10f64.powi(-e) } else { (k * m) * 10f64.powi(e) };
    if v == 0.0 {
        0.0
    } else {
        v
    }
}

/// A 1-2-5 step giving roughly `target` intervals over `span`.
pub(crate) fn nice_step(span: f64, target: usize) -> f64 {
    let (m, e) = nice_step_parts(span, target);
    scaled(1.0, m, e)
}

/// Tick values inside [lo, hi] on a 1-2-5 grid (at most ~2*target of them).
pub(crate) fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi < lo {
        return Vec::new();
    }
    if hi == lo {
        return vec![lo];
    }
    let (m, e) = nice_step_parts(hi - lo, target);
    let step = scaled(1.0, m, e);
    let first = (lo / step - 1e-9).ceil();
    let mut out = Vec::new();
    for k in 0..100 {
        let v = scaled(first + k as f64, m, e);
        if v > hi + step * 1e-9 {
            break;
        }
        out.push(v);
    }
    out
}

/// Expands [lo, hi] outwards to the nearest 1-2-5 ticks, so axes start and end on a label.
pub(crate) fn nice_bounds(lo: f64, hi: f64, target: usize) -> (f64, f64) {
    let (lo, hi) = if !(lo.is_finite() && hi.is_finite()) {
        (0.0, 1.0)
    } else if hi <= lo {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.5 };
        (lo - pad, lo + pad)
    } else {
        (lo, hi)
    };
    let step = nice_step(hi - lo, target);
    let a = (lo / step + 1e-9).floor() * step;
    let b = (hi / step - 1e-9).ceil() * step;
    if a.is_finite() && b.is_finite() && b > a {
        (a, b)
    } else {
        (lo, hi)
    }
}

const SUPERSCRIPTS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];

/// `10⁻³` style power of ten.
pub(crate) fn pow10_label(exp: i32) -> String {
    let mut s = String::from("10");
    if exp < 0 {
        s.push('⁻');
    }
    for d in exp.unsigned_abs().to_string().bytes() {
        s.push(SUPERSCRIPTS[(d - b'0') as usize]);
    }
    s
}

fn minus(s: String) -> String {
    s.replace('-', "−")
}

/// A tick label for `v` on an axis whose ticks are `step` apart: as few decimals as the step needs.
pub(crate) fn fmt_tick(v: f64, step: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    if !v.is_finite() {
        return String::new();
    }
    let big = v.abs() >= 1e5;
    let tiny = step.abs() < 1e-3 && v.abs() < 1e-2;
    if big || tiny {
        return fmt_sci(v, 2);
    }
    let decimals = if step > 0.0 && step.is_finite() { (-(step.log10().floor())).clamp(0.0, 6.0) as usize } else { 2 };
    // A step like 0.25 would be cut to 0.2 with one decimal: add one where needed.
    let s = format!("{:.*}", decimals, v);
    let decimals = if (s.parse::<f64>().unwrap_or(v) - v).abs() > step * 1e-6 { decimals + 1 } else { decimals };
    minus(format!("{:.*}", decimals, v))
}

/// `1.2×10⁻⁵` style scientific notation with `sig` significant digits.
pub(crate) fn fmt_sci(v: f64, sig: usize) -> String {
    if v == 0.0 || !v.is_finite() {
        return fmt_value(v);
    }
    let exp = v.abs().log10().floor() as i32;
    let mant = v / 10f64.powi(exp);
    let mut m = format!("{:.*}", sig.saturating_sub(1), mant);
    // Rounding may give 10.0 (9.99 -> 10.0): renormalise.
    let (m2, exp) = if m.trim_start_matches('-').starts_with("10") {
        (format!("{:.*}", sig.saturating_sub(1), mant / 10.0), exp + 1)
    } else {
        (m.clone(), exp)
    };
    m = m2;
    if m.contains('.') {
        m = m.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if m == "1" {
        pow10_label(exp)
    } else if m == "-1" {
        format!("−{}", pow10_label(exp))
    } else {
        minus(format!("{}×{}", m, pow10_label(exp)))
    }
}

/// A data value with three significant digits (value labels, tooltips).
pub(crate) fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        return "n/a".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "∞".to_string() } else { "−∞".to_string() };
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return fmt_sci(v, 3);
    }
    let decimals = (2 - a.log10().floor() as i32).clamp(0, 5) as usize;
    let s = format!("{:.*}", decimals, v);
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    minus(s)
}

/// A count as `850`, `12.3k`, `4.2M`.
pub(crate) fn fmt_count(c: u64) -> String {
    let f = c as f64;
    if c < 1000 {
        c.to_string()
    } else if c < 1_000_000 {
        trim1(f / 1e3) + "k"
    } else if c < 1_000_000_000 {
        trim1(f / 1e6) + "M"
    } else {
        trim1(f / 1e9) + "G"
    }
}

fn trim1(v: f64) -> String {
    let s = if v < 10.0 { format!("{:.1}", v) } else { format!("{:.0}", v) };
    s.trim_end_matches(".0").to_string()
}

/// Ticks for a log axis over [lo, hi] (both > 0). An empty label marks a minor (unlabelled) tick.
///
/// Three or more decades inside: labels at powers of ten (`10⁻³`), minor ticks at 2..9 multiples.
/// Fewer: labels at 1-2-5 multiples as plain decimals, minor ticks at the other integer multiples,
/// because two lonely decade labels do not let a reader decode a colour or a height.
pub(crate) fn log_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
        return Vec::new();
    }
    let (a, b) = (lo.log10(), hi.log10());
    let eps = 1e-9;
    let inside = |v: f64| v >= lo * (1.0 - eps) && v <= hi * (1.0 + eps);
    let decades: Vec<i32> = ((a - eps).ceil() as i32..=(b + eps).floor() as i32).collect();
    let mut out = Vec::new();
    if decades.len() >= 3 {
        // Label every k-th decade so that at most ~7 labels remain.
        let k = decades.len().div_ceil(7) as i32;
        let minor = b - a <= 6.0;
        for e in (a.floor() as i32)..=(b.ceil() as i32) {
            let d = 10f64.powi(e);
            if inside(d) {
                let label = if e.rem_euclid(k) == 0 { pow10_label(e) } else { String::new() };
                out.push((d, label));
            }
            if minor {
                out.extend((2..10).map(|m| m as f64 * d).filter(|v| inside(*v)).map(|v| (v, String::new())));
            }
        }
        return out;
    }
    for e in (a.floor() as i32)..=(b.ceil() as i32) {
        for m in 1..10 {
            // m / 10^-e rather than m * 10^e: exact decimals for the labels.
            let v = if e < 0 { m as f64 / 10f64.powi(-e) } else { m as f64 * 10f64.powi(e) };
            if inside(v) {
                let label = if matches!(m, 1 | 2 | 5) { fmt_value(v) } else { String::new() };
                out.push((v, label));
            }
        }
    }
    if out.iter().filter(|(_, l)| !l.is_empty()).count() < 2 {
        // A very narrow range: plain linear ticks read better than one lonely label.
        let step = nice_step(hi - lo, 3);
        return nice_ticks(lo, hi, 3).into_iter().map(|v| (v, fmt_tick(v, step))).collect();
    }
    out
}

/// Blanks labels (keeping the ticks) that would sit closer than `min_gap` px to the previous
/// label, given each tick's pixel position from `pos`. The first label is always kept.
pub(crate) fn thin_labels(ticks: &mut [(f64, String)], pos: impl Fn(f64) -> f64, min_gap: f64) {
    let mut last: Option<f64> = None;
    for (v, label) in ticks.iter_mut() {
        if label.is_empty() {
            continue;
        }
        let p = pos(*v);
        match last {
            Some(q) if (p - q).abs() < min_gap => label.clear(),
            _ => last = Some(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_follow_the_1_2_5_rule() {
        assert_eq!(nice_ticks(-1.0, 1.0, 2), vec![-1.0, 0.0, 1.0]);
        assert_eq!(nice_ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert!(nice_ticks(f64::NAN, 1.0, 5).is_empty());
        assert_eq!(nice_bounds(0.03, 0.97, 5), (0.0, 1.0));
        assert!(nice_bounds(2.0, 2.0, 5).0 < 2.0);
    }

    #[test]
    fn labels_use_minus_signs_and_superscripts() {
        assert_eq!(fmt_tick(-0.5, 0.5), "−0.5");
        assert_eq!(fmt_tick(0.25, 0.25), "0.25");
        assert_eq!(fmt_tick(20.0, 10.0), "20");
        assert_eq!(pow10_label(-3), "10⁻³");
        assert_eq!(fmt_value(0.012345), "0.0123");
        assert_eq!(fmt_value(123456.0), "1.23×10⁵");
        assert_eq!(fmt_value(f64::NAN), "n/a");
        assert_eq!(fmt_sci(9.99e-4, 2), "10⁻³");
        assert_eq!(fmt_count(12_345), "12k");
        assert_eq!(fmt_count(4_200_000), "4.2M");
    }

    #[test]
    fn log_ticks_cover_decades_or_fall_back_to_multiples() {
        let labels =
            |t: Vec<(f64, String)>| t.into_iter().map(|(_, l)| l).filter(|l| !l.is_empty()).collect::<Vec<_>>();
        assert_eq!(labels(log_ticks(1e-4, 1.0)), vec!["10⁻⁴", "10⁻³", "10⁻²", "10⁻¹", "10⁰"]);
        assert_eq!(log_ticks(1e-4, 1.0).len(), 5 + 4 * 8);
        assert_eq!(labels(log_ticks(0.0014, 0.15)), vec!["0.002", "0.005", "0.01", "0.02", "0.05", "0.1"]);
        assert_eq!(labels(log_ticks(0.15, 0.9)), vec!["0.2", "0.5"]);
        assert!(labels(log_ticks(0.31, 0.39)).len() >= 2);
    }

    #[test]
    fn colormap_endpoints_and_clamping() {
        assert_eq!(Colormap::Viridis.at(0.0), Color(0x44, 0x01, 0x54));
        assert_eq!(Colormap::Viridis.at(1.0), Color(0xfd, 0xe7, 0x25));
        assert_eq!(Colormap::Viridis.at(7.0), Colormap::Viridis.at(1.0));
        assert_eq!(Colormap::Magma.at(f64::NAN), Color(0, 0, 4));
    }
}
