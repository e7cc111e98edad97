//! A tiny SVG writer: rectangles, lines, paths and text with XML escaping, in px user units.
//!
//! Only what the figures need. Text baselines are placed by us (no `dominant-baseline`), because
//! renderers disagree on it and the PNG must match what browsers show for the SVG.

use std::fmt::Write as _;

use crate::font;
use crate::output::SvgDocument;

/// Horizontal anchoring of a text run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Anchor {
    Start,
    Middle,
    End,
}

/// How a text run looks; `rotate` is in degrees around the anchor point (negative = upwards).
#[derive(Clone, Debug)]
pub(crate) struct TextStyle {
    pub size: f64,
    pub anchor: Anchor,
    pub bold: bool,
    pub fill: String,
    pub rotate: f64,
}

impl TextStyle {
    pub fn new(size: f64) -> Self {
        TextStyle { size, anchor: Anchor::Start, bold: false, fill: INK.to_string(), rotate: 0.0 }
    }
    pub fn anchor(mut self, a: Anchor) -> Self {
        self.anchor = a;
        self
    }
    pub fn bold(mut self) -> Self {
        self.bold = true;
        self
    }
    pub fn fill(mut self, f: impl Into<String>) -> Self {
        self.fill = f.into();
        self
    }
    pub fn rotate(mut self, deg: f64) -> Self {
        self.rotate = deg;
        self
    }
}

/// Main text and axis colour: near-black reads softer than pure black in print.
pub(crate) const INK: &str = "#222222";
/// Secondary text (notes, per-cell annotations).
pub(crate) const MUTED: &str = "#666666";
/// Axis lines and tick marks.
pub(crate) const AXIS: &str = "#444444";
/// Grid lines behind data.
pub(crate) const GRID: &str = "#e6e6e6";

/// Placeholder prefix for element ids (`url(#…)` targets). `finish` replaces it with a prefix
/// hashed from the figure's content, so several figures inlined into one HTML page do not share
/// ids (ids are page-global there). U+0001 cannot come from user text: `escape` drops it.
pub(crate) const ID: &str = "\u{1}";

/// Offset from a line's vertical centre to its baseline: about half of DejaVu's cap height.
pub(crate) const CENTER_TO_BASELINE: f64 = 0.36;

pub(crate) struct Svg {
    width: f64,
    height: f64,
    defs: String,
    body: String,
}

/// Formats a coordinate with at most two decimals (keeps files small and diffs stable).
pub(crate) fn n(v: f64) -> String {
    if !v.is_finite() {
        return "0".to_string();
    }
    let s = format!("{:.2}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s.is_empty() {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Escapes text for XML and drops characters XML 1.0 forbids (they would make the file invalid).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

impl Svg {
    /// A canvas of `width` x `height` px (rounded up to whole pixels so the PNG size is exact).
    pub fn new(width: f64, height: f64) -> Self {
        let mut s = Svg {
            width: width.ceil().max(1.0),
            height: height.ceil().max(1.0),
            defs: String::new(),
            body: String::new(),
        };
        let (w, h) = (s.width, s.height);
        s.rect(0.0, 0.0, w, h, "#ffffff", "");
        s
    }

    pub fn width(&self) -> f64 {
        self.width
    }

    /// Adds raw markup to `<defs>` (patterns, clip paths).
    pub fn def(&mut self, markup: &str) {
        self.defs.push_str(markup);
        self.defs.push('\n');
    }

    /// Adds raw markup to the body.
    pub fn raw(&mut self, markup: &str) {
        self.body.push_str(markup);
        self.body.push('\n');
    }

    /// A filled rectangle; `extra` is appended verbatim inside the tag (stroke, opacity...).
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, extra: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}"{}{}/>"#,
            n(x),
            n(y),
            n(w.max(0.0)),
            n(h.max(0.0)),
            fill,
            if extra.is_empty() { "" } else { " " },
            extra
        );
    }

    /// A filled rectangle with a tooltip (`<title>`), shown by browsers on hover in the report.
    pub fn rect_with_tooltip(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, tip: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>"#,
            n(x),
            n(y),
            n(w.max(0.0)),
            n(h.max(0.0)),
            fill,
            escape(tip)
        );
    }

    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, width: f64) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="{}"/>"#,
            n(x1),
            n(y1),
            n(x2),
            n(y2),
            stroke,
            n(width)
        );
    }

    /// A path from `d`; `attrs` carries fill/stroke.
    pub fn path(&mut self, d: &str, attrs: &str) {
        let _ = writeln!(self.body, r#"<path d="{}" {}/>"#, d, attrs);
    }

    pub fn circle(&mut self, cx: f64, cy: f64, r: f64, attrs: &str) {
        let _ = writeln!(self.body, r#"<circle cx="{}" cy="{}" r="{}" {}/>"#, n(cx), n(cy), n(r), attrs);
    }

    /// A text run whose baseline starts (or is centred / ends, by anchor) at (x, y).
    pub fn text(&mut self, x: f64, y: f64, s: &str, st: &TextStyle) {
        if s.is_empty() {
            return;
        }
        let anchor = match st.anchor {
            Anchor::Start => "",
            Anchor::Middle => r#" text-anchor="middle""#,
            Anchor::End => r#" text-anchor="end""#,
        };
        let weight = if st.bold { r#" font-weight="bold""# } else { "" };
        let rotate = if st.rotate != 0.0 {
            format!(r#" transform="rotate({} {} {})""#, n(st.rotate), n(x), n(y))
        } else {
            String::new()
        };
        let _ = writeln!(
            self.body,
            r#"<text x="{}" y="{}" font-size="{}" fill="{}"{}{}{}>{}</text>"#,
            n(x),
            n(y),
            n(st.size),
            st.fill,
            anchor,
            weight,
            rotate,
            escape(s)
        );
    }

    /// A text run vertically centred on `cy` (for labels beside rows and cells).
    pub fn text_centered(&mut self, x: f64, cy: f64, s: &str, st: &TextStyle) {
        self.text(x, cy + CENTER_TO_BASELINE * st.size, s, st);
    }

    /// Width of `s` in this style (unrotated).
    pub fn measure(s: &str, st: &TextStyle) -> f64 {
        font::text_width(s, st.size, st.bold)
    }

    pub fn finish(self) -> SvgDocument {
        // FNV-1a over the content: deterministic (same figure, same file) yet distinct per figure.
        let mut hash: u32 = 0x811c_9dc5;
        for b in self.defs.bytes().chain(self.body.bytes()) {
            hash = (hash ^ b as u32).wrapping_mul(0x0100_0193);
        }
        let prefix = format!("sfn{hash:08x}-");
        let (defs, body) = (self.defs.replace(ID, &prefix), self.body.replace(ID, &prefix));
        let mut out = String::with_capacity(body.len() + defs.len() + 512);
        let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="'{f}', Verdana, Arial, sans-serif">"#,
            w = n(self.width),
            h = n(self.height),
            f = font::FAMILY
        );
        if !defs.is_empty() {
            let _ = writeln!(out, "<defs>\n{}</defs>", defs);
        }
        out.push_str(&body);
        out.push_str("</svg>\n");
        SvgDocument { width: self.width as u32, height: self.height as u32, text: out }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_never_negative_zero() {
        assert_eq!(n(1.0), "1");
        assert_eq!(n(1.239), "1.24");
        assert_eq!(n(-0.001), "0");
        assert_eq!(n(f64::NAN), "0");
    }

    #[test]
    fn escape_handles_markup_and_control_characters() {
        assert_eq!(escape("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
    }
}
