//! sfn-checkpoint: open Hugging Face and GGUF checkpoints without loading them whole, name their
//! tensors (taxonomy), pick modules out of them (selectors) and write new checkpoints atomically.
//!
//! Only this crate parses tensor names and file formats; everything else in sfn goes through
//! `Checkpoint`, `TensorName` and `Selector`.

pub mod checkpoint;
pub mod config;
pub mod dtype;
pub mod edit;
pub mod error;
pub mod gguf;
pub mod mapped;
pub mod quant;
pub mod selector;
pub mod summary;
pub mod taxonomy;
pub mod writer;

pub use checkpoint::{Checkpoint, Format, TensorInfo};
pub use config::ModelConfig;
pub use dtype::DType;
pub use error::{Error, Result};
