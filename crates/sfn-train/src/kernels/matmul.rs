//! Matrix products through the `gemm` crate (f32, runtime-dispatched AVX2/FMA/AVX-512 micro
//! kernels, rayon threads from the current pool).
//!
//! Three safe shapes cover every linear layer (W stored [out, in] as in the checkpoint):
//! `x_wt` (forward, y = x·Wᵀ), `a_b` (input gradient, dx = dy·W) and `at_b` (weight gradient,
//! dW += dyᵀ·x). `strided` is the raw form for attention's per-head slices. gemm splits work among
//! threads by output tiles only (each output element is summed over k in the same order whatever
//! the thread count); see the determinism test in `tests/training.rs`.

use gemm::{gemm, Parallelism};

/// A matrix by pointer and strides: element (r, c) at `ptr + r·rs + c·cs`.
#[derive(Clone, Copy)]
pub struct Strided<P> {
    pub ptr: P,
    pub rs: usize,
    pub cs: usize,
}

/// dst[m, n] = scale · a[m, k] · b[k, n], or dst += that when `accumulate`. `parallel` lets gemm
/// use the current rayon pool (for top-level products; attention calls it from inside its own
/// parallel loop, single-threaded).
///
/// # Safety
/// The three views must address valid f32 memory for their shapes, and `dst` must not overlap
/// `a` or `b` nor be written by anyone else during the call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn strided(
    m: usize,
    n: usize,
    k: usize,
    dst: Strided<*mut f32>,
    a: Strided<*const f32>,
    b: Strided<*const f32>,
    accumulate: bool,
    scale: f32,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                for c in 0..n {
                    *dst.ptr.add(r * dst.rs + c * dst.cs) = 0.0;
                }
            }
        }
        return;
    }
    let par = if parallel { Parallelism::Rayon(0) } else { Parallelism::None };
    // gemm computes dst = alpha·dst + beta·a·b (alpha read only when read_dst).
    gemm(
        m,
        n,
        k,
        dst.ptr,
        dst.cs as isize,
        dst.rs as isize,
        accumulate,
        a.ptr,
        a.cs as isize,
        a.rs as isize,
        b.ptr,
        b.cs as isize,
        b.rs as isize,
        1.0,
        scale,
        false,
        false,
        false,
        par,
    );
}

/// y[m, n] (+)= x[m, k] · w[n, k]ᵀ — a linear layer's forward pass.
pub fn x_wt(x: &[f32], w: &[f32], y: &mut [f32], m: usize, k: usize, n: usize, accumulate: bool) {
    assert!(x.len() >= m * k && w.len() >= n * k && y.len() >= m * n, "x_wt: buffers too small for {m}×{k}×{n}");
    // SAFETY: lengths checked above; y is a distinct &mut borrow.
    unsafe {
        strided(
            m,
            n,
            k,
            Strided { ptr: y.as_mut_ptr(), rs: n, cs: 1 },
            Strided { ptr: x.as_ptr(), rs: k, cs: 1 },
            Strided { ptr: w.as_ptr(), rs: 1, cs: k },
            accumulate,
            1.0,
            true,
        )
    }
}

/// c[m, n] (+)= a[m, k] · b[k, n] — a linear layer's input gradient dx = dy·W.
pub fn a_b(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize, accumulate: bool) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "a_b: buffers too small for {m}×{k}×{n}");
    // SAFETY: lengths checked above; c is a distinct &mut borrow.
    unsafe {
        strided(
            m,
            n,
            k,
            Strided { ptr: c.as_mut_ptr(), rs: n, cs: 1 },
            Strided { ptr: a.as_ptr(), rs: k, cs: 1 },
            Strided { ptr: b.as_ptr(), rs: n, cs: 1 },
            accumulate,
            1.0,
            true,
        )
    }
}

/// c[m, n] (+)= a[k, m]ᵀ · b[k, n] — a linear layer's weight gradient dW = dyᵀ·x.
pub fn at_b(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize, accumulate: bool) {
    assert!(a.len() >= k * m && b.len() >= k * n && c.len() >= m * n, "at_b: buffers too small for {m}×{k}×{n}");
    // SAFETY: lengths checked above; c is a distinct &mut borrow.
    unsafe {
        strided(
            m,
            n,
            k,
            Strided { ptr: c.as_mut_ptr(), rs: n, cs: 1 },
            Strided { ptr: a.as_ptr(), rs: 1, cs: m },
            Strided { ptr: b.as_ptr(), rs: n, cs: 1 },
            accumulate,
            1.0,
            true,
        )
    }
}
