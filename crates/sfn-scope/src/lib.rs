//! sfn-scope: the stethoscopes — instruments that examine checkpoints and say which modules
//! carry which ability. Here: `delta` (how much and how every tensor changed from A to B), with
//! its statistics (`stats`), the bimodality measure of its histograms (`bimodality`) and the
//! per-module/per-layer aggregation and verdict (`aggregate`); `sweep`, the merge and
//! destruction stethoscopes run over many variants, each evaluated in memory. `output` holds
//! what every stethoscope's result files share: provenance and atomic writing.
//!
//! Library only: no printing, no progress bars (callers pass a progress callback), typed errors.

pub mod aggregate;
pub mod bimodality;
pub mod delta;
pub mod error;
pub mod output;
pub mod stats;
pub mod sweep;

pub use error::{Error, Result};
