//! GGUF reading (stub: being written).
use crate::{config::ModelConfig, error::Result, TensorInfo};
use std::collections::BTreeMap;
use std::path::Path;

/// A GGUF metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

pub struct GgufCheckpoint {
    /// Canonical (Hugging Face) names, offsets absolute in the file.
    pub tensors: Vec<TensorInfo>,
    pub config: ModelConfig,
    /// Every key/value of the file, typed (the tokenizer and chat template live here).
    pub metadata: BTreeMap<String, Value>,
}

pub fn open(path: &Path, _bytes: &[u8]) -> Result<GgufCheckpoint> {
    Err(crate::Error::invalid(path, "GGUF not yet supported"))
}
