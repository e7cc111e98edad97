//! `sfn freeze A --data D --train SEL [--layers R] [--epochs E | --max-steps N] [--lr …] -o OUT`:
//! fine-tune A with only the selected modules trainable (the paper's Freeze stethoscope); OUT ends
//! up a Hugging Face checkpoint with train_log.jsonl, train_summary.json and the loss curve.
//! `sfn freeze-sweep A --data D --task T [--sets F1,F2,F3,F4] -o DIR`: one run per set, Table 2.
//! Flags → spec → `sfn_scope::freeze` → a summary on stdout.

use crate::progress::Bars;
use anyhow::Result;
use sfn_scope::freeze::{self, sweep, FreezeSpec};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: FreezeSpec,
    /// Output directory: the run (log, saves, evaluations) and, at the end, the trained checkpoint.
    #[arg(long, short = 'o')]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct SweepArgs {
    #[command(flatten)]
    spec: sweep::FreezeSweepSpec,
    /// Output directory: A's evaluation, one freeze run per set, and the table.
    #[arg(long, short = 'o')]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let bars = Bars::default();
    let o = freeze::run(&args.spec, &args.out, &bars.context())?;
    let s = &o.summary;
    println!(
        "trained {} of {} parameters ({:.2}%) for {} steps ({:.2} epochs): loss {} → {}; {:.3} steps/s, {:.0} tokens/s{}",
        s.trainable_params,
        s.total_params,
        100.0 * s.trainable_share,
        s.steps,
        s.epochs,
        s.first_loss.map_or("n/a".into(), |l| format!("{l:.4}")),
        s.final_loss.map_or("n/a".into(), |l| format!("{l:.4}")),
        s.steps_per_s,
        s.tokens_per_s,
        s.peak_rss_bytes.map_or(String::new(), |b| format!(", peak memory {:.0} MiB", b as f64 / (1 << 20) as f64))
    );
    if let Some(note) = &s.tied_note {
        println!("note: {note}");
    }
    for p in &s.eval {
        println!(
            "eval {:<12} step {:>6}: accuracy {}, levels I/II/III/IV {:?}",
            p.name,
            p.step,
            p.accuracy.map_or("n/a".into(), |a| format!("{:.1}%", 100.0 * a)),
            p.levels
        );
    }
    eprintln!("wrote {}", o.dir.display());
    Ok(())
}

pub fn run_sweep(args: SweepArgs) -> Result<()> {
    let bars = Bars::default();
    let o = sweep::run(&args.spec, &args.out, &bars.context())?;
    print!("{}", sweep::markdown(&o.rows));
    for p in o.files {
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
