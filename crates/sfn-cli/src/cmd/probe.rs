//! `sfn probe MODEL [B] (--prompts FILE | --task FILE | --ids 1,2,3) [--mode chat] -o DIR`:
//! flags → `ProbeSpec` → `sfn_scope::probe::run` → the per-layer table on stdout.

use crate::progress::Bars;
use anyhow::Result;
use sfn_scope::probe::ProbeSpec;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: ProbeSpec,
    /// Output directory (probe.json, figures, run.json).
    #[arg(long, short = 'o')]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let bars = Bars::default();
    let r = sfn_scope::probe::run(&args.spec, &args.out, &bars.context())?;
    let with_b = r.layers.first().is_some_and(|l| l.cos_resid_post.is_some());
    println!(
        "{} prompts, {} tokens; L2 norms averaged over positions and prompts{}",
        r.prompts,
        r.tokens,
        if with_b { " (A / B, cosine)" } else { "" }
    );
    println!("{:>5}  {:>22}  {:>22}  {:>22}", "layer", "resid_post", "attn_out", "mlp_out");
    let cell = |a: f64, b: Option<f64>, c: Option<f64>| match (b, c) {
        (Some(b), Some(c)) => format!("{a:.2} / {b:.2}, {c:.3}"),
        _ => format!("{a:.3}"),
    };
    for l in &r.layers {
        println!(
            "{:>5}  {:>22}  {:>22}  {:>22}",
            l.layer,
            cell(l.resid_post_norm, l.b_resid_post_norm, l.cos_resid_post),
            cell(l.attn_out_norm, l.b_attn_out_norm, l.cos_attn_out),
            cell(l.mlp_out_norm, l.b_mlp_out_norm, l.cos_mlp_out)
        );
    }
    eprintln!("wrote {}", args.out.join(sfn_scope::probe::JSON_FILE).display());
    Ok(())
}
