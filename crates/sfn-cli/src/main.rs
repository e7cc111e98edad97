//! The `sfn` binary: parses the command line, runs one subcommand, maps errors to exit codes.
//! Exit codes: 0 success, 1 failure (one clear line on stderr), 2 usage error (clap's).
//! All real work lives in the library crates; each subcommand is a thin file in `cmd/`.

mod cmd;
mod print;
mod progress;

use clap::{Parser, Subcommand};

/// Stethoscope for Networks: find out which parts of a language model carry which ability.
///
/// MODEL arguments are a Hugging Face checkpoint directory (config.json + safetensors, sharded or
/// not), a lone .safetensors file, or a .gguf file.
#[derive(Parser)]
#[command(name = "sfn", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The built-in default: train a base/reasoning pair on the CPU and run every stethoscope on it.
    Lab(cmd::lab::Args),
    /// Run a study file (A, B and the stethoscopes with their settings) into one resumable results directory, then its report.
    Study(cmd::study::Args),
    /// Build DIR/index.html, a static report, from the results files of a study, the lab or any command.
    Report(cmd::study::ReportArgs),
    /// Describe a checkpoint: architecture, dtypes, parameters per module kind and layer.
    Inspect(cmd::inspect::Args),
    /// Rewrite a checkpoint (HF, safetensors, GGUF) as a Hugging Face safetensors directory.
    Convert(cmd::convert::Args),
    /// Delta stethoscope: which modules changed from A to B (norms, histograms, bimodality, figures).
    Delta(cmd::delta::Args),
    /// Merge stethoscope: A with chosen modules taken from (or mixed with) B, written as a checkpoint.
    Merge(cmd::merge::Args),
    /// Destruction stethoscope: zero, re-initialise, scale or remove modules/layers of A.
    Destroy(cmd::destroy::Args),
    /// Merge sweep (paper Table 1): evaluate A, B and A with each selector taken from B, in memory.
    MergeSweep(cmd::sweep::MergeArgs),
    /// Destruction sweep (paper Table 3): evaluate A with each module × method over a layer range.
    DestroySweep(cmd::sweep::DestroyArgs),
    /// Freeze stethoscope: fine-tune A with only the chosen modules trainable; writes a checkpoint.
    Freeze(cmd::freeze::Args),
    /// Freeze sweep (paper Table 2): one fine-tuning run per trainable set (F1..F4), evaluated.
    FreezeSweep(cmd::freeze::SweepArgs),
    /// Probe: layer-wise L2 norms of resid_post, attn_out and mlp_out, and with B where A's and B's activations part.
    Probe(cmd::probe::Args),
    /// Activation patching: run A with B's activation at each layer and site (and B with A's); which site carries B's behaviour.
    Patch(cmd::patch::Args),
    /// Evaluate a model (or grade recorded outputs) on a task file: accuracy with a 95% CI, output levels I-IV.
    Eval(cmd::eval::Args),
    /// Continue prompts with a model (HF or GGUF), streaming text; --chat uses its chat template.
    Generate(cmd::generate::Args),
    /// Serve the model, or A with modules merged from B or destroyed (in memory), over the OpenAI API.
    Serve(cmd::serve::Args),
    /// Run one forward pass and save logits and chosen hook points (resid_post, attn_out, ...) as safetensors.
    Trace(cmd::trace::Args),
}

fn main() {
    // Die quietly on a closed pipe (`sfn inspect M | head`) like other Unix tools, instead of
    // Rust's default of ignoring SIGPIPE and panicking on the failed write.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Lab(args) => cmd::lab::run(args),
        Command::Study(args) => cmd::study::run(args),
        Command::Report(args) => cmd::study::report(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Convert(args) => cmd::convert::run(args),
        Command::Delta(args) => cmd::delta::run(args),
        Command::Merge(args) => cmd::merge::run(args),
        Command::Destroy(args) => cmd::destroy::run(args),
        Command::MergeSweep(args) => cmd::sweep::run_merge(args),
        Command::DestroySweep(args) => cmd::sweep::run_destroy(args),
        Command::Freeze(args) => cmd::freeze::run(args),
        Command::FreezeSweep(args) => cmd::freeze::run_sweep(args),
        Command::Probe(args) => cmd::probe::run(args),
        Command::Patch(args) => cmd::patch::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Generate(args) => cmd::generate::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Trace(args) => cmd::trace::run(args),
    };
    if let Err(err) = result {
        // One line: the outermost context first, then each cause.
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
