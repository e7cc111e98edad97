//! Typed errors of sfn-report: each names the figure or file and what is wrong with it.

use std::path::PathBuf;

/// Everything that can go wrong while building or writing a figure.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The figure's data is inconsistent (ragged rows, label count mismatch, non-finite range...).
    #[error("figure \"{figure}\": {problem}")]
    InvalidFigure { figure: String, problem: String },

    /// The output stem has no usable file name (e.g. it ends in `..` or is empty).
    #[error("output path {stem}: has no file name to write figures under")]
    BadStem { stem: PathBuf },

    /// The directory the figure should go into does not exist (we never create it silently).
    #[error("cannot write {path}: directory {dir} does not exist")]
    MissingDir { path: PathBuf, dir: PathBuf },

    /// Creating, writing, syncing or renaming an output file failed.
    #[error("cannot write {0}")]
    Io(#[from] sfn_run::Error),

    /// Rasterising the SVG failed (a bug in this crate, or an absurd figure size).
    #[error("cannot render {what} to PNG: {problem}")]
    Render { what: String, problem: String },
}

pub type Result<T> = std::result::Result<T, ReportError>;

pub(crate) fn invalid(figure: &str, problem: impl Into<String>) -> ReportError {
    ReportError::InvalidFigure { figure: figure.to_string(), problem: problem.into() }
}
