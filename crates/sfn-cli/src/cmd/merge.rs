//! `sfn merge A B --take SEL [--alpha X] [--layers R] -o OUT`: A with the selected modules taken
//! from B (or mixed, alpha·A + (1−alpha)·B), written as a Hugging Face checkpoint, and/or
//! evaluated in memory with `--eval TASK --results DIR` (no checkpoint written).
//! Flags → `MergeSpec` → `sfn_scope::edit::merge` → what was written, and the evaluation table.

use crate::print::{print_edit, print_eval};
use crate::progress::Bars;
use anyhow::Result;
use sfn_scope::edit::{self, MergeSpec};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: MergeSpec,
    /// With --eval: print summary.json on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let bars = Bars::default();
    let outcome = edit::merge(&args.spec, &bars.context())?;
    print_edit(&outcome);
    if let (Some(eval), Some(dir)) = (&outcome.eval, &args.spec.eval.results) {
        print_eval(eval, dir, args.json)?;
    }
    Ok(())
}
