//! `sfn merge-sweep A B --take o_proj,qkv,mlp,o_proj+norms --task T -o DIR` and
//! `sfn destroy-sweep A --modules q,k,v,o,up,gate,down --methods zero,reinit,remove --layers 5..30
//! --task T -o DIR`: the paper's Tables 1 and 3 in one command each. Every variant is built as an
//! edit view, evaluated in memory (nothing written but results) into DIR/<variant>/, and the table
//! goes to DIR/sweep.json, DIR/sweep.md (also printed) and DIR/sweep_levels.{svg,png}.

use crate::evaluation::{on_progress, task_bar, EvalArgs, LoadedReference};
use crate::output::command_line;
use crate::runtime::RuntimeArgs;
use anyhow::{Context, Result};
use sfn_checkpoint::edit::check_same_architecture;
use sfn_checkpoint::Checkpoint;
use sfn_eval::EvalJob;
use sfn_scope::sweep::{self, Method, Reinit, Sweep, Variant};
use std::path::PathBuf;

/// What every sweep takes besides its variants.
#[derive(clap::Args)]
pub struct Common {
    /// Task file (JSONL: id, prompt, answer, kind; aime2024's layout is detected).
    #[arg(long, value_name = "FILE")]
    task: PathBuf,
    /// Output directory: one results directory per variant, and the table.
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Seed of everything random: reinit, sampling, bootstrap intervals. Recorded.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Judge without a reference model. By default intact A scores every output (its mean token
    /// loss tells word salad from language, which text statistics alone mostly cannot).
    #[arg(long, conflicts_with = "reference")]
    no_reference: bool,
    #[command(flatten)]
    eval: EvalArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(clap::Args)]
pub struct MergeArgs {
    /// Base checkpoint A.
    a: PathBuf,
    /// Checkpoint B, same architecture as A.
    b: PathBuf,
    /// One variant per comma-separated selector; join terms of one selector with `+`
    /// (`o_proj+norms+embed+lm_head`). Repeatable. A and B themselves are always evaluated.
    #[arg(long, required = true)]
    take: Vec<String>,
    /// Mix instead of take: alpha·A + (1 − alpha)·B.
    #[arg(long)]
    alpha: Option<f64>,
    /// Restrict every selector to these layers (`5..30`).
    #[arg(long)]
    layers: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
pub struct DestroyArgs {
    /// Checkpoint A to damage.
    a: PathBuf,
    /// Modules to destroy, one variant each (selectors: q, k, v, o, gate, up, down, mlp, ...).
    #[arg(long, value_delimiter = ',', default_value = "q,k,v,o,gate,up,down")]
    modules: Vec<String>,
    /// zero, reinit (N(mean, std), seeded) and/or remove (whole layers: one variant).
    #[arg(long, value_delimiter = ',', default_value = "zero,reinit,remove")]
    methods: Vec<String>,
    /// Layers to act on (`5..30` = 5 to 29, as the paper's keys[5:30]).
    #[arg(long)]
    layers: String,
    /// reinit: standard deviation (the paper: 0.02).
    #[arg(long, default_value_t = 0.02)]
    std: f64,
    /// reinit: mean.
    #[arg(long, default_value_t = 0.0)]
    mean: f64,
    #[command(flatten)]
    common: Common,
}

/// Split `--take` values into selectors: commas separate variants, `+` joins terms of one.
fn take_selectors(values: &[String]) -> Vec<String> {
    values.iter().flat_map(|v| v.split(',')).map(|s| s.trim().replace('+', ",")).filter(|s| !s.is_empty()).collect()
}

pub fn run_merge(args: MergeArgs) -> Result<()> {
    let a = Checkpoint::open(&args.a).context("A")?;
    let b = Checkpoint::open(&args.b).context("B")?;
    check_same_architecture(&a, &b)?;
    let takes = take_selectors(&args.take);
    let variants = sweep::merge_variants(&takes, args.layers.as_deref(), args.alpha)?;
    let options = serde_json::json!({"take": takes, "alpha": args.alpha, "layers": args.layers});
    run(&args.common, &a, Some(&b), &variants, "Merge sweep", options)
}

pub fn run_destroy(args: DestroyArgs) -> Result<()> {
    let a = Checkpoint::open(&args.a).context("A")?;
    let methods: Vec<Method> = args.methods.iter().map(|m| Method::parse(m)).collect::<sfn_scope::Result<_>>()?;
    let reinit = Reinit { mean: args.mean, std: args.std, seed: args.common.seed };
    let variants = sweep::destroy_variants(&args.modules, &methods, &args.layers, reinit)?;
    let options = serde_json::json!({
        "modules": args.modules, "methods": args.methods, "layers": args.layers,
        "reinit": {"mean": args.mean, "std": args.std},
    });
    run(&args.common, &a, None, &variants, "Destruction sweep", options)
}

fn run(
    c: &Common,
    a: &Checkpoint,
    b: Option<&Checkpoint>,
    variants: &[Variant],
    title: &str,
    mut options: serde_json::Value,
) -> Result<()> {
    c.runtime.init()?;
    let tasks = c.eval.tasks(&c.task)?;
    let config = c.eval.config(c.seed, !c.no_reference)?;
    options["eval"] = serde_json::to_value(&config)?;
    let tokenizer = sfn_model::Tokenizer::for_source(a).context("tokenizer of A")?;
    let reference = match (&c.eval.reference, c.no_reference) {
        (_, true) => None,
        (Some(path), _) => LoadedReference::open(Some(path), &c.runtime)?,
        (None, _) => Some(LoadedReference::load(a, &c.runtime)?),
    };
    let sweep = Sweep {
        a,
        b,
        job: EvalJob {
            tasks: &tasks,
            out_dir: &c.out,
            config,
            overrides: c.eval.overrides.as_deref(),
            seed: c.seed,
            command_line: command_line(),
            fresh: c.eval.fresh,
        },
        load: c.runtime.load_options()?,
        tokenizer: &tokenizer,
        reference: reference.as_ref().map(|r| r.get()),
        runtime: c.runtime.describe(),
    };
    let bar = task_bar("");
    let rows = sweep::run(
        &sweep,
        variants,
        &mut |i, n, name| {
            bar.set_message(format!("[{}/{n}] {name}", i + 1));
            bar.set_position(0);
        },
        &mut on_progress(&bar),
    )?;
    bar.finish_and_clear();
    let provenance = sweep::provenance(std::env::args().collect(), a, b, options, c.seed);
    let written = sweep::write(&c.out, title, &rows, &provenance)?;
    print!("{}", sweep::markdown(title, &rows));
    for p in written {
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
