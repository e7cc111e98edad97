//! AVX2 kernels: 32 products per `maddubs` (u8 × i8 → pairs of i16), summed to i32 and scaled in
//! f32; and f32-activation kernels that widen blocks in registers. Chosen at run time where the CPU
//! has AVX2, FMA and F16C; held equal to the scalar reference kernels by the tests in `mod.rs`.

use super::ActBlock;
use std::arch::x86_64::*;

pub fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_at(p: *const u8) -> f32 {
    let bits = u16::from_le_bytes([*p, *p.add(1)]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Σ x·y over 32 signed bytes, as 8 i32 lanes converted to f32 (sign trick: |x| · sign(x)·y).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_i8(x: __m256i, y: __m256i) -> __m256 {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1)))
}

/// The 32 nibbles of a 16-byte block, in element order (low nibbles 0..16, high 16..32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(p: *const u8) -> __m256i {
    let lo = _mm_loadu_si128(p as *const __m128i);
    let hi = _mm_srli_epi16(lo, 4);
    _mm256_and_si256(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(0x0F))
}

pub fn dot_q8_0(w: &[u8], a: &[ActBlock]) -> f32 {
    assert!(w.len() >= a.len() * 34);
    // SAFETY: `available()` was checked before this kernel was chosen; reads stay inside
    // `w` (asserted above) and inside each `ActBlock`.
    unsafe { dot_q8_0_impl(w, a) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q8_0_impl(w: &[u8], a: &[ActBlock]) -> f32 {
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let p = w.as_ptr();
    let n = a.len();
    let mut b = 0;
    while b + 1 < n {
        let (p0, p1) = (p.add(b * 34), p.add((b + 1) * 34));
        let x0 = _mm256_loadu_si256(p0.add(2) as *const __m256i);
        let x1 = _mm256_loadu_si256(p1.add(2) as *const __m256i);
        let y0 = _mm256_loadu_si256(a[b].qs.as_ptr() as *const __m256i);
        let y1 = _mm256_loadu_si256(a[b + 1].qs.as_ptr() as *const __m256i);
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(p0) * a[b].d), dot_i8(x0, y0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(p1) * a[b + 1].d), dot_i8(x1, y1), acc1);
        b += 2;
    }
    if b < n {
        let p0 = p.add(b * 34);
        let x0 = _mm256_loadu_si256(p0.add(2) as *const __m256i);
        let y0 = _mm256_loadu_si256(a[b].qs.as_ptr() as *const __m256i);
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(p0) * a[b].d), dot_i8(x0, y0), acc0);
    }
    hsum(_mm256_add_ps(acc0, acc1))
}

pub fn dot_q4_0(w: &[u8], a: &[ActBlock]) -> f32 {
    assert!(w.len() >= a.len() * 18);
    // SAFETY: as in dot_q8_0.
    unsafe { dot_q4_0_impl(w, a) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q4_0_impl(w: &[u8], a: &[ActBlock]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let p = w.as_ptr();
    let eight = _mm256_set1_epi8(8);
    for (b, ab) in a.iter().enumerate() {
        let pb = p.add(b * 18);
        let x = _mm256_sub_epi8(nibbles(pb.add(2)), eight);
        let y = _mm256_loadu_si256(ab.qs.as_ptr() as *const __m256i);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(pb) * ab.d), dot_i8(x, y), acc);
    }
    hsum(acc)
}

pub fn dot_q4_1(w: &[u8], a: &[ActBlock]) -> f32 {
    assert!(w.len() >= a.len() * 20);
    // SAFETY: as in dot_q8_0.
    unsafe { dot_q4_1_impl(w, a) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q4_1_impl(w: &[u8], a: &[ActBlock]) -> f32 {
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let ones = _mm256_set1_epi16(1);
    let mut mins = 0f32;
    let p = w.as_ptr();
    let n = a.len();
    let mut b = 0;
    // Weights are unsigned nibbles, so maddubs takes them directly (u8 × i8).
    while b + 1 < n {
        let (p0, p1) = (p.add(b * 20), p.add((b + 1) * 20));
        let y0 = _mm256_loadu_si256(a[b].qs.as_ptr() as *const __m256i);
        let y1 = _mm256_loadu_si256(a[b + 1].qs.as_ptr() as *const __m256i);
        let s0 = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(nibbles(p0.add(4)), y0), ones));
        let s1 = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(nibbles(p1.add(4)), y1), ones));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(p0) * a[b].d), s0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(p1) * a[b + 1].d), s1, acc1);
        mins += f16_at(p0.add(2)) * a[b].s + f16_at(p1.add(2)) * a[b + 1].s;
        b += 2;
    }
    if b < n {
        let p0 = p.add(b * 20);
        let y0 = _mm256_loadu_si256(a[b].qs.as_ptr() as *const __m256i);
        let s0 = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(nibbles(p0.add(4)), y0), ones));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(p0) * a[b].d), s0, acc0);
        mins += f16_at(p0.add(2)) * a[b].s;
    }
    hsum(_mm256_add_ps(acc0, acc1)) + mins
}

/// 8 bytes at `p` (u8 or i8) as 8 f32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn u8x8(v: __m128i) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn i8x8(v: __m128i) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))
}

/// Σ q·x over one block of 32 nibbles (q unsigned 0..15, element order as `nibbles`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibble_dot(p: *const u8, xp: *const f32) -> __m256 {
    let raw = _mm_loadu_si128(p as *const __m128i);
    let mask = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(raw, mask);
    let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
    let mut s = _mm256_mul_ps(u8x8(lo), _mm256_loadu_ps(xp));
    s = _mm256_fmadd_ps(u8x8(_mm_srli_si128(lo, 8)), _mm256_loadu_ps(xp.add(8)), s);
    s = _mm256_fmadd_ps(u8x8(hi), _mm256_loadu_ps(xp.add(16)), s);
    _mm256_fmadd_ps(u8x8(_mm_srli_si128(hi, 8)), _mm256_loadu_ps(xp.add(24)), s)
}

pub fn dotf_q4_1(w: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let nb = x.len() / 32;
    assert!(w.len() >= nb * 20 && sums.len() >= nb);
    // SAFETY: `available()` was checked before this kernel was chosen; reads stay inside the
    // asserted lengths.
    unsafe { dotf_q4_1_impl(w, x, sums, nb) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dotf_q4_1_impl(w: &[u8], x: &[f32], sums: &[f32], nb: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0f32;
    for b in 0..nb {
        let p = w.as_ptr().add(b * 20);
        let s = nibble_dot(p.add(4), x.as_ptr().add(b * 32));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(p)), s, acc);
        mins += f16_at(p.add(2)) * sums[b];
    }
    hsum(acc) + mins
}

pub fn dotf_q4_0(w: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let nb = x.len() / 32;
    assert!(w.len() >= nb * 18 && sums.len() >= nb);
    // SAFETY: as in dotf_q4_1.
    unsafe { dotf_q4_0_impl(w, x, sums, nb) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dotf_q4_0_impl(w: &[u8], x: &[f32], sums: &[f32], nb: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut offs = 0f32;
    for b in 0..nb {
        let p = w.as_ptr().add(b * 18);
        let d = f16_at(p);
        let s = nibble_dot(p.add(2), x.as_ptr().add(b * 32));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), s, acc);
        offs += 8.0 * d * sums[b];
    }
    hsum(acc) - offs
}

pub fn dotf_q8_0(w: &[u8], x: &[f32], _sums: &[f32]) -> f32 {
    let nb = x.len() / 32;
    assert!(w.len() >= nb * 34);
    // SAFETY: as in dotf_q4_1.
    unsafe { dotf_q8_0_impl(w, x, nb) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dotf_q8_0_impl(w: &[u8], x: &[f32], nb: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for b in 0..nb {
        let p = w.as_ptr().add(b * 34);
        let xp = x.as_ptr().add(b * 32);
        let q01 = _mm_loadu_si128(p.add(2) as *const __m128i);
        let q23 = _mm_loadu_si128(p.add(18) as *const __m128i);
        let mut s = _mm256_mul_ps(i8x8(q01), _mm256_loadu_ps(xp));
        s = _mm256_fmadd_ps(i8x8(_mm_srli_si128(q01, 8)), _mm256_loadu_ps(xp.add(8)), s);
        s = _mm256_fmadd_ps(i8x8(q23), _mm256_loadu_ps(xp.add(16)), s);
        s = _mm256_fmadd_ps(i8x8(_mm_srli_si128(q23, 8)), _mm256_loadu_ps(xp.add(24)), s);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(p)), s, acc);
    }
    hsum(acc)
}

/// The three GGUF block types, for the generic four-row kernels.
pub struct Q8_0;
pub struct Q4_0;
pub struct Q4_1;

/// One block's contribution, split as (8 lanes of Σ q·y, weight scale d, additive term): the
/// block adds d·(activation scale)·Σlanes + term.
pub trait Block {
    const BYTES: usize;
    /// Against 8-bit activations.
    unsafe fn q8(p: *const u8, a: &ActBlock) -> (__m256, f32, f32);
    /// The block's 32 stored values q as f32 (in the activations' lane order), its scale d
    /// and the coefficient c of the activations' sum: the block contributes d·Σq·x + c·Σx.
    unsafe fn unpack(p: *const u8) -> ([__m256; 4], f32, f32);
    /// Against f32 activations `x` (32 values in 4 registers) whose sum is `sx`.
    #[inline(always)]
    unsafe fn f(p: *const u8, x: &[__m256; 4], sx: f32) -> (__m256, f32, f32) {
        let (w, d, c) = Self::unpack(p);
        (dot_unpacked(&w, x), d, c * sx)
    }
}

/// Σ w·x over one block in 8 lanes; the one order every f32-activation kernel uses, so that
/// a row gives the same bits whichever kernel ran it.
#[inline(always)]
unsafe fn dot_unpacked(w: &[__m256; 4], x: &[__m256; 4]) -> __m256 {
    let mut s = _mm256_mul_ps(w[0], x[0]);
    s = _mm256_fmadd_ps(w[1], x[1], s);
    s = _mm256_fmadd_ps(w[2], x[2], s);
    _mm256_fmadd_ps(w[3], x[3], s)
}

#[inline(always)]
unsafe fn nibbles_f32(p: *const u8) -> [__m256; 4] {
    let raw = _mm_loadu_si128(p as *const __m128i);
    let mask = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(raw, mask);
    let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
    [u8x8(lo), u8x8(_mm_srli_si128(lo, 8)), u8x8(hi), u8x8(_mm_srli_si128(hi, 8))]
}

#[inline(always)]
unsafe fn nibble_dot_q(p: *const u8, a: &ActBlock) -> __m256 {
    let y = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(nibbles(p), y), _mm256_set1_epi16(1)))
}

impl Block for Q4_1 {
    const BYTES: usize = 20;
    #[inline(always)]
    unsafe fn q8(p: *const u8, a: &ActBlock) -> (__m256, f32, f32) {
        (nibble_dot_q(p.add(4), a), f16_at(p), f16_at(p.add(2)) * a.s)
    }
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> ([__m256; 4], f32, f32) {
        (nibbles_f32(p.add(4)), f16_at(p), f16_at(p.add(2)))
    }
}

impl Block for Q4_0 {
    const BYTES: usize = 18;
    // Nibbles are stored +8: exact signed products, as ggml's Q4_0 × Q8_0.
    #[inline(always)]
    unsafe fn q8(p: *const u8, a: &ActBlock) -> (__m256, f32, f32) {
        let x = _mm256_sub_epi8(nibbles(p.add(2)), _mm256_set1_epi8(8));
        let y = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
        (dot_i8(x, y), f16_at(p), 0.0)
    }
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> ([__m256; 4], f32, f32) {
        let d = f16_at(p);
        (nibbles_f32(p.add(2)), d, -8.0 * d)
    }
}

impl Block for Q8_0 {
    const BYTES: usize = 34;
    #[inline(always)]
    unsafe fn q8(p: *const u8, a: &ActBlock) -> (__m256, f32, f32) {
        let x = _mm256_loadu_si256(p.add(2) as *const __m256i);
        let y = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
        (dot_i8(x, y), f16_at(p), 0.0)
    }
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> ([__m256; 4], f32, f32) {
        let q01 = _mm_loadu_si128(p.add(2) as *const __m128i);
        let q23 = _mm_loadu_si128(p.add(18) as *const __m128i);
        ([i8x8(q01), i8x8(_mm_srli_si128(q01, 8)), i8x8(q23), i8x8(_mm_srli_si128(q23, 8))], f16_at(p), 0.0)
    }
}

/// Bytes ahead of the current block group to prefetch (about 4 groups of blocks).
const PREFETCH: usize = 512;

/// One interleaved group of four weight rows against one row of 8-bit activations.
pub fn x4<B: Block>(g: &[u8], a: &[ActBlock]) -> [f32; 4] {
    assert!(g.len() >= 4 * a.len() * B::BYTES);
    // SAFETY: `available()` was checked before these kernels were chosen; reads stay inside
    // the asserted length (prefetches may point past it; they never fault).
    unsafe { x4_impl::<B>(g, a) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn x4_impl<B: Block>(g: &[u8], a: &[ActBlock]) -> [f32; 4] {
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut off = [0f32; 4];
    let p = g.as_ptr();
    for (b, ab) in a.iter().enumerate() {
        let pb = p.add(4 * b * B::BYTES);
        _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add(PREFETCH) as *const i8);
        for r in 0..4 {
            let (s, d, o) = B::q8(pb.add(r * B::BYTES), ab);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * ab.d), s, acc[r]);
            off[r] += o;
        }
    }
    [hsum(acc[0]) + off[0], hsum(acc[1]) + off[1], hsum(acc[2]) + off[2], hsum(acc[3]) + off[3]]
}

/// One interleaved group of four weight rows against one row of f32 activations (`sums`: its
/// per-block sums).
pub fn f4<B: Block>(g: &[u8], x: &[f32], sums: &[f32]) -> [f32; 4] {
    let nb = x.len() / 32;
    assert!(sums.len() >= nb && g.len() >= 4 * nb * B::BYTES);
    // SAFETY: as in x4.
    unsafe { f4_impl::<B>(g, x, sums, nb) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f4_impl<B: Block>(g: &[u8], x: &[f32], sums: &[f32], nb: usize) -> [f32; 4] {
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut off = [0f32; 4];
    let p = g.as_ptr();
    for b in 0..nb {
        let pb = p.add(4 * b * B::BYTES);
        _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add(PREFETCH) as *const i8);
        let xp = x.as_ptr().add(b * 32);
        let xv =
            [_mm256_loadu_ps(xp), _mm256_loadu_ps(xp.add(8)), _mm256_loadu_ps(xp.add(16)), _mm256_loadu_ps(xp.add(24))];
        for r in 0..4 {
            let (s, d, o) = B::f(pb.add(r * B::BYTES), &xv, sums[b]);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d), s, acc[r]);
            off[r] += o;
        }
    }
    [hsum(acc[0]) + off[0], hsum(acc[1]) + off[1], hsum(acc[2]) + off[2], hsum(acc[3]) + off[3]]
}

/// One interleaved group of four weight rows against two rows of f32 activations, each
/// block unpacked once for both: bit-identical to two `f4` calls (same operations, same
/// order), about half the unpacking work.
pub fn f4x2<B: Block>(g: &[u8], x: [&[f32]; 2], sums: [&[f32]; 2]) -> [[f32; 4]; 2] {
    let nb = x[0].len() / 32;
    assert!(x[1].len() == x[0].len() && sums.iter().all(|s| s.len() >= nb) && g.len() >= 4 * nb * B::BYTES);
    // SAFETY: as in x4.
    unsafe { f4x2_impl::<B>(g, x, sums, nb) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f4x2_impl<B: Block>(g: &[u8], x: [&[f32]; 2], sums: [&[f32]; 2], nb: usize) -> [[f32; 4]; 2] {
    let mut acc = [[_mm256_setzero_ps(); 4]; 2];
    let mut off = [[0f32; 4]; 2];
    let p = g.as_ptr();
    for b in 0..nb {
        let pb = p.add(4 * b * B::BYTES);
        _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add(PREFETCH) as *const i8);
        for r in 0..4 {
            let (w, d, c) = B::unpack(pb.add(r * B::BYTES));
            let dv = _mm256_set1_ps(d);
            for i in 0..2 {
                let xp = x[i].as_ptr().add(b * 32);
                // (No closures here: they would not inherit the target features.)
                let xv = [
                    _mm256_loadu_ps(xp),
                    _mm256_loadu_ps(xp.add(8)),
                    _mm256_loadu_ps(xp.add(16)),
                    _mm256_loadu_ps(xp.add(24)),
                ];
                acc[i][r] = _mm256_fmadd_ps(dv, dot_unpacked(&w, &xv), acc[i][r]);
                off[i][r] += c * sums[i][b];
            }
        }
    }
    let mut out = [[0f32; 4]; 2];
    for i in 0..2 {
        for r in 0..4 {
            out[i][r] = hsum(acc[i][r]) + off[i][r];
        }
    }
    out
}
