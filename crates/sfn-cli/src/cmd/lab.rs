//! `sfn lab [--quick] [--seed S] [-o DIR]`: the built-in default. Trains (or takes from the cache)
//! a base/reasoning pair on the CPU and runs every stethoscope on it; prints the findings and
//! writes DIR/summary.json, DIR/summary.md, every run directory of the study and the report
//! DIR/index.html. Flags → `LabSpec` → `sfn_lab::run` → the report → the findings on stdout.

use crate::progress::Bars;
use anyhow::Result;
use sfn_lab::LabSpec;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: LabSpec,
    /// Output directory.
    #[arg(long, short = 'o', default_value = "sfn-lab")]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let bars = Bars::default();
    let s = sfn_lab::run(&args.spec, &args.out, &sfn_lab::cache_dir(), &bars.context())?;
    println!("Findings (sfn lab{}, seed {}):\n", if s.quick { " --quick" } else { "" }, s.seed);
    for f in &s.findings {
        println!("- {}: {}\n  {}\n", f.verdict.word().to_uppercase(), f.claim, f.evidence);
    }
    println!(
        "{} variants evaluated; training {:.0} s{}, study {:.0} s, {:.0} s in all.",
        s.variants.len(),
        s.pair_seconds,
        if s.pair.cached { " (cached pair)" } else { "" },
        s.study_seconds,
        s.total_seconds
    );
    let report = sfn_study::report::write(&args.out)?;
    eprintln!("wrote {} and {}", args.out.join(sfn_lab::SUMMARY_MD).display(), report.display());
    Ok(())
}
