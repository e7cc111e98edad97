//! `sfn delta A B -o DIR [--select SEL] [--layers R] [--bins 200] [--metric rel|l2] [--strict]`:
//! which modules changed from base A to fine-tuned B, and how (the paper's Delta stethoscope).
//! Flags → `DeltaSpec` → `sfn_scope::delta::run` → the table on stdout, what was written on stderr.

use crate::progress::Bars;
use anyhow::Result;
use sfn_checkpoint::summary::human_bytes;
use sfn_scope::delta::{self, DeltaSpec};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: DeltaSpec,
    /// Directory for delta.json, delta.csv and the figures (created; files in it are replaced).
    #[arg(long, short = 'o')]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let bars = Bars::default();
    let o = delta::run(&args.spec, &args.out, &bars.context())?;
    print!("{}", delta::write::table(&o.result, &o.aggregates));
    let r = &o.result;
    let names: Vec<String> =
        o.files.iter().filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).collect();
    eprintln!(
        "compared {} tensors ({} in {:.2} s, {}/s on {} threads); wrote {}: {}",
        r.tensors.len(),
        human_bytes(r.bytes_read),
        r.elapsed_s,
        human_bytes((r.bytes_read as f64 / r.elapsed_s.max(1e-9)) as u64),
        r.threads,
        o.dir.display(),
        names.join(", ")
    );
    Ok(())
}
