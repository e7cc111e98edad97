//! `sfn generate MODEL --prompt "…" [--chat] [--max-new N]`: continue one or more prompts with the
//! model (HF directory or GGUF), streaming the text to stdout as it is produced. Several `--prompt`s
//! run as one batch and are printed when done. Greedy unless `--temperature` is given; sampling is
//! seeded. Timing (prefill and decode tokens/s) goes to stderr.

use anyhow::{bail, Context, Result};
use sfn_checkpoint::Checkpoint;
use sfn_model::{generate_with_stats, ChatTemplate, Event, GenerateOptions, Hooks, Message, RuntimeSpec, Sampling};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory (with tokenizer.json) or .gguf file.
    model: PathBuf,
    /// Prompt text; repeat for a batch.
    #[arg(long, short = 'p', required = true)]
    prompt: Vec<String>,
    /// Wrap each prompt as a user message in the model's chat template.
    #[arg(long)]
    chat: bool,
    /// With --chat: a system message first.
    #[arg(long)]
    system: Option<String>,
    /// Most tokens to generate per prompt.
    #[arg(long, default_value_t = 256)]
    max_new: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop when the text contains this string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Do not stop at the model's end-of-sequence tokens.
    #[arg(long)]
    ignore_eos: bool,
    /// Print one JSON object per prompt (prompt, text, tokens, stop) instead of streaming text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    runtime: RuntimeSpec,
}

/// How the next token is chosen.
#[derive(clap::Args)]
struct SamplingArgs {
    /// Sampling temperature (0 = greedy). Sampling is seeded by --seed.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Sample only among the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Sample only among the most likely tokens whose probabilities sum to p.
    #[arg(long)]
    top_p: Option<f64>,
}

pub fn run(args: Args) -> Result<()> {
    args.runtime.init()?;
    let t_load = Instant::now();
    let ck = Checkpoint::open(&args.model)?;
    let (model, tok) = args.runtime.load(&ck)?;
    let load_s = t_load.elapsed().as_secs_f64();

    let texts: Vec<String> = if args.chat {
        let chat = ChatTemplate::for_tokenizer(&tok).context("--chat")?;
        args.prompt
            .iter()
            .map(|p| {
                let mut msgs = Vec::new();
                if let Some(s) = &args.system {
                    msgs.push(Message::system(s));
                }
                msgs.push(Message::user(p));
                chat.render(&msgs, true)
            })
            .collect::<sfn_model::Result<_>>()?
    } else {
        if args.system.is_some() {
            bail!("--system needs --chat");
        }
        args.prompt.clone()
    };
    // Chat-rendered text carries its own special tokens; raw prompts get the tokenizer's (BOS).
    let prompts: Vec<Vec<u32>> = texts.iter().map(|t| tok.encode(t, !args.chat)).collect::<sfn_model::Result<_>>()?;
    let s = &args.sampling;
    let sampling = Sampling { temperature: s.temperature, top_k: s.top_k, top_p: s.top_p, seed: args.seed };
    sampling.validate()?;
    let gen_opts = GenerateOptions {
        max_new_tokens: args.max_new,
        sampling,
        stop_tokens: if args.ignore_eos { vec![] } else { tok.eos_ids().to_vec() },
        stop_strings: args.stop.clone(),
        skip_special: true,
        streams: vec![],
    };
    let stream = prompts.len() == 1 && !args.json;
    let mut stdout = std::io::stdout().lock();
    let t_gen = Instant::now();
    let (outs, stats) =
        generate_with_stats(&model, Some(&tok), &prompts, &gen_opts, &mut Hooks::new(), &mut |_, event| {
            if let (true, Event::Text(piece)) = (stream, event) {
                let _ = stdout.write_all(piece.as_bytes());
                let _ = stdout.flush();
            }
        })?;
    let gen_s = t_gen.elapsed().as_secs_f64();
    if stream {
        writeln!(stdout)?;
    } else if args.json {
        for (p, g) in args.prompt.iter().zip(&outs) {
            let v = serde_json::json!({
                "prompt": p, "text": g.text, "tokens": g.tokens, "stop": format!("{:?}", g.stop),
            });
            writeln!(stdout, "{v}")?;
        }
    } else {
        for (i, (p, g)) in args.prompt.iter().zip(&outs).enumerate() {
            writeln!(stdout, "=== [{i}] {p}\n{}\n", g.text)?;
        }
    }
    let new_tokens: usize = outs.iter().map(|g| g.tokens.len()).sum();
    eprintln!(
        "sfn generate: load {load_s:.2}s; prefill {} tokens in {:.3}s ({:.1} tok/s); decode {} steps × {} rows in {:.3}s ({:.1} tok/s); {new_tokens} new tokens, {gen_s:.2}s in all; weights read per token {:.1} MB; KV cache {:.1} MiB; stop: {}",
        stats.prefill_tokens,
        stats.prefill_seconds,
        stats.prefill_tokens as f64 / stats.prefill_seconds.max(1e-9),
        stats.decode_steps,
        prompts.len(),
        stats.decode_seconds,
        (stats.decode_steps * prompts.len()) as f64 / stats.decode_seconds.max(1e-9),
        model.weight_bytes_per_token() as f64 / 1e6,
        stats.kv_cache_bytes as f64 / (1 << 20) as f64,
        outs.iter().map(|g| format!("{:?}", g.stop)).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}
