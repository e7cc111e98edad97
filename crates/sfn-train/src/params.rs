//! The model's parameters: which Hugging Face tensors the architecture has (from the config and
//! from which optional tensors — biases, q/k norms, an untied lm_head — the checkpoint stores),
//! their f32 master copies, and a gradient buffer for the trainable ones only.
//!
//! Every parameter keeps its checkpoint name (`model.layers.3.self_attn.q_proj.weight`) and shape,
//! so the trainer can hand tensors back under the names they came from. With tied embeddings there
//! is one tensor, `model.embed_tokens.weight`, serving as both embedding and output projection;
//! `trained_tensor` says which stored tensor a name like `lm_head.weight` trains.

use crate::error::{Error, Result};
use sfn_checkpoint::selector::Selector;
use sfn_checkpoint::ModelConfig;
use sfn_model::WeightSource;
use sfn_run::SplitMix64 as Rng;
use std::collections::HashMap;

/// The name transformers gives the output projection.
pub const LM_HEAD: &str = "lm_head.weight";
/// The token embedding's name.
pub const EMBED: &str = "model.embed_tokens.weight";

/// The stored tensor that training `name` changes: the embedding for `lm_head.weight` when the
/// embeddings are tied, `name` itself otherwise.
pub fn trained_tensor(name: &str, tied: bool) -> &str {
    if tied && name == LM_HEAD {
        EMBED
    } else {
        name
    }
}

/// Which parameters to train.
#[derive(Debug, Clone, Copy)]
pub enum Trainable<'a> {
    /// Canonical names (e.g. from a selector resolved by the caller). `lm_head.weight` in a tied
    /// model means the embedding. An empty list trains nothing (evaluation only).
    Names(&'a [String]),
    /// A module selector (`o_proj,norms,embed,lm_head`, `all`, `layers[5..30].mlp`), resolved
    /// against this model's parameters (plus `lm_head.weight` when tied); matching nothing is an
    /// error.
    Selector(&'a Selector),
}

/// A linear layer y = x·Wᵀ (+ b): indices of W [out, in] and b [out] in the store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Linear {
    pub w: usize,
    pub b: Option<usize>,
    pub inp: usize,
    pub out: usize,
}

/// One decoder layer's parameters, as indices into the store, named as in the checkpoint.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    /// `input_layernorm.weight` [hidden]
    pub input_layernorm: usize,
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    /// Qwen3: `self_attn.q_norm.weight`, `k_norm.weight` [head_dim]
    pub q_norm: Option<usize>,
    pub k_norm: Option<usize>,
    pub o_proj: Linear,
    /// `post_attention_layernorm.weight` [hidden]
    pub post_attention_layernorm: usize,
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Layer {
    /// Every parameter index of the layer.
    pub fn indices(&self) -> Vec<usize> {
        let mut v = vec![self.input_layernorm, self.post_attention_layernorm];
        v.extend(self.q_norm);
        v.extend(self.k_norm);
        for l in
            [&self.q_proj, &self.k_proj, &self.v_proj, &self.o_proj, &self.gate_proj, &self.up_proj, &self.down_proj]
        {
            v.push(l.w);
            v.extend(l.b);
        }
        v
    }
}

/// The whole decoder's parameters as indices into the store.
#[derive(Debug, Clone)]
pub(crate) struct Arch {
    /// `model.embed_tokens.weight` [vocab, hidden]
    pub embed: usize,
    pub layers: Vec<Layer>,
    /// `model.norm.weight` [hidden]
    pub norm: usize,
    /// `lm_head.weight` [vocab, hidden]; None when tied to the embedding.
    pub lm_head: Option<usize>,
}

impl Arch {
    /// The output projection's tensor.
    pub fn head(&self) -> usize {
        self.lm_head.unwrap_or(self.embed)
    }
}

/// Parameter names, shapes, f32 data and gradient buffers (trainable parameters only), by index.
#[derive(Debug)]
pub(crate) struct Store {
    pub names: Vec<String>,
    pub shapes: Vec<Vec<usize>>,
    pub data: Vec<Vec<f32>>,
    pub grads: Vec<Option<Vec<f32>>>,
    pub index: HashMap<String, usize>,
}

/// Parameter names and shapes, in model order.
pub(crate) type Specs = Vec<(String, Vec<usize>)>;

/// The parameter list an architecture implies: names and shapes in model order, with the index
/// structure. `has(name)` says whether an optional tensor (bias, q/k norm, lm_head) exists.
pub(crate) fn layout(cfg: &ModelConfig, has: &dyn Fn(&str) -> bool) -> Result<(Specs, Arch, bool)> {
    let (h, nh, nkv, hd, inter, vocab) =
        (cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.intermediate_size, cfg.vocab_size);
    if nh == 0 || nkv == 0 || nh % nkv != 0 {
        return Err(Error::Unsupported(format!("{nh} attention heads do not split into {nkv} key/value groups")));
    }
    if hd == 0 || !hd.is_multiple_of(2) {
        return Err(Error::Unsupported(format!("head_dim {hd} must be even and positive for rotary embeddings")));
    }
    if h == 0 || inter == 0 || vocab == 0 || cfg.num_layers == 0 {
        return Err(Error::Unsupported(
            "hidden size, intermediate size, vocabulary and layer count must be positive".into(),
        ));
    }
    let mut specs: Specs = Vec::new();
    fn add(specs: &mut Specs, name: String, shape: Vec<usize>) -> usize {
        specs.push((name, shape));
        specs.len() - 1
    }
    fn linear(specs: &mut Specs, prefix: &str, inp: usize, out: usize, bias: bool) -> Linear {
        let w = add(specs, format!("{prefix}.weight"), vec![out, inp]);
        let b = bias.then(|| add(specs, format!("{prefix}.bias"), vec![out]));
        Linear { w, b, inp, out }
    }
    let embed = add(&mut specs, EMBED.into(), vec![vocab, h]);
    let mut layers = Vec::with_capacity(cfg.num_layers);
    // Checkpoint order: input norm, attention (q, k, v, q/k norms, o), post-attention norm, MLP.
    for l in 0..cfg.num_layers {
        let p = format!("model.layers.{l}");
        let a = format!("{p}.self_attn");
        let m = format!("{p}.mlp");
        let s = &mut specs;
        let input_layernorm = add(s, format!("{p}.input_layernorm.weight"), vec![h]);
        let qkv_bias = cfg.attention_bias || has(&format!("{a}.q_proj.bias"));
        let q_proj = linear(s, &format!("{a}.q_proj"), h, nh * hd, qkv_bias);
        let k_proj = linear(s, &format!("{a}.k_proj"), h, nkv * hd, qkv_bias);
        let v_proj = linear(s, &format!("{a}.v_proj"), h, nkv * hd, qkv_bias);
        let mut norm = |n: &str| {
            let name = format!("{a}.{n}.weight");
            has(&name).then(|| add(s, name, vec![hd]))
        };
        let (q_norm, k_norm) = (norm("q_norm"), norm("k_norm"));
        let o_proj = linear(s, &format!("{a}.o_proj"), nh * hd, h, has(&format!("{a}.o_proj.bias")));
        let post_attention_layernorm = add(s, format!("{p}.post_attention_layernorm.weight"), vec![h]);
        let bias = |n: &str| has(&format!("{m}.{n}.bias"));
        let gate_proj = linear(s, &format!("{m}.gate_proj"), h, inter, bias("gate_proj"));
        let up_proj = linear(s, &format!("{m}.up_proj"), h, inter, bias("up_proj"));
        let down_proj = linear(s, &format!("{m}.down_proj"), inter, h, bias("down_proj"));
        layers.push(Layer {
            input_layernorm,
            q_proj,
            k_proj,
            v_proj,
            q_norm,
            k_norm,
            o_proj,
            post_attention_layernorm,
            gate_proj,
            up_proj,
            down_proj,
        });
    }
    let norm = add(&mut specs, "model.norm.weight".into(), vec![h]);
    // Tied when the config says so or when there is no separate head (as sfn-model decides).
    let tied = cfg.tied_embeddings || !has(LM_HEAD);
    let lm_head = (!tied).then(|| add(&mut specs, LM_HEAD.into(), vec![vocab, h]));
    Ok((specs, Arch { embed, layers, norm, lm_head }, tied))
}

impl Store {
    /// Read every parameter from `src` as f32, checking its shape.
    pub fn load(specs: Specs, src: &dyn WeightSource) -> Result<Store> {
        let mut data = Vec::with_capacity(specs.len());
        for (name, shape) in &specs {
            match src.shape(name) {
                None => return Err(Error::tensor(name, "is missing from the checkpoint")),
                Some(s) if &s != shape => {
                    return Err(Error::tensor(name, format!("has shape {s:?}, the config implies {shape:?}")))
                }
                Some(_) => {}
            }
            let v = src.load_f32(name)?;
            if v.len() != shape.iter().product::<usize>() {
                return Err(Error::tensor(name, format!("read {} values for shape {shape:?}", v.len())));
            }
            data.push(v);
        }
        Ok(Store::new(specs, data))
    }

    /// transformers' initialisation: weights (embedding included) normal(0, std), norm weights 1,
    /// biases 0; drawn in parameter order from one seeded generator.
    pub fn random(specs: Specs, seed: u64, std: f32) -> Store {
        let mut rng = Rng::new(seed);
        let data = specs
            .iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                if name.ends_with(".bias") {
                    vec![0.0; n]
                } else if shape.len() == 1 {
                    vec![1.0; n]
                } else {
                    (0..n).map(|_| rng.normal() as f32 * std).collect()
                }
            })
            .collect();
        Store::new(specs, data)
    }

    fn new(specs: Specs, data: Vec<Vec<f32>>) -> Store {
        let index = specs.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)).collect();
        let (names, shapes) = specs.into_iter().unzip();
        let grads = (0..data.len()).map(|_| None).collect();
        Store { names, shapes, data, grads, index }
    }

    /// Resolve `trainable` to parameter indices (tied lm_head → embedding), sorted and unique.
    pub fn resolve(&self, trainable: Trainable<'_>, tied: bool) -> Result<Vec<usize>> {
        let mut candidates: Vec<&str> = self.names.iter().map(String::as_str).collect();
        if tied {
            candidates.push(LM_HEAD);
        }
        let chosen: Vec<&str> = match trainable {
            Trainable::Names(names) => names.iter().map(String::as_str).collect(),
            Trainable::Selector(sel) => {
                sel.select(candidates.iter().copied()).map_err(|e| Error::Trainable(e.to_string()))?
            }
        };
        let mut idx = Vec::with_capacity(chosen.len());
        for name in chosen {
            let stored = trained_tensor(name, tied);
            match self.index.get(stored) {
                Some(&i) => idx.push(i),
                None => {
                    return Err(Error::Trainable(format!(
                        "`{name}` is not a parameter of this model (names are canonical, e.g. {})",
                        self.names.get(1).map_or(EMBED, String::as_str)
                    )))
                }
            }
        }
        idx.sort_unstable();
        idx.dedup();
        Ok(idx)
    }

    /// Give exactly `idx` zeroed gradient buffers; every other parameter none.
    pub fn set_trainable(&mut self, idx: &[usize]) {
        for (i, g) in self.grads.iter_mut().enumerate() {
            *g = idx.binary_search(&i).is_ok().then(|| vec![0.0; self.data[i].len()]);
        }
    }

    pub fn trainable(&self, i: usize) -> bool {
        self.grads[i].is_some()
    }
}

/// One parameter as the caller sees it.
#[derive(Debug, Clone, Copy)]
pub struct ParamView<'a> {
    /// Canonical Hugging Face name.
    pub name: &'a str,
    /// Row-major shape, as in the checkpoint.
    pub shape: &'a [usize],
    /// The f32 master weights.
    pub data: &'a [f32],
    /// The accumulated gradient (trainable parameters only).
    pub grad: Option<&'a [f32]>,
}

impl ParamView<'_> {
    pub fn trainable(&self) -> bool {
        self.grad.is_some()
    }
}
