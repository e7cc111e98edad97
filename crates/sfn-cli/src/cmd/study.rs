//! `sfn study FILE [-o DIR] [--force]` and `sfn report DIR`.
//! Study: the file is checked whole (errors name file, line and key) → `sfn_study::run::run` →
//! what each step did. Report: `sfn_study::report::write` → the page's path.

use crate::progress::Bars;
use anyhow::Result;
use sfn_study::run::Done;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The study file (TOML): A, B and one section per stethoscope, each the spec of its command.
    file: PathBuf,
    /// Results directory (default: the study file's name without .toml, beside it).
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
    /// Redo every step, even those whose results are complete for the same settings.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> Result<()> {
    let study = sfn_study::Study::open(&args.file)?;
    let out = args.out.unwrap_or_else(|| args.file.with_extension(""));
    let bars = Bars::default();
    let outcome = sfn_study::run::run(&study, &out, args.force, &bars.context())?;
    for (dir, done) in &outcome.steps {
        let what = match done {
            Done::Ran => "ran",
            Done::Redone => "settings changed: ran again",
            Done::UpToDate => "complete: skipped",
        };
        println!("{dir}: {what}");
    }
    eprintln!("wrote {}", outcome.report.display());
    Ok(())
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// An sfn results directory: of a study, the lab, or any single command (`-o` of delta, a sweep, freeze, eval).
    dir: PathBuf,
}

pub fn report(args: ReportArgs) -> Result<()> {
    let path = sfn_study::report::write(&args.dir)?;
    println!("{}", path.display());
    Ok(())
}
