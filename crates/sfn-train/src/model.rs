//! `TrainModel`: the decoder sfn-model runs (Llama / Mistral / Qwen2 / Qwen3), with a hand-written
//! forward and backward pass over f32 buffers, llm.c style: every activation the backward pass
//! needs lives in a buffer allocated once per batch size and reused, there is no autograd graph,
//! and frozen tensors get neither a gradient buffer nor a weight-gradient matmul (activation
//! gradients still flow through them).
//!
//! Per layer: RMSNorm → q/k/v (biases when stored) → per-head q/k RMSNorm (Qwen3) → rotary
//! embedding (sfn-model's tables, incl. linear/llama3 scaling) → grouped-query causal attention
//! (scale 1/√head_dim, Mistral's sliding window, packed segments) → o_proj → residual → RMSNorm →
//! down(silu(gate(x))·up(x)) → residual; then the final RMSNorm and lm_head (or the tied embedding),
//! and the next-token cross-entropy of transformers' `ForCausalLMLoss`.
//!
//! Work runs on the current rayon pool (the caller's `ThreadPool::install`, else rayon's global
//! pool). On a given CPU, results are bit-identical for identical inputs whatever the number of
//! threads: every kernel cuts work into pieces of fixed size and sums pieces in order, and gemm
//! splits only output tiles (another CPU may pick other gemm micro-kernels, hence other roundings).
//! Limits: f32 only; no dropout; one device (the CPU); rope tables hold at most 32768 positions, as
//! in sfn-model.

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::kernels::attention::{self, Dims as AttnDims};
use crate::kernels::{matmul, ops};
use crate::params::{layout, Arch, Layer, Linear, ParamView, Store, Trainable};
use sfn_checkpoint::ModelConfig;
use sfn_model::layers::Rope;
use sfn_model::{Device, WeightSource};

/// Rotary tables are computed for at most this many positions (as sfn-model does).
const MAX_ROPE_TABLE: usize = 32768;
/// Logits are formed this many floats at a time (rows × vocab) during the loss: 64 MB.
const LOGITS_CHUNK: usize = 1 << 24;

/// Loss of one micro-batch: the sum of its next-token cross-entropies and how many targets it
/// scored. A step's loss is Σ loss_sum / Σ targets over its micro-batches.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MicroStats {
    pub loss_sum: f64,
    pub targets: usize,
}

impl MicroStats {
    /// Mean loss per target (0 when nothing was scored).
    pub fn mean(&self) -> f64 {
        if self.targets == 0 {
            0.0
        } else {
            self.loss_sum / self.targets as f64
        }
    }
}

impl std::ops::Add for MicroStats {
    type Output = MicroStats;
    /// Both micro-batches together.
    fn add(self, other: MicroStats) -> MicroStats {
        MicroStats { loss_sum: self.loss_sum + other.loss_sum, targets: self.targets + other.targets }
    }
}

/// Sizes used everywhere.
#[derive(Debug, Clone, Copy)]
struct Dims {
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    /// heads · head_dim
    qd: usize,
    /// kv_heads · head_dim
    kvd: usize,
    inter: usize,
    vocab: usize,
}

/// The fixed, weight-independent parts of the network.
#[derive(Debug)]
struct Net {
    d: Dims,
    arch: Arch,
    eps: f32,
    /// [max_positions, head_dim / 2]
    cos: Vec<f32>,
    /// [max_positions, head_dim / 2]
    sin: Vec<f32>,
    max_positions: usize,
    window: Option<usize>,
}

/// A batch as the kernels see it.
struct Ctx<'a> {
    rows: usize,
    cols: usize,
    /// rows · cols
    n: usize,
    /// [n]
    tokens: &'a [u32],
    /// [n]
    pos: &'a [u32],
    /// [n] first visible key column of each query (segment start or window start).
    lo: Vec<u32>,
    /// Flat positions that are scored, and their targets (the next label) [scored].
    at: Vec<u32>,
    target: Vec<u32>,
}

/// What one layer's forward pass keeps for its backward pass (sized for `cap` tokens).
#[derive(Debug)]
struct LayerActs {
    /// [cap] rsqrt(mean(x²) + eps) of the input norm
    rstd1: Vec<f32>,
    /// [cap, qd] q before q_norm (Qwen3 only, else empty)
    q_in: Vec<f32>,
    /// [cap · heads] (Qwen3 only)
    q_rstd: Vec<f32>,
    /// [cap, kvd] k before k_norm (Qwen3 only)
    k_in: Vec<f32>,
    /// [cap · kv_heads] (Qwen3 only)
    k_rstd: Vec<f32>,
    /// [cap, qd] after q_norm and rope
    q: Vec<f32>,
    /// [cap, kvd] after k_norm and rope
    k: Vec<f32>,
    /// [cap, kvd]
    v: Vec<f32>,
    /// [rows, heads, cols] log-sum-exp of each query's scores
    lse: Vec<f32>,
    /// [cap, qd] attention output, o_proj's input
    y: Vec<f32>,
    /// [cap, hidden] residual stream after attention
    mid: Vec<f32>,
    /// [cap] of the post-attention norm
    rstd2: Vec<f32>,
    /// [cap, inter] gate_proj output
    gate: Vec<f32>,
    /// [cap, inter] up_proj output
    up: Vec<f32>,
}

impl LayerActs {
    fn new(cap: usize, d: &Dims, qk_norm: bool) -> LayerActs {
        let z = |n: usize| vec![0f32; n];
        let opt = |n: usize| if qk_norm { z(n) } else { Vec::new() };
        LayerActs {
            rstd1: z(cap),
            q_in: opt(cap * d.qd),
            q_rstd: opt(cap * d.heads),
            k_in: opt(cap * d.kvd),
            k_rstd: opt(cap * d.kv_heads),
            q: z(cap * d.qd),
            k: z(cap * d.kvd),
            v: z(cap * d.kvd),
            lse: z(cap * d.heads),
            y: z(cap * d.qd),
            mid: z(cap * d.hidden),
            rstd2: z(cap),
            gate: z(cap * d.inter),
            up: z(cap * d.inter),
        }
    }
}

/// Forward scratch: normed activations and the SwiGLU product, plus the loss head's buffers.
#[derive(Debug)]
struct Work {
    /// [cap, hidden] output of the current RMSNorm
    ln: Vec<f32>,
    /// [cap, inter] silu(gate)·up
    h: Vec<f32>,
    /// [cap, hidden] the scored rows of the final normed hidden states
    xs: Vec<f32>,
    /// [chunk, vocab] logits (then their gradient) of a chunk of scored rows
    logits: Vec<f32>,
    /// [chunk, hidden] gradient of a chunk's scored rows (training only)
    dxs: Vec<f32>,
    /// [chunk] per-row losses of a chunk
    loss: Vec<f64>,
    chunk: usize,
}

impl Work {
    fn new(cap: usize, d: &Dims) -> Work {
        let chunk = (LOGITS_CHUNK / d.vocab).clamp(1, cap);
        Work {
            ln: vec![0.0; cap * d.hidden],
            h: vec![0.0; cap * d.inter],
            xs: vec![0.0; cap * d.hidden],
            logits: vec![0.0; chunk * d.vocab],
            dxs: Vec::new(),
            loss: vec![0.0; chunk],
            chunk,
        }
    }
}

/// Backward scratch, shared by all layers.
#[derive(Debug)]
struct GradWork {
    /// [cap, hidden] gradient of the residual stream
    dres: Vec<f32>,
    /// [cap, hidden] gradient of a norm's output
    dln: Vec<f32>,
    /// [cap, qd] gradient of the attention output; later of q before q_norm
    dy: Vec<f32>,
    /// [cap, qd]
    dq: Vec<f32>,
    /// [cap, kvd]
    dk: Vec<f32>,
    /// [cap, kvd]
    dv: Vec<f32>,
    /// [cap, kvd] gradient of k before k_norm (Qwen3 only)
    dk_in: Vec<f32>,
    /// [cap, inter] gradient of the SwiGLU product, then of gate
    dgate: Vec<f32>,
    /// [cap, inter]
    dup: Vec<f32>,
    /// Per-piece partial sums of norm-weight and bias gradients (grown as needed).
    partial: Vec<f32>,
}

/// Everything a training step keeps between its forward and backward pass.
#[derive(Debug)]
struct Acts {
    /// Tokens the buffers hold.
    cap: usize,
    /// [layers + 1] × [cap, hidden]: the residual stream entering each layer, and the last
    /// layer's output.
    resid: Vec<Vec<f32>>,
    layers: Vec<LayerActs>,
    /// [cap] of the final norm
    rstd_final: Vec<f32>,
    work: Work,
    grad: GradWork,
}

impl Acts {
    fn new(cap: usize, d: &Dims, n_layers: usize, qk_norm: bool) -> Acts {
        let z = |n: usize| vec![0f32; n];
        Acts {
            cap,
            resid: (0..=n_layers).map(|_| z(cap * d.hidden)).collect(),
            layers: (0..n_layers).map(|_| LayerActs::new(cap, d, qk_norm)).collect(),
            rstd_final: z(cap),
            work: Work::new(cap, d),
            grad: GradWork {
                dres: z(cap * d.hidden),
                dln: z(cap * d.hidden),
                dy: z(cap * d.qd),
                dq: z(cap * d.qd),
                dk: z(cap * d.kvd),
                dv: z(cap * d.kvd),
                dk_in: if qk_norm { z(cap * d.kvd) } else { Vec::new() },
                dgate: z(cap * d.inter),
                dup: z(cap * d.inter),
                partial: Vec::new(),
            },
        }
    }
}

/// The model being trained: parameters (f32 master weights, gradients for the trainable ones) and
/// the activation buffers of the last batch size.
#[derive(Debug)]
pub struct TrainModel {
    config: ModelConfig,
    net: Net,
    store: Store,
    tied: bool,
    acts: Option<Box<Acts>>,
}

impl TrainModel {
    /// Load every parameter from `src` as f32 (any stored dtype; GGUF dequantized) and make
    /// `trainable` trainable.
    pub fn load(src: &dyn WeightSource, trainable: Trainable<'_>) -> Result<TrainModel> {
        let config = src.config()?;
        let has = |n: &str| src.shape(n).is_some();
        let (specs, arch, tied) = layout(&config, &has)?;
        let store = Store::load(specs, src)?;
        TrainModel::build(config, arch, tied, store, trainable)
    }

    /// A freshly initialised model of `config` (transformers' scheme: normal(0, std) weights —
    /// transformers' `initializer_range` is usually 0.02 — norms 1, biases 0), from `seed`. Has
    /// q/k/v biases when `config.attention_bias`, q/k norms for the qwen3 family, an lm_head
    /// unless `config.tied_embeddings`.
    pub fn random(config: &ModelConfig, seed: u64, std: f32, trainable: Trainable<'_>) -> Result<TrainModel> {
        let qk_norm = config.family == "qwen3";
        let tied = config.tied_embeddings;
        let has = |n: &str| {
            (qk_norm && (n.ends_with("q_norm.weight") || n.ends_with("k_norm.weight")))
                || (!tied && n == crate::LM_HEAD)
        };
        let (specs, arch, tied) = layout(config, &has)?;
        let store = Store::random(specs, seed, std);
        TrainModel::build(config.clone(), arch, tied, store, trainable)
    }

    fn build(
        config: ModelConfig,
        arch: Arch,
        tied: bool,
        mut store: Store,
        trainable: Trainable<'_>,
    ) -> Result<TrainModel> {
        let d = Dims {
            hidden: config.hidden_size,
            heads: config.num_heads,
            kv_heads: config.num_kv_heads,
            head_dim: config.head_dim,
            qd: config.num_heads * config.head_dim,
            kvd: config.num_kv_heads * config.head_dim,
            inter: config.intermediate_size,
            vocab: config.vocab_size,
        };
        let max_positions = config.max_position_embeddings.clamp(1, MAX_ROPE_TABLE);
        let rope = Rope::new(&config, max_positions, &Device::Cpu)?;
        let table = |t: &sfn_model::Tensor| -> Result<Vec<f32>> {
            Ok(t.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(sfn_model::Error::from)?)
        };
        let (cos, sin) = (table(&rope.cos)?, table(&rope.sin)?);
        let window = if config.family == "mistral" { config.sliding_window } else { None };
        let idx = store.resolve(trainable, tied)?;
        store.set_trainable(&idx);
        let net = Net { d, arch, eps: config.rms_norm_eps as f32, cos, sin, max_positions, window };
        Ok(TrainModel { config, net, store, tied, acts: None })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Whether the output projection is the token embedding (then `lm_head.weight` names it).
    pub fn tied(&self) -> bool {
        self.tied
    }

    /// The longest position a batch may use, plus one.
    pub fn max_positions(&self) -> usize {
        self.net.max_positions
    }

    /// Every parameter, in checkpoint order.
    pub fn params(&self) -> impl Iterator<Item = ParamView<'_>> + '_ {
        (0..self.store.names.len()).map(|i| self.view(i))
    }

    /// One parameter by canonical name.
    pub fn param(&self, name: &str) -> Option<ParamView<'_>> {
        self.store.index.get(name).map(|&i| self.view(i))
    }

    /// A parameter's weights, writable (to restore a saved run or edit a weight). The activation
    /// buffers hold nothing across calls, so this never invalidates anything.
    pub fn param_mut(&mut self, name: &str) -> Option<&mut [f32]> {
        let i = *self.store.index.get(name)?;
        Some(&mut self.store.data[i])
    }

    /// A trainable parameter's accumulated gradient, writable (None when frozen or unknown).
    pub fn grad_mut(&mut self, name: &str) -> Option<&mut [f32]> {
        let i = *self.store.index.get(name)?;
        self.store.grads[i].as_deref_mut()
    }

    fn view(&self, i: usize) -> ParamView<'_> {
        ParamView {
            name: &self.store.names[i],
            shape: &self.store.shapes[i],
            data: &self.store.data[i],
            grad: self.store.grads[i].as_deref(),
        }
    }

    /// Names of the trainable parameters, in checkpoint order.
    pub fn trainable_names(&self) -> Vec<&str> {
        self.params().filter(|p| p.trainable()).map(|p| p.name).collect()
    }

    /// (all parameters, trainable parameters), counted in values.
    pub fn num_params(&self) -> (usize, usize) {
        self.params().fold((0, 0), |(a, t), p| (a + p.data.len(), t + if p.trainable() { p.data.len() } else { 0 }))
    }

    /// Set every gradient to zero (call once per optimizer step, before its micro-batches).
    pub fn zero_grad(&mut self) {
        for g in self.store.grads.iter_mut().flatten() {
            ops::zero(g);
        }
    }

    /// Global L2 norm of all trainable gradients (sums of squares in f64, per tensor in order).
    pub fn grad_norm(&self) -> f64 {
        self.store.grads.iter().flatten().map(|g| ops::sum_sq(g)).sum::<f64>().sqrt()
    }

    /// Scale the gradients so that their global norm is at most `max` (torch's
    /// `clip_grad_norm_`: factor max / (norm + 1e-6) when below 1); `max` = 0 turns clipping off.
    /// Returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max: f64) -> f64 {
        let norm = self.grad_norm();
        if max > 0.0 {
            let coef = max / (norm + 1e-6);
            if coef < 1.0 {
                for g in self.store.grads.iter_mut().flatten() {
                    ops::scale(g, coef as f32);
                }
            }
        }
        norm
    }

    pub(crate) fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Check a batch against the model and derive what the kernels need.
    fn prepare<'a>(&self, batch: &'a Batch) -> Result<Ctx<'a>> {
        let vocab = self.net.d.vocab;
        let tokens = batch.tokens();
        if let Some(i) = tokens.iter().position(|&t| t as usize >= vocab) {
            return Err(Error::batch(format!(
                "token id {} at row {}, column {} is outside the vocabulary (size {vocab})",
                tokens[i],
                i / batch.cols(),
                i % batch.cols()
            )));
        }
        if let Some(i) = batch.labels().iter().position(|&l| l >= 0 && l as usize >= vocab) {
            return Err(Error::batch(format!(
                "label {} at row {}, column {} is outside the vocabulary (size {vocab})",
                batch.labels()[i],
                i / batch.cols(),
                i % batch.cols()
            )));
        }
        if let Some(i) = batch.positions().iter().position(|&p| p as usize >= self.net.max_positions) {
            return Err(Error::batch(format!(
                "position {} at row {}, column {} is beyond the model's {} positions",
                batch.positions()[i],
                i / batch.cols(),
                i % batch.cols(),
                self.net.max_positions
            )));
        }
        let (at, target) = batch.targets();
        Ok(Ctx {
            rows: batch.rows(),
            cols: batch.cols(),
            n: tokens.len(),
            tokens,
            pos: batch.positions(),
            lo: batch.first_visible(self.net.window),
            at,
            target,
        })
    }

    /// Forward and backward pass of one micro-batch, adding its gradients to the accumulated
    /// ones. `step_targets` is the number of scored targets of the whole optimizer step (Σ
    /// `Batch::num_targets` over its micro-batches): gradients are those of Σ loss / step_targets,
    /// so after the last micro-batch they are exactly the gradients of the step's mean loss, as
    /// transformers computes them with `num_items_in_batch`.
    pub fn forward_backward(&mut self, batch: &Batch, step_targets: usize) -> Result<MicroStats> {
        let ctx = self.prepare(batch)?;
        if ctx.at.len() > step_targets {
            return Err(Error::batch(format!(
                "the micro-batch scores {} targets but the step is said to have {step_targets}",
                ctx.at.len()
            )));
        }
        let qk_norm = self.net.arch.layers[0].q_norm.is_some();
        let mut acts = match self.acts.take() {
            Some(a) if a.cap >= ctx.n => a,
            _ => {
                // Drop the old buffers before allocating the larger ones.
                self.acts = None;
                Box::new(Acts::new(ctx.n, &self.net.d, self.net.arch.layers.len(), qk_norm))
            }
        };
        let loss = self.train_pass(&ctx, &mut acts, step_targets);
        self.acts = Some(acts);
        Ok(MicroStats { loss_sum: loss, targets: ctx.at.len() })
    }

    fn train_pass(&mut self, ctx: &Ctx<'_>, acts: &mut Acts, step_targets: usize) -> f64 {
        let net = &self.net;
        let data = &self.store.data;
        let grads = &mut self.store.grads;
        let (n, c) = (ctx.n, net.d.hidden);
        let Acts { resid, layers, rstd_final, work, grad, .. } = acts;
        ops::gather_rows(&data[net.arch.embed], ctx.tokens, &mut resid[0][..n * c], c);
        for (l, la) in layers.iter_mut().enumerate() {
            let (before, after) = resid.split_at_mut(l + 1);
            net.layer_forward(l, ctx, data, &before[l][..n * c], &mut after[0][..n * c], la, work);
        }
        let last = &resid[net.arch.layers.len()][..n * c];
        ops::rms_forward(last, &data[net.arch.norm], net.eps, &mut work.ln[..n * c], &mut rstd_final[..n]);
        if ctx.at.is_empty() {
            return 0.0;
        }

        // What the backward pass must reach: layers down to the lowest one holding a trainable
        // tensor (all of them when the embedding trains).
        let trains = |i: usize| grads[i].is_some();
        let arch = &net.arch;
        let lowest = if trains(arch.embed) {
            Some(0)
        } else {
            arch.layers.iter().position(|layer| layer.indices().into_iter().any(trains))
        };
        let final_norm_trains = trains(arch.norm);
        let head_w_trains = trains(arch.head());
        let need_dnormed = lowest.is_some() || final_norm_trains;
        let (normed, head_work) = (std::mem::take(&mut work.ln), work);
        if !need_dnormed && !head_w_trains {
            let loss = net.head(ctx, data, &normed[..n * c], head_work, None);
            head_work.ln = normed;
            return loss;
        }
        let scale = (1.0 / step_targets as f64) as f32;
        let head_grad = HeadGrad {
            scale,
            d_normed: if need_dnormed { Some(&mut grad.dln[..n * c]) } else { None },
            dw: grads[arch.head()].as_deref_mut(),
        };
        let loss = net.head(ctx, data, &normed[..n * c], head_work, Some(head_grad));
        head_work.ln = normed;
        if !need_dnormed {
            return loss;
        }
        // Through the final norm.
        let last = &resid[arch.layers.len()][..n * c];
        let dw = grads[arch.norm].as_deref_mut();
        let dres = &mut grad.dres[..n * c];
        ops::rms_backward(
            &grad.dln[..n * c],
            last,
            &rstd_final[..n],
            &data[arch.norm],
            dres,
            false,
            dw,
            &mut grad.partial,
        );
        let Some(lowest) = lowest else { return loss };
        for l in (lowest..arch.layers.len()).rev() {
            let need_dx = l > lowest || grads[arch.embed].is_some();
            net.layer_backward(l, ctx, data, grads, &resid[l][..n * c], &layers[l], head_work, grad, need_dx);
        }
        if let Some(ge) = grads[arch.embed].as_deref_mut() {
            ops::scatter_add_rows(ge, ctx.tokens, &grad.dres[..n * c], c);
        }
        loss
    }

    /// Forward pass only: the summed next-token loss of `batch` and its number of targets (for
    /// evaluation; uses buffers of its own, for one layer at a time).
    pub fn loss(&self, batch: &Batch) -> Result<MicroStats> {
        let ctx = self.prepare(batch)?;
        let mut e = self.eval_forward(&ctx);
        let n = ctx.n * self.net.d.hidden;
        let normed = std::mem::take(&mut e.ln);
        let loss = self.net.head(&ctx, &self.store.data, &normed[..n], &mut e, None);
        Ok(MicroStats { loss_sum: loss, targets: ctx.at.len() })
    }

    /// Logits of every position, [rows · cols, vocab] (for parity tests and inspection).
    pub fn logits(&self, batch: &Batch) -> Result<Vec<f32>> {
        let ctx = self.prepare(batch)?;
        let e = self.eval_forward(&ctx);
        let d = &self.net.d;
        let mut out = vec![0f32; ctx.n * d.vocab];
        matmul::x_wt(&e.ln, &self.store.data[self.net.arch.head()], &mut out, ctx.n, d.hidden, d.vocab, false);
        Ok(out)
    }

    /// The forward pass up to the final norm, keeping one layer's activations at a time; returns
    /// the work buffers with the final normed hidden states [n, hidden] in `ln`.
    fn eval_forward(&self, ctx: &Ctx<'_>) -> Work {
        let net = &self.net;
        let (n, c) = (ctx.n, net.d.hidden);
        let data = &self.store.data;
        let qk_norm = net.arch.layers[0].q_norm.is_some();
        let mut la = LayerActs::new(n, &net.d, qk_norm);
        let mut work = Work::new(n, &net.d);
        let (mut x, mut y) = (vec![0f32; n * c], vec![0f32; n * c]);
        ops::gather_rows(&data[net.arch.embed], ctx.tokens, &mut x, c);
        for l in 0..net.arch.layers.len() {
            net.layer_forward(l, ctx, data, &x, &mut y, &mut la, &mut work);
            std::mem::swap(&mut x, &mut y);
        }
        ops::rms_forward(&x, &data[net.arch.norm], net.eps, &mut work.ln[..n * c], &mut la.rstd1[..n]);
        work
    }
}

/// The gradient side of the loss head.
struct HeadGrad<'a> {
    /// d loss_total / d loss_row (1 / step targets).
    scale: f32,
    /// [n, hidden] gradient of the final normed hidden states (written; None when not needed).
    d_normed: Option<&'a mut [f32]>,
    /// [vocab, hidden] output projection gradient (added to; None when frozen).
    dw: Option<&'a mut [f32]>,
}

impl Net {
    /// y = x·Wᵀ (+ b) over n rows, or y += that when `accumulate`.
    fn linear(&self, lin: &Linear, data: &[Vec<f32>], x: &[f32], y: &mut [f32], n: usize, accumulate: bool) {
        matmul::x_wt(x, &data[lin.w], y, n, lin.inp, lin.out, accumulate);
        if let Some(b) = lin.b {
            ops::add_bias(&mut y[..n * lin.out], &data[b]);
        }
    }

    /// dW += dyᵀ·x and db += Σ dy for whichever of them trains; x [n, in] is only read when W trains.
    fn linear_param_grads(
        lin: &Linear,
        grads: &mut [Option<Vec<f32>>],
        dy: &[f32],
        x: &[f32],
        n: usize,
        partial: &mut Vec<f32>,
    ) {
        if let Some(gw) = grads[lin.w].as_deref_mut() {
            matmul::at_b(dy, x, gw, lin.out, n, lin.inp, true);
        }
        if let Some(gb) = lin.b.and_then(|b| grads[b].as_deref_mut()) {
            ops::bias_grad(&dy[..n * lin.out], gb, partial);
        }
    }

    fn trains_any(lins: &[&Linear], grads: &[Option<Vec<f32>>]) -> bool {
        lins.iter().any(|l| grads[l.w].is_some() || l.b.is_some_and(|b| grads[b].is_some()))
    }

    /// One layer: x [n, hidden] → out [n, hidden], keeping activations in `a`.
    #[allow(clippy::too_many_arguments)]
    fn layer_forward(
        &self,
        l: usize,
        ctx: &Ctx<'_>,
        data: &[Vec<f32>],
        x: &[f32],
        out: &mut [f32],
        a: &mut LayerActs,
        w: &mut Work,
    ) {
        let Dims { hidden: c, heads, kv_heads, head_dim: hd, qd, kvd, inter, .. } = self.d;
        let n = ctx.n;
        let p = &self.arch.layers[l];
        let ln = &mut w.ln[..n * c];
        ops::rms_forward(x, &data[p.input_layernorm], self.eps, ln, &mut a.rstd1[..n]);
        // q, k [n, ·] land in q_in / k_in when a per-head norm follows, else straight in q / k.
        let (q, k) = match (p.q_norm, p.k_norm) {
            (Some(qn), Some(kn)) => {
                self.linear(&p.q_proj, data, ln, &mut a.q_in, n, false);
                self.linear(&p.k_proj, data, ln, &mut a.k_in, n, false);
                ops::rms_forward(
                    &a.q_in[..n * qd],
                    &data[qn],
                    self.eps,
                    &mut a.q[..n * qd],
                    &mut a.q_rstd[..n * heads],
                );
                ops::rms_forward(
                    &a.k_in[..n * kvd],
                    &data[kn],
                    self.eps,
                    &mut a.k[..n * kvd],
                    &mut a.k_rstd[..n * kv_heads],
                );
                (&mut a.q[..n * qd], &mut a.k[..n * kvd])
            }
            _ => {
                self.linear(&p.q_proj, data, ln, &mut a.q, n, false);
                self.linear(&p.k_proj, data, ln, &mut a.k, n, false);
                (&mut a.q[..n * qd], &mut a.k[..n * kvd])
            }
        };
        self.linear(&p.v_proj, data, ln, &mut a.v, n, false);
        let half = hd / 2;
        ops::rope(q, qd, ctx.pos, &self.cos, &self.sin, half, false);
        ops::rope(k, kvd, ctx.pos, &self.cos, &self.sin, half, false);
        let dims = AttnDims { rows: ctx.rows, cols: ctx.cols, heads, kv_heads, head_dim: hd };
        let scale = 1.0 / (hd as f32).sqrt();
        attention::forward(dims, scale, &ctx.lo, &a.q, &a.k, &a.v, &mut a.y, &mut a.lse);
        // mid = x + o_proj(y)
        let mid = &mut a.mid[..n * c];
        mid.copy_from_slice(x);
        self.linear(&p.o_proj, data, &a.y, mid, n, true);
        ops::rms_forward(mid, &data[p.post_attention_layernorm], self.eps, ln, &mut a.rstd2[..n]);
        self.linear(&p.gate_proj, data, ln, &mut a.gate, n, false);
        self.linear(&p.up_proj, data, ln, &mut a.up, n, false);
        let h = &mut w.h[..n * inter];
        ops::swiglu_forward(&a.gate[..n * inter], &a.up[..n * inter], h);
        // out = mid + down_proj(h)
        out.copy_from_slice(mid);
        self.linear(&p.down_proj, data, h, out, n, true);
    }

    /// Backward of one layer. On entry `g.dres` holds the gradient of the layer's output; on return
    /// that of its input x (when `need_dx`; otherwise only the parameter gradients are complete).
    #[allow(clippy::too_many_arguments)]
    fn layer_backward(
        &self,
        l: usize,
        ctx: &Ctx<'_>,
        data: &[Vec<f32>],
        grads: &mut [Option<Vec<f32>>],
        x: &[f32],
        a: &LayerActs,
        w: &mut Work,
        g: &mut GradWork,
        need_dx: bool,
    ) {
        let Dims { hidden: c, heads, kv_heads, head_dim: hd, qd, kvd, inter, .. } = self.d;
        let n = ctx.n;
        let p: &Layer = &self.arch.layers[l];
        let dres = &mut g.dres[..n * c];
        let (gate, up) = (&a.gate[..n * inter], &a.up[..n * inter]);
        let ln = &mut w.ln[..n * c];

        // MLP: out = mid + down(silu(gate)·up).
        if grads[p.down_proj.w].is_some() {
            ops::swiglu_forward(gate, up, &mut w.h[..n * inter]);
        }
        Self::linear_param_grads(&p.down_proj, grads, dres, &w.h, n, &mut g.partial);
        let dgate = &mut g.dgate[..n * inter];
        let dup = &mut g.dup[..n * inter];
        matmul::a_b(dres, &data[p.down_proj.w], dgate, n, c, inter, false);
        ops::swiglu_backward(dgate, gate, up, dup);
        if Self::trains_any(&[&p.gate_proj, &p.up_proj], grads) {
            ops::rms_apply(&a.mid[..n * c], &a.rstd2[..n], &data[p.post_attention_layernorm], ln);
            Self::linear_param_grads(&p.gate_proj, grads, dgate, ln, n, &mut g.partial);
            Self::linear_param_grads(&p.up_proj, grads, dup, ln, n, &mut g.partial);
        }
        let dln = &mut g.dln[..n * c];
        matmul::a_b(dgate, &data[p.gate_proj.w], dln, n, inter, c, false);
        matmul::a_b(dup, &data[p.up_proj.w], dln, n, inter, c, true);
        let dw = grads[p.post_attention_layernorm].as_deref_mut();
        ops::rms_backward(
            dln,
            &a.mid[..n * c],
            &a.rstd2[..n],
            &data[p.post_attention_layernorm],
            dres,
            true,
            dw,
            &mut g.partial,
        );

        // Attention: mid = x + o(attention(q, k, v)).
        Self::linear_param_grads(&p.o_proj, grads, dres, &a.y, n, &mut g.partial);
        let dy = &mut g.dy[..n * qd];
        matmul::a_b(dres, &data[p.o_proj.w], dy, n, c, qd, false);
        let dims = AttnDims { rows: ctx.rows, cols: ctx.cols, heads, kv_heads, head_dim: hd };
        let scale = 1.0 / (hd as f32).sqrt();
        let (dq, dk, dv) = (&mut g.dq[..n * qd], &mut g.dk[..n * kvd], &mut g.dv[..n * kvd]);
        attention::backward(dims, scale, &ctx.lo, &a.q, &a.k, &a.v, &a.lse, dy, dq, dk, dv);
        let half = hd / 2;
        ops::rope(dq, qd, ctx.pos, &self.cos, &self.sin, half, true);
        ops::rope(dk, kvd, ctx.pos, &self.cos, &self.sin, half, true);
        // Through the per-head norms (Qwen3): the gradients of q, k before them land in dy, dk_in.
        let (dq, dk): (&[f32], &[f32]) = match (p.q_norm, p.k_norm) {
            (Some(qn), Some(kn)) => {
                let dw = grads[qn].as_deref_mut();
                ops::rms_backward(
                    dq,
                    &a.q_in[..n * qd],
                    &a.q_rstd[..n * heads],
                    &data[qn],
                    dy,
                    false,
                    dw,
                    &mut g.partial,
                );
                let dk_in = &mut g.dk_in[..n * kvd];
                let dw = grads[kn].as_deref_mut();
                ops::rms_backward(
                    dk,
                    &a.k_in[..n * kvd],
                    &a.k_rstd[..n * kv_heads],
                    &data[kn],
                    dk_in,
                    false,
                    dw,
                    &mut g.partial,
                );
                (&*dy, &*dk_in)
            }
            _ => (&*dq, &*dk),
        };
        let dv: &[f32] = dv;
        if Self::trains_any(&[&p.q_proj, &p.k_proj, &p.v_proj], grads) {
            ops::rms_apply(x, &a.rstd1[..n], &data[p.input_layernorm], ln);
            Self::linear_param_grads(&p.q_proj, grads, dq, ln, n, &mut g.partial);
            Self::linear_param_grads(&p.k_proj, grads, dk, ln, n, &mut g.partial);
            Self::linear_param_grads(&p.v_proj, grads, dv, ln, n, &mut g.partial);
        }
        if need_dx || grads[p.input_layernorm].is_some() {
            matmul::a_b(dq, &data[p.q_proj.w], dln, n, qd, c, false);
            matmul::a_b(dk, &data[p.k_proj.w], dln, n, kvd, c, true);
            matmul::a_b(dv, &data[p.v_proj.w], dln, n, kvd, c, true);
            let dw = grads[p.input_layernorm].as_deref_mut();
            ops::rms_backward(dln, x, &a.rstd1[..n], &data[p.input_layernorm], dres, true, dw, &mut g.partial);
        }
    }

    /// Next-token cross-entropy over the scored rows of `normed` [n, hidden]: returns Σ loss (f64,
    /// added in row order). With `grad`, also writes the gradient of scale·Σ loss with respect to
    /// `normed` and adds the output projection's gradient.
    fn head(
        &self,
        ctx: &Ctx<'_>,
        data: &[Vec<f32>],
        normed: &[f32],
        w: &mut Work,
        mut grad: Option<HeadGrad<'_>>,
    ) -> f64 {
        let Dims { hidden: c, vocab, .. } = self.d;
        let m = ctx.at.len();
        let weight = &data[self.arch.head()];
        // The scored rows, gathered: [m, hidden].
        ops::gather_rows(normed, &ctx.at, &mut w.xs[..m * c], c);
        if let Some(d) = grad.as_mut().and_then(|g| g.d_normed.as_deref_mut()) {
            d.fill(0.0);
        }
        let mut total = 0f64;
        for c0 in (0..m).step_by(w.chunk) {
            let rows = w.chunk.min(m - c0);
            let xs = &w.xs[c0 * c..(c0 + rows) * c];
            let logits = &mut w.logits[..rows * vocab];
            matmul::x_wt(xs, weight, logits, rows, c, vocab, false);
            let scale = grad.as_ref().map(|g| g.scale);
            ops::cross_entropy(logits, vocab, &ctx.target[c0..c0 + rows], scale, &mut w.loss[..rows]);
            total += w.loss[..rows].iter().sum::<f64>();
            let Some(g) = grad.as_mut() else { continue };
            // logits now hold d loss / d logits [rows, vocab].
            if let Some(d) = g.d_normed.as_deref_mut() {
                // The scored rows are distinct: scatter each chunk's dx into place.
                w.dxs.resize(w.chunk * c, 0.0);
                let dxs = &mut w.dxs[..rows * c];
                matmul::a_b(logits, weight, dxs, rows, vocab, c, false);
                for (row, &at) in dxs.chunks_exact(c).zip(&ctx.at[c0..c0 + rows]) {
                    d[at as usize * c..(at as usize + 1) * c].copy_from_slice(row);
                }
            }
            if let Some(dw) = g.dw.as_deref_mut() {
                matmul::at_b(logits, xs, dw, vocab, rows, c, true);
            }
        }
        total
    }
}
