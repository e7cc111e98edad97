//! The embedded DejaVu Sans fonts: a font database for resvg and text-width measurement for layout.
//!
//! Layout needs label widths (to rotate, thin out or shorten labels before they overlap), so we
//! measure with the very font the PNG is rendered with. Kerning is ignored (a pixel or two).

use std::sync::{Arc, OnceLock};

use resvg::usvg::fontdb;
use skrifa::prelude::{LocationRef, MetadataProvider, Size};
use skrifa::FontRef;

pub(crate) const FAMILY: &str = "DejaVu Sans";
static REGULAR: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");

/// Code points below this get a precomputed advance; above it we assume a full em (CJK-like).
const TABLE_LEN: usize = 0x3000;

/// Per-code-point advance widths at a font size of 1 px, for regular and bold.
fn tables() -> &'static [Vec<f32>; 2] {
    static T: OnceLock<[Vec<f32>; 2]> = OnceLock::new();
    T.get_or_init(|| [advance_table(REGULAR), advance_table(BOLD)])
}

fn advance_table(data: &'static [u8]) -> Vec<f32> {
    // The fonts are compiled in, so failing to parse them is a build defect, not user input;
    // we still degrade to a 0.6 em estimate rather than panic.
    let Ok(font) = FontRef::new(data) else { return vec![0.6; TABLE_LEN] };
    let charmap = font.charmap();
    let metrics = font.glyph_metrics(Size::new(1.0), LocationRef::default());
    let fallback = charmap.map('?').and_then(|g| metrics.advance_width(g)).unwrap_or(0.6);
    (0..TABLE_LEN as u32).map(|cp| charmap.map(cp).and_then(|g| metrics.advance_width(g)).unwrap_or(fallback)).collect()
}

/// Width in px of `text` set in DejaVu Sans at `size` px.
pub(crate) fn text_width(text: &str, size: f64, bold: bool) -> f64 {
    let table = &tables()[bold as usize];
    let em: f64 = text.chars().map(|c| table.get(c as usize).copied().unwrap_or(1.0) as f64).sum();
    em * size
}

/// Shortens `text` with an ellipsis so that it is at most `max_width` px wide.
pub(crate) fn fit_text(text: &str, size: f64, bold: bool, max_width: f64) -> String {
    if text_width(text, size, bold) <= max_width {
        return text.to_string();
    }
    // Start from a bounded prefix: a label is never usefully longer, and this keeps it linear-ish.
    let mut out: String = text.chars().take(300).collect();
    while !out.is_empty() {
        out.pop();
        let candidate = format!("{}…", out.trim_end());
        if text_width(&candidate, size, bold) <= max_width {
            return candidate;
        }
    }
    "…".to_string()
}

/// A font database holding only the embedded fonts, shared by all PNG renders.
pub(crate) fn database() -> Arc<fontdb::Database> {
    static DB: OnceLock<Arc<fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = fontdb::Database::new();
        db.load_font_data(REGULAR.to_vec());
        db.load_font_data(BOLD.to_vec());
        // Generic families in the SVG (our fallback list ends in sans-serif) resolve to DejaVu.
        db.set_sans_serif_family(FAMILY);
        Arc::new(db)
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_are_plausible_for_dejavu() {
        // DejaVu Sans digits are 0.636 em wide.
        let w = text_width("0123456789", 10.0, false);
        assert!((w - 63.6).abs() < 1.0, "{w}");
        assert!(text_width("W", 12.0, true) > text_width("i", 12.0, true));
        assert_eq!(text_width("", 12.0, false), 0.0);
    }

    #[test]
    fn fit_text_adds_ellipsis_only_when_needed() {
        assert_eq!(fit_text("q_proj", 10.0, false, 100.0), "q_proj");
        let s = fit_text("a very long module label indeed", 10.0, false, 60.0);
        assert!(s.ends_with('…') && text_width(&s, 10.0, false) <= 60.0, "{s}");
    }

    #[test]
    fn database_holds_both_faces() {
        assert_eq!(database().len(), 2);
    }
}
