//! sfn-study: a whole investigation from one file, and one page to read it.
//!
//! - `file`: study files (TOML; each section the serde spec of a command), checked whole before
//!   anything runs, errors naming file, line and key;
//! - `run`: runs a study's steps through the commands' library entry points into one results
//!   directory, skipping steps whose run.json says complete for the same spec (resume), redoing
//!   steps whose spec changed;
//! - `report`: `sfn report DIR`, a static, self-contained index.html built from the results files
//!   of any sfn run directory alone (a study, the lab, a single sweep, delta or evaluation).

pub mod error;
pub mod file;
pub mod report;
pub mod run;

pub use error::{Error, Result};
pub use file::{Spec, Step, Study, StudyFile};
