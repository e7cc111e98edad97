//! The non-matmul operations of a step over whole buffers, split among rayon threads: RMSNorm,
//! rotary embedding, SwiGLU, biases, embedding gather/scatter, cross-entropy and the elementwise
//! optimizer loops. Each calls the single-row kernels of `simd`.
//!
//! Work is cut into pieces of a fixed size (never "one piece per thread"), and sums over rows
//! (norm-weight and bias gradients, the loss, the gradient norm) are formed per piece and then added
//! in piece order, so results are bit-identical whatever the number of threads.

use super::simd::{self, AdamScalars};
use rayon::prelude::*;

/// Rows per task of the row-wise kernels.
const ROWS: usize = 16;
/// Elements per task of the elementwise kernels.
const ELEMS: usize = 1 << 14;

/// RMSNorm of every row: y [rows, dim], rstd [rows], from x [rows, dim] and w [dim].
pub fn rms_forward(x: &[f32], w: &[f32], eps: f32, y: &mut [f32], rstd: &mut [f32]) {
    let dim = w.len();
    y.par_chunks_mut(ROWS * dim).zip(x.par_chunks(ROWS * dim)).zip(rstd.par_chunks_mut(ROWS)).for_each(
        |((y, x), r)| {
            for ((y, x), r) in y.chunks_exact_mut(dim).zip(x.chunks_exact(dim)).zip(r) {
                *r = simd::rms_forward(x, w, eps, y);
            }
        },
    );
}

/// y = x·rstd·w row by row with known rstd [rows] (recomputes what `rms_forward` wrote to y).
pub fn rms_apply(x: &[f32], rstd: &[f32], w: &[f32], y: &mut [f32]) {
    let dim = w.len();
    y.par_chunks_mut(ROWS * dim).zip(x.par_chunks(ROWS * dim)).zip(rstd.par_chunks(ROWS)).for_each(|((y, x), r)| {
        for ((y, x), &r) in y.chunks_exact_mut(dim).zip(x.chunks_exact(dim)).zip(r) {
            simd::rms_apply(x, w, r, y);
        }
    });
}

/// Backward of `rms_forward`: dx [rows, dim] (written, or added to when `accumulate`) and, when
/// `dw` is given, dw [dim] += Σ_rows dy·x·rstd. `partial` is scratch for per-piece sums of dw
/// (grown as needed, so that steps do not allocate).
#[allow(clippy::too_many_arguments)]
pub fn rms_backward(
    dy: &[f32],
    x: &[f32],
    rstd: &[f32],
    w: &[f32],
    dx: &mut [f32],
    accumulate: bool,
    dw: Option<&mut [f32]>,
    partial: &mut Vec<f32>,
) {
    let dim = w.len();
    let pieces = rstd.len().div_ceil(ROWS);
    // One piece of rows; its share of dw goes to `part`.
    let piece = |dx: &mut [f32], dy: &[f32], x: &[f32], r: &[f32], mut part: Option<&mut [f32]>| {
        for (((dx, dy), x), &r) in dx.chunks_exact_mut(dim).zip(dy.chunks_exact(dim)).zip(x.chunks_exact(dim)).zip(r) {
            simd::rms_backward(dy, x, w, r, dx, accumulate, part.as_deref_mut());
        }
    };
    let it = dx
        .par_chunks_mut(ROWS * dim)
        .zip(dy.par_chunks(ROWS * dim))
        .zip(x.par_chunks(ROWS * dim))
        .zip(rstd.par_chunks(ROWS));
    match dw {
        Some(dw) => {
            // Per-piece partial sums of dw [pieces, dim], added in piece order.
            let partial = zeroed(partial, pieces * dim);
            it.zip(partial.par_chunks_mut(dim)).for_each(|((((dx, dy), x), r), part)| piece(dx, dy, x, r, Some(part)));
            for part in partial.chunks_exact(dim) {
                simd::add(dw, part);
            }
        }
        None => it.for_each(|(((dx, dy), x), r)| piece(dx, dy, x, r, None)),
    }
}

/// The first `len` values of `buf`, zeroed (growing it if needed).
fn zeroed(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let part = &mut buf[..len];
    part.fill(0.0);
    part
}

/// Rotary embedding in place over x [rows, width] (width = heads·head_dim), row i at position
/// pos[i], with tables cos, sin [positions, head_dim / 2]; `inverse` for the backward pass.
pub fn rope(x: &mut [f32], width: usize, pos: &[u32], cos: &[f32], sin: &[f32], half: usize, inverse: bool) {
    x.par_chunks_mut(ROWS * width).zip(pos.par_chunks(ROWS)).for_each(|(x, pos)| {
        for (row, &p) in x.chunks_exact_mut(width).zip(pos) {
            let at = p as usize * half;
            simd::rope(row, &cos[at..at + half], &sin[at..at + half], inverse);
        }
    });
}

/// h = silu(g)·u elementwise.
pub fn swiglu_forward(g: &[f32], u: &[f32], h: &mut [f32]) {
    h.par_chunks_mut(ELEMS).zip(g.par_chunks(ELEMS)).zip(u.par_chunks(ELEMS)).for_each(|((h, g), u)| {
        simd::swiglu_forward(g, u, h);
    });
}

/// Backward of SwiGLU: `dg` holds dh on entry and dL/dg on return; du = dL/du.
pub fn swiglu_backward(dg: &mut [f32], g: &[f32], u: &[f32], du: &mut [f32]) {
    dg.par_chunks_mut(ELEMS).zip(du.par_chunks_mut(ELEMS)).zip(g.par_chunks(ELEMS)).zip(u.par_chunks(ELEMS)).for_each(
        |(((dg, du), g), u)| {
            simd::swiglu_backward(dg, g, u, du);
        },
    );
}

/// y [rows, b.len()] += b on every row.
pub fn add_bias(y: &mut [f32], b: &[f32]) {
    y.par_chunks_mut(ROWS * b.len()).for_each(|y| {
        for row in y.chunks_exact_mut(b.len()) {
            simd::add(row, b);
        }
    });
}

/// db [width] += Σ_rows dy, dy [rows, width]; `partial` is scratch as for `rms_backward`.
pub fn bias_grad(dy: &[f32], db: &mut [f32], partial: &mut Vec<f32>) {
    let width = db.len();
    let pieces = dy.len().div_ceil(ROWS * width);
    let partial = zeroed(partial, pieces * width);
    partial.par_chunks_mut(width).zip(dy.par_chunks(ROWS * width)).for_each(|(part, dy)| {
        for row in dy.chunks_exact(width) {
            simd::add(part, row);
        }
    });
    for part in partial.chunks_exact(width) {
        simd::add(db, part);
    }
}

/// x [ids.len(), dim] = rows `ids` of the table [vocab, dim] (ids checked by the caller).
pub fn gather_rows(table: &[f32], ids: &[u32], x: &mut [f32], dim: usize) {
    x.par_chunks_mut(ROWS * dim).zip(ids.par_chunks(ROWS)).for_each(|(x, ids)| {
        for (row, &id) in x.chunks_exact_mut(dim).zip(ids) {
            row.copy_from_slice(&table[id as usize * dim..(id as usize + 1) * dim]);
        }
    });
}

/// table[ids[i]] += dx[i] for every row, in row order (one thread: rows may share an id, and the
/// embedding's share of a step is a few hundred thousand adds).
pub fn scatter_add_rows(table: &mut [f32], ids: &[u32], dx: &[f32], dim: usize) {
    for (row, &id) in dx.chunks_exact(dim).zip(ids) {
        simd::add(&mut table[id as usize * dim..(id as usize + 1) * dim], row);
    }
}

/// Cross-entropy of each logits row [rows, vocab] against targets [rows]: loss[i] = logsumexp(row)
/// − row[target] (max-subtracted, in f64 where it sums). With `grad_scale` = Some(s) the rows are
/// replaced by s·(softmax(row) − onehot(target)), the gradient of s·Σ loss.
pub fn cross_entropy(logits: &mut [f32], vocab: usize, targets: &[u32], grad_scale: Option<f32>, loss: &mut [f64]) {
    logits.par_chunks_mut(vocab).zip(targets.par_iter()).zip(loss.par_iter_mut()).with_min_len(4).for_each(
        |((row, &t), loss)| {
            let t = t as usize;
            let zt = row[t];
            let m = simd::row_max(row);
            let sum = simd::exp_shifted(row, m);
            *loss = m as f64 + sum.ln() - zt as f64;
            if let Some(s) = grad_scale {
                simd::scale(row, (s as f64 / sum) as f32);
                row[t] -= s;
            }
        },
    );
}

/// Σ x² in f64, summed in fixed pieces and then in piece order.
pub fn sum_sq(x: &[f32]) -> f64 {
    let parts: Vec<f64> = x.par_chunks(ELEMS).map(simd::sum_sq_f64).collect();
    parts.iter().sum()
}

/// x ← 0.
pub fn zero(x: &mut [f32]) {
    x.par_chunks_mut(ELEMS).for_each(|x| x.fill(0.0));
}

/// x ← x·k.
pub fn scale(x: &mut [f32], k: f32) {
    x.par_chunks_mut(ELEMS).for_each(|x| simd::scale(x, k));
}

/// One AdamW update of a whole tensor (see `simd::adamw`).
pub fn adamw(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &AdamScalars) {
    p.par_chunks_mut(ELEMS)
        .zip(g.par_chunks(ELEMS))
        .zip(m.par_chunks_mut(ELEMS))
        .zip(v.par_chunks_mut(ELEMS))
        .for_each(|(((p, g), m), v)| simd::adamw(p, g, m, v, k));
}

/// p += −lr·g over a whole tensor.
pub fn sgd(p: &mut [f32], g: &[f32], neg_lr: f32) {
    p.par_chunks_mut(ELEMS).zip(g.par_chunks(ELEMS)).for_each(|(p, g)| simd::sgd(p, g, neg_lr));
}
