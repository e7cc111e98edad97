//! `sfn eval --grade OUTPUTS.jsonl --task FILE -o DIR`: grade recorded outputs (lines
//! `{"id", "output"}`) against a task file: extracted answers, correctness, the I-IV level with its
//! signals per sample (DIR/samples.jsonl, resumable), and DIR/summary.json with accuracy, its
//! bootstrap 95% interval, mean length and level counts; a table on stdout.
//! `sfn eval --make-tasks arithmetic|conversation -o FILE`: write a built-in, seeded task set.
//! Running a model on the tasks arrives with the runtime (sfn-model), through the same library.

use crate::output::command_line;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sfn_eval::prompt::load_few_shot;
use sfn_eval::synth::{arithmetic_tasks, conversation_tasks, ArithmeticSpec, ConversationSpec};
use sfn_eval::task::write_tasks;
use sfn_eval::{
    grade_recorded, EvalConfig, FieldMap, GradeJob, LoadOptions, PromptConfig, PromptMode, TaskKind, TaskSet,
};
use std::path::PathBuf;

#[derive(Clone, Copy, clap::ValueEnum)]
enum KindArg {
    Reasoning,
    Conversation,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Generate,
    Chat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum MakeTasks {
    Arithmetic,
    Conversation,
}

#[derive(clap::Args)]
pub struct Args {
    /// Recorded outputs to grade: JSONL lines {"id": ..., "output": ...}; repeated ids are several
    /// samples. A run's own samples.jsonl works too (to re-judge).
    #[arg(long, value_name = "OUTPUTS.jsonl", conflicts_with = "make_tasks")]
    grade: Option<PathBuf>,
    /// Task file (JSONL: id, prompt, answer, kind). Known layouts such as aime2024's
    /// index/origin_prompt/gold_answer are detected.
    #[arg(long, value_name = "FILE")]
    task: Option<PathBuf>,
    /// Name the input field of a task field, e.g. `--field prompt=origin_prompt` (repeatable;
    /// `--field id=@line` numbers the lines).
    #[arg(long = "field", value_name = "TASK=INPUT")]
    fields: Vec<String>,
    /// Kind of tasks without a kind field (default: reasoning when there is an answer).
    #[arg(long, value_enum)]
    kind: Option<KindArg>,
    /// Results directory (with --make-tasks: the task file to write).
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// How the outputs were prompted (recorded): generate (raw text + suffix) or chat (messages).
    #[arg(long, value_enum, default_value = "generate")]
    mode: ModeArg,
    /// Text after each prompt. Default: the step-by-step \boxed{} instruction for reasoning tasks;
    /// "" for none.
    #[arg(long)]
    suffix: Option<String>,
    /// Chat mode: the system message.
    #[arg(long)]
    system: Option<String>,
    /// Few-shot examples: JSONL lines {"prompt": ..., "response": ...}.
    #[arg(long, value_name = "FILE")]
    few_shot: Option<PathBuf>,
    /// Manual levels that win over the judge: {"ID": "III", "ID#k": "IV"} or JSONL {"id", "level"}.
    #[arg(long, value_name = "FILE")]
    overrides: Option<PathBuf>,
    /// Seed of the bootstrap interval (with --make-tasks: of the generator). Recorded.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Discard results already in the directory instead of resuming (with --make-tasks: replace
    /// an existing task file).
    #[arg(long)]
    fresh: bool,
    /// Print summary.json on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Write a built-in task set instead of grading.
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
}

pub fn run(args: Args) -> Result<()> {
    if let Some(kind) = args.make_tasks {
        return make_tasks(&args, kind);
    }
    let Some(outputs) = &args.grade else {
        bail!("nothing to do: give --grade OUTPUTS.jsonl --task FILE (running a model arrives with the runtime), or --make-tasks");
    };
    let task_path = args.task.as_ref().context("--grade needs --task FILE (the tasks the outputs answer)")?;
    let fields = FieldMap::parse_assignments(&args.fields)?;
    let default_kind = args.kind.map(|k| match k {
        KindArg::Reasoning => TaskKind::Reasoning,
        KindArg::Conversation => TaskKind::Conversation,
    });
    let tasks = TaskSet::load(task_path, &LoadOptions { fields, default_kind })?;
    let few_shot = match &args.few_shot {
        Some(p) => load_few_shot(p)?,
        None => vec![],
    };
    let config = EvalConfig {
        prompt: PromptConfig {
            mode: match args.mode {
                ModeArg::Generate => PromptMode::Generate,
                ModeArg::Chat => PromptMode::Chat,
            },
            suffix: args.suffix.clone(),
            system: args.system.clone(),
            few_shot,
        },
        ..Default::default()
    };
    let job = GradeJob {
        tasks: &tasks,
        outputs,
        out_dir: &args.out,
        config,
        overrides: args.overrides.as_deref(),
        seed: args.seed,
        command_line: command_line(),
        fresh: args.fresh,
    };

    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} tasks eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message("grading");
    let outcome = grade_recorded(&job, &mut |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    })
    .with_context(|| format!("grading {} into {}", outputs.display(), args.out.display()))?;
    bar.finish_and_clear();

    if outcome.resume.kept_tasks > 0 || outcome.resume.dropped_lines > 0 {
        eprintln!(
            "resumed: {} task(s) already graded, {} incomplete line(s) dropped",
            outcome.resume.kept_tasks, outcome.resume.dropped_lines
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome.summary)?);
    } else {
        print!("{}", outcome.summary.table());
        for note in &outcome.summary.notes {
            println!("note: {note}");
        }
    }
    eprintln!(
        "wrote {} and {}",
        args.out.join(sfn_eval::results::SAMPLES_FILE).display(),
        outcome.summary_path.display()
    );
    Ok(())
}

fn make_tasks(args: &Args, kind: MakeTasks) -> Result<()> {
    if args.out.exists() && !args.fresh {
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
