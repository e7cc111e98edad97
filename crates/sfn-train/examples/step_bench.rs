//! Training-step benchmark: a randomly initialised model of a preset (or flag-given) size, one
//! fixed batch of random tokens (every next token scored), and N full optimizer steps (zero_grad,
//! forward_backward, clip_grad_norm 1.0, AdamW) for a trainable selector; prints each step's time,
//! the best step's ms, tokens/s and GFLOP/s, and the peak resident memory (VmHWM).
//!
//! FLOPs counted per step (multiply-add = 2), the useful work only:
//!   linear layers (q, k, v, o, gate, up, down; per token of the batch) and the output projection
//!   (vocab × hidden; per scored token): forward 2·P, input gradient 2·P, weight gradient 2·P only
//!   for trainable weights — so 6·P per token when everything trains;
//!   attention: forward Q·Kᵀ and P·V over the causal half, 2 · 2·head_dim·heads·T(T+1)/2 per row,
//!   backward twice that (the recomputation of Q·Kᵀ from the stored log-sum-exp is not counted).
//! Norms, rope, SwiGLU, softmax, cross-entropy and AdamW are not counted.
//!
//! The PyTorch counterpart with the same presets is tools/reference/train_step_bench.py.
//! Run: cargo run -p sfn-train --release --example step_bench -- --preset tiny --trainable all

use sfn_checkpoint::selector::Selector;
use sfn_checkpoint::ModelConfig;
use sfn_run::SplitMix64 as Rng;
use sfn_train::{AdamW, Batch, Optimizer, OptimizerKind, TrainModel, Trainable};
use std::time::Instant;

struct Args {
    config: ModelConfig,
    rows: usize,
    cols: usize,
    trainable: String,
    steps: usize,
    threads: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: step_bench [--preset tiny|smollm2] [--trainable SELECTOR] [--steps N] [--threads N]\n\
         \x20                 [--batch ROWS] [--seq COLS] [--layers N]\n\
         presets: tiny = Qwen2 h128, 4 layers, 4 heads / 2 kv, ff 384, vocab 1024, tied, 16 × 128\n\
         \x20        smollm2 = SmolLM2-135M (Llama h576, 30 layers, 9 / 3 heads, ff 1536, vocab 49152, tied), 8 × 256"
    );
    std::process::exit(2)
}

fn preset(name: &str) -> (ModelConfig, usize, usize) {
    let (json, rows, cols) = match name {
        "tiny" => (
            serde_json::json!({"model_type": "qwen2", "hidden_size": 128, "intermediate_size": 384,
                "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1024,
                "tie_word_embeddings": true, "max_position_embeddings": 2048, "rms_norm_eps": 1e-6}),
            16,
            128,
        ),
        "smollm2" => (
            serde_json::json!({"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
                "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
                "tie_word_embeddings": true, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
                "rope_theta": 100000.0}),
            8,
            256,
        ),
        _ => usage(),
    };
    (ModelConfig::from_json(&json).expect("preset config"), rows, cols)
}

fn parse() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let get =
        |flag: &str| argv.iter().position(|a| a == flag).map(|i| argv.get(i + 1).cloned().unwrap_or_else(|| usage()));
    let num = |flag: &str, default: usize| get(flag).map_or(default, |v| v.parse().unwrap_or_else(|_| usage()));
    let (mut config, rows, cols) = preset(&get("--preset").unwrap_or_else(|| "tiny".into()));
    config.num_layers = num("--layers", config.num_layers);
    Args {
        rows: num("--batch", rows),
        cols: num("--seq", cols),
        trainable: get("--trainable").unwrap_or_else(|| "all".into()),
        steps: num("--steps", 5),
        threads: num("--threads", 2),
        config,
    }
}

/// Peak resident set size of this process in MiB (VmHWM).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// Useful FLOPs of one step (see the header).
fn step_flops(model: &TrainModel, rows: usize, cols: usize) -> f64 {
    let cfg = model.config();
    let (tokens, scored) = ((rows * cols) as f64, (rows * (cols - 1)) as f64);
    let mut flops = 0.0;
    for p in model.params() {
        let lm_head = p.name == "lm_head.weight" || (model.tied() && p.name == "model.embed_tokens.weight");
        let linear = p.shape.len() == 2 && (p.name.contains(".layers.") || lm_head);
        if !linear {
            continue;
        }
        let per_token = if p.trainable() { 6.0 } else { 4.0 } * p.data.len() as f64;
        flops += per_token * if lm_head { scored } else { tokens };
    }
    let t = cols as f64;
    let attn_fwd = 2.0 * 2.0 * (cfg.head_dim * cfg.num_heads) as f64 * t * (t + 1.0) / 2.0 * rows as f64;
    flops + 3.0 * attn_fwd * cfg.num_layers as f64
}

fn main() {
    let a = parse();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(a.threads).build().expect("thread pool");
    pool.install(|| run(&a));
}

fn run(a: &Args) {
    let sel = Selector::parse(&a.trainable).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let t0 = Instant::now();
    let mut model = TrainModel::random(&a.config, 1, 0.02, Trainable::Selector(&sel)).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let (all, trainable) = model.num_params();
    println!(
        "model: {} layers, hidden {}, vocab {}; {:.2}M parameters, {:.2}M trainable [{}]; init {:.1}s",
        a.config.num_layers,
        a.config.hidden_size,
        a.config.vocab_size,
        all as f64 / 1e6,
        trainable as f64 / 1e6,
        a.trainable,
        t0.elapsed().as_secs_f64()
    );
    let mut rng = Rng::new(7);
    let n = a.rows * a.cols;
    let tokens: Vec<u32> = (0..n).map(|_| rng.below(a.config.vocab_size as u64) as u32).collect();
    let labels = tokens.iter().map(|&t| t as i32).collect();
    let batch = Batch::new(a.rows, a.cols, tokens, labels).expect("batch");
    let mut opt = Optimizer::new(OptimizerKind::AdamW(AdamW::default()), &model).expect("optimizer");
    let flops = step_flops(&model, a.rows, a.cols);
    let mut best = f64::INFINITY;
    for step in 0..a.steps {
        let t = Instant::now();
        model.zero_grad();
        let s = model.forward_backward(&batch, batch.num_targets()).expect("step");
        model.clip_grad_norm(1.0);
        opt.step(&mut model, 1e-4).expect("optimizer step");
        let secs = t.elapsed().as_secs_f64();
        println!("step {step}: {:.1} ms, loss {:.4}", secs * 1e3, s.mean());
        // The first step allocates the activation buffers; the best of the rest is reported.
        if step > 0 || a.steps == 1 {
            best = best.min(secs);
        }
    }
    println!(
        "best step: {:.1} ms, {:.0} tokens/s, {:.1} GFLOP/s ({:.1} GFLOP/step), {} threads, batch {} × {}; peak RSS {:.0} MiB",
        best * 1e3,
        n as f64 / best,
        flops / best / 1e9,
        flops / 1e9,
        a.threads,
        a.rows,
        a.cols,
        peak_rss_mib()
    );
}
