//! `sfn merge-sweep A B --take o_proj,qkv,mlp,o_proj+norms --task T -o DIR` and
//! `sfn destroy-sweep A --modules q,k,v,o,up,gate,down --methods zero,reinit,remove --layers 5..30
//! --task T -o DIR`: the paper's Tables 1 and 3 in one command each.
//! Flags → spec → `sfn_scope::sweep` → the table on stdout (also in DIR/sweep.md).

use crate::progress::Bars;
use anyhow::Result;
use sfn_scope::sweep::{self, DestroySweepSpec, MergeSweepSpec, SweepOutcome};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct MergeArgs {
    #[command(flatten)]
    spec: MergeSweepSpec,
    /// Output directory: one results directory per variant, and the table.
    #[arg(long, short = 'o')]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    spec: DestroySweepSpec,
    /// Output directory: one results directory per variant, and the table.
    #[arg(long, short = 'o')]
    out: PathBuf,
}

pub fn run_merge(args: MergeArgs) -> Result<()> {
    let bars = Bars::default();
    print_sweep(sweep::merge_sweep(&args.spec, &args.out, &bars.context())?);
    Ok(())
}

pub fn run_destroy(args: DestroyArgs) -> Result<()> {
    let bars = Bars::default();
    print_sweep(sweep::destroy_sweep(&args.spec, &args.out, &bars.context())?);
    Ok(())
}

fn print_sweep(outcome: SweepOutcome) {
    print!("{}", sweep::markdown(outcome.title, &outcome.rows));
    for p in outcome.files {
        eprintln!("wrote {}", p.display());
    }
}
