//! The error type of sfn-study.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A study file that cannot run: where, which key, what was expected.
    #[error("{}{}{}: {msg}", path.display(), line.map(|l| format!(", line {l}")).unwrap_or_default(), key.as_ref().map(|k| format!(", key `{k}`")).unwrap_or_default())]
    Study { path: PathBuf, line: Option<usize>, key: Option<String>, msg: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {msg}", path.display())]
    Invalid { path: PathBuf, msg: String },
    #[error("report template: {0}")]
    Template(#[from] minijinja::Error),
    #[error(transparent)]
    Scope(#[from] sfn_scope::Error),
    #[error(transparent)]
    Eval(#[from] sfn_eval::EvalError),
    #[error(transparent)]
    Run(#[from] sfn_run::Error),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io { path: path.to_path_buf(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
