//! The one error type of sfn-checkpoint. Every variant names the file or tensor it is about, so the
//! CLI can print it as one line without further context.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system refused a read or write. The OS error is part of the message and
    /// deliberately not a `source`, so error chains (anyhow's `{:#}`) do not print it twice.
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    /// A file exists but its content is malformed or unsupported.
    #[error("{}: {msg}", path.display())]
    Invalid { path: PathBuf, msg: String },
    /// A selector string does not parse, or matches nothing.
    #[error("selector: {0}")]
    Selector(String),
    /// A request about a tensor that cannot be honoured (unknown name, bad range).
    #[error("tensor {name}: {msg}")]
    Tensor { name: String, msg: String },
    /// An output path that would damage an input, or cannot be used.
    #[error("{}: {msg}", path.display())]
    Output { path: PathBuf, msg: String },
    /// Settings that do not make sense (a missing output, a size without a unit).
    #[error("{0}")]
    Usage(String),
    /// Writing a file of the output failed (sfn-run's atomic writes).
    #[error(transparent)]
    Run(#[from] sfn_run::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), err: source }
    }
    pub fn invalid(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Invalid { path: path.as_ref().to_path_buf(), msg: msg.into() }
    }
    pub fn tensor(name: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Tensor { name: name.into(), msg: msg.into() }
    }
    pub fn output(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Output { path: path.as_ref().to_path_buf(), msg: msg.into() }
    }
}
