//! The one error type of sfn-train. Variants say which side is at fault: the checkpoint (a tensor
//! missing or of the wrong shape), an architecture the engine does not train, the caller's batch
//! (token ids, labels, lengths, positions), the trainable set, or optimizer state being restored.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening or reading the checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] sfn_checkpoint::Error),
    /// The runtime crate failed (config, rotary tables).
    #[error(transparent)]
    Model(#[from] sfn_model::Error),
    /// A tensor the architecture needs is missing or has the wrong shape.
    #[error("tensor {name}: {msg}")]
    Tensor { name: String, msg: String },
    /// The checkpoint describes something this engine does not train.
    #[error("{0}")]
    Unsupported(String),
    /// A batch that cannot be run: shapes, token ids, labels, positions.
    #[error("batch: {0}")]
    Batch(String),
    /// The trainable set names a tensor the model does not have, or a selector matches nothing.
    #[error("trainable set: {0}")]
    Trainable(String),
    /// Optimizer state that does not fit the model (names, shapes) or settings out of range.
    #[error("optimizer: {0}")]
    Optimizer(String),
    /// A training file or a training directory (log, saves) that cannot be used; the message
    /// names the file (and line).
    #[error("{0}")]
    Data(String),
    /// Writing the run directory failed.
    #[error(transparent)]
    Run(#[from] sfn_run::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn tensor(name: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Tensor { name: name.into(), msg: msg.into() }
    }
    pub(crate) fn batch(msg: impl Into<String>) -> Self {
        Error::Batch(msg.into())
    }
}
