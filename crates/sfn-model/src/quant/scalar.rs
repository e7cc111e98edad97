//! Portable reference kernels: exact integer sums per block, then scaled, as ggml's reference code
//! does. Every machine can run them, and they are what the AVX2 kernels (`avx2`) are tested against
//! (`avx2_kernels_equal_scalar_kernels`).

use super::{f16_at, ActBlock, QK};

/// The four rows of an interleaved group (block b of row j at 4b + j), each as plain blocks.
pub fn rows_of_group(g: &[u8], bb: usize) -> [Vec<u8>; 4] {
    std::array::from_fn(|j| g.chunks_exact(bb).skip(j).step_by(4).flatten().copied().collect())
}

pub fn dot_q8_0(w: &[u8], a: &[ActBlock]) -> f32 {
    let mut sum = 0f32;
    for (b, ab) in w.chunks_exact(34).zip(a) {
        let s: i32 = b[2..34].iter().zip(&ab.qs).map(|(&q, &x)| (q as i8) as i32 * x as i32).sum();
        sum += f16_at(b, 0) * ab.d * s as f32;
    }
    sum
}

pub fn dot_q4_0(w: &[u8], a: &[ActBlock]) -> f32 {
    let mut sum = 0f32;
    for (b, ab) in w.chunks_exact(18).zip(a) {
        let mut s = 0i32;
        for j in 0..QK / 2 {
            s += ((b[2 + j] & 0x0F) as i32 - 8) * ab.qs[j] as i32;
            s += ((b[2 + j] >> 4) as i32 - 8) * ab.qs[j + QK / 2] as i32;
        }
        sum += f16_at(b, 0) * ab.d * s as f32;
    }
    sum
}

pub fn dotf_q8_0(w: &[u8], x: &[f32], _sums: &[f32]) -> f32 {
    let mut sum = 0f32;
    for (b, xs) in w.chunks_exact(34).zip(x.chunks_exact(QK)) {
        let s: f32 = b[2..34].iter().zip(xs).map(|(&q, &v)| (q as i8) as f32 * v).sum();
        sum += f16_at(b, 0) * s;
    }
    sum
}

pub fn dotf_q4_0(w: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let mut sum = 0f32;
    for ((b, xs), &sx) in w.chunks_exact(18).zip(x.chunks_exact(QK)).zip(sums) {
        let mut s = 0f32;
        for j in 0..QK / 2 {
            s += (b[2 + j] & 0x0F) as f32 * xs[j] + (b[2 + j] >> 4) as f32 * xs[j + QK / 2];
        }
        sum += f16_at(b, 0) * (s - 8.0 * sx);
    }
    sum
}

pub fn dotf_q4_1(w: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let mut sum = 0f32;
    for ((b, xs), &sx) in w.chunks_exact(20).zip(x.chunks_exact(QK)).zip(sums) {
        let mut s = 0f32;
        for j in 0..QK / 2 {
            s += (b[4 + j] & 0x0F) as f32 * xs[j] + (b[4 + j] >> 4) as f32 * xs[j + QK / 2];
        }
        sum += f16_at(b, 0) * s + f16_at(b, 2) * sx;
    }
    sum
}

pub fn dot_q4_1(w: &[u8], a: &[ActBlock]) -> f32 {
    let mut sum = 0f32;
    for (b, ab) in w.chunks_exact(20).zip(a) {
        let mut s = 0i32;
        for j in 0..QK / 2 {
            s += (b[4 + j] & 0x0F) as i32 * ab.qs[j] as i32;
            s += (b[4 + j] >> 4) as i32 * ab.qs[j + QK / 2] as i32;
        }
        sum += f16_at(b, 0) * ab.d * s as f32 + f16_at(b, 2) * ab.s;
    }
    sum
}
