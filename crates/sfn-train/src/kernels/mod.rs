//! The compute kernels of a training step, llm.c style: explicit loops over preallocated f32
//! buffers, no autograd graph. `matmul` (gemm crate) does the matrix products, `attention` the
//! per-head attention, `ops` everything else over whole buffers on top of the single-row kernels in
//! `simd`; `reference` (tests only) holds scalar versions and the tests that compare them.

#[macro_use]
pub mod simd;
pub mod attention;
pub mod matmul;
pub mod ops;
#[cfg(test)]
mod reference;
