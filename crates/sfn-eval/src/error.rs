//! The one error type of `sfn-eval`. Every error that comes from a user's file names the file and,
//! where there is one, the 1-based line, so the CLI can print it as a single clear line.

use std::path::PathBuf;

/// What a [`crate::Generator`] or [`crate::ReferenceScorer`] returns on failure. Boxed so that a
/// runtime crate can pass its own error type through without `sfn-eval` knowing it.
pub type GenerateError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The OS error is part of the message and deliberately not a `source`, so error chains
    /// (anyhow's `{:#}`) do not print it twice.
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{path}: no tasks (the file is empty)")]
    EmptyTaskFile { path: PathBuf },
    #[error("{path}: no records (the file is empty)")]
    EmptyFile { path: PathBuf },
    #[error("{path}:{line}: malformed JSON: {message}")]
    MalformedJson { path: PathBuf, line: usize, message: String },
    #[error("{path}:{line}: not valid UTF-8")]
    NotUtf8 { path: PathBuf, line: usize },
    #[error("{path}:{line}: expected a JSON object, found {found}")]
    NotAnObject { path: PathBuf, line: usize, found: &'static str },
    #[error("{path}:{line}: missing field `{field}` (the record has: {present}){hint}")]
    MissingField { path: PathBuf, line: usize, field: String, present: String, hint: String },
    #[error("{path}:{line}: field `{field}` must be {expected}, found {found}")]
    FieldType { path: PathBuf, line: usize, field: String, expected: &'static str, found: &'static str },
    #[error("{path}:{line}: duplicate id `{id}` (first on line {first_line})")]
    DuplicateId { path: PathBuf, line: usize, id: String, first_line: usize },
    #[error("{path}:{line}: unknown task kind `{kind}` (use reasoning or conversation)")]
    UnknownKind { path: PathBuf, line: usize, kind: String },
    #[error("{path}:{line}: unknown level `{value}` (use I, II, III, IV or 1-4)")]
    UnknownLevel { path: PathBuf, line: usize, value: String },
    #[error("{path}:{line}: id `{id}` is not a task of the task file")]
    UnknownId { path: PathBuf, line: usize, id: String },
    #[error("field mapping `{spec}`: {why}")]
    FieldMapping { spec: String, why: String },
    #[error("invalid settings: {0}")]
    InvalidSettings(String),
    #[error("{path}:{line}: corrupt results line ({message}); only a crash-truncated last line is repaired")]
    CorruptResults { path: PathBuf, line: usize, message: String },
    #[error("{dir}: holds results made with other settings ({what}); use another directory or start fresh")]
    ResumeMismatch { dir: PathBuf, what: String },
    #[error("generation failed: {0}")]
    Generation(GenerateError),
    #[error("the generator delivered results for {got} of {want} prompts")]
    GeneratorContract { want: usize, got: usize },
    #[error("cannot serialise results: {0}")]
    Json(#[from] serde_json::Error),
    /// Writing the run directory failed.
    #[error(transparent)]
    Run(#[from] sfn_run::Error),
    /// Opening a model (or its checkpoint) failed.
    #[error(transparent)]
    Model(#[from] sfn_model::Error),
    #[error(transparent)]
    Checkpoint(#[from] sfn_checkpoint::Error),
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;

impl EvalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EvalError::Io { path: path.into(), err: source }
    }
}

/// The JSON type of a value, for "must be a string, found a number" messages.
pub fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
