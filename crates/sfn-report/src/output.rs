//! Rasterising SVG to PNG and writing figure files atomically (temp file + rename, same directory).
//!
//! Both files are rendered in memory before anything touches the disk, so a rendering failure
//! writes nothing, and a reader never sees a half-written file under the final name.

use std::path::{Path, PathBuf};

use resvg::{tiny_skia, usvg};

use crate::error::{ReportError, Result};
use crate::font;
use crate::Figure;

/// A rendered figure: the SVG text and its size in px (SVG user units).
#[derive(Clone, Debug)]
pub struct SvgDocument {
    pub width: u32,
    pub height: u32,
    pub text: String,
}

/// The largest PNG side we agree to allocate; beyond it a figure is surely a data mistake.
const MAX_PNG_SIDE: u32 = 16_384;

impl SvgDocument {
    /// Rasterises the SVG at `scale` px per SVG unit (2.0 gives crisp text on slides and screens).
    /// The PNG is `ceil(width * scale)` x `ceil(height * scale)` px, RGBA on a white background.
    pub fn to_png(&self, scale: f32) -> Result<Vec<u8>> {
        let err =
            |problem: String| ReportError::Render { what: format!("{}x{} SVG", self.width, self.height), problem };
        if !(scale.is_finite() && scale > 0.0) {
            return Err(err(format!("scale must be a positive number, got {scale}")));
        }
        let opts = usvg::Options {
            font_family: font::FAMILY.to_string(),
            fontdb: font::database(),
            ..usvg::Options::default()
        };
        let tree = usvg::Tree::from_str(&self.text, &opts).map_err(|e| err(e.to_string()))?;
        let w = (self.width as f32 * scale).ceil() as u32;
        let h = (self.height as f32 * scale).ceil() as u32;
        if w == 0 || h == 0 || w > MAX_PNG_SIDE || h > MAX_PNG_SIDE {
            return Err(err(format!("PNG would be {w}x{h} px (limit {MAX_PNG_SIDE} per side)")));
        }
        let mut pixmap = tiny_skia::Pixmap::new(w, h).ok_or_else(|| err(format!("cannot allocate {w}x{h} px")))?;
        pixmap.fill(tiny_skia::Color::WHITE);
        resvg::render(&tree, tiny_skia::Transform::from_scale(scale, scale), &mut pixmap.as_mut());
        pixmap.encode_png().map_err(|e| err(e.to_string()))
    }
}

/// How [`save_with`] writes a figure.
#[derive(Clone, Debug)]
pub struct SaveOptions {
    /// PNG pixels per SVG unit.
    pub png_scale: f32,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions { png_scale: 2.0 }
    }
}

/// Writes `stem.svg` and `stem.png` (PNG at 2x) and returns their paths, SVG first.
///
/// `stem` is a path without extension (`run/figures/delta_heatmap`); a dot in its file name is kept
/// (`fig.v2` gives `fig.v2.svg`). The directory must exist.
pub fn save(fig: &impl Figure, stem: &Path) -> Result<Vec<PathBuf>> {
    save_with(fig, stem, &SaveOptions::default())
}

/// [`save`] with explicit options.
pub fn save_with(fig: &impl Figure, stem: &Path, opts: &SaveOptions) -> Result<Vec<PathBuf>> {
    let name = stem
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ReportError::BadStem { stem: stem.to_path_buf() })?;
    let svg_path = stem.with_file_name(format!("{name}.svg"));
    let png_path = stem.with_file_name(format!("{name}.png"));

    // Check the directory before rendering: it is the common mistake and the cheapest check.
    let dir = match svg_path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(ReportError::MissingDir { path: svg_path, dir });
    }

    let doc = fig.to_svg()?;
    let png = doc.to_png(opts.png_scale)?;
    sfn_run::write_atomic(&svg_path, doc.text.as_bytes())?;
    sfn_run::write_atomic(&png_path, &png)?;
    Ok(vec![svg_path, png_path])
}
