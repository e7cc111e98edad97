//! Plain scalar versions of the kernels, written for reading rather than speed (f64 sums, libm
//! `exp`, full T×T attention with an explicit mask), and the tests that hold the fast kernels
//! (`ops`, `attention`) equal to them. Test-only.

use super::attention::{self, Dims};
use super::{ops, simd};
use sfn_run::SplitMix64 as Rng;

fn rms_forward(x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) -> f32 {
    let ms = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64;
    let r = (1.0 / (ms + eps as f64).sqrt()) as f32;
    for i in 0..x.len() {
        y[i] = x[i] * r * w[i];
    }
    r
}

fn rms_backward(dy: &[f32], x: &[f32], w: &[f32], r: f32, dx: &mut [f32], dw: &mut [f32]) {
    let n = x.len() as f64;
    let r = r as f64;
    let dot: f64 = (0..x.len()).map(|i| dy[i] as f64 * w[i] as f64 * x[i] as f64).sum();
    for i in 0..x.len() {
        dx[i] = (r * dy[i] as f64 * w[i] as f64 - x[i] as f64 * r * r * r * dot / n) as f32;
        dw[i] += (dy[i] as f64 * x[i] as f64 * r) as f32;
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Naive attention in f64: scores over all keys with −∞ where not visible. Returns y [n, heads·hd].
fn attention_forward(d: Dims, scale: f32, lo: &[u32], q: &[f32], k: &[f32], v: &[f32]) -> Vec<f64> {
    let Dims { rows, cols: t, heads: nh, kv_heads: nkv, head_dim: hd } = d;
    let (qd, kvd) = (nh * hd, nkv * hd);
    let mut y = vec![0f64; rows * t * qd];
    for b in 0..rows {
        for h in 0..nh {
            let g = h / (nh / nkv);
            for i in 0..t {
                let s: Vec<f64> = (0..t)
                    .map(|j| {
                        if j > i || j < lo[b * t + i] as usize {
                            return f64::NEG_INFINITY;
                        }
                        let qi = &q[(b * t + i) * qd + h * hd..][..hd];
                        let kj = &k[(b * t + j) * kvd + g * hd..][..hd];
                        scale as f64 * qi.iter().zip(kj).map(|(&a, &c)| a as f64 * c as f64).sum::<f64>()
                    })
                    .collect();
                let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|&x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for c in 0..hd {
                    let acc: f64 = (0..t).map(|j| e[j] / z * v[(b * t + j) * kvd + g * hd + c] as f64).sum();
                    y[(b * t + i) * qd + h * hd + c] = acc;
                }
            }
        }
    }
    y
}

fn random(rng: &mut Rng, n: usize, std: f32) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32 * std).collect()
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, &x| m.max(x.abs())).max(1e-30);
    a.iter().zip(b).fold(0f32, |m, (&x, &y)| m.max((x - y).abs())) / scale
}

#[test]
fn exp_is_within_two_ulp_of_libm() {
    let mut worst = 0f64;
    for i in 0..200_000 {
        let x = -87.0 + 175.3 * i as f32 / 200_000.0;
        let want = (x as f64).exp();
        let rel = ((simd::exp(x) as f64 - want) / want).abs();
        worst = worst.max(rel);
    }
    println!("exp: max relative error {worst:e}");
    assert!(worst < 2.5e-7, "exp error {worst}");
    assert_eq!(simd::exp(-100.0), 0.0);
    assert!(simd::exp(f32::NAN).is_nan());
}

#[test]
fn rms_norm_matches_reference_both_ways() {
    let mut rng = Rng::new(1);
    let (rows, dim) = (37, 72);
    let x = random(&mut rng, rows * dim, 1.5);
    let w = random(&mut rng, dim, 1.0);
    let dy = random(&mut rng, rows * dim, 1.0);
    let (mut y, mut r) = (vec![0f32; rows * dim], vec![0f32; rows]);
    ops::rms_forward(&x, &w, 1e-5, &mut y, &mut r);
    let (mut dx, mut dw) = (vec![0f32; rows * dim], vec![0f32; dim]);
    ops::rms_backward(&dy, &x, &r, &w, &mut dx, false, Some(&mut dw), &mut Vec::new());
    let (mut y2, mut dx2, mut dw2) = (vec![0f32; rows * dim], vec![0f32; rows * dim], vec![0f32; dim]);
    for (i, &ri) in r.iter().enumerate() {
        let s = i * dim..(i + 1) * dim;
        let r2 = rms_forward(&x[s.clone()], &w, 1e-5, &mut y2[s.clone()]);
        assert!((r2 - ri).abs() <= 1e-6 * r2);
        rms_backward(&dy[s.clone()], &x[s.clone()], &w, r2, &mut dx2[s], &mut dw2);
    }
    let (dy_, dx_, dw_) = (max_rel_diff(&y, &y2), max_rel_diff(&dx, &dx2), max_rel_diff(&dw, &dw2));
    println!("rms: y {dy_:e}, dx {dx_:e}, dw {dw_:e} (max |diff| / max |ref|)");
    assert!(dy_ < 1e-6 && dx_ < 1e-5 && dw_ < 1e-5);
}

#[test]
fn rope_inverse_undoes_forward_and_matches_the_formula() {
    let mut rng = Rng::new(2);
    let (rows, heads, half) = (5, 3, 4);
    let width = heads * 2 * half;
    let x = random(&mut rng, rows * width, 1.0);
    let positions = 7;
    let cos: Vec<f32> = (0..positions * half).map(|i| (i as f32 * 0.3).cos()).collect();
    let sin: Vec<f32> = (0..positions * half).map(|i| (i as f32 * 0.3).sin()).collect();
    let pos = [0u32, 3, 6, 1, 2];
    let mut y = x.clone();
    ops::rope(&mut y, width, &pos, &cos, &sin, half, false);
    for (r, &p) in pos.iter().enumerate() {
        for h in 0..heads {
            for i in 0..half {
                let base = r * width + h * 2 * half;
                let (a, b) = (x[base + i], x[base + half + i]);
                let (c, s) = (cos[p as usize * half + i], sin[p as usize * half + i]);
                assert!((y[base + i] - (a * c - b * s)).abs() < 1e-6);
                assert!((y[base + half + i] - (b * c + a * s)).abs() < 1e-6);
            }
        }
    }
    ops::rope(&mut y, width, &pos, &cos, &sin, half, true);
    assert!(max_rel_diff(&y, &x) < 1e-6);
}

#[test]
fn swiglu_matches_reference_both_ways() {
    let mut rng = Rng::new(3);
    let n = 40_000;
    let mut g = random(&mut rng, n, 4.0);
    g[0] = -120.0; // saturated sigmoid
    g[1] = 95.0;
    let u = random(&mut rng, n, 1.0);
    let dh = random(&mut rng, n, 1.0);
    let mut h = vec![0f32; n];
    ops::swiglu_forward(&g, &u, &mut h);
    let (mut dg, mut du) = (dh.clone(), vec![0f32; n]);
    ops::swiglu_backward(&mut dg, &g, &u, &mut du);
    let mut want = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    for i in 0..n {
        let (gi, s) = (g[i] as f64, sigmoid(g[i] as f64));
        want.0[i] = (gi * s * u[i] as f64) as f32;
        want.1[i] = (dh[i] as f64 * u[i] as f64 * s * (1.0 + gi * (1.0 - s))) as f32;
        want.2[i] = (dh[i] as f64 * gi * s) as f32;
    }
    let d = [max_rel_diff(&h, &want.0), max_rel_diff(&dg, &want.1), max_rel_diff(&du, &want.2)];
    println!("swiglu: h {:e}, dg {:e}, du {:e}", d[0], d[1], d[2]);
    assert!(d.iter().all(|&d| d < 1e-6));
}

#[test]
fn cross_entropy_matches_reference_with_gradient() {
    let mut rng = Rng::new(4);
    let (rows, vocab) = (6, 1000);
    let logits = random(&mut rng, rows * vocab, 3.0);
    let targets = [0u32, 999, 17, 500, 3, 3];
    let mut x = logits.clone();
    let mut loss = vec![0f64; rows];
    ops::cross_entropy(&mut x, vocab, &targets, Some(0.25), &mut loss);
    for r in 0..rows {
        let row: Vec<f64> = logits[r * vocab..(r + 1) * vocab].iter().map(|&v| v as f64).collect();
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
        let want = m + z.ln() - row[targets[r] as usize];
        assert!((loss[r] - want).abs() < 1e-5, "row {r}: {} vs {want}", loss[r]);
        for j in 0..vocab {
            let g = 0.25 * ((row[j] - m).exp() / z - if j == targets[r] as usize { 1.0 } else { 0.0 });
            assert!((x[r * vocab + j] as f64 - g).abs() < 1e-7, "row {r} col {j}");
        }
    }
}

#[test]
fn attention_matches_naive_with_segments_window_and_gqa() {
    let mut rng = Rng::new(5);
    // Two rows of 150 columns (three query blocks), 4 heads sharing 2 kv heads.
    let d = Dims { rows: 2, cols: 150, heads: 4, kv_heads: 2, head_dim: 8 };
    let n = d.rows * d.cols;
    let (qd, kvd) = (d.heads * d.head_dim, d.kv_heads * d.head_dim);
    let q = random(&mut rng, n * qd, 1.0);
    let k = random(&mut rng, n * kvd, 1.0);
    let v = random(&mut rng, n * kvd, 1.0);
    // Row 0: segments [0, 70) and [70, 150); row 1: one segment with a 40-key window.
    let mut lo = vec![0u32; n];
    for i in 0..d.cols {
        lo[i] = if i < 70 { 0 } else { 70 };
        lo[d.cols + i] = (i + 1).saturating_sub(40) as u32;
    }
    let scale = 0.35;
    let (mut y, mut lse) = (vec![0f32; n * qd], vec![0f32; d.rows * d.heads * d.cols]);
    attention::forward(d, scale, &lo, &q, &k, &v, &mut y, &mut lse);
    let want: Vec<f32> = attention_forward(d, scale, &lo, &q, &k, &v).iter().map(|&x| x as f32).collect();
    let fwd = max_rel_diff(&y, &want);
    // Backward against central differences of L = Σ y·c on a few coordinates of q, k and v.
    let c = random(&mut rng, n * qd, 1.0);
    let (mut dq, mut dk, mut dv) = (vec![0f32; n * qd], vec![0f32; n * kvd], vec![0f32; n * kvd]);
    attention::backward(d, scale, &lo, &q, &k, &v, &lse, &c, &mut dq, &mut dk, &mut dv);
    let loss = |q: &[f32], k: &[f32], v: &[f32]| -> f64 {
        attention_forward(d, scale, &lo, q, k, v).iter().zip(&c).map(|(&a, &b)| a * b as f64).sum()
    };
    let mut worst = 0f64;
    for (which, idx) in [(0, 5), (0, 70 * qd + 3), (0, (d.cols + 120) * qd + 17), (1, 3), (1, 71 * kvd + 9), (2, 2)]
        .into_iter()
        .chain([(1, (d.cols + 100) * kvd + 1), (2, (d.cols + 149) * kvd + 15), (2, 69 * kvd + 4)])
    {
        let (mut q2, mut k2, mut v2) = (q.clone(), k.clone(), v.clone());
        let eps = 1e-2f32;
        let buf = [&mut q2, &mut k2, &mut v2][which].as_mut_ptr();
        // SAFETY: idx is inside the chosen buffer.
        unsafe { *buf.add(idx) += eps };
        let up = loss(&q2, &k2, &v2);
        unsafe { *buf.add(idx) -= 2.0 * eps };
        let down = loss(&q2, &k2, &v2);
        let numeric = (up - down) / (2.0 * eps as f64);
        let analytic = [&dq, &dk, &dv][which][idx] as f64;
        worst = worst.max((numeric - analytic).abs() / numeric.abs().max(1.0));
    }
    println!("attention: forward max rel diff {fwd:e}, backward vs central differences {worst:e}");
    assert!(fwd < 1e-5 && worst < 1e-3);
}
