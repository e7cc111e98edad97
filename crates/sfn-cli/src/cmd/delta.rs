//! `sfn delta A B -o DIR [--select SEL] [--layers R] [--bins 200] [--metric rel|l2] [--strict]`:
//! which modules changed from base A to fine-tuned B, and how (the paper's Delta stethoscope).
//! Streams both checkpoints (any mix of HF directories, .safetensors and .gguf, any stored
//! dtype) on all cores in bounded memory; writes delta.json, delta.csv and figures into DIR and
//! prints a table per module kind with a one-line verdict.

use crate::progress::bytes_bar;
use anyhow::{Context, Result};
use sfn_checkpoint::selector::Selector;
use sfn_checkpoint::summary::human_bytes;
use sfn_checkpoint::Checkpoint;
use sfn_scope::aggregate::{Aggregates, Metric};
use sfn_scope::delta::{self, DeltaOptions, Plan};
use sfn_scope::output::{prepare_out_dir, InputInfo, Provenance};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Base checkpoint A: directory, .safetensors file or .gguf file.
    a: PathBuf,
    /// Changed (fine-tuned) checkpoint B of the same architecture.
    b: PathBuf,
    /// Directory for delta.json, delta.csv and the figures (created; files in it are replaced).
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Compare only these modules (e.g. `o_proj`, `attn,mlp`, `layers[5..30].mlp`, `!embed`).
    #[arg(long, short = 's')]
    select: Option<String>,
    /// Restrict to these layers (`5..30`, `0..=3,10`); with --select, applies to its terms.
    #[arg(long)]
    layers: Option<String>,
    /// Histogram bins over [-1, 1] for the element-wise relative change.
    #[arg(long, default_value_t = delta::DEFAULT_BINS)]
    bins: usize,
    /// What ranks module kinds and the verdict: `rel` (‖B−A‖/‖A‖) or `l2` (‖B−A‖, the paper's
    /// Fig. 2 quantity, which grows with matrix size).
    #[arg(long, default_value = "rel")]
    metric: String,
    /// Histogram grid: every k-th layer as a row (default: at most 8 rows).
    #[arg(long)]
    hist_every: Option<usize>,
    /// Fail when A and B do not hold the same tensors with the same shapes.
    #[arg(long)]
    strict: bool,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Write only delta.json and delta.csv.
    #[arg(long)]
    no_figures: bool,
}

pub fn run(args: Args) -> Result<()> {
    let metric = Metric::parse(&args.metric).with_context(|| format!("--metric {}: choose rel or l2", args.metric))?;
    // The checkpoint errors name the path already; say only which side it is (as `sfn merge`).
    let a = Checkpoint::open(&args.a).context("A")?;
    let b = Checkpoint::open(&args.b).context("B")?;
    let selector = match (&args.select, &args.layers) {
        (None, None) => None,
        (sel, layers) => {
            let mut s = Selector::parse(sel.as_deref().unwrap_or("all"))?;
            if let Some(l) = layers {
                s = s.with_layers(l)?;
            }
            Some(s)
        }
    };
    let opts =
        DeltaOptions { bins: args.bins, selector, strict: args.strict, threads: args.threads, ..Default::default() };
    let plan = Plan::new(&a, &b, &opts)?;
    // Check the output location before the long part, so a bad -o fails at once.
    let out = prepare_out_dir(&args.out, &[&args.a, &args.b])?;
    let bar = bytes_bar(plan.total_bytes, "delta");
    let result = delta::run(&a, &b, &plan, &opts, &|n| bar.inc(n))?;
    bar.finish_and_clear();
    let agg = Aggregates::of(&result.tensors, metric);

    let options = serde_json::json!({
        "bins": opts.bins,
        "range": [-sfn_scope::stats::CLIP, sfn_scope::stats::CLIP],
        "eps": sfn_scope::stats::REL_EPS,
        "select": opts.selector.as_ref().map(|s| s.to_string()),
        "strict": opts.strict,
        "metric": metric.name(),
    });
    let provenance = Provenance::new(
        std::env::args().collect(),
        vec![InputInfo::of("a", &a), InputInfo::of("b", &b)],
        options,
        None,
    );
    let mut written = delta::write::write_results(&out, &result, &agg, &provenance)?;
    if !args.no_figures {
        written.extend(delta::figures::write_figures(&out, &result, &agg, args.hist_every)?);
    }
    print!("{}", delta::write::table(&result, &agg));
    let names: Vec<String> =
        written.iter().filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).collect();
    eprintln!(
        "compared {} tensors ({} in {:.2} s, {}/s on {} threads); wrote {}: {}",
        result.tensors.len(),
        human_bytes(result.bytes_read),
        result.elapsed_s,
        human_bytes((result.bytes_read as f64 / result.elapsed_s.max(1e-9)) as u64),
        result.threads,
        out.display(),
        names.join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn fixture(name: &str) -> String {
        format!("{}/../sfn-scope/tests/fixtures/delta/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn delta_of_the_reference_pair_writes_json_csv_and_figures() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("delta");
        let cli = Cli::parse_from([
            "delta",
            &fixture("a-qwen2-bf16-sharded"),
            &fixture("b-qwen2-f32"),
            "-o",
            out.to_str().unwrap(),
        ]);
        run(cli.args).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("delta.json")).unwrap()).unwrap();
        assert_eq!(doc["tensors"].as_array().unwrap().len(), 39);
        assert!(doc["verdict"].as_str().unwrap().starts_with("largest change: o_proj"));
        assert!(out.join("delta.csv").is_file());
    }

    #[test]
    fn output_inside_an_input_and_an_unknown_metric_are_refused() {
        let a = fixture("a-qwen2-bf16-sharded");
        let inside = format!("{a}/delta-out");
        let cli = Cli::parse_from(["delta", &a, &fixture("b-qwen2-f32"), "-o", &inside]);
        let err = format!("{:#}", run(cli.args).unwrap_err());
        assert!(err.contains("inside the input"), "{err}");
        assert!(!std::path::Path::new(&inside).exists());
        let cli = Cli::parse_from(["delta", &a, &a, "-o", "/tmp/x", "--metric", "max"]);
        assert!(format!("{:#}", run(cli.args).unwrap_err()).contains("--metric max"));
    }
}
