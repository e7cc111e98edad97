//! The one error type of sfn-model. Variants say which side is at fault: the checkpoint (missing or
//! malformed tensors), an unsupported architecture feature, the caller's input (token ids, hook
//! names, lengths), the tokenizer or the chat template, or the tensor library underneath.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening or reading the checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] sfn_checkpoint::Error),
    /// The checkpoint describes something this runtime does not run (or is inconsistent).
    #[error("{0}")]
    Unsupported(String),
    /// A request that cannot be honoured: token id out of range, sequence too long, bad hook name.
    #[error("{0}")]
    Input(String),
    /// Building or running the tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template does not parse or render.
    #[error("chat template: {0}")]
    Template(String),
    /// The tensor library reported an error (shape mismatch inside the runtime, device failure).
    #[error("tensor computation: {0}")]
    Candle(#[from] candle_core::Error),
    /// Another error, with what was being done (`loading model.gguf: …`). The inner error is part
    /// of the message, not a `source`, so error chains do not print it twice.
    #[error("{what}: {inner}")]
    Context { what: String, inner: Box<Error> },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn unsupported(msg: impl Into<String>) -> Self {
        Error::Unsupported(msg.into())
    }
    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }
    pub fn context(self, what: impl Into<String>) -> Self {
        Error::Context { what: what.into(), inner: Box::new(self) }
    }
}
