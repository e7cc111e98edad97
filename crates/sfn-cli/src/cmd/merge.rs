//! `sfn merge A B --take SEL [--alpha X] [--layers R] -o OUT`: A with the selected modules taken
//! from B (or mixed, alpha·A + (1−alpha)·B), written as a Hugging Face checkpoint, and/or
//! evaluated in memory with `--eval TASK --results DIR` (no checkpoint written).

use crate::evaluation::InMemoryEval;
use crate::output::{write_view, OutputArgs};
use anyhow::{bail, Context, Result};
use sfn_checkpoint::edit::{Edit, EditPlan, EditView, Rule};
use sfn_checkpoint::selector::Selector;
use sfn_checkpoint::Checkpoint;
use std::path::PathBuf;

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum Side {
    A,
    B,
}

#[derive(clap::Args)]
pub struct Args {
    /// Base checkpoint A (everything not taken comes from here).
    a: PathBuf,
    /// Checkpoint B, same architecture as A.
    b: PathBuf,
    /// Modules to take from B, as a selector (`o_proj`, `qkv`, `layers[5..30].mlp`, ...).
    #[arg(long)]
    take: String,
    /// Mix instead of take: alpha·A + (1 − alpha)·B for the selected modules (0 = B, 1 = A).
    #[arg(long)]
    alpha: Option<f64>,
    /// Restrict every selector term to these layers (`5..30`, `0..=3,10`).
    #[arg(long)]
    layers: Option<String>,
    /// Where config.json, the tokenizer (and chat template) and the generation config come from
    /// (also the tokenizer used by --eval).
    #[arg(long, value_enum, default_value = "a")]
    files_from: Side,
    /// Seed of sampling and of the bootstrap interval (with --eval). Recorded.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    in_memory: InMemoryEval,
}

pub fn run(args: Args) -> Result<()> {
    let a = Checkpoint::open(&args.a).context("A")?;
    let b = Checkpoint::open(&args.b).context("B")?;
    let mut selector = Selector::parse(&args.take)?;
    if let Some(layers) = &args.layers {
        selector = selector.with_layers(layers)?;
    }
    let edit = match args.alpha {
        None => Edit::TakeB,
        Some(alpha) if (0.0..=1.0).contains(&alpha) => Edit::Mix { alpha },
        Some(alpha) => bail!("--alpha {alpha}: must lie in [0, 1]"),
    };
    let plan = EditPlan { rules: vec![Rule::new(selector, edit)], ..Default::default() };
    let view = EditView::new(&a, Some(&b), plan)?;
    if args.output.out.is_none() && !args.in_memory.requested() {
        bail!(
            "give -o OUT to write the edited checkpoint, --eval TASK --results DIR to evaluate it in memory, or both"
        );
    }
    if args.output.out.is_some() {
        write_view(&view, &args.output, "Merged checkpoint", args.files_from == Side::B)?;
    }
    args.in_memory.run(&view, if args.files_from == Side::B { &b } else { &a }, args.seed)
}
