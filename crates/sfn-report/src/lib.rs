//! sfn-report: publication-style figures for the stethoscopes, written as SVG and PNG.
//!
//! Every figure is a plain data struct (no dependency on other sfn crates) implementing [`Figure`]:
//! - [`Heatmap`]: layers x module kinds, viridis-like colormap, colorbar, optional log scale;
//! - [`BarChart`]: one bar per category, optional range whiskers and per-item dots;
//! - [`HistogramGrid`]: small-multiple histograms (layers x module kinds), per-cell y scaling, flags;
//! - [`LineChart`]: several named series against a shared x axis.
//!
//! The SVG is generated here; the PNG is that same SVG rasterised by resvg with the DejaVu Sans
//! fonts compiled into this crate, so text renders identically on machines with no system fonts.
//! Limits: no interactivity beyond SVG `<title>` tooltips; glyphs outside DejaVu Sans (e.g. CJK)
//! render as missing-glyph boxes in the PNG.

mod bar;
mod error;
mod font;
mod heatmap;
mod histogram;
mod line;
mod output;
mod scale;
mod svg;

pub use bar::{Bar, BarChart};
pub use error::{ReportError, Result};
pub use heatmap::Heatmap;
pub use histogram::{Histogram, HistogramCell, HistogramGrid};
pub use line::{LineChart, Series};
pub use output::{save, save_with, SaveOptions, SvgDocument};
pub use scale::{Color, Colormap};

/// Something that can be drawn as a standalone SVG document.
pub trait Figure {
    /// Renders the figure; fails only on inconsistent data (e.g. label count != row count).
    fn to_svg(&self) -> Result<SvgDocument>;
}
