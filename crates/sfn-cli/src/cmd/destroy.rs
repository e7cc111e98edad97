//! `sfn destroy A --select SEL --layers R --method zero|reinit|remove|scale -o OUT`: A with the
//! selected modules zeroed, re-initialised (N(mean, std), seeded; the paper uses std 0.02), scaled,
//! or whole layers removed, written as a Hugging Face checkpoint and/or evaluated in memory with
//! `--eval TASK --results DIR`.

use crate::evaluation::InMemoryEval;
use crate::output::{write_view, OutputArgs};
use anyhow::{bail, Context, Result};
use sfn_checkpoint::edit::{Edit, EditPlan, EditView, Rule};
use sfn_checkpoint::selector::{parse_layer_ranges, Selector};
use sfn_checkpoint::Checkpoint;
use std::path::PathBuf;

#[derive(Clone, Copy, clap::ValueEnum)]
enum Method {
    Zero,
    Reinit,
    Remove,
    Scale,
}

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint A to damage.
    a: PathBuf,
    /// Modules to destroy, as a selector (`o_proj`, `mlp`, `attn`, ...). With `--method remove`,
    /// omit it (whole layers go).
    #[arg(long)]
    select: Option<String>,
    /// Layers to act on (`5..30` = 5 to 29).
    #[arg(long)]
    layers: Option<String>,
    #[arg(long, value_enum)]
    method: Method,
    /// reinit: standard deviation.
    #[arg(long, default_value_t = 0.02)]
    std: f64,
    /// reinit: mean.
    #[arg(long, default_value_t = 0.0)]
    mean: f64,
    /// Seed of reinit (recorded in the model card) and, with --eval, of sampling and the bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// scale: factor.
    #[arg(long)]
    factor: Option<f64>,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    in_memory: InMemoryEval,
}

pub fn run(args: Args) -> Result<()> {
    let a = Checkpoint::open(&args.a)?;
    let plan = match args.method {
        Method::Remove => {
            if args.select.as_deref().is_some_and(|s| s != "all") {
                bail!("--method remove drops whole layers: leave out --select (or use --select all) and give --layers");
            }
            let layers = args.layers.as_deref().context("--method remove needs --layers (e.g. --layers 5..30)")?;
            let remove = parse_layer_ranges(layers)?.into_iter().flatten().collect();
            EditPlan { rules: vec![], remove_layers: remove }
        }
        method => {
            let sel = args.select.as_deref().context("--select is required (e.g. --select o_proj)")?;
            let mut selector = Selector::parse(sel)?;
            if let Some(layers) = &args.layers {
                selector = selector.with_layers(layers)?;
            }
            let edit = match method {
                Method::Zero => Edit::Zero,
                Method::Reinit => Edit::Reinit { mean: args.mean, std: args.std, seed: args.seed },
                Method::Scale => Edit::Scale { factor: args.factor.context("--method scale needs --factor")? },
                Method::Remove => unreachable!("handled above"),
            };
            EditPlan { rules: vec![Rule::new(selector, edit)], ..Default::default() }
        }
    };
    let view = EditView::new(&a, None, plan)?;
    if args.output.out.is_none() && !args.in_memory.requested() {
        bail!(
            "give -o OUT to write the edited checkpoint, --eval TASK --results DIR to evaluate it in memory, or both"
        );
    }
    if args.output.out.is_some() {
        write_view(&view, &args.output, "Destroyed checkpoint", false)?;
    }
    args.in_memory.run(&view, &a, args.seed)
}
