//! One file per subcommand: its clap `Args` and a `run(args) -> anyhow::Result<()>`.
pub mod convert;
pub mod delta;
pub mod destroy;
pub mod eval;
pub mod freeze;
pub mod generate;
pub mod inspect;
pub mod lab;
pub mod merge;
pub mod patch;
pub mod probe;
pub mod serve;
pub mod study;
pub mod sweep;
pub mod trace;
