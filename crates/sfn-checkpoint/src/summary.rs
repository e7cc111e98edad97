//! What a checkpoint is: architecture facts, stored dtypes, and parameters/bytes per module kind
//! and per layer. Backs `sfn inspect` and the inputs section of every report.
//!
//! Facts come from the config (config.json or GGUF metadata); a lone .safetensors file has none,
//! so the few facts that tensor shapes reveal (layers, hidden size, vocab, tied head) are inferred
//! and the rest are left unknown (None) rather than guessed.

use crate::taxonomy::{parse_name, ModuleKind};
use crate::Checkpoint;
use std::collections::BTreeMap;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub path: String,
    pub format: crate::Format,
    pub family: Option<String>,
    pub num_layers: usize,
    pub hidden_size: Option<usize>,
    pub intermediate_size: Option<usize>,
    pub num_heads: Option<usize>,
    pub num_kv_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub vocab_size: Option<usize>,
    pub tied_embeddings: bool,
    pub rope_theta: Option<f64>,
    pub max_position_embeddings: Option<usize>,
    /// dtype name -> number of tensors stored in it.
    pub dtypes: BTreeMap<String, usize>,
    pub num_tensors: usize,
    pub num_parameters: u64,
    pub stored_bytes: u64,
    /// module kind (`ModuleKind::name`) -> parameters / stored bytes; kinds absent from the
    /// checkpoint are left out.
    pub parameters_by_module: BTreeMap<String, u64>,
    pub tensors_by_module: BTreeMap<String, usize>,
    pub bytes_by_module: BTreeMap<String, u64>,
    /// Parameters of each layer, index = layer.
    pub parameters_by_layer: Vec<u64>,
}

impl Summary {
    pub fn of(ck: &Checkpoint) -> Summary {
        let mut dtypes = BTreeMap::new();
        let mut params_by_module = BTreeMap::new();
        let mut bytes_by_module = BTreeMap::new();
        let mut tensors_by_module = BTreeMap::new();
        let mut by_layer: Vec<u64> = Vec::new();
        let mut has_lm_head = false;
        for t in ck.tensors() {
            let n = parse_name(&t.name);
            *dtypes.entry(t.dtype.name().to_string()).or_insert(0) += 1;
            *params_by_module.entry(n.module.name().to_string()).or_insert(0u64) += t.numel() as u64;
            *bytes_by_module.entry(n.module.name().to_string()).or_insert(0u64) += t.nbytes() as u64;
            *tensors_by_module.entry(n.module.name().to_string()).or_insert(0) += 1;
            if let Some(l) = n.layer {
                if by_layer.len() <= l {
                    by_layer.resize(l + 1, 0);
                }
                by_layer[l] += t.numel() as u64;
            }
            has_lm_head |= n.module == ModuleKind::LmHead;
        }
        let embed = ck.tensors().iter().find(|t| parse_name(&t.name).module == ModuleKind::Embed);
        let c = ck.config.as_ref();
        Summary {
            path: ck.path.display().to_string(),
            format: ck.format,
            family: c.map(|c| c.family.clone()),
            num_layers: c.map(|c| c.num_layers).unwrap_or(by_layer.len()),
            hidden_size: c.map(|c| c.hidden_size).or_else(|| embed.and_then(|e| e.shape.get(1).copied())),
            intermediate_size: c.map(|c| c.intermediate_size),
            num_heads: c.map(|c| c.num_heads),
            num_kv_heads: c.map(|c| c.num_kv_heads),
            head_dim: c.map(|c| c.head_dim),
            vocab_size: c.map(|c| c.vocab_size).or_else(|| embed.map(|e| e.shape[0])),
            tied_embeddings: c.map(|c| c.tied_embeddings).unwrap_or(!has_lm_head),
            rope_theta: c.map(|c| c.rope_theta),
            max_position_embeddings: c.map(|c| c.max_position_embeddings),
            dtypes,
            num_tensors: ck.tensors().len(),
            num_parameters: ck.tensors().iter().map(|t| t.numel() as u64).sum(),
            stored_bytes: ck.stored_bytes(),
            parameters_by_module: params_by_module,
            tensors_by_module,
            bytes_by_module,
            parameters_by_layer: by_layer,
        }
    }
}

/// `1.35e8` -> "135.0M"; used wherever counts are shown to people.
pub fn human_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}K", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.2}B", n as f64 / 1e9),
    }
}

/// Bytes with a binary unit: "85.3 MiB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
