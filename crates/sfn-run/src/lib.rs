//! sfn-run: how sfn records what it did, so that every result can be traced, resumed and read back.
//!
//! Every command of sfn is a spec run into a run directory. This crate is the one place that
//! writes them (DESIGN.md: "one module writes run directories"):
//! - [`atomic`]: `write_atomic`, the only way a results file reaches its final name (a temporary
//!   file beside it, synced, renamed over it: readers see the old file or the new one, never half);
//! - [`fingerprint`]: size and SHA-256 of an input file (sampled for files too large to hash whole);
//! - [`provenance`]: who ran what on which inputs, with which spec and seed, from when to when;
//! - [`rundir`]: the run directory and its `run.json` manifest (kind, spec, status, files);
//! - [`rng`]: the seeded SplitMix64 generator every random choice in sfn draws from;
//! - [`progress`]: how long-running library calls report progress without printing;
//! - [`memory`]: the peak resident memory a run reports.
//!
//! It sits below every other sfn crate and depends on none of them.

pub mod atomic;
pub mod error;
pub mod fingerprint;
pub mod memory;
pub mod progress;
pub mod provenance;
pub mod rng;
pub mod rundir;

pub use atomic::write_atomic;
pub use error::{Error, Result};
pub use fingerprint::Fingerprint;
pub use progress::{Context, Progress, Silent, Unit};
pub use provenance::{Input, Provenance};
pub use rng::SplitMix64;
pub use rundir::{Manifest, RunDir, Status, RUN_FILE};
