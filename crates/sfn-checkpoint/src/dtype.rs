//! Stored element types and their conversion to f32.
//!
//! Plain floats (F64, F32, F16, BF16) are one element per "block"; GGUF quantized types store blocks
//! of 32 (Q8_0, Q4_0, Q4_1) or 256 (Q4_K, Q5_K, Q6_K) elements. Conversion always works on whole
//! blocks, which is why readers hand out chunks aligned to `block_elems`.

use half::{bf16, f16};

// Variant names follow GGUF's own spelling (Q4_K), which users see in files and tools.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q4_K,
    Q5_K,
    Q6_K,
}

impl DType {
    /// Elements per storage block.
    pub fn block_elems(self) -> usize {
        match self {
            DType::F64 | DType::F32 | DType::F16 | DType::BF16 => 1,
            DType::Q8_0 | DType::Q4_0 | DType::Q4_1 => 32,
            DType::Q4_K | DType::Q5_K | DType::Q6_K => 256,
        }
    }

    /// Bytes per storage block.
    pub fn block_bytes(self) -> usize {
        match self {
            DType::F64 => 8,
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Q8_0 => 34,
            DType::Q4_0 => 18,
            DType::Q4_1 => 20,
            DType::Q4_K => 144,
            DType::Q5_K => 176,
            DType::Q6_K => 210,
        }
    }

    pub fn is_quantized(self) -> bool {
        self.block_elems() > 1
    }

    /// Bytes needed for `elems` elements, or None when `elems` is not a whole number of blocks.
    pub fn byte_len(self, elems: usize) -> Option<usize> {
        if !elems.is_multiple_of(self.block_elems()) {
            return None;
        }
        (elems / self.block_elems()).checked_mul(self.block_bytes())
    }

    /// The name used by safetensors headers and GGUF tools ("BF16", "Q4_K", ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F64 => "F64",
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::Q8_0 => "Q8_0",
            DType::Q4_0 => "Q4_0",
            DType::Q4_1 => "Q4_1",
            DType::Q4_K => "Q4_K",
            DType::Q5_K => "Q5_K",
            DType::Q6_K => "Q6_K",
        }
    }

    /// Parse a safetensors dtype string; only the float types can live in safetensors.
    pub fn from_safetensors(s: &str) -> Option<DType> {
        match s {
            "F64" => Some(DType::F64),
            "F32" => Some(DType::F32),
            "F16" => Some(DType::F16),
            "BF16" => Some(DType::BF16),
            _ => None,
        }
    }

    /// Parse a user-given dtype (`--dtype bf16`), case-insensitive; only types sfn can write.
    pub fn parse_writable(s: &str) -> Option<DType> {
        DType::from_safetensors(&s.to_ascii_uppercase())
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Convert `bytes` (whole blocks of `dtype`, little-endian) to f32 into `out`.
/// `bytes.len()` must equal `dtype.byte_len(out.len())`; callers guarantee it.
pub fn to_f32(dtype: DType, bytes: &[u8], out: &mut [f32]) {
    debug_assert_eq!(Some(bytes.len()), dtype.byte_len(out.len()));
    match dtype {
        DType::F32 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        DType::F64 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(8)) {
                *o = f64::from_le_bytes(b.try_into().unwrap()) as f32;
            }
        }
        DType::F16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        DType::BF16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = bf16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        q => crate::quant::dequantize(q, bytes, out),
    }
}

/// Encode f32 values as `dtype` (a plain float type) little-endian bytes, appending to `out`.
/// Rounds to nearest even, as torch's `.to(dtype)` does.
pub fn from_f32(dtype: DType, values: &[f32], out: &mut Vec<u8>) {
    match dtype {
        DType::F32 => values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        DType::F64 => values.iter().for_each(|v| out.extend_from_slice(&(*v as f64).to_le_bytes())),
        DType::F16 => values.iter().for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
        DType::BF16 => values.iter().for_each(|v| out.extend_from_slice(&bf16::from_f32(*v).to_le_bytes())),
        q => panic!("from_f32: {q} is not a writable dtype (callers check with DType::parse_writable)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_round_trip_for_every_plain_dtype() {
        let values = [0.0f32, 1.0, -2.5, 3.140625, 65504.0, -1e-3];
        for dt in [DType::F64, DType::F32, DType::F16, DType::BF16] {
            let mut bytes = Vec::new();
            from_f32(dt, &values, &mut bytes);
            assert_eq!(bytes.len(), dt.byte_len(values.len()).unwrap());
            let mut back = vec![0f32; values.len()];
            to_f32(dt, &bytes, &mut back);
            for (a, b) in values.iter().zip(&back) {
                let tol = match dt {
                    DType::BF16 => a.abs() / 128.0,
                    DType::F16 => a.abs() / 1024.0,
                    _ => 0.0,
                };
                assert!((a - b).abs() <= tol, "{dt}: {a} -> {b}");
            }
        }
    }

    #[test]
    fn byte_len_rejects_partial_blocks() {
        assert_eq!(DType::Q4_K.byte_len(256), Some(144));
        assert_eq!(DType::Q4_K.byte_len(100), None);
        assert_eq!(DType::Q8_0.byte_len(64), Some(68));
    }
}
