//! sfn-scope: the stethoscopes — instruments that examine checkpoints and say which modules carry
//! which ability. One folder per stethoscope, each with its spec (serde; with the `cli` feature
//! also the command's flags) and an entry point that runs the spec into a run directory:
//! - `delta/`: how much and how every tensor changed from A to B (`sfn delta`);
//! - `edit/`: one merge or destruction, written as a checkpoint and/or evaluated in memory
//!   (`sfn merge`, `sfn destroy`);
//! - `sweep/`: merge and destruction sweeps, one variant per module, the paper's Tables 1 and 3
//!   (`sfn merge-sweep`, `sfn destroy-sweep`);
//! - `freeze/`: fine-tuning with only chosen modules trainable, and the paper's Table 2
//!   (`sfn freeze`, `sfn freeze-sweep`);
//! - `probe/`: layer-wise activation norms of a model, and where A's and B's activations part
//!   (`sfn probe`); `patch/`: cross-model activation patching, which site carries B's behaviour
//!   (`sfn patch`); `inputs` is what both run the models on.
//!
//! Library only: no printing (callers pass a `sfn_run::Progress`), typed errors.

pub mod delta;
pub mod edit;
pub mod error;
pub mod figure;
pub mod freeze;
pub mod inputs;
pub mod patch;
pub mod probe;
pub mod sweep;

pub use error::{Error, Result};
