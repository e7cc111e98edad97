//! `sfn patch A B (--prompts FILE | --task FILE | --ids ...) [--sites ...] [--layers R]
//! [--direction denoise|noise|both] -o DIR`: flags → `PatchSpec` → `sfn_scope::patch::run` → a
//! layer × site table of the recovery per direction on stdout. `--eval TASK` adds the activation
//! merge's evaluation (A decoding with B's activations at --sites of --layers), prompted in --mode.

use crate::progress::Bars;
use anyhow::Result;
use sfn_eval::EvalSettings;
use sfn_scope::patch::{PatchEval, PatchSpec};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: PatchSpec,
    /// Output directory (patch.json, heatmaps, run.json).
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Also evaluate A decoding with B's activations at --sites of --layers on this task file
    /// (an activation merge), into DIR/eval.
    #[arg(long, value_name = "TASK")]
    eval: Option<PathBuf>,
    /// With --eval: most new tokens per answer.
    #[arg(long, requires = "eval")]
    eval_max_new: Option<usize>,
}

pub fn run(mut args: Args) -> Result<()> {
    if let Some(task) = args.eval.take() {
        let defaults = EvalSettings::default();
        let settings = EvalSettings {
            mode: args.spec.inputs.mode,
            max_new: args.eval_max_new.unwrap_or(defaults.max_new),
            ..defaults
        };
        args.spec.eval = Some(PatchEval { task, settings, no_reference: false });
    }
    let bars = Bars::default();
    let r = sfn_scope::patch::run(&args.spec, &args.out, &bars.context())?;
    for base in &r.baselines {
        println!(
            "{}: {} with {}'s activations (KL({} ‖ {}) unpatched {:.4}; mean log-prob {:.3} → {:.3}); recovery per layer and site:",
            base.direction, base.target, base.source, base.source, base.target, base.kl, base.target_logprob, base.source_logprob
        );
        let records: Vec<_> = r.records.iter().filter(|x| x.direction == base.direction).collect();
        let mut sites: Vec<&str> = vec![];
        for x in &records {
            if !sites.contains(&x.site.as_str()) {
                sites.push(&x.site);
            }
        }
        println!("{:>6} {}", "layer", sites.iter().map(|s| format!("{s:>11}")).collect::<String>());
        let mut layers: Vec<usize> = records.iter().map(|x| x.layer).collect();
        layers.dedup();
        for l in layers {
            let cells: String = sites
                .iter()
                .map(|s| {
                    let rec = records.iter().find(|x| x.layer == l && x.site == *s);
                    match rec.and_then(|x| x.recovery) {
                        Some(v) => format!("{v:>11.3}"),
                        None => format!("{:>11}", "n/a"),
                    }
                })
                .collect();
            println!("{l:>6} {cells}");
        }
    }
    if let Some(s) = &r.eval {
        let acc = s.accuracy.map_or("n/a".into(), |a| format!("{:.1}%", 100.0 * a));
        println!(
            "activation merge (A with B's activations): accuracy {acc}, levels I/II/III/IV {}/{}/{}/{}",
            s.levels.I, s.levels.II, s.levels.III, s.levels.IV
        );
    }
    eprintln!("wrote {}", args.out.join(sfn_scope::patch::JSON_FILE).display());
    Ok(())
}
