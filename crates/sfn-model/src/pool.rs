//! The CPU thread pool the runtime computes in.
//!
//! A forward pass runs *inside* one rayon pool (`install`), so each of its ~100–200 parallel
//! matmuls per token is split by work stealing among threads already in the pool: the thread that
//! starts a matmul works on it itself and idle threads join in. Nothing waits for a thread that the
//! OS has not scheduled (which spin-barrier pools do, and which makes them collapse when the machine
//! is shared). candle's own CPU ops called inside also use this pool.

use crate::error::{Error, Result};
use std::sync::OnceLock;

static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
static THREADS: OnceLock<usize> = OnceLock::new();

fn default_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn pool() -> &'static rayon::ThreadPool {
    POOL.get_or_init(|| {
        let n = *THREADS.get_or_init(default_threads);
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("sfn-{i}"))
            .build()
            .expect("cannot start the sfn thread pool")
    })
}

/// Threads the pool has (or will have).
pub fn threads() -> usize {
    *THREADS.get_or_init(default_threads)
}

/// Fix the number of threads; only before the pool first runs anything.
pub fn set_threads(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::input("the thread count must be at least 1"));
    }
    if THREADS.set(n).is_err() && threads() != n {
        return Err(Error::input(format!("the thread pool already runs with {} threads", threads())));
    }
    Ok(())
}

/// Run `f` on the pool (parallel work inside it is shared among the pool's threads).
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}
