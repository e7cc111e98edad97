//! Synthetic checkpoints for the Delta tests: Llama/Qwen2-named tensors with seeded values,
//! written as lone .safetensors files in f32 or bf16 (the format is simple enough to write here,
//! which keeps these tests independent of sfn's own writer).
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

pub use sfn_run::SplitMix64 as Rng;

#[derive(Clone, Debug)]
pub struct T {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>, // [numel], row-major
}

/// A decoder-only model's tensors: embed, per layer q/k/v/o (+ q/k/v bias), gate/up/down, two
/// norms, final norm. Weights ~ N(0, 0.02²), norms ~ 1 ± 0.1.
pub fn model(layers: usize, hidden: usize, inter: usize, vocab: usize, seed: u64) -> Vec<T> {
    let mut rng = Rng::new(seed);
    let mut out = vec![];
    let mut push = |name: String, shape: Vec<usize>, norm: bool, rng: &mut Rng| {
        let n: usize = shape.iter().product();
        let data = (0..n).map(|_| if norm { 1.0 + 0.1 * rng.normal() } else { 0.02 * rng.normal() } as f32).collect();
        out.push(T { name, shape, data });
    };
    push("model.embed_tokens.weight".into(), vec![vocab, hidden], false, &mut rng);
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for m in ["q", "k", "v", "o"] {
            push(format!("{p}.self_attn.{m}_proj.weight"), vec![hidden, hidden], false, &mut rng);
        }
        for m in ["q", "k", "v"] {
            push(format!("{p}.self_attn.{m}_proj.bias"), vec![hidden], false, &mut rng);
        }
        push(format!("{p}.mlp.gate_proj.weight"), vec![inter, hidden], false, &mut rng);
        push(format!("{p}.mlp.up_proj.weight"), vec![inter, hidden], false, &mut rng);
        push(format!("{p}.mlp.down_proj.weight"), vec![hidden, inter], false, &mut rng);
        push(format!("{p}.input_layernorm.weight"), vec![hidden], true, &mut rng);
        push(format!("{p}.post_attention_layernorm.weight"), vec![hidden], true, &mut rng);
    }
    push("model.norm.weight".into(), vec![hidden], true, &mut rng);
    out
}

/// Apply `f(name, value, rng)` to every element.
pub fn map(ts: &[T], seed: u64, f: impl Fn(&str, f32, &mut Rng) -> f32) -> Vec<T> {
    let mut rng = Rng::new(seed);
    ts.iter()
        .map(|t| T {
            name: t.name.clone(),
            shape: t.shape.clone(),
            data: t.data.iter().map(|&v| f(&t.name, v, &mut rng)).collect(),
        })
        .collect()
}

/// Values as they read back after storing in `dtype` ("F32" or "BF16").
pub fn rounded(ts: &[T], dtype: &str) -> Vec<T> {
    map(ts, 0, |_, v, _| if dtype == "BF16" { half::bf16::from_f32(v).to_f32() } else { v })
}

/// Write a lone .safetensors file, every tensor stored as `dtype` ("F32" or "BF16").
pub fn write(path: &Path, ts: &[T], dtype: &str) {
    let width = if dtype == "BF16" { 2 } else { 4 };
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for t in ts {
        let n = t.data.len() * width;
        header.insert(
            t.name.clone(),
            serde_json::json!({"dtype": dtype, "shape": t.shape, "data_offsets": [offset, offset + n]}),
        );
        offset += n;
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
    f.write_all(&h).unwrap();
    for t in ts {
        for &v in &t.data {
            if dtype == "BF16" {
                f.write_all(&half::bf16::from_f32(v).to_le_bytes()).unwrap();
            } else {
                f.write_all(&v.to_le_bytes()).unwrap();
            }
        }
    }
    f.flush().unwrap();
}
