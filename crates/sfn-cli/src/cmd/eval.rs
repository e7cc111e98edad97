//! `sfn eval MODEL --task FILE -o DIR`: generate on every task with the model, then grade.
//! `sfn eval --grade OUTPUTS.jsonl --task FILE -o DIR`: grade outputs recorded elsewhere (lines
//! `{"id", "output"}`).
//! Both write extracted answers, correctness and the I-IV level with its signals per sample
//! (DIR/samples.jsonl, appended as tasks finish and resumed after an interruption) and
//! DIR/summary.json with accuracy, its bootstrap 95% interval, mean length and level counts; a
//! table on stdout. Flags → `EvalSpec` → `sfn_eval::spec::run` → the table.
//! `sfn eval --make-tasks arithmetic|conversation -o FILE`: write a built-in, seeded task set.

use crate::print::print_eval;
use crate::progress::Bars;
use anyhow::{bail, Result};
use clap::ArgGroup;
use sfn_eval::synth::{arithmetic_tasks, arithmetic_worked, conversation_tasks, ArithmeticSpec, ConversationSpec, Ops};
use sfn_eval::task::write_tasks;
use sfn_eval::EvalSpec;
use std::path::PathBuf;

#[derive(Clone, Copy, clap::ValueEnum)]
enum MakeTasks {
    Arithmetic,
    Conversation,
}

#[derive(clap::Args)]
#[command(group(ArgGroup::new("source").args(["model", "grade", "make_tasks", "url"]).required(true)))]
#[command(group(ArgGroup::new("tasks").args(["task", "make_tasks"]).required(true)))]
pub struct Args {
    #[command(flatten)]
    spec: EvalSpec,
    /// Results directory (with --make-tasks: the task file to write).
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Write a built-in task set instead of evaluating (seeded by --seed).
    #[arg(long, value_enum, value_name = "KIND", conflicts_with_all = ["model", "grade"])]
    make_tasks: Option<MakeTasks>,
    /// --make-tasks: how many tasks.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// --make-tasks arithmetic: steps per problem.
    #[arg(long, default_value_t = 3)]
    depth: usize,
    /// --make-tasks arithmetic: largest operand.
    #[arg(long, default_value_t = 20)]
    size: u64,
    /// --make-tasks arithmetic: which operations steps use (all, or add-sub only).
    #[arg(long, value_enum, default_value = "all")]
    ops: Ops,
    /// --make-tasks arithmetic: add each problem's worked solution as `completion` (steps with
    /// their equations, ending in \boxed{}): a training file for `sfn freeze` that is also a task file.
    #[arg(long, requires = "make_tasks")]
    worked: bool,
    /// Print summary.json on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    if let Some(kind) = args.make_tasks {
        return make_tasks(&args, kind);
    }
    let bars = Bars::default();
    let outcome = sfn_eval::spec::run(&args.spec, &args.out, &bars.context())?;
    print_eval(&outcome, &args.out, args.json)
}

fn make_tasks(args: &Args, kind: MakeTasks) -> Result<()> {
    if args.out.exists() && !args.spec.settings.fresh {
        bail!("{} exists (use --fresh to replace it)", args.out.display());
    }
    let seed = args.spec.seed;
    let arithmetic = ArithmeticSpec { count: args.count, depth: args.depth, size: args.size, seed, ops: args.ops };
    match kind {
        MakeTasks::Arithmetic if args.worked => write_tasks(&args.out, &arithmetic_worked(&arithmetic)?)?,
        MakeTasks::Arithmetic => write_tasks(&args.out, &arithmetic_tasks(&arithmetic)?)?,
        MakeTasks::Conversation if args.worked => bail!("--worked: conversation tasks have no worked solutions"),
        MakeTasks::Conversation => {
            write_tasks(&args.out, &conversation_tasks(&ConversationSpec { count: args.count, seed }))?
        }
    }
    eprintln!("wrote {} ({} tasks, seed {seed})", args.out.display(), args.count);
    Ok(())
}
