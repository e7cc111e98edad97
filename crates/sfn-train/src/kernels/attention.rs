//! Grouped-query causal attention, forward and backward, over row-major q/k/v buffers, with a
//! per-query first visible key (`lo`) that expresses causality, packed segments and a sliding
//! window at once: query i of a row sees keys lo[i] ..= i.
//!
//! Work is split by (row, key/value head): the query heads sharing that k/v head are packed into
//! one matrix of (query, head) rows, so one gemm serves the whole group and dK, dV are summed over
//! its heads in a fixed order. Each task walks blocks of 64 queries and multiplies them against only
//! the keys they can see (single-threaded gemm inside the parallel loop). Probabilities are not
//! stored: the forward pass keeps each query's log-sum-exp and the backward pass recomputes
//! P = exp(S − lse), as flash attention does, which costs one extra Q·Kᵀ per layer and saves
//! [batch, heads, T, T] floats per layer.

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

/// One task's view of a (row b, kv head g) group: where its query heads live in q-like buffers
/// [rows·cols, heads·head_dim] and where its packed copy [cols · n_rep, head_dim] (row i·n_rep + r
/// = query i, head g·n_rep + r) is.
#[derive(Clone, Copy)]
struct Group {
    b: usize,
    g: usize,
    t: usize,
    qd: usize,
    /// n_rep · head_dim: one token's heads of the group, contiguous in q.
    span: usize,
}

impl Group {
    /// Offset of token i's heads of this group in a q-like buffer.
    fn at(&self, i: usize) -> usize {
        (self.b * self.t + i) * self.qd + self.g * self.span
    }

    /// Copy the group's heads out of a q-like buffer into packed rows.
    fn pack(&self, src: &[f32], dst: &mut [f32]) {
        for (i, d) in dst.chunks_exact_mut(self.span).take(self.t).enumerate() {
            d.copy_from_slice(&src[self.at(i)..self.at(i) + self.span]);
        }
    }

    /// Copy packed rows back into the group's columns of a q-like buffer.
    ///
    /// # Safety
    /// `dst` addresses a q-like buffer of rows·cols·qd floats whose group columns no other thread
    /// writes meanwhile.
    unsafe fn unpack(&self, src: &[f32], dst: Shared) {
        for (i, s) in src.chunks_exact(self.span).take(self.t).enumerate() {
            std::ptr::copy_nonoverlapping(s.as_ptr(), dst.get().add(self.at(i)), self.span);
        }
    }
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
    // Per rayon job: packed queries and outputs [cols·n_rep, hd], scores [QB·n_rep, cols].
    let scratch = || (vec![0f32; t * n_rep * hd], vec![0f32; t * n_rep * hd], vec![0f32; QB * n_rep * t]);
    (0..rows * nkv).into_par_iter().for_each_init(scratch, |(qp, out, s), task| {
        let grp = Group { b: task / nkv, g: task % nkv, t, qd, span: n_rep * hd };
        let b = grp.b;
        let lo = &lo[b * t..(b + 1) * t];
        grp.pack(q, qp);
        let kg = &k[b * t * kvd + grp.g * hd..];
        let vg = &v[b * t * kvd + grp.g * hd..];
        for i0 in (0..t).step_by(QB) {
            let i1 = (i0 + QB).min(t);
            let m = (i1 - i0) * n_rep;
            let (kl, kh) = key_range(lo, i0, i1);
            let w = kh - kl;
            // SAFETY: packed rows i0·n_rep.. of qp/out and keys kl..kh of this row are in bounds
            // (lengths checked above); s, qp, out are this job's own.
            unsafe {
                // S [m, w] = scale · Q[i0..i1, heads of g] · K[kl..kh]ᵀ
                strided(
                    m,
                    w,
                    hd,
                    Strided { ptr: s.as_mut_ptr(), rs: w, cs: 1 },
                    Strided { ptr: qp.as_ptr().add(i0 * n_rep * hd), rs: hd, cs: 1 },
                    Strided { ptr: kg.as_ptr().add(kl * kvd), rs: 1, cs: kvd },
                    false,
                    scale,
                    false,
                );
            }
            for (rr, row) in s[..m * w].chunks_exact_mut(w).enumerate() {
                let (i, r) = (i0 + rr / n_rep, rr % n_rep);
                let (a, e) = (lo[i] as usize - kl, i + 1 - kl);
                row[..a].fill(0.0);
                row[e..].fill(0.0);
                let mx = simd::row_max(&row[a..e]);
                let sum = simd::exp_shifted(&mut row[a..e], mx);
                simd::scale(&mut row[a..e], (1.0 / sum) as f32);
                let h = grp.g * n_rep + r;
                // SAFETY: lse[b, h, i] for the heads of group g belongs to this task.
                unsafe { *lp.get().add((b * nh + h) * t + i) = (mx as f64 + sum.ln()) as f32 };
            }
            // SAFETY: as above.
            unsafe {
                // Y [m, hd] = P · V[kl..kh]
                strided(
                    m,
                    hd,
                    w,
                    Strided { ptr: out.as_mut_ptr().add(i0 * n_rep * hd), rs: hd, cs: 1 },
                    Strided { ptr: s.as_ptr(), rs: w, cs: 1 },
                    Strided { ptr: vg.as_ptr().add(kl * kvd), rs: kvd, cs: 1 },
                    false,
                    1.0,
                    false,
                );
            }
        }
        // SAFETY: y's columns of group g in row b are written by this task only.
        unsafe { grp.unpack(out, yp) };
    });
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
    // Per rayon job: packed q, dy, dq [cols·n_rep, hd]; P and dS [QB·n_rep, cols].
    let packed = t * n_rep * hd;
    let scratch = || (vec![0f32; 3 * packed], vec![0f32; QB * n_rep * t], vec![0f32; QB * n_rep * t]);
    (0..rows * nkv).into_par_iter().for_each_init(scratch, |(bufs, p, ds), task| {
        let grp = Group { b: task / nkv, g: task % nkv, t, qd, span: n_rep * hd };
        let (b, g) = (grp.b, grp.g);
        let lo = &lo[b * t..(b + 1) * t];
        let (qp, rest) = bufs.split_at_mut(packed);
        let (dyp, dqg) = rest.split_at_mut(packed);
        grp.pack(q, qp);
        grp.pack(dy, dyp);
        // SAFETY (all unsafe blocks of this task): reads stay inside row b's slices (lengths
        // checked above); dk/dv rows b·t.., columns g·hd.. and dq's columns of group g in row b are
        // written by this task only; p, ds, bufs are this job's own.
        for i in 0..t {
            unsafe {
                std::ptr::write_bytes(dkp.get().add((b * t + i) * kvd + g * hd), 0, hd);
                std::ptr::write_bytes(dvp.get().add((b * t + i) * kvd + g * hd), 0, hd);
            }
        }
        let kg = &k[b * t * kvd + g * hd..];
        let vg = &v[b * t * kvd + g * hd..];
        for i0 in (0..t).step_by(QB) {
            let i1 = (i0 + QB).min(t);
            let m = (i1 - i0) * n_rep;
            let (kl, kh) = key_range(lo, i0, i1);
            let w = kh - kl;
            let qb = unsafe { qp.as_ptr().add(i0 * n_rep * hd) };
            let dyb = unsafe { dyp.as_ptr().add(i0 * n_rep * hd) };
            unsafe {
                // S = scale · Q·Kᵀ (into p), dP = dY·Vᵀ (into ds), both [m, w].
                strided(
                    m,
                    w,
                    hd,
                    Strided { ptr: p.as_mut_ptr(), rs: w, cs: 1 },
                    Strided { ptr: qb, rs: hd, cs: 1 },
                    Strided { ptr: kg.as_ptr().add(kl * kvd), rs: 1, cs: kvd },
                    false,
                    scale,
                    false,
                );
                strided(
                    m,
                    w,
                    hd,
                    Strided { ptr: ds.as_mut_ptr(), rs: w, cs: 1 },
                    Strided { ptr: dyb, rs: hd, cs: 1 },
                    Strided { ptr: vg.as_ptr().add(kl * kvd), rs: 1, cs: kvd },
                    false,
                    1.0,
                    false,
                );
            }
            for (rr, (pr, dr)) in p[..m * w].chunks_exact_mut(w).zip(ds[..m * w].chunks_exact_mut(w)).enumerate() {
                let (i, r) = (i0 + rr / n_rep, rr % n_rep);
                let (a, e) = (lo[i] as usize - kl, i + 1 - kl);
                pr[..a].fill(0.0);
                pr[e..].fill(0.0);
                dr[..a].fill(0.0);
                dr[e..].fill(0.0);
                let l = lse[(b * nh + g * n_rep + r) * t + i];
                simd::exp_shifted(&mut pr[a..e], l);
                let dsum = simd::row_dot(&pr[a..e], &dr[a..e]);
                simd::softmax_backward(&pr[a..e], &mut dr[a..e], dsum);
            }
            unsafe {
                // dQ[i0..i1, heads of g] = scale · dS · K[kl..kh]
                strided(
                    m,
                    hd,
                    w,
                    Strided { ptr: dqg.as_mut_ptr().add(i0 * n_rep * hd), rs: hd, cs: 1 },
                    Strided { ptr: ds.as_ptr(), rs: w, cs: 1 },
                    Strided { ptr: kg.as_ptr().add(kl * kvd), rs: kvd, cs: 1 },
                    false,
                    scale,
                    false,
                );
                // dK[kl..kh, g] += scale · dSᵀ · Q[i0..i1, heads of g]
                strided(
                    w,
                    hd,
                    m,
                    Strided { ptr: dkp.get().add((b * t + kl) * kvd + g * hd), rs: kvd, cs: 1 },
                    Strided { ptr: ds.as_ptr(), rs: 1, cs: w },
                    Strided { ptr: qb, rs: hd, cs: 1 },
                    true,
                    scale,
                    false,
                );
                // dV[kl..kh, g] += Pᵀ · dY[i0..i1, heads of g]
                strided(
                    w,
                    hd,
                    m,
                    Strided { ptr: dvp.get().add((b * t + kl) * kvd + g * hd), rs: kvd, cs: 1 },
                    Strided { ptr: p.as_ptr(), rs: 1, cs: w },
                    Strided { ptr: dyb, rs: hd, cs: 1 },
                    true,
                    1.0,
                    false,
                );
            }
        }
        unsafe { grp.unpack(dqg, dqp) };
    });
}
