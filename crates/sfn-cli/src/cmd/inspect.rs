//! `sfn inspect MODEL [--select SEL] [--json]`: what a checkpoint is and where its parameters are.

use anyhow::Result;
use sfn_checkpoint::selector::Selector;
use sfn_checkpoint::summary::{human_bytes, human_count, Summary};
use sfn_checkpoint::taxonomy::ModuleKind;
use sfn_checkpoint::Checkpoint;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory, .safetensors file or .gguf file.
    model: PathBuf,
    /// Also show which tensors a module selector matches (e.g. `o_proj`, `layers[5..30].mlp`).
    #[arg(long, short = 's')]
    select: Option<String>,
    /// Restrict --select to these layers (`5..30`, `0..=3,10`).
    #[arg(long, requires = "select")]
    layers: Option<String>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let ck = Checkpoint::open(&args.model)?;
    let summary = Summary::of(&ck);
    let selection = match &args.select {
        Some(sel) => {
            let mut selector = Selector::parse(sel)?;
            if let Some(layers) = &args.layers {
                selector = selector.with_layers(layers)?;
            }
            let names: Vec<&str> = ck.tensors().iter().map(|t| t.name.as_str()).collect();
            let explanation = selector.explain(names.iter().copied());
            let chosen = selector.select(names.iter().copied())?;
            Some((selector, explanation, chosen))
        }
        None => None,
    };
    if args.json {
        let mut v = serde_json::to_value(&summary)?;
        if let Some((selector, _, chosen)) = &selection {
            let params: u64 = chosen.iter().map(|n| ck.get(n).map_or(0, |t| t.numel() as u64)).sum();
            v["selection"] = serde_json::json!({
                "selector": selector.to_string(),
                "num_tensors": chosen.len(),
                "num_parameters": params,
                "tensors": chosen,
            });
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print_summary(&summary);
    if let Some((_, explanation, chosen)) = selection {
        let params: u64 = chosen.iter().map(|n| ck.get(n).map_or(0, |t| t.numel() as u64)).sum();
        println!("\nselection\n{explanation}");
        println!(
            "selected {} tensors, {} parameters ({:.1}% of the model)",
            chosen.len(),
            human_count(params),
            100.0 * params as f64 / summary.num_parameters.max(1) as f64
        );
    }
    Ok(())
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("?".into(), |v| v.to_string())
}

fn print_summary(s: &Summary) {
    let format = serde_json::to_value(s.format).unwrap();
    println!("{}  ({}, {})", s.path, format.as_str().unwrap_or("?"), s.family.as_deref().unwrap_or("unknown family"));
    println!(
        "  layers {} · hidden {} · intermediate {} · heads {} · kv heads {} · head dim {}",
        s.num_layers,
        opt(s.hidden_size),
        opt(s.intermediate_size),
        opt(s.num_heads),
        opt(s.num_kv_heads),
        opt(s.head_dim)
    );
    println!(
        "  vocab {} · {} · rope theta {} · context {}",
        opt(s.vocab_size),
        if s.tied_embeddings { "tied embeddings" } else { "untied lm_head" },
        opt(s.rope_theta),
        opt(s.max_position_embeddings)
    );
    let dtypes: Vec<String> = s.dtypes.iter().map(|(d, n)| format!("{d} ×{n}")).collect();
    println!(
        "  {} tensors · {} parameters · {} stored ({})",
        s.num_tensors,
        human_count(s.num_parameters),
        human_bytes(s.stored_bytes),
        dtypes.join(", ")
    );
    println!("\n{:<16} {:>8} {:>12} {:>7} {:>11}", "module", "tensors", "parameters", "share", "stored");
    let order = ModuleKind::ALL.iter().map(|m| m.name()).chain(std::iter::once("other"));
    for name in order {
        let Some(&p) = s.parameters_by_module.get(name) else { continue };
        println!(
            "{:<16} {:>8} {:>12} {:>6.1}% {:>11}",
            name,
            s.tensors_by_module[name],
            human_count(p),
            100.0 * p as f64 / s.num_parameters.max(1) as f64,
            human_bytes(s.bytes_by_module[name])
        );
    }
    println!(
        "{:<16} {:>8} {:>12} {:>6.1}% {:>11}",
        "total",
        s.num_tensors,
        human_count(s.num_parameters),
        100.0,
        human_bytes(s.stored_bytes)
    );
    match s.parameters_by_layer.as_slice() {
        [] => {}
        [first, rest @ ..] if rest.iter().all(|p| p == first) => {
            println!("\nlayers 0..{}: {} parameters each", s.parameters_by_layer.len(), human_count(*first))
        }
        layers => {
            println!("\nparameters per layer");
            for (i, p) in layers.iter().enumerate() {
                println!("  layer {i:>3}: {}", human_count(*p));
            }
        }
    }
}
