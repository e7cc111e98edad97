//! GGUF block dequantization (stub: being written).
use crate::DType;
pub fn dequantize(dtype: DType, _bytes: &[u8], _out: &mut [f32]) {
    unimplemented!("{dtype}")
}
