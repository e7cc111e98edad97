//! The error type of sfn-run: every variant names the file it is about.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The OS refused a read or write. The OS error is in the message and deliberately not a
    /// `source`, so error chains (anyhow's `{:#}`) do not print it twice.
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    /// A file exists but is not what it should be (a run.json that does not parse, say).
    #[error("{}: {msg}", path.display())]
    Invalid { path: PathBuf, msg: String },
    /// A run directory that would damage an input.
    #[error("{}: {msg}", path.display())]
    Output { path: PathBuf, msg: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl AsRef<Path>, err: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), err }
    }
}
