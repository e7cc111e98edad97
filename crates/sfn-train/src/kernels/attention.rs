//! Grouped-query causal attention, forward and backward, over row-major q/k/v buffers, with a
//! per-query first visible key (`lo`) that expresses causality, packed segments and a sliding
//! window at once: query i of a row sees keys lo[i] ..= i.
//!
//! Work is split by (row, head) in the forward pass and by (row, key/value head) in the backward
//! pass (so the heads sharing a k/v head add their dK, dV in a fixed order); each task walks blocks
//! of 64 queries and multiplies them against only the keys they can see (single-threaded gemm).
//! Probabilities are not stored: the forward pass keeps each query's log-sum-exp and the backward
//! pass recomputes P = exp(S − lse), as flash attention does, which costs one extra Q·Kᵀ per layer
//! and saves [batch, heads, T, T] floats per layer.

use super::matmul::{strided, Strided};
use super::simd;
use rayon::prelude::*;

/// Queries per block.
const QB: usize = 64;

/// Sizes of one attention call. Buffers: q, y, dq [rows·cols, heads·head_dim]; k, v, dk, dv
/// [rows·cols, kv_heads·head_dim]; lse [rows, heads, cols]; lo [rows·cols].
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub rows: usize,
    pub cols: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// A raw pointer that rayon tasks may share: each task writes a disjoint part of the buffer.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: tasks only write disjoint element sets (documented at each use).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// The keys block [i0, i1) of a row can see: lo of its first query up to its last query.
fn key_range(lo: &[u32], i0: usize, i1: usize) -> (usize, usize) {
    let kl = lo[i0..i1].iter().copied().min().unwrap_or(0) as usize;
    (kl, i1)
}

/// y = softmax(scale · q·kᵀ, visible keys only) · v per head, and lse = log Σ exp(scale·q·k) per
/// query (for the backward pass).
#[allow(clippy::too_many_arguments)]
pub fn forward(d: Dims, scale: f32, lo: &[u32], q: &[f32], k: &[f32], v: &[f32], y: &mut [f32], lse: &mut [f32]) {
    let Dims { rows, cols: t, heads: nh, kv_heads: nkv, head_dim: hd } = d;
    let (qd, kvd, n_rep) = (nh * hd, nkv * hd, nh / nkv);
    let n = rows * t;
    assert!(lo.len() >= n && q.len() >= n * qd && k.len() >= n * kvd && v.len() >= n * kvd);
    assert!(y.len() >= n * qd && lse.len() >= rows * nh * t);
    let (yp, lp) = (Shared(y.as_mut_ptr()), Shared(lse.as_mut_ptr()));
    // Scores [QB, cols] per rayon job (not per task: no allocation per (row, head)).
    (0..rows * nh).into_par_iter().for_each_init(
        || vec![0f32; QB * t],
        |s, task| {
            let (b, h) = (task / nh, task % nh);
            let g = h / n_rep;
            let lo = &lo[b * t..(b + 1) * t];
            for i0 in (0..t).step_by(QB) {
                let i1 = (i0 + QB).min(t);
                let bq = i1 - i0;
                let (kl, kh) = key_range(lo, i0, i1);
                let w = kh - kl;
                // SAFETY: q/k/v reads stay inside this row's [cols, ·] slices (checked lengths above);
                // s is this task's own buffer; y rows b·t+i0..b·t+i1, columns h·hd.. are written by this
                // task only (one task per (row, head)).
                unsafe {
                    // S [bq, w] = scale · Q[i0..i1] · K[kl..kh]ᵀ
                    strided(
                        bq,
                        w,
                        hd,
                        Strided { ptr: s.as_mut_ptr(), rs: w, cs: 1 },
                        Strided { ptr: q.as_ptr().add((b * t + i0) * qd + h * hd), rs: qd, cs: 1 },
                        Strided { ptr: k.as_ptr().add((b * t + kl) * kvd + g * hd), rs: 1, cs: kvd },
                        false,
                        scale,
                        false,
                    );
                }
                for r in 0..bq {
                    let i = i0 + r;
                    let (a, e) = (lo[i] as usize - kl, i + 1 - kl);
                    let row = &mut s[r * w..(r + 1) * w];
                    row[..a].fill(0.0);
                    row[e..].fill(0.0);
                    let m = simd::row_max(&row[a..e]);
                    let sum = simd::exp_shifted(&mut row[a..e], m);
                    simd::scale(&mut row[a..e], (1.0 / sum) as f32);
                    // SAFETY: lse[b, h, i] belongs to this task.
                    unsafe { *lp.get().add((b * nh + h) * t + i) = (m as f64 + sum.ln()) as f32 };
                }
                // SAFETY: as above; Y[i0..i1, head h] is this task's.
                unsafe {
                    // Y[i0..i1, h] = P · V[kl..kh]
                    strided(
                        bq,
                        hd,
                        w,
                        Strided { ptr: yp.get().add((b * t + i0) * qd + h * hd), rs: qd, cs: 1 },
                        Strided { ptr: s.as_ptr(), rs: w, cs: 1 },
                        Strided { ptr: v.as_ptr().add((b * t + kl) * kvd + g * hd), rs: kvd, cs: 1 },
                        false,
                        1.0,
                        false,
                    );
                }
            }
        },
    );
}

/// Gradients of `forward`: dq (written), dk and dv (written: zeroed, then summed over the heads of
/// each group and over query blocks), from dy and the forward pass's q, k, v and lse.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    d: Dims,
    scale: f32,
    lo: &[u32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    lse: &[f32],
    dy: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let Dims { rows, cols: t, heads: nh, kv_heads: nkv, head_dim: hd } = d;
    let (qd, kvd, n_rep) = (nh * hd, nkv * hd, nh / nkv);
    let n = rows * t;
    assert!(lo.len() >= n && q.len() >= n * qd && k.len() >= n * kvd && v.len() >= n * kvd);
    assert!(lse.len() >= rows * nh * t && dy.len() >= n * qd);
    assert!(dq.len() >= n * qd && dk.len() >= n * kvd && dv.len() >= n * kvd);
    let (dqp, dkp, dvp) = (Shared(dq.as_mut_ptr()), Shared(dk.as_mut_ptr()), Shared(dv.as_mut_ptr()));
    // P and dS [QB, cols] per rayon job.
    let scratch = || (vec![0f32; QB * t], vec![0f32; QB * t]);
    (0..rows * nkv).into_par_iter().for_each_init(scratch, |(p, ds), task| {
        let (b, g) = (task / nkv, task % nkv);
        let lo = &lo[b * t..(b + 1) * t];
        // SAFETY (all unsafe blocks of this task): reads stay inside row b's slices (lengths
        // checked above); dk/dv rows b·t.., columns g·hd.. and dq rows b·t.., columns of heads
        // g·n_rep.. are written by this task only (one task per (row, kv head)).
        for i in 0..t {
            unsafe {
                std::ptr::write_bytes(dkp.get().add((b * t + i) * kvd + g * hd), 0, hd);
                std::ptr::write_bytes(dvp.get().add((b * t + i) * kvd + g * hd), 0, hd);
            }
        }
        let kg = unsafe { k.as_ptr().add(b * t * kvd + g * hd) };
        let vg = unsafe { v.as_ptr().add(b * t * kvd + g * hd) };
        for h in g * n_rep..(g + 1) * n_rep {
            for i0 in (0..t).step_by(QB) {
                let i1 = (i0 + QB).min(t);
                let bq = i1 - i0;
                let (kl, kh) = key_range(lo, i0, i1);
                let w = kh - kl;
                let qb = unsafe { q.as_ptr().add((b * t + i0) * qd + h * hd) };
                let dyb = unsafe { dy.as_ptr().add((b * t + i0) * qd + h * hd) };
                unsafe {
                    // S = scale · Q·Kᵀ (into p), dP = dY·Vᵀ (into ds), both [bq, w].
                    strided(
                        bq,
                        w,
                        hd,
                        Strided { ptr: p.as_mut_ptr(), rs: w, cs: 1 },
                        Strided { ptr: qb, rs: qd, cs: 1 },
                        Strided { ptr: kg.add(kl * kvd), rs: 1, cs: kvd },
                        false,
                        scale,
                        false,
                    );
                    strided(
                        bq,
                        w,
                        hd,
                        Strided { ptr: ds.as_mut_ptr(), rs: w, cs: 1 },
                        Strided { ptr: dyb, rs: qd, cs: 1 },
                        Strided { ptr: vg.add(kl * kvd), rs: 1, cs: kvd },
                        false,
                        1.0,
                        false,
                    );
                }
                for r in 0..bq {
                    let i = i0 + r;
                    let (a, e) = (lo[i] as usize - kl, i + 1 - kl);
                    let pr = &mut p[r * w..(r + 1) * w];
                    let dr = &mut ds[r * w..(r + 1) * w];
                    pr[..a].fill(0.0);
                    pr[e..].fill(0.0);
                    dr[..a].fill(0.0);
                    dr[e..].fill(0.0);
                    let l = lse[(b * nh + h) * t + i];
                    simd::exp_shifted(&mut pr[a..e], l);
                    let dsum = simd::row_dot(&pr[a..e], &dr[a..e]);
                    simd::softmax_backward(&pr[a..e], &mut dr[a..e], dsum);
                }
                unsafe {
                    // dQ[i0..i1, h] = scale · dS · K[kl..kh]
                    strided(
                        bq,
                        hd,
                        w,
                        Strided { ptr: dqp.get().add((b * t + i0) * qd + h * hd), rs: qd, cs: 1 },
                        Strided { ptr: ds.as_ptr(), rs: w, cs: 1 },
                        Strided { ptr: kg.add(kl * kvd), rs: kvd, cs: 1 },
                        false,
                        scale,
                        false,
                    );
                    // dK[kl..kh, g] += scale · dSᵀ · Q[i0..i1, h]
                    strided(
                        w,
                        hd,
                        bq,
                        Strided { ptr: dkp.get().add((b * t + kl) * kvd + g * hd), rs: kvd, cs: 1 },
                        Strided { ptr: ds.as_ptr(), rs: 1, cs: w },
                        Strided { ptr: qb, rs: qd, cs: 1 },
                        true,
                        scale,
                        false,
                    );
                    // dV[kl..kh, g] += Pᵀ · dY[i0..i1, h]
                    strided(
                        w,
                        hd,
                        bq,
                        Strided { ptr: dvp.get().add((b * t + kl) * kvd + g * hd), rs: kvd, cs: 1 },
                        Strided { ptr: p.as_ptr(), rs: 1, cs: w },
                        Strided { ptr: dyb, rs: qd, cs: 1 },
                        true,
                        1.0,
                        false,
                    );
                }
            }
        }
    });
}
