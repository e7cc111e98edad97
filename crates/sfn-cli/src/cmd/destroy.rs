//! `sfn destroy A --select SEL --layers R --method zero|reinit|remove|scale -o OUT`: A with the
//! selected modules zeroed, re-initialised (N(mean, std), seeded; the paper uses std 0.02), scaled,
//! or whole layers removed, written as a Hugging Face checkpoint and/or evaluated in memory with
//! `--eval TASK --results DIR`.
//! Flags → `DestroySpec` → `sfn_scope::edit::destroy` → what was written, and the evaluation table.

use crate::print::{print_edit, print_eval};
use crate::progress::Bars;
use anyhow::Result;
use sfn_scope::edit::{self, DestroySpec};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: DestroySpec,
    /// With --eval: print summary.json on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let bars = Bars::default();
    let outcome = edit::destroy(&args.spec, &bars.context())?;
    print_edit(&outcome);
    if let (Some(eval), Some(dir)) = (&outcome.eval, &args.spec.eval.results) {
        print_eval(eval, dir, args.json)?;
    }
    Ok(())
}
