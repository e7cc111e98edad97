//! The error type of sfn-scope. Messages are one line and name the tensor, file or option they
//! are about, so the CLI can print them as they are.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening or reading a checkpoint, or a selector, failed.
    #[error(transparent)]
    Checkpoint(#[from] sfn_checkpoint::Error),
    /// Evaluating a variant failed.
    #[error(transparent)]
    Eval(#[from] sfn_eval::EvalError),
    /// Building a variant's model failed.
    #[error(transparent)]
    Model(#[from] sfn_model::Error),
    /// Training failed (data, trainable set, optimizer, saves).
    #[error(transparent)]
    Train(#[from] sfn_train::Error),
    /// Writing the run directory failed.
    #[error(transparent)]
    Run(#[from] sfn_run::Error),
    /// An error about one of the inputs ("A: …", "B: …"). The inner error is part of the message,
    /// not a `source`, so error chains do not print it twice.
    #[error("{0}: {1}")]
    Side(&'static str, Box<Error>),
    /// A/B do not hold the same tensors with the same shapes, and the caller asked for strictness.
    #[error("{0}")]
    Mismatch(String),
    /// An option outside what the stethoscope supports.
    #[error("{0}")]
    Options(String),
    /// Reading a result file failed. The OS error is in the message, not a `source`.
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    /// Drawing a figure failed.
    #[error("figure {}: {msg}", path.display())]
    Figure { path: PathBuf, msg: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), err: source }
    }
}
