//! Quantized weight matrices kept in their GGUF blocks, multiplied on the CPU.
//!
//! Decoding reads every weight once per token, so it is bound by memory bandwidth; keeping GGUF
//! weights in their stored blocks (4.5–8.5 bits a weight) instead of widening them to f32 is what
//! makes it fast. Two ways to meet the activations (`Activations`):
//! - `F32` (default): weights are widened block by block in registers and multiplied with the f32
//!   activations — exactly the f32 model on the dequantized weights, up to summation order.
//! - `Q8`: as llama.cpp (and candle's quantized matmul), activations are quantized to 8 bits per
//!   block of 32 and the dot products run on integers: faster, but the rounding of activations
//!   (badly so where a block holds one of an LLM's outlier dimensions) changes the model's outputs.
//!
//! Kernels use AVX2/FMA/F16C where the CPU has them (detected at run time, no build flags needed;
//! `avx2.rs`) and portable scalar code otherwise (`scalar.rs`); the scalar code is the reference the
//! AVX2 code is tested against. Widening blocks to f32 is sfn-checkpoint's `dequantize` (the one
//! copy, bit-identical to ggml's).
//!
//! Kernels exist for Q4_0, Q4_1 and Q8_0 (SmolLM2's GGUF uses Q4_1 and Q8_0). Other GGUF types
//! go through candle's quantized matmul (`crate::layers`). Shapes: a matrix is [rows = out, cols = in]
//! like a Hugging Face linear weight; `matmul` computes x [m, cols] · Wᵀ → [m, rows].

use crate::error::{Error, Result};
use candle_core::{CpuStorage, Layout, Shape};
use half::f16;
use sfn_checkpoint::quant::dequantize;
use sfn_checkpoint::DType;

/// Elements per block in every type here.
pub const QK: usize = 32;

/// One block of 32 activations quantized to i8: value ≈ d·q; `s` = d·Σq (for Q4_1's offset).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct ActBlock {
    pub d: f32,
    pub s: f32,
    pub qs: [i8; QK],
}

impl ActBlock {
    const ZERO: ActBlock = ActBlock { d: 0.0, s: 0.0, qs: [0; QK] };
}

/// Quantize one row (length a multiple of 32) as ggml's `quantize_row_q8_1` does: d = max|x|/127,
/// q = round(x/d), and d and s = d·Σq stored rounded to f16 (ggml keeps them as f16), so results
/// follow llama.cpp's as closely as the summation order allows.
pub fn quantize_acts(x: &[f32], out: &mut [ActBlock]) {
    for (xs, b) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            let r = (v * id).round() as i32;
            *q = r as i8;
            sum += r;
        }
        b.d = f16::from_f32(d).to_f32();
        b.s = f16::from_f32(d * sum as f32).to_f32();
    }
}

/// How activations meet the quantized weights (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activations {
    #[default]
    F32,
    Q8,
}

/// Up to this many activation rows, `matmul` runs the in-register kernels once per row; above,
/// it widens each weight row once and runs f32 dot products (prefill).
const DIRECT_ROWS: usize = 16;
/// Groups of four weight rows widened together for a prefill GEMM: 32 rows (at 2048 columns,
/// 256 KiB of f32, within L2).
const TILE_GROUPS: usize = 8;

type F32x4x2 = fn(&[u8], [&[f32]; 2], [&[f32]; 2]) -> [[f32; 4]; 2];

/// The kernels of one weight type: single rows and groups of four rows sharing activation loads.
#[derive(Clone, Copy)]
struct Kernels {
    q8: fn(&[u8], &[ActBlock]) -> f32,
    /// On one interleaved group of four rows.
    q8x4: fn(&[u8], &[ActBlock]) -> [f32; 4],
    /// Weight row · f32 activations; the third argument holds the activations' per-block sums.
    f32: fn(&[u8], &[f32], &[f32]) -> f32,
    f32x4: fn(&[u8], &[f32], &[f32]) -> [f32; 4],
    /// One group against two activation rows, each weight unpacked once for both (results
    /// bit-identical to two `f32x4` calls); None: two `f32x4` calls.
    f32x4x2: Option<F32x4x2>,
}

/// A weight matrix [rows, cols] in GGUF blocks, row-major (each row `cols/32` blocks).
pub struct QMatrix {
    pub dtype: DType,
    pub rows: usize,
    pub cols: usize,
    data: Vec<u8>,
    row_bytes: usize,
    acts: Activations,
    kernels: Kernels,
    scalar: bool,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QMatrix({} [{}, {}])", self.dtype, self.rows, self.cols)
    }
}

impl QMatrix {
    /// Whether this module has kernels for `dtype`.
    pub fn supports(dtype: DType) -> bool {
        matches!(dtype, DType::Q4_0 | DType::Q4_1 | DType::Q8_0)
    }

    /// Wrap stored blocks; `data` must hold exactly rows × cols elements of `dtype`.
    pub fn new(dtype: DType, rows: usize, cols: usize, data: Vec<u8>, acts: Activations) -> Result<QMatrix> {
        Self::with_kernel(dtype, rows, cols, data, acts, Kernel::Best)
    }

    /// As `new`, with the portable kernels even where AVX2 exists (for tests and comparisons).
    pub fn new_scalar(dtype: DType, rows: usize, cols: usize, data: Vec<u8>, acts: Activations) -> Result<QMatrix> {
        Self::with_kernel(dtype, rows, cols, data, acts, Kernel::Scalar)
    }

    fn with_kernel(
        dtype: DType,
        rows: usize,
        cols: usize,
        data: Vec<u8>,
        acts: Activations,
        kernel: Kernel,
    ) -> Result<QMatrix> {
        if !Self::supports(dtype) {
            return Err(Error::unsupported(format!("no CPU kernel for {dtype} weights")));
        }
        if !cols.is_multiple_of(QK) {
            return Err(Error::unsupported(format!("{dtype} matrix with {cols} columns (not a multiple of {QK})")));
        }
        let row_bytes = cols / QK * dtype.block_bytes();
        if data.len() != rows * row_bytes {
            return Err(Error::unsupported(format!(
                "{dtype} matrix [{rows}, {cols}] needs {} bytes, got {}",
                rows * row_bytes,
                data.len()
            )));
        }
        let data = interleave(&data, rows, row_bytes, dtype.block_bytes());
        Ok(QMatrix {
            dtype,
            rows,
            cols,
            data,
            row_bytes,
            acts,
            kernels: pick_kernels(dtype, kernel),
            scalar: kernel == Kernel::Scalar,
        })
    }

    /// Matrices of one type and width stacked by rows (None when they differ or one is None).
    pub fn stack<'a>(parts: impl IntoIterator<Item = Option<&'a QMatrix>>) -> Result<Option<QMatrix>> {
        let parts: Option<Vec<&QMatrix>> = parts.into_iter().collect();
        let Some(parts) = parts.filter(|p| !p.is_empty()) else { return Ok(None) };
        let first = parts[0];
        if parts.iter().any(|p| p.dtype != first.dtype || p.cols != first.cols || p.acts != first.acts) {
            return Ok(None);
        }
        let data: Vec<u8> = parts.iter().flat_map(|p| p.plain_bytes()).collect();
        let rows = parts.iter().map(|p| p.rows).sum();
        let scalar = parts.iter().all(|p| p.scalar);
        let kernel = if scalar { Kernel::Scalar } else { Kernel::Best };
        Ok(Some(QMatrix::with_kernel(first.dtype, rows, first.cols, data, first.acts, kernel)?))
    }

    /// Bytes of weight data (what one matmul reads).
    pub fn nbytes(&self) -> usize {
        self.data.len()
    }

    /// Rows grouped in fours; the last `rows % 4` rows are stored plainly after the groups.
    fn groups(&self) -> usize {
        self.rows / 4
    }

    /// Group g: rows 4g..4g+4 with their blocks interleaved (block b of row j at index 4b + j).
    fn group(&self, g: usize) -> &[u8] {
        &self.data[g * 4 * self.row_bytes..(g + 1) * 4 * self.row_bytes]
    }

    /// A row after the groups, stored plainly.
    fn tail_row(&self, r: usize) -> &[u8] {
        let start = self.groups() * 4 * self.row_bytes + (r - 4 * self.groups()) * self.row_bytes;
        &self.data[start..start + self.row_bytes]
    }

    /// Row r's blocks in order (gathered from its group when it has one).
    fn row_bytes_of(&self, r: usize) -> std::borrow::Cow<'_, [u8]> {
        if r >= 4 * self.groups() {
            return std::borrow::Cow::Borrowed(self.tail_row(r));
        }
        let (g, j) = (self.group(r / 4), r % 4);
        let bb = self.dtype.block_bytes();
        let nb = self.cols / QK;
        std::borrow::Cow::Owned(
            (0..nb).flat_map(|b| g[(4 * b + j) * bb..(4 * b + j + 1) * bb].iter().copied()).collect(),
        )
    }

    /// The stored blocks in plain row-major order (as given to `new`).
    pub fn plain_bytes(&self) -> Vec<u8> {
        (0..self.rows).flat_map(|r| self.row_bytes_of(r).into_owned()).collect()
    }

    /// Row `r` as f32 (`out.len() == cols`).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        dequantize(self.dtype, &self.row_bytes_of(r), out)
    }

    /// out [m, rows] = x [m, cols] · Wᵀ, parallel over output rows.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        assert_eq!(x.len(), m * self.cols, "QMatrix::matmul: x has the wrong length");
        assert_eq!(out.len(), m * self.rows, "QMatrix::matmul: out has the wrong length");
        match self.acts {
            Activations::Q8 => self.matmul_q8(x, m, out),
            Activations::F32 => self.matmul_f32(x, m, out),
        }
    }

    fn matmul_q8(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let nb = self.cols / QK;
        let mut acts = vec![ActBlock::ZERO; m * nb];
        acts.chunks_mut(nb).zip(x.chunks(self.cols)).for_each(|(a, xr)| quantize_acts(xr, a));
        let k = self.kernels;
        let n = self.rows;
        // Groups of 4 weight rows share each activation load; every (x row, weight row) pair is
        // computed the same way whatever m is, so decoding and prefill agree exactly.
        let dst = SharedOut::new(out);
        parallel_for(n.div_ceil(4), |range| {
            for g in range {
                for i in 0..m {
                    let a = &acts[i * nb..(i + 1) * nb];
                    if 4 * g + 4 <= n {
                        let v = (k.q8x4)(self.group(g), a);
                        for (j, v) in v.into_iter().enumerate() {
                            // SAFETY: row groups are disjoint, so (i, 4g + j) is written once.
                            unsafe { dst.write(i * n + 4 * g + j, v) };
                        }
                    } else {
                        for r in 4 * g..n {
                            // SAFETY: as above.
                            unsafe { dst.write(i * n + r, (k.q8)(self.tail_row(r), a)) };
                        }
                    }
                }
            }
        });
    }

    fn matmul_f32(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let k = self.kernels;
        let (n, cols) = (self.rows, self.cols);
        let dst = SharedOut::new(out);
        if m <= DIRECT_ROWS {
            // Few activation rows (decoding): the in-register kernels per row; a group of four
            // weight rows stays in L1 while every activation row passes over it.
            let sums: Vec<Vec<f32>> =
                x.chunks_exact(cols).map(|xr| xr.chunks_exact(QK).map(|b| b.iter().sum()).collect()).collect();
            parallel_for(n.div_ceil(4), |range| {
                for g in range {
                    if 4 * g + 4 > n {
                        for (i, s) in sums.iter().enumerate() {
                            let xi = &x[i * cols..(i + 1) * cols];
                            for r in 4 * g..n {
                                // SAFETY: row groups are disjoint, so each output is written once.
                                unsafe { dst.write(i * n + r, (k.f32)(self.tail_row(r), xi, s)) };
                            }
                        }
                        continue;
                    }
                    let group = self.group(g);
                    let mut i = 0;
                    while i < m {
                        let xi = |i: usize| &x[i * cols..(i + 1) * cols];
                        // Two activation rows share each unpacked weight where the kernel allows.
                        let (rows, out): (usize, [[f32; 4]; 2]) = match k.f32x4x2 {
                            Some(f) if i + 1 < m => (2, f(group, [xi(i), xi(i + 1)], [&sums[i], &sums[i + 1]])),
                            _ => (1, [(k.f32x4)(group, xi(i), &sums[i]), [0.0; 4]]),
                        };
                        for (di, vals) in out.iter().take(rows).enumerate() {
                            for (j, v) in vals.iter().enumerate() {
                                // SAFETY: as above.
                                unsafe { dst.write((i + di) * n + 4 * g + j, *v) };
                            }
                        }
                        i += rows;
                    }
                }
            });
            return;
        }
        // Several activation rows (prefill, scoring): widen a tile of weight rows once, straight
        // from its interleaved blocks, then one GEMM of every activation row with the tile (the
        // tile stays in L2; each task writes its own output columns).
        let bb = self.dtype.block_bytes();
        let groups = n.div_ceil(4);
        parallel_for(groups.div_ceil(TILE_GROUPS), |range| {
            let mut wf = vec![0f32; 4 * TILE_GROUPS * cols]; // [tile rows, cols]
            for t in range {
                let (g0, g1) = (t * TILE_GROUPS, ((t + 1) * TILE_GROUPS).min(groups));
                for g in g0..g1 {
                    let base = (g - g0) * 4 * cols;
                    if 4 * g + 4 <= n {
                        for (i, block) in self.group(g).chunks_exact(bb).enumerate() {
                            let (b, j) = (i / 4, i % 4);
                            let at = base + j * cols + b * QK;
                            dequantize(self.dtype, block, &mut wf[at..at + QK]);
                        }
                    } else {
                        for r in 4 * g..n {
                            let at = base + (r - 4 * g) * cols;
                            dequantize(self.dtype, self.tail_row(r), &mut wf[at..at + cols]);
                        }
                    }
                }
                let (r0, r1) = (4 * g0, (4 * g1).min(n));
                // SAFETY: x is [m, cols], wf holds rows r0..r1 as [r1 - r0, cols] (read as its
                // transpose), and out columns r0..r1 of every row belong to this task alone.
                unsafe {
                    gemm::gemm(
                        m,
                        r1 - r0,
                        cols,
                        dst.at(r0),
                        1,
                        n as isize,
                        false,
                        x.as_ptr(),
                        1,
                        cols as isize,
                        wf.as_ptr(),
                        cols as isize,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                };
            }
        });
    }
}

/// Run `f` over chunks of `0..n` in parallel (rayon, in whichever pool the caller runs: the
/// runtime's, see `crate::pool`). About 4 chunks per thread: enough to balance, few enough that
/// splitting costs little.
fn parallel_for(n: usize, f: impl Fn(std::ops::Range<usize>) + Sync + Send) {
    use rayon::prelude::*;
    let threads = rayon::current_num_threads().max(1);
    let chunk = n.div_ceil(threads * 4).max(1);
    (0..n.div_ceil(chunk)).into_par_iter().for_each(|t| f(t * chunk..((t + 1) * chunk).min(n)));
}

/// An output buffer that parallel tasks write to at disjoint indices.
struct SharedOut {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: tasks only write through `write` or at `at`, at indices no other task writes (callers
// guarantee it), while the buffer's owner waits for all of them (`parallel_for` returns after they end).
unsafe impl Sync for SharedOut {}
// SAFETY: as for Sync; the pointer is only used while the buffer is borrowed by `matmul`.
unsafe impl Send for SharedOut {}

impl SharedOut {
    fn new(out: &mut [f32]) -> SharedOut {
        SharedOut { ptr: out.as_mut_ptr(), len: out.len() }
    }

    /// # Safety
    /// No other task may write or read index `i` concurrently.
    unsafe fn write(&self, i: usize, v: f32) {
        assert!(i < self.len);
        *self.ptr.add(i) = v;
    }

    /// The address of index `i`, for a writer (a GEMM) that fills a region of its own.
    fn at(&self, i: usize) -> *mut f32 {
        assert!(i < self.len);
        // SAFETY: in bounds (checked); writing through it is the caller's `unsafe`.
        unsafe { self.ptr.add(i) }
    }
}

/// Plain row-major blocks → groups of four rows with their blocks interleaved (block b of row j
/// at 4b + j), the last `rows % 4` rows plain after them. One group is then one sequential stream
/// for the kernels (better prefetching than four short row streams).
fn interleave(data: &[u8], rows: usize, row_bytes: usize, bb: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let nb = row_bytes / bb;
    for g in 0..rows / 4 {
        for b in 0..nb {
            for j in 0..4 {
                let at = (4 * g + j) * row_bytes + b * bb;
                out.extend_from_slice(&data[at..at + bb]);
            }
        }
    }
    out.extend_from_slice(&data[rows / 4 * 4 * row_bytes..]);
    out
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

#[derive(Clone, Copy, PartialEq)]
enum Kernel {
    Best,
    Scalar,
}

fn pick_kernels(dtype: DType, kernel: Kernel) -> Kernels {
    #[cfg(target_arch = "x86_64")]
    if kernel == Kernel::Best && avx2::available() {
        use avx2::*;
        #[allow(clippy::type_complexity)]
        let (q8, q8x4, f32, f32x4, f32x4x2): (
            fn(&[u8], &[ActBlock]) -> f32,
            fn(&[u8], &[ActBlock]) -> [f32; 4],
            fn(&[u8], &[f32], &[f32]) -> f32,
            fn(&[u8], &[f32], &[f32]) -> [f32; 4],
            F32x4x2,
        ) = match dtype {
            DType::Q8_0 => (dot_q8_0, x4::<Q8_0>, dotf_q8_0, f4::<Q8_0>, f4x2::<Q8_0>),
            DType::Q4_0 => (dot_q4_0, x4::<Q4_0>, dotf_q4_0, f4::<Q4_0>, f4x2::<Q4_0>),
            _ => (dot_q4_1, x4::<Q4_1>, dotf_q4_1, f4::<Q4_1>, f4x2::<Q4_1>),
        };
        return Kernels { q8, q8x4, f32, f32x4, f32x4x2: Some(f32x4x2) };
    }
    let _ = kernel;
    let (q8, f32): (fn(&[u8], &[ActBlock]) -> f32, fn(&[u8], &[f32], &[f32]) -> f32) = match dtype {
        DType::Q8_0 => (scalar::dot_q8_0, scalar::dotf_q8_0),
        DType::Q4_0 => (scalar::dot_q4_0, scalar::dotf_q4_0),
        _ => (scalar::dot_q4_1, scalar::dotf_q4_1),
    };
    // Scalar four-row kernels are four single-row calls on the gathered rows.
    Kernels {
        q8,
        q8x4: match dtype {
            DType::Q8_0 => |g, a| scalar::rows_of_group(g, 34).map(|w| scalar::dot_q8_0(&w, a)),
            DType::Q4_0 => |g, a| scalar::rows_of_group(g, 18).map(|w| scalar::dot_q4_0(&w, a)),
            _ => |g, a| scalar::rows_of_group(g, 20).map(|w| scalar::dot_q4_1(&w, a)),
        },
        f32,
        f32x4: match dtype {
            DType::Q8_0 => |g, x, s| scalar::rows_of_group(g, 34).map(|w| scalar::dotf_q8_0(&w, x, s)),
            DType::Q4_0 => |g, x, s| scalar::rows_of_group(g, 18).map(|w| scalar::dotf_q4_0(&w, x, s)),
            _ => |g, x, s| scalar::rows_of_group(g, 20).map(|w| scalar::dotf_q4_1(&w, x, s)),
        },
        f32x4x2: None,
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;
mod scalar;

/// `QMatrix::matmul` as a candle op on CPU tensors: [.., cols] f32 → [.., rows] f32.
pub(crate) struct QMatMulOp<'a>(pub &'a QMatrix);

impl candle_core::CustomOp1 for QMatMulOp<'_> {
    fn name(&self) -> &'static str {
        "sfn-qmatmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("sfn-qmatmul: input must be contiguous".into()))?;
        let x = match storage {
            CpuStorage::F32(v) => &v[start..end],
            _ => candle_core::bail!("sfn-qmatmul: input must be f32"),
        };
        let mut dims = layout.shape().dims().to_vec();
        match dims.last_mut() {
            Some(last) if *last == self.0.cols => *last = self.0.rows,
            _ => candle_core::bail!("sfn-qmatmul: input {:?} does not end in {} columns", layout.shape(), self.0.cols),
        }
        let m = x.len() / self.0.cols;
        let mut out = vec![0f32; m * self.0.rows];
        self.0.matmul(x, m, &mut out);
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes/floats for kernel tests.
    fn lcg(seed: &mut u64) -> u32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*seed >> 33) as u32
    }

    fn random_blocks(dtype: DType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        let nblocks = rows * cols / QK;
        let mut out = Vec::with_capacity(nblocks * dtype.block_bytes());
        for _ in 0..nblocks {
            let d = f16::from_f32(0.001 + (lcg(&mut s) % 1000) as f32 * 1e-5);
            out.extend_from_slice(&d.to_le_bytes());
            if dtype == DType::Q4_1 {
                let m = f16::from_f32(-((lcg(&mut s) % 1000) as f32) * 1e-5);
                out.extend_from_slice(&m.to_le_bytes());
            }
            let nq = if dtype == DType::Q8_0 { 32 } else { 16 };
            for _ in 0..nq {
                let mut v = lcg(&mut s) as u8;
                if dtype == DType::Q8_0 && v == 0x80 {
                    v = 0x81; // ggml never stores -128
                }
                out.push(v);
            }
        }
        out
    }

    fn random_x(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n).map(|_| (lcg(&mut s) % 20001) as f32 / 10000.0 - 1.0).collect()
    }

    #[test]
    fn avx2_kernels_equal_scalar_kernels() {
        for (dtype, acts, m) in [DType::Q8_0, DType::Q4_0, DType::Q4_1].into_iter().flat_map(|d| {
            [(d, Activations::Q8, 3), (d, Activations::F32, 3), (d, Activations::F32, 1), (d, Activations::F32, 20)]
        }) {
            let (rows, cols) = (37, 96);
            let data = random_blocks(dtype, rows, cols, 7);
            let best = QMatrix::new(dtype, rows, cols, data.clone(), acts).unwrap();
            let scalar = QMatrix::new_scalar(dtype, rows, cols, data, acts).unwrap();
            let x = random_x(m * cols, 11);
            let (mut a, mut b) = (vec![0f32; m * rows], vec![0f32; m * rows]);
            best.matmul(&x, m, &mut a);
            scalar.matmul(&x, m, &mut b);
            let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            let scale = b.iter().map(|v| v.abs()).fold(0f32, f32::max);
            println!("{dtype} {acts:?} m={m}: max |avx2 - scalar| = {diff:e} (max |y| = {scale})");
            assert!(diff <= 1e-5 * scale.max(1.0), "{dtype}: {diff}");
        }
    }

    #[test]
    fn quantized_matmul_is_close_to_f32_matmul_of_dequantized_weights() {
        for (dtype, acts, m) in [DType::Q8_0, DType::Q4_0, DType::Q4_1].into_iter().flat_map(|d| {
            [(d, Activations::Q8, 2), (d, Activations::F32, 2), (d, Activations::F32, 1), (d, Activations::F32, 20)]
        }) {
            let (rows, cols) = (20, 128);
            let q = QMatrix::new(dtype, rows, cols, random_blocks(dtype, rows, cols, 3), acts).unwrap();
            let x = random_x(m * cols, 5);
            let mut got = vec![0f32; m * rows];
            q.matmul(&x, m, &mut got);
            let mut w = vec![0f32; cols];
            let mut max_err = 0f32;
            let mut max_abs = 0f32;
            for r in 0..rows {
                q.dequantize_row(r, &mut w);
                for i in 0..m {
                    let want: f32 = w.iter().zip(&x[i * cols..(i + 1) * cols]).map(|(a, b)| a * b).sum();
                    max_err = max_err.max((got[i * rows + r] - want).abs());
                    max_abs = max_abs.max(want.abs());
                }
            }
            println!(
                "{dtype} {acts:?} m={m}: max |result - f32 on dequantized weights| = {max_err:e} (max |y| = {max_abs})"
            );
            let tol = match acts {
                // 8-bit activations: relative error about 1/254 per block, less after summing.
                Activations::Q8 => 0.01 * max_abs.max(0.1),
                Activations::F32 => 1e-5 * max_abs.max(1.0),
            };
            assert!(max_err < tol, "{dtype} {acts:?}: {max_err}");
        }
    }

    #[test]
    fn matmul_with_one_row_equals_many_rows() {
        let (rows, cols) = (300, 64);
        for acts in [Activations::Q8, Activations::F32] {
            let q = QMatrix::new(DType::Q4_1, rows, cols, random_blocks(DType::Q4_1, rows, cols, 9), acts).unwrap();
            for m in [2, 3, DIRECT_ROWS, DIRECT_ROWS + 1] {
                let x = random_x(m * cols, 1);
                let mut all = vec![0f32; m * rows];
                q.matmul(&x, m, &mut all);
                for i in 0..m {
                    let mut one = vec![0f32; rows];
                    q.matmul(&x[i * cols..(i + 1) * cols], 1, &mut one);
                    let d =
                        one.iter().zip(&all[i * rows..(i + 1) * rows]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                    // Q8 and decoding-sized F32 batches run the single-row kernels: bit-identical
                    // (so a batch decodes exactly as its rows alone); larger F32 batches sum the
                    // widened rows in another order.
                    let exact = acts == Activations::Q8 || m <= DIRECT_ROWS;
                    assert!(d <= if exact { 0.0 } else { 1e-5 }, "{acts:?} m={m}: {d}");
                }
            }
        }
    }

    #[test]
    fn interleaved_storage_gives_back_every_row() {
        for rows in [1, 4, 7, 9] {
            let data = random_blocks(DType::Q4_1, rows, 64, 5);
            let q = QMatrix::new(DType::Q4_1, rows, 64, data.clone(), Activations::F32).unwrap();
            assert_eq!(q.plain_bytes(), data);
            let mut got = vec![0f32; 64];
            let mut want = vec![0f32; 64];
            for r in 0..rows {
                q.dequantize_row(r, &mut got);
                dequantize(DType::Q4_1, &data[r * 40..(r + 1) * 40], &mut want);
                assert_eq!(got, want);
            }
            let both = QMatrix::stack([Some(&q), Some(&q)]).unwrap().unwrap();
            assert_eq!(both.plain_bytes(), [data.clone(), data].concat());
        }
    }

    #[test]
    fn wrong_sizes_are_errors_not_panics() {
        let a = Activations::F32;
        assert!(QMatrix::new(DType::Q4_1, 2, 32, vec![0; 39], a).is_err());
        assert!(QMatrix::new(DType::Q4_1, 2, 31, vec![0; 40], a).is_err());
        assert!(QMatrix::new(DType::Q6_K, 1, 256, vec![0; 210], a).is_err());
    }
}
