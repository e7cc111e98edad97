//! Choosing where the runtime computes: `cpu`, or `cuda` / `cuda:N` when built with the `cuda`
//! feature; and how many CPU threads it uses (rayon for sfn's kernels, gemm inside candle).

use crate::error::{Error, Result};
use candle_core::Device;

/// `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(spec: &str) -> Result<Device> {
    match spec {
        "cpu" => Ok(Device::Cpu),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let i = match s.strip_prefix("cuda:") {
                Some(n) => n.parse().map_err(|_| Error::input(format!("device `{s}`: `{n}` is not a GPU index")))?,
                None => 0,
            };
            Device::new_cuda(i)
                .map_err(|e| Error::input(format!("device `{s}`: {e} (sfn-model needs the `cuda` feature for GPUs)")))
        }
        other => Err(Error::input(format!("unknown device `{other}` (use cpu, cuda or cuda:N)"))),
    }
}

/// Use `n` CPU threads. Call before any model work: the thread pool starts once.
pub fn set_threads(n: usize) -> Result<()> {
    crate::pool::set_threads(n)?;
    // candle's CPU matmul sizes its parallelism from this variable and, without it, re-reads the
    // CPU topology from /proc on every call.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    Ok(())
}
