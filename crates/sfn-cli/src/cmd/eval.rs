//! `sfn eval MODEL --task FILE -o DIR`: generate on every task with the model, then grade.
//! `sfn eval --grade OUTPUTS.jsonl --task FILE -o DIR`: grade outputs recorded elsewhere (lines
//! `{"id", "output"}`).
//! Both write extracted answers, correctness and the I-IV level with its signals per sample
//! (DIR/samples.jsonl, appended as tasks finish and resumed after an interruption) and
//! DIR/summary.json with accuracy, its bootstrap 95% interval, mean length and level counts; a
//! table on stdout.
//! `sfn eval --make-tasks arithmetic|conversation -o FILE`: write a built-in, seeded task set.

use crate::evaluation::{evaluate_source, on_progress, report, task_bar, EvalArgs, LoadedReference};
use crate::output::command_line;
use crate::runtime::RuntimeArgs;
use anyhow::{bail, Context, Result};
use sfn_checkpoint::writer::absolute;
use sfn_checkpoint::Checkpoint;
use sfn_eval::synth::{arithmetic_tasks, conversation_tasks, ArithmeticSpec, ConversationSpec};
use sfn_eval::task::write_tasks;
use sfn_eval::{grade_recorded, EvalJob, ModelRunner, ReferenceScorer};
use std::path::PathBuf;

#[derive(Clone, Copy, clap::ValueEnum)]
enum MakeTasks {
    Arithmetic,
    Conversation,
}

#[derive(clap::Args)]
pub struct Args {
    /// The model to evaluate: checkpoint directory or .gguf file.
    #[arg(conflicts_with_all = ["grade", "make_tasks"], required_unless_present_any = ["grade", "make_tasks"])]
    model: Option<PathBuf>,
    /// Instead of running a model, grade recorded outputs: JSONL lines {"id": ..., "output": ...};
    /// repeated ids are several samples. A run's own samples.jsonl works too (to re-judge).
    #[arg(long, value_name = "OUTPUTS.jsonl", conflicts_with = "make_tasks")]
    grade: Option<PathBuf>,
    /// Task file (JSONL: id, prompt, answer, kind).
    #[arg(long, value_name = "FILE", required_unless_present = "make_tasks")]
    task: Option<PathBuf>,
    /// Results directory (with --make-tasks: the task file to write).
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Seed of sampling and of the bootstrap interval (with --make-tasks: of the generator). Recorded.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write a built-in task set instead of evaluating.
    #[arg(long, value_enum, value_name = "KIND")]
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
    #[command(flatten)]
    eval: EvalArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

pub fn run(args: Args) -> Result<()> {
    if let Some(kind) = args.make_tasks {
        return make_tasks(&args, kind);
    }
    let task_path = args.task.as_ref().context("--task FILE is required")?;
    let tasks = args.eval.tasks(task_path)?;
    let job = EvalJob {
        tasks: &tasks,
        out_dir: &args.out,
        config: args.eval.config(args.seed, args.eval.reference.is_some())?,
        overrides: args.eval.overrides.as_deref(),
        seed: args.seed,
        command_line: command_line(),
        fresh: args.eval.fresh,
    };
    let outcome = match (&args.grade, &args.model) {
        (Some(outputs), _) => {
            args.runtime.init()?;
            let reference = LoadedReference::open(args.eval.reference.as_deref(), &args.runtime)?;
            let mut scorer = reference.as_ref().map(|r| {
                let r = r.get();
                ModelRunner::new(r.model, r.tokenizer, r.describe)
            });
            let bar = task_bar("grading");
            let scorer = scorer.as_mut().map(|s| s as &mut dyn ReferenceScorer);
            let outcome = grade_recorded(&job, outputs, scorer, &mut on_progress(&bar))
                .with_context(|| format!("grading {} into {}", outputs.display(), args.out.display()))?;
            bar.finish_and_clear();
            outcome
        }
        (None, Some(model)) => {
            args.runtime.init()?;
            let ck = Checkpoint::open(model)?;
            let describe = serde_json::json!({"model": absolute(model), "runtime": args.runtime.describe()});
            evaluate_source(&job, &ck, &ck, describe, &args.eval, &args.runtime)?
        }
        (None, None) => bail!("give a MODEL to evaluate or --grade OUTPUTS.jsonl"),
    };
    report(&outcome, &args.out, args.eval.json)
}

fn make_tasks(args: &Args, kind: MakeTasks) -> Result<()> {
    if args.out.exists() && !args.eval.fresh {
        bail!("{} exists (use --fresh to replace it)", args.out.display());
    }
    let tasks = match kind {
        MakeTasks::Arithmetic => arithmetic_tasks(&ArithmeticSpec {
            count: args.count,
            depth: args.depth,
            size: args.size,
            seed: args.seed,
        })?,
        MakeTasks::Conversation => conversation_tasks(&ConversationSpec { count: args.count, seed: args.seed }),
    };
    write_tasks(&args.out, &tasks)?;
    eprintln!("wrote {} ({} tasks, seed {})", args.out.display(), tasks.len(), args.seed);
    Ok(())
}
