//! Dequantization of GGML block formats to f32: Q8_0, Q4_0, Q4_1 (32-element blocks) and the
//! K-quants Q4_K, Q5_K, Q6_K (256-element super-blocks).
//!
//! The arithmetic follows ggml's reference `dequantize_row_*` (ggml-quants.c) operation for
//! operation, in f32 and in the same order (e.g. Q6_K is `(d * scale) * q`, Q4_K is
//! `(d * sc) * q - dmin * m`), so results are bit-identical to ggml's and gguf-py's
//! (tests/gguf.rs checks this against gguf-py). Rust never contracts `a * b + c` into an FMA, which
//! is what keeps it exact.
//!
//! Limits: no other GGML types (Q5_0, Q5_1, Q2_K, Q3_K, Q8_K, IQ*, TQ*, MXFP4 are rejected when a
//! file is opened, see `gguf.rs`); no quantization (sfn writes only plain floats).

use crate::DType;
use half::f16;

/// Elements per K-quant super-block.
const QK_K: usize = 256;

/// Convert whole blocks of `dtype` (`bytes.len() == dtype.byte_len(out.len())`, which
/// `dtype::to_f32` guarantees) to f32. A trailing partial block, were a caller to pass one, is left
/// untouched rather than read out of bounds.
pub fn dequantize(dtype: DType, bytes: &[u8], out: &mut [f32]) {
    match dtype {
        DType::Q8_0 => q8_0(bytes, out),
        DType::Q4_0 => q4_0(bytes, out),
        DType::Q4_1 => q4_1(bytes, out),
        DType::Q4_K => q4_k(bytes, out),
        DType::Q5_K => q5_k(bytes, out),
        DType::Q6_K => q6_k(bytes, out),
        // Plain floats are converted by dtype::to_f32 itself; it never sends them here, but a
        // direct caller gets the same answer instead of a panic.
        DType::F64 | DType::F32 | DType::F16 | DType::BF16 => crate::dtype::to_f32(dtype, bytes, out),
    }
}

#[inline(always)]
fn half_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// block_q8_0 (34 bytes): f16 d, then 32 × i8 q. y = q * d.
fn q8_0(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(34).zip(out.chunks_exact_mut(32)) {
        let d = half_at(b, 0);
        for (y, &q) in y.iter_mut().zip(&b[2..34]) {
            *y = (q as i8) as f32 * d;
        }
    }
}

/// block_q4_0 (18 bytes): f16 d, then 16 bytes of nibbles. Byte j holds element j in its low
/// nibble and element j + 16 in its high nibble; y = (q - 8) * d.
fn q4_0(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(18).zip(out.chunks_exact_mut(32)) {
        let d = half_at(b, 0);
        let (lo, hi) = y.split_at_mut(16);
        for ((&q, l), h) in b[2..18].iter().zip(lo).zip(hi) {
            *l = ((q & 0x0F) as i32 - 8) as f32 * d;
            *h = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// block_q4_1 (20 bytes): f16 d, f16 m, then 16 bytes of nibbles laid out as in Q4_0;
/// y = q * d + m.
fn q4_1(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(20).zip(out.chunks_exact_mut(32)) {
        let d = half_at(b, 0);
        let m = half_at(b, 2);
        let (lo, hi) = y.split_at_mut(16);
        for ((&q, l), h) in b[4..20].iter().zip(lo).zip(hi) {
            *l = (q & 0x0F) as f32 * d + m;
            *h = (q >> 4) as f32 * d + m;
        }
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes of a Q4_K / Q5_K
/// super-block (ggml's `get_scale_min_k4`): sub-blocks 0..4 keep theirs in the low 6 bits of
/// bytes j and j+4; sub-blocks 4..8 split theirs into a nibble of byte j+4 and the top two bits
/// of bytes j-4 (scale) and j (min).
#[inline(always)]
fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// block_q4_K (144 bytes): f16 d, f16 dmin, 12 bytes of packed 6-bit scales/mins, 128 bytes of
/// nibbles. Eight sub-blocks of 32; each 64 elements share 32 bytes of qs, low nibbles first.
/// y = (d * sc) * q - dmin * m.
fn q4_k(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(144).zip(out.chunks_exact_mut(QK_K)) {
        let d = half_at(b, 0);
        let dmin = half_at(b, 2);
        let scales = &b[4..16];
        let qs = &b[16..144];
        // y: [4 groups, 64]; qs: [4 groups, 32]
        for (g, (y, q)) in y.chunks_exact_mut(64).zip(qs.chunks_exact(32)).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * g, scales);
            let (sc2, m2) = scale_min_k4(2 * g + 1, scales);
            let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
            let (lo, hi) = y.split_at_mut(32);
            for ((&q, l), h) in q.iter().zip(lo).zip(hi) {
                *l = d1 * (q & 0x0F) as f32 - m1;
                *h = d2 * (q >> 4) as f32 - m2;
            }
        }
    }
}

/// block_q5_K (176 bytes): f16 d, f16 dmin, 12 bytes of scales/mins (as Q4_K), 32 bytes qh,
/// 128 bytes qs. Like Q4_K plus a fifth bit: for element l of 64-element group g, bit 2g of
/// qh[l] (low half) or bit 2g+1 (high half).
fn q5_k(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(176).zip(out.chunks_exact_mut(QK_K)) {
        let d = half_at(b, 0);
        let dmin = half_at(b, 2);
        let scales = &b[4..16];
        let qh = &b[16..48];
        let qs = &b[48..176];
        for (g, (y, q)) in y.chunks_exact_mut(64).zip(qs.chunks_exact(32)).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * g, scales);
            let (sc2, m2) = scale_min_k4(2 * g + 1, scales);
            let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
            let (lo, hi) = y.split_at_mut(32);
            let (s1, s2) = (2 * g as u32, 2 * g as u32 + 1);
            for (((&q, &h5), l), h) in q.iter().zip(qh).zip(lo).zip(hi) {
                *l = d1 * ((q & 0x0F) | (((h5 >> s1) & 1) << 4)) as f32 - m1;
                *h = d2 * ((q >> 4) | (((h5 >> s2) & 1) << 4)) as f32 - m2;
            }
        }
    }
}

/// block_q6_K (210 bytes): 128 bytes ql (low 4 bits), 64 bytes qh (high 2 bits), 16 × i8
/// scales, f16 d. Per half of 128 elements: element l (0..32) and l+64 take the low/high nibble
/// of ql[l]; l+32 and l+96 those of ql[l+32]; qh[l] holds their two high bits at shifts 0, 4,
/// 2, 6. Every 16 elements share one scale. y = (d * scale) * (q - 32).
fn q6_k(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(210).zip(out.chunks_exact_mut(QK_K)) {
        let ql = &b[0..128];
        let qh = &b[128..192];
        let sc = &b[192..208];
        let d = half_at(b, 208);
        // y: [2 halves, 128]; ql: [2, 64]; qh: [2, 32]; sc: [2, 8]
        for (((y, ql), qh), sc) in
            y.chunks_exact_mut(128).zip(ql.chunks_exact(64)).zip(qh.chunks_exact(32)).zip(sc.chunks_exact(8))
        {
            // The eight 16-element runs of this half and their scales, in element order.
            let ds: [f32; 8] = std::array::from_fn(|k| d * (sc[k] as i8) as f32);
            for l in 0..32 {
                let s = l / 16;
                let (a, c, h) = (ql[l], ql[l + 32], qh[l]);
                let q1 = ((a & 0x0F) | ((h & 3) << 4)) as i32 - 32;
                let q2 = ((c & 0x0F) | (((h >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((a >> 4) | (((h >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((c >> 4) | ((h >> 6) << 4)) as i32 - 32;
                y[l] = ds[s] * q1 as f32;
                y[l + 32] = ds[s + 2] * q2 as f32;
                y[l + 64] = ds[s + 4] * q3 as f32;
                y[l + 96] = ds[s + 6] * q4 as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bytes(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn quant_q4_0_low_nibbles_are_the_first_half() {
        let mut b = vec![0u8; 18];
        b[..2].copy_from_slice(&f16_bytes(0.5));
        b[2] = 0xF0; // element 0: 0 - 8; element 16: 15 - 8
        b[17] = 0x19; // element 15: 9 - 8; element 31: 1 - 8
        let mut y = [0f32; 32];
        dequantize(DType::Q4_0, &b, &mut y);
        assert_eq!((y[0], y[16], y[15], y[31]), (-4.0, 3.5, 0.5, -3.5));
    }

    #[test]
    fn quant_q4_1_adds_the_min() {
        let mut b = vec![0u8; 20];
        b[..2].copy_from_slice(&f16_bytes(2.0));
        b[2..4].copy_from_slice(&f16_bytes(-1.0));
        b[4] = 0x3A;
        let mut y = [0f32; 32];
        dequantize(DType::Q4_1, &b, &mut y);
        assert_eq!((y[0], y[16], y[1]), (19.0, 5.0, -1.0));
    }

    #[test]
    fn quant_q8_0_is_signed() {
        let mut b = vec![0u8; 34];
        b[..2].copy_from_slice(&f16_bytes(0.25));
        b[2] = 0xFF; // -1
        b[33] = 127;
        let mut y = [0f32; 32];
        dequantize(DType::Q8_0, &b, &mut y);
        assert_eq!((y[0], y[31], y[1]), (-0.25, 31.75, 0.0));
    }

    #[test]
    fn quant_k_scale_unpacking_matches_ggml_layout() {
        // Sub-block 5: scale = low nibble of byte 9 | top bits of byte 1 << 4;
        // min = high nibble of byte 9 | top bits of byte 5 << 4.
        let mut s = [0u8; 12];
        s[1] = 0b10_000000;
        s[5] = 0b01_000000;
        s[9] = 0x73;
        assert_eq!(scale_min_k4(5, &s), (0x23, 0x17));
        s[0] = 0b11_101010;
        s[4] = 0b00_010101;
        assert_eq!(scale_min_k4(0, &s), (0b101010, 0b010101));
    }

    #[test]
    fn quant_q6_k_scales_cover_16_elements_each() {
        let mut b = vec![0u8; 210];
        // Every q = 32 + 1 (low nibble 1, high bits 2 -> 0b10_0001 = 33).
        b[..128].fill(0x11);
        b[128..192].fill(0b10_10_10_10);
        for (k, s) in b[192..208].iter_mut().enumerate() {
            *s = k as u8;
        }
        b[208..210].copy_from_slice(&f16_bytes(1.0));
        let mut y = vec![0f32; 256];
        dequantize(DType::Q6_K, &b, &mut y);
        for (e, v) in y.iter().enumerate() {
            assert_eq!(*v, (e / 16) as f32, "element {e}");
        }
    }
}
