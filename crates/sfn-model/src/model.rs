//! The decoder: one implementation for Llama, Mistral, Qwen2 and Qwen3, driven by the config and by
//! which tensors the checkpoint holds.
//!
//! Per layer: RMSNorm → q/k/v projections (biases when stored, Qwen2) → per-head q/k RMSNorm (when
//! stored, Qwen3) → rotary embedding → grouped-query attention (causal, left padding masked, Mistral's
//! sliding window) → o_proj → residual → RMSNorm → SwiGLU MLP → residual. Then the final norm and
//! the lm_head (or the tied embedding). Weights are looked up along the checkpoint's own names
//! (`model.layers.N.self_attn.q_proj.weight`), so the code reads like the file.
//!
//! Batches are left-padded: row i of a batch starts `pad[i]` columns late, its rotary positions
//! start at 0 where its tokens start, and no query attends to its pad columns. Compute is f32.
//! Limits: no ALiBi/MoE/sliding-window-per-layer variants; rope scaling linear and llama3 only.

use crate::cache::KvCache;
use crate::error::{Error, Result};
use crate::hooks::{HookCtx, HookId, HookPoint, Hooks};
use crate::layers::{swiglu, Embedding, Linear, LoadOptions, RmsNorm, Rope, F32};
use crate::source::WeightSource;
use candle_core::{Device, Tensor};
use sfn_checkpoint::ModelConfig;

/// One decoder layer, named as in the checkpoint (`model.layers.N.…`). q/k/v and gate/up are
/// stacked by rows as they are loaded, so each pair or triple costs one matmul (one pass over the
/// input, one dispatch) per step.
#[derive(Debug, Clone)]
pub struct Block {
    pub input_layernorm: RmsNorm,
    /// `self_attn.{q,k,v}_proj` stacked: [nh·hd + 2·nkv·hd, hidden] (biases too, when stored).
    pub qkv_proj: Linear,
    pub o_proj: Linear,
    /// Qwen3: RMSNorm over each head's q and k ([head_dim]).
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    pub post_attention_layernorm: RmsNorm,
    /// `mlp.{gate,up}_proj` stacked: [2·intermediate, hidden].
    pub gate_up_proj: Linear,
    pub down_proj: Linear,
}

/// Which positions get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Every position: [batch, seq, vocab].
    All,
    /// Only each row's last position: [batch, vocab] (what generation needs; skips the lm_head
    /// for the rest of a prompt).
    Last,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub config: ModelConfig,
    device: Device,
    pub embed_tokens: Embedding,
    pub layers: Vec<Block>,
    pub norm: RmsNorm,
    /// The output projection (a view of `embed_tokens` when tied).
    pub lm_head: Linear,
    rope: Rope,
    /// Keys older than this many positions are not attended to (Mistral).
    sliding_window: Option<usize>,
}

/// Rotary tables are computed for at most this many positions unless the config asks for fewer
/// (a long-context model's 128k positions would cost 64 MB of tables for nothing).
const MAX_ROPE_TABLE: usize = 32768;

impl Model {
    /// Build the model from any weight source (a checkpoint or an edit view).
    pub fn load(src: &dyn WeightSource, opts: &LoadOptions) -> Result<Model> {
        let cfg = src.config()?;
        let (h, nh, nkv, hd) = (cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        if nh == 0 || nkv == 0 || nh % nkv != 0 {
            return Err(Error::unsupported(format!("{nh} attention heads do not split into {nkv} key/value groups")));
        }
        let dev = &opts.device;
        let eps = cfg.rms_norm_eps;
        let has = |n: &str| src.shape(n).is_some();
        let embed_tokens = Embedding::load(src, "model.embed_tokens.weight", cfg.vocab_size, h, opts)?;
        let mut layers = Vec::with_capacity(cfg.num_layers);
        for l in 0..cfg.num_layers {
            let p = format!("model.layers.{l}");
            let a = format!("{p}.self_attn");
            let qkv_bias = cfg.attention_bias || has(&format!("{a}.q_proj.bias"));
            let norm = |n: &str| -> Result<Option<RmsNorm>> {
                let name = format!("{a}.{n}.weight");
                if has(&name) {
                    Ok(Some(RmsNorm::load(src, &name, hd, eps, dev)?))
                } else {
                    Ok(None)
                }
            };
            let mlp = format!("{p}.mlp");
            let bias = |n: &str| has(&format!("{n}.bias"));
            let i = cfg.intermediate_size;
            layers.push(Block {
                input_layernorm: RmsNorm::load(src, &format!("{p}.input_layernorm.weight"), h, eps, dev)?,
                qkv_proj: Linear::stack(vec![
                    Linear::load(src, &format!("{a}.q_proj"), h, nh * hd, qkv_bias, opts)?,
                    Linear::load(src, &format!("{a}.k_proj"), h, nkv * hd, qkv_bias, opts)?,
                    Linear::load(src, &format!("{a}.v_proj"), h, nkv * hd, qkv_bias, opts)?,
                ])?,
                o_proj: Linear::load(src, &format!("{a}.o_proj"), nh * hd, h, bias(&format!("{a}.o_proj")), opts)?,
                q_norm: norm("q_norm")?,
                k_norm: norm("k_norm")?,
                post_attention_layernorm: RmsNorm::load(
                    src,
                    &format!("{p}.post_attention_layernorm.weight"),
                    h,
                    eps,
                    dev,
                )?,
                gate_up_proj: Linear::stack(vec![
                    Linear::load(src, &format!("{mlp}.gate_proj"), h, i, bias(&format!("{mlp}.gate_proj")), opts)?,
                    Linear::load(src, &format!("{mlp}.up_proj"), h, i, bias(&format!("{mlp}.up_proj")), opts)?,
                ])?,
                down_proj: Linear::load(
                    src,
                    &format!("{mlp}.down_proj"),
                    i,
                    h,
                    bias(&format!("{mlp}.down_proj")),
                    opts,
                )?,
            });
        }
        let norm = RmsNorm::load(src, "model.norm.weight", h, eps, dev)?;
        // Tied when the config says so or when there is no separate head (GGUF without output.weight).
        let lm_head = if cfg.tied_embeddings || !has("lm_head.weight") {
            Linear { weight: embed_tokens.weight.clone(), bias: None, in_features: h, out_features: cfg.vocab_size }
        } else {
            Linear::load(src, "lm_head", h, cfg.vocab_size, false, opts)?
        };
        let positions = cfg.max_position_embeddings.clamp(1, MAX_ROPE_TABLE);
        let rope = Rope::new(&cfg, positions, dev)?;
        let sliding_window = if cfg.family == "mistral" { cfg.sliding_window } else { None };
        Ok(Model { config: cfg, device: dev.clone(), embed_tokens, layers, norm, lm_head, rope, sliding_window })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The longest sequence (prompt + generated) this model can position.
    pub fn max_positions(&self) -> usize {
        self.rope.max_positions
    }

    /// Bytes of weights one decoding step reads (all layers + lm_head; the embedding is a lookup).
    pub fn weight_bytes_per_token(&self) -> usize {
        let per_layer: usize = self
            .layers
            .iter()
            .map(|b| {
                [&b.qkv_proj, &b.o_proj, &b.gate_up_proj, &b.down_proj].iter().map(|l| l.weight_bytes()).sum::<usize>()
            })
            .sum();
        per_layer + self.lm_head.weight_bytes()
    }

    /// An empty KV cache for `batch` rows of up to `capacity` positions (allocated now, all of it).
    pub fn new_cache(&self, batch: usize, capacity: usize) -> Result<KvCache> {
        KvCache::new(&self.config, batch, capacity, &self.device)
    }

    /// Logits [seq, vocab] of one sequence, without a cache.
    pub fn forward(&self, ids: &[u32], hooks: &mut Hooks) -> Result<Tensor> {
        Ok(self.run(&[ids.to_vec()], &[0], None, hooks, Logits::All)?.squeeze(0)?)
    }

    /// Logits [batch, seq_max, vocab] of sequences of any lengths, left-padded to the longest (row i
    /// has its logits in the last `len_i` columns), without a cache.
    pub fn forward_batch(&self, rows: &[Vec<u32>], hooks: &mut Hooks) -> Result<Tensor> {
        let (padded, pad) = left_pad(rows)?;
        self.run(&padded, &pad, None, hooks, Logits::All)
    }

    /// Run the prompts (any lengths, left-padded) into an empty cache; returns logits for `which`.
    pub fn prefill(
        &self,
        cache: &mut KvCache,
        prompts: &[Vec<u32>],
        hooks: &mut Hooks,
        which: Logits,
    ) -> Result<Tensor> {
        if !cache.is_empty() {
            return Err(Error::input("prefill needs an empty cache (call KvCache::reset)"));
        }
        if prompts.len() != cache.batch() {
            return Err(Error::input(format!("{} prompts for a cache of {} rows", prompts.len(), cache.batch())));
        }
        let (padded, pad) = left_pad(prompts)?;
        cache.set_padding(pad.clone());
        self.run(&padded, &pad, Some(cache), hooks, which)
    }

    /// Append one equal-length chunk of tokens per row after what `cache` holds.
    pub fn extend(&self, cache: &mut KvCache, tokens: &[Vec<u32>], hooks: &mut Hooks, which: Logits) -> Result<Tensor> {
        if tokens.len() != cache.batch() {
            return Err(Error::input(format!("{} rows of tokens for a cache of {} rows", tokens.len(), cache.batch())));
        }
        let pad = cache.padding().to_vec();
        self.run(tokens, &pad, Some(cache), hooks, which)
    }

    /// The forward pass over `rows` (equal lengths) with left padding `pad`, appending to `cache`;
    /// on the CPU it runs inside the runtime's thread pool.
    fn run(
        &self,
        rows: &[Vec<u32>],
        pad: &[usize],
        cache: Option<&mut KvCache>,
        hooks: &mut Hooks,
        which: Logits,
    ) -> Result<Tensor> {
        if self.device.is_cpu() {
            crate::pool::install(|| self.run_here(rows, pad, cache, hooks, which))
        } else {
            self.run_here(rows, pad, cache, hooks, which)
        }
    }

    fn run_here(
        &self,
        rows: &[Vec<u32>],
        pad: &[usize],
        mut cache: Option<&mut KvCache>,
        hooks: &mut Hooks,
        which: Logits,
    ) -> Result<Tensor> {
        let cfg = &self.config;
        let b = rows.len();
        let s = rows.first().map_or(0, Vec::len);
        if b == 0 || s == 0 {
            return Err(Error::input("nothing to run: no tokens"));
        }
        if rows.iter().any(|r| r.len() != s) {
            return Err(Error::input("rows of one step must have equal lengths"));
        }
        let flat: Vec<u32> = rows.concat();
        if let Some(&bad) = flat.iter().find(|&&t| t as usize >= cfg.vocab_size) {
            return Err(Error::input(format!("token id {bad} is outside the vocabulary (size {})", cfg.vocab_size)));
        }
        if let Some(l) = hooks.max_layer().filter(|&l| l >= cfg.num_layers) {
            return Err(Error::input(format!("a hook names layer {l}; the model has layers 0..{}", cfg.num_layers)));
        }
        let offset = cache.as_ref().map_or(0, |c| c.len());
        let total = offset + s;
        if let Some(c) = cache.as_ref() {
            if total > c.capacity() {
                return Err(Error::input(format!(
                    "the KV cache holds {} positions; this step needs {total}",
                    c.capacity()
                )));
            }
        }
        let min_pad = pad.iter().copied().min().unwrap_or(0);
        if total - min_pad > self.rope.max_positions {
            return Err(Error::input(format!(
                "sequence of {} positions is longer than the model's {}",
                total - min_pad,
                self.rope.max_positions
            )));
        }
        // Rotary positions [b, s]: column c of row i is position c - pad[i] (pads sit at 0).
        let positions: Vec<u32> =
            (0..b).flat_map(|i| (0..s).map(move |j| (offset + j).saturating_sub(pad[i]) as u32)).collect();
        let pos = Tensor::from_slice(&positions, (b, s), &self.device)?;
        let rope = self.rope.at(&pos)?; // cos, sin [b, s, hd/2], shared by all layers
        let n_rep = cfg.num_heads / cfg.num_kv_heads;
        let mask = self.mask(b, s, offset, pad, n_rep)?;
        let dev = &self.device;
        let mut x = self.embed_tokens.forward(&flat, dev)?.reshape((b, s, cfg.hidden_size))?; // [b, s, hidden]
        let ctx = |id| HookCtx { id, batch: b, seq: s, positions: &positions, tokens: rows };
        for (l, block) in self.layers.iter().enumerate() {
            let id = |p| HookId::new(p, l);
            x = hooks.at(id(HookPoint::ResidPre), x, &ctx(id(HookPoint::ResidPre)))?;
            if hooks.skipped(l) {
                x = hooks.at(id(HookPoint::ResidPost), x, &ctx(id(HookPoint::ResidPost)))?;
                continue;
            }
            // Attention.
            let h = block.input_layernorm.forward(&x)?;
            let heads =
                self.attention(block, &h, &rope, mask.as_ref(), cache.as_deref_mut().map(|c| (c, l)), offset)?; // [b, s, nh, hd]
            let heads = hooks.at(id(HookPoint::AttnHeads), heads, &ctx(id(HookPoint::AttnHeads)))?;
            let attn = block.o_proj.forward(&heads.reshape((b, s, cfg.num_heads * cfg.head_dim))?)?; // [b, s, hidden]
            let attn = hooks.at(id(HookPoint::AttnOut), attn, &ctx(id(HookPoint::AttnOut)))?;
            x = (x + attn)?;
            x = hooks.at(id(HookPoint::ResidMid), x, &ctx(id(HookPoint::ResidMid)))?;
            // MLP.
            let h = block.post_attention_layernorm.forward(&x)?;
            let gate_up = block.gate_up_proj.forward(&h)?; // [b, s, 2·intermediate]
            let i = cfg.intermediate_size;
            let mlp = block.down_proj.forward(&swiglu(&gate_up.narrow(2, 0, i)?, &gate_up.narrow(2, i, i)?)?)?;
            let mlp = hooks.at(id(HookPoint::MlpOut), mlp, &ctx(id(HookPoint::MlpOut)))?;
            x = (x + mlp)?;
            x = hooks.at(id(HookPoint::ResidPost), x, &ctx(id(HookPoint::ResidPost)))?;
        }
        if let Some(c) = cache {
            c.advance(s);
        }
        let x = match which {
            Logits::All => x,
            Logits::Last => x.narrow(1, s - 1, 1)?,
        };
        let logits = self.lm_head.forward(&self.norm.forward(&x)?)?; // [b, s|1, vocab]
        Ok(match which {
            Logits::All => logits,
            Logits::Last => logits.squeeze(1)?,
        })
    }

    /// Grouped-query attention of one layer: h [b, s, hidden] → per-head outputs [b, s, nh, hd].
    fn attention(
        &self,
        block: &Block,
        h: &Tensor,
        rope: &(Tensor, Tensor),
        mask: Option<&Tensor>,
        cache: Option<(&mut KvCache, usize)>,
        offset: usize,
    ) -> Result<Tensor> {
        let cfg = &self.config;
        let (b, s, _) = h.dims3()?;
        let (nh, nkv, hd) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        let qkv = block.qkv_proj.forward(h)?; // [b, s, (nh + 2·nkv)·hd]
        let mut q = qkv.narrow(2, 0, nh * hd)?.reshape((b, s, nh, hd))?;
        let mut k = qkv.narrow(2, nh * hd, nkv * hd)?.reshape((b, s, nkv, hd))?;
        let v = qkv.narrow(2, (nh + nkv) * hd, nkv * hd)?.reshape((b, s, nkv, hd))?;
        if let Some(n) = &block.q_norm {
            q = n.forward(&q)?;
        }
        if let Some(n) = &block.k_norm {
            k = n.forward(&k)?;
        }
        let q = Rope::apply(&q.transpose(1, 2)?, &rope.0, &rope.1)?; // [b, nh, s, hd]
        let k = Rope::apply(&k.transpose(1, 2)?, &rope.0, &rope.1)?; // [b, nkv, s, hd]
        let v = v.transpose(1, 2)?.contiguous()?; // [b, nkv, s, hd]
        let (k, v) = match cache {
            Some((c, layer)) => c.append(layer, &k, &v, offset)?, // [b, nkv, total, hd]
            None => (k, v),
        };
        // Heads h·n_rep .. (h+1)·n_rep share kv head h: fold them into the query rows so one
        // batched matmul serves the group without repeating k and v.
        let n_rep = nh / nkv;
        let q = q.reshape((b, nkv, n_rep * s, hd))?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?; // [b, nkv, n_rep·s, total]
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs.matmul(&v)?; // [b, nkv, n_rep·s, hd]
        Ok(out.reshape((b, nh, s, hd))?.transpose(1, 2)?.contiguous()?) // [b, s, nh, hd]
    }

    /// Additive mask [b, 1, n_rep·s, total] (0 or −∞), None when nothing needs masking (one new
    /// position per row, no padding, no window cut).
    fn mask(&self, b: usize, s: usize, offset: usize, pad: &[usize], n_rep: usize) -> Result<Option<Tensor>> {
        let total = offset + s;
        let window = self.sliding_window.filter(|&w| w < total);
        if s == 1 && pad.iter().all(|&p| p == 0) && window.is_none() {
            return Ok(None);
        }
        let mut m = vec![0f32; b * n_rep * s * total];
        for (i, &p) in pad.iter().enumerate() {
            for j in 0..s {
                let qc = offset + j;
                let row: Vec<f32> = (0..total)
                    .map(|kc| {
                        let causal = kc <= qc;
                        // A pad query attends to itself only, so its (unused) output stays finite.
                        let visible = if qc < p { kc == qc } else { kc >= p };
                        let in_window = window.is_none_or(|w| kc + w > qc);
                        if causal && visible && in_window {
                            0.0
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                    .collect();
                for r in 0..n_rep {
                    let at = ((i * n_rep + r) * s + j) * total;
                    m[at..at + total].copy_from_slice(&row);
                }
            }
        }
        Ok(Some(Tensor::from_vec(m, (b, 1, n_rep * s, total), &self.device)?.to_dtype(F32)?))
    }
}

/// Rows of any lengths, left-padded with token 0 to the longest; returns the rows and each pad.
fn left_pad(rows: &[Vec<u32>]) -> Result<(Vec<Vec<u32>>, Vec<usize>)> {
    let longest = rows.iter().map(Vec::len).max().unwrap_or(0);
    if rows.iter().any(Vec::is_empty) {
        return Err(Error::input("an empty prompt (every row needs at least one token)"));
    }
    let pad: Vec<usize> = rows.iter().map(|r| longest - r.len()).collect();
    let padded = rows.iter().zip(&pad).map(|(r, &p)| [vec![0; p], r.clone()].concat()).collect();
    Ok((padded, pad))
}
