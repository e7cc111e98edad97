//! `sfn trace MODEL (--prompt TEXT | --ids 3,17,42) [--hooks resid_post,attn_out] [--layers 0..5]
//! -o out.safetensors`: one forward pass, saved as safetensors: `logits` [tokens, vocab] f32,
//! `input_ids` [tokens] i64, and each requested hook as `<hook>.<layer>` [tokens, …] f32
//! (attn_heads: [tokens, heads, head_dim]). Metadata records the model, ids, hooks and command line.
//! The file is written beside its final name and renamed into place.

use anyhow::{bail, Context, Result};
use sfn_checkpoint::selector::parse_layer_ranges;
use sfn_checkpoint::Checkpoint;
use sfn_model::{save_safetensors, trace, ChatTemplate, HookPoint, Message, RuntimeSpec, Tokenizer};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory or .gguf file.
    model: PathBuf,
    /// Text to run (tokenized with the model's tokenizer).
    #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
    prompt: Option<String>,
    /// Token ids to run, comma-separated (no tokenizer needed).
    #[arg(long, value_delimiter = ',')]
    ids: Option<Vec<u32>>,
    /// With --prompt: render it as a user message with the model's chat template.
    #[arg(long, requires = "prompt")]
    chat: bool,
    /// Hook points to save, comma-separated: resid_pre, attn_heads, attn_out, resid_mid, mlp_out,
    /// resid_post.
    #[arg(long, value_delimiter = ',')]
    hooks: Vec<String>,
    /// Layers to save hooks for (`5..30` = 5 to 29; default: all).
    #[arg(long)]
    layers: Option<String>,
    /// Output .safetensors file.
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Replace OUT if it exists.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    runtime: RuntimeSpec,
}

pub fn run(args: Args) -> Result<()> {
    args.runtime.init()?;
    let ck = Checkpoint::open(&args.model)?;
    if args.out.exists() && !args.force {
        bail!("{} exists (use --force to replace it)", args.out.display());
    }
    let out_abs = std::path::absolute(&args.out).unwrap_or(args.out.clone());
    if ck.files().any(|f| std::path::absolute(f).is_ok_and(|f| f == out_abs)) {
        bail!("{} is one of the model's own files", args.out.display());
    }
    let model = args.runtime.load_model(&ck)?;
    let ids: Vec<u32> = match (&args.ids, &args.prompt) {
        (Some(ids), _) => ids.clone(),
        (None, Some(p)) => {
            let tok = Tokenizer::for_source(&ck)?;
            if args.chat {
                let text = ChatTemplate::for_tokenizer(&tok)?.render(&[Message::user(p)], true)?;
                tok.encode(&text, false)?
            } else {
                tok.encode(p, true)?
            }
        }
        (None, None) => bail!("give --prompt or --ids"),
    };
    let n = model.config.num_layers;
    let layers: Vec<usize> = match &args.layers {
        Some(r) => {
            let ls: Vec<usize> = parse_layer_ranges(r)?.into_iter().flatten().collect();
            if let Some(&bad) = ls.iter().find(|&&l| l >= n) {
                bail!("--layers {r}: layer {bad} does not exist (the model has layers 0..{n})");
            }
            ls
        }
        None => (0..n).collect(),
    };
    let points: Vec<HookPoint> =
        args.hooks.iter().map(|h| HookPoint::parse(h.trim())).collect::<sfn_model::Result<_>>()?;
    let tensors = trace(&model, &ids, &points, &layers)?;
    let mut meta = HashMap::new();
    meta.insert("sfn_model".to_string(), args.model.display().to_string());
    meta.insert("sfn_input_ids".to_string(), serde_json::to_string(&ids)?);
    meta.insert("sfn_hooks".to_string(), points.iter().map(|p| p.name()).collect::<Vec<_>>().join(","));
    meta.insert("sfn_layers".to_string(), serde_json::to_string(&layers)?);
    meta.insert("sfn_command".to_string(), std::env::args().collect::<Vec<_>>().join(" "));
    meta.insert("sfn_version".to_string(), env!("CARGO_PKG_VERSION").to_string());
    let tmp = args.out.with_extension("safetensors.partial");
    save_safetensors(&tensors, meta, &tmp)?;
    std::fs::rename(&tmp, &args.out).with_context(|| format!("renaming into {}", args.out.display()))?;
    eprintln!("wrote {} ({} tokens, {} tensors)", args.out.display(), ids.len(), tensors.len());
    Ok(())
}
