//! The error type of sfn-lab: what failed, from the crate that failed.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Scope(#[from] sfn_scope::Error),
    #[error(transparent)]
    Train(#[from] sfn_train::Error),
    #[error(transparent)]
    Eval(#[from] sfn_eval::EvalError),
    #[error(transparent)]
    Model(#[from] sfn_model::Error),
    #[error(transparent)]
    Checkpoint(#[from] sfn_checkpoint::Error),
    #[error(transparent)]
    Run(#[from] sfn_run::Error),
    #[error("lab tokenizer: {0}")]
    Tokenizer(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
