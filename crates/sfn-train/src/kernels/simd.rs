//! Single-row kernels written for the auto-vectoriser: fixed-width lane accumulators instead of
//! serial sums, a polynomial `exp` with no branches or table lookups, and every function compiled
//! twice (AVX2 when the CPU has it, baseline x86-64/other otherwise) by `multiversion!`.
//!
//! Both versions run the same operations in the same order (no fused multiply-add: Rust never
//! contracts `a * b + c`), so they give bit-identical results; only the register width differs.
//! The parallel drivers over many rows live in `ops`; plain scalar versions of the same maths, for
//! the tests, in `reference`.

/// Accumulator lanes of a reduction: two AVX2 registers, so consecutive adds do not wait on each
/// other.
const LANES: usize = 16;

/// Define a function twice: an AVX2 copy used when the CPU has AVX2, and a baseline copy. The body
/// is inlined into both, so everything it calls with `#[inline(always)]` is vectorised for AVX2.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn imp($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    imp($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has the one feature `avx2` is compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}

/// Sum of 16 lanes in a fixed pairwise order.
#[inline(always)]
fn hsum(a: [f32; LANES]) -> f32 {
    let mut h = [0f32; 8];
    for l in 0..8 {
        h[l] = a[l] + a[l + 8];
    }
    let q = [h[0] + h[4], h[1] + h[5], h[2] + h[6], h[3] + h[7]];
    (q[0] + q[2]) + (q[1] + q[3])
}

/// Σ a·b.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ac, at) = a.as_chunks::<LANES>();
    let (bc, bt) = b[..a.len()].as_chunks::<LANES>();
    let mut acc = [0f32; LANES];
    for (x, y) in ac.iter().zip(bc) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = hsum(acc);
    for (x, y) in at.iter().zip(bt) {
        s += x * y;
    }
    s
}

/// Σ a·b·c, evaluated as (a·b)·c.
#[inline(always)]
fn dot3(a: &[f32], b: &[f32], c: &[f32]) -> f32 {
    let n = a.len();
    let (ac, at) = a.as_chunks::<LANES>();
    let (bc, bt) = b[..n].as_chunks::<LANES>();
    let (cc, ct) = c[..n].as_chunks::<LANES>();
    let mut acc = [0f32; LANES];
    for ((x, y), z) in ac.iter().zip(bc).zip(cc) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l] * z[l];
        }
    }
    let mut s = hsum(acc);
    for ((x, y), z) in at.iter().zip(bt).zip(ct) {
        s += x * y * z;
    }
    s
}

/// Largest element (−∞ for an empty slice); NaN-propagating only as far as `f32::max` is.
#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let (xc, xt) = x.as_chunks::<LANES>();
    let mut acc = [f32::NEG_INFINITY; LANES];
    for c in xc {
        for l in 0..LANES {
            acc[l] = acc[l].max(c[l]);
        }
    }
    let mut m = acc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for &v in xt {
        m = m.max(v);
    }
    m
}

/// eˣ in f32 with Cephes' `expf` method: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two so
/// n·ln2 is exact), eʳ by a degree-7 polynomial, 2ⁿ built in the exponent bits. Within 2 ulp of
/// the true value for x in [−87, 88.3]; x < −88 gives 0, x > 88.3 gives e^88.3 (callers only feed
/// values ≤ 0 or want a saturating sigmoid); NaN stays NaN. Written without branches so that loops
/// over slices vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // 0.693359375, few mantissa bits: n·LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding it rounds x·log2(e) to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-88.0, 88.3);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // n in [−127, 127]; n = −127 makes an exponent field of 0, i.e. the factor 0.
    let n_int = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    e * f32::from_bits(((n_int + 127) << 23) as u32)
}

multiversion! {
    /// RMSNorm of one row: y = x · rsqrt(mean(x²) + eps) · w (in that order, as transformers does);
    /// returns rsqrt(mean(x²) + eps). x, y, w: [dim].
    pub fn rms_forward(x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) -> f32 {
        let rstd = 1.0 / (dot(x, x) / x.len() as f32 + eps).sqrt();
        for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
            *y = x * rstd * w;
        }
        rstd
    }
}

multiversion! {
    /// y = x · rstd · w for one row whose rstd is known (the backward pass recomputes a norm's
    /// output this way instead of storing it; same expression as `rms_forward`, same bits).
    pub fn rms_apply(x: &[f32], w: &[f32], rstd: f32, y: &mut [f32]) {
        for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
            *y = x * rstd * w;
        }
    }
}

multiversion! {
    /// Backward of `rms_forward` for one row, given dy: dx = r·(w·dy) − x·r³·Σ(w·dy·x)/dim
    /// (added to dx when `accumulate`), and dw += dy·x·r when `dw` is given. All [dim].
    pub fn rms_backward(
        dy: &[f32],
        x: &[f32],
        w: &[f32],
        rstd: f32,
        dx: &mut [f32],
        accumulate: bool,
        dw: Option<&mut [f32]>,
    ) {
        let c = rstd * rstd * rstd * dot3(dy, w, x) / x.len() as f32;
        if accumulate {
            for (((d, &g), &w), &x) in dx.iter_mut().zip(dy).zip(w).zip(x) {
                *d += rstd * (g * w) - c * x;
            }
        } else {
            for (((d, &g), &w), &x) in dx.iter_mut().zip(dy).zip(w).zip(x) {
                *d = rstd * (g * w) - c * x;
            }
        }
        if let Some(dw) = dw {
            for ((d, &g), &x) in dw.iter_mut().zip(dy).zip(x) {
                *d += g * (x * rstd);
            }
        }
    }
}

multiversion! {
    /// Rotary embedding of one token's heads in place, Hugging Face's rotate-half layout: with
    /// a = x[..half], b = x[half..] of each head, forward gives (a·cos − b·sin, b·cos + a·sin); the
    /// inverse (the backward pass, the transpose of a rotation) gives (a·cos + b·sin, b·cos − a·sin).
    /// x: [heads · head_dim]; cos, sin: [head_dim / 2].
    pub fn rope(x: &mut [f32], cos: &[f32], sin: &[f32], inverse: bool) {
        let half = cos.len();
        for head in x.chunks_exact_mut(2 * half) {
            let (a, b) = head.split_at_mut(half);
            if inverse {
                for (((a, b), &c), &s) in a.iter_mut().zip(b.iter_mut()).zip(cos).zip(sin) {
                    let (x1, x2) = (*a, *b);
                    *a = x1 * c + x2 * s;
                    *b = x2 * c - x1 * s;
                }
            } else {
                for (((a, b), &c), &s) in a.iter_mut().zip(b.iter_mut()).zip(cos).zip(sin) {
                    let (x1, x2) = (*a, *b);
                    *a = x1 * c + -x2 * s;
                    *b = x2 * c + x1 * s;
                }
            }
        }
    }
}

multiversion! {
    /// SwiGLU: h = silu(g)·u with silu(g) = g / (1 + e^−g) (PyTorch's formula). All [len].
    pub fn swiglu_forward(g: &[f32], u: &[f32], h: &mut [f32]) {
        for ((h, &g), &u) in h.iter_mut().zip(g).zip(u) {
            *h = g / (1.0 + exp(-g)) * u;
        }
    }
}

multiversion! {
    /// Backward of `swiglu_forward`: `dg` holds dh on entry and d/dg on return (dh·u·silu'(g), with
    /// silu'(g) = s·(1 + g·(1 − s)), s = sigmoid(g)); du = dh·silu(g). All [len].
    pub fn swiglu_backward(dg: &mut [f32], g: &[f32], u: &[f32], du: &mut [f32]) {
        for (((d, du), &g), &u) in dg.iter_mut().zip(du.iter_mut()).zip(g).zip(u) {
            let s = 1.0 / (1.0 + exp(-g));
            let dh = *d;
            *du = dh * (g * s);
            *d = dh * u * (s * (1.0 + g * (1.0 - s)));
        }
    }
}

multiversion! {
    /// Softmax numerator in place over one row: x ← e^(x − m); returns Σ e^(x − m) (lanes in f32,
    /// combined in f64).
    pub fn exp_shifted(x: &mut [f32], m: f32) -> f64 {
        let (xc, xt) = x.as_chunks_mut::<LANES>();
        let mut acc = [0f32; LANES];
        for c in xc {
            for l in 0..LANES {
                let e = exp(c[l] - m);
                c[l] = e;
                acc[l] += e;
            }
        }
        let mut s: f64 = acc.iter().map(|&a| a as f64).sum();
        for v in xt {
            *v = exp(*v - m);
            s += *v as f64;
        }
        s
    }
}

multiversion! {
    /// Largest element of a row.
    pub fn row_max(x: &[f32]) -> f32 {
        max(x)
    }
}

multiversion! {
    /// x ← x · k.
    pub fn scale(x: &mut [f32], k: f32) {
        for v in x {
            *v *= k;
        }
    }
}

multiversion! {
    /// Σ a·b over a row (attention's per-row Σ P·dP).
    pub fn row_dot(a: &[f32], b: &[f32]) -> f32 {
        dot(a, b)
    }
}

multiversion! {
    /// dS = P·(dP − d) in place over one attention row: `dp` holds dP on entry.
    pub fn softmax_backward(p: &[f32], dp: &mut [f32], d: f32) {
        for (g, &p) in dp.iter_mut().zip(p) {
            *g = p * (*g - d);
        }
    }
}

multiversion! {
    /// Σ x² in f64 (8 f64 lanes), for the global gradient norm.
    pub fn sum_sq_f64(x: &[f32]) -> f64 {
        let (xc, xt) = x.as_chunks::<8>();
        let mut acc = [0f64; 8];
        for c in xc {
            for l in 0..8 {
                let v = c[l] as f64;
                acc[l] += v * v;
            }
        }
        let mut s = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
        for &v in xt {
            s += v as f64 * v as f64;
        }
        s
    }
}

multiversion! {
    /// y += x.
    pub fn add(y: &mut [f32], x: &[f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y += x;
        }
    }
}

/// Hyper-parameters of one AdamW update as f32 scalars, derived in f64 the way PyTorch derives
/// them (see `optim::AdamW`).
#[derive(Debug, Clone, Copy)]
pub struct AdamScalars {
    /// 1 − lr·weight_decay (1 when the tensor is exempt from decay).
    pub decay: f32,
    /// 1 − β1, the weight of `lerp`.
    pub one_minus_beta1: f32,
    pub beta2: f32,
    pub one_minus_beta2: f32,
    /// −lr / (1 − β1^t)
    pub neg_step_size: f32,
    /// sqrt(1 − β2^t)
    pub bias_correction2_sqrt: f32,
    pub eps: f32,
}

multiversion! {
    /// One AdamW update of a slice, the operations of torch.optim.AdamW's single-tensor path in its
    /// order: p·=decay; m = lerp(m, g, 1−β1); v = v·β2 + (1−β2)·g·g;
    /// p += −step_size·m / (sqrt(v)/sqrt(1−β2^t) + eps). All [len].
    pub fn adamw(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &AdamScalars) {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *p *= k.decay;
            // torch's lerp for a weight below 0.5: start + weight·(end − start).
            *m += k.one_minus_beta1 * (g - *m);
            *v = *v * k.beta2 + k.one_minus_beta2 * g * g;
            let denom = v.sqrt() / k.bias_correction2_sqrt + k.eps;
            *p += k.neg_step_size * *m / denom;
        }
    }
}

multiversion! {
    /// Plain SGD: p += −lr·g. All [len].
    pub fn sgd(p: &mut [f32], g: &[f32], neg_lr: f32) {
        for (p, &g) in p.iter_mut().zip(g) {
            *p += neg_lr * g;
        }
    }
}
