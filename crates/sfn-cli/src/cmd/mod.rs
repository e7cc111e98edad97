//! One file per subcommand: its clap `Args` and a `run(args) -> anyhow::Result<()>`.
pub mod convert;
pub mod inspect;
