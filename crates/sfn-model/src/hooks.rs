//! Named hook points: where activations can be read (captured into a cache) or overwritten while the
//! model runs, and which layers are skipped.
//!
//! Per layer L, in the order the residual stream passes them:
//!
//! | name            | shape at the hook                 | what it is                                   |
//! |-----------------|-----------------------------------|----------------------------------------------|
//! | `resid_pre.L`   | [batch, seq, hidden]              | the layer's input                            |
//! | `attn_heads.L`  | [batch, seq, heads, head_dim]     | each head's output, before o_proj            |
//! | `attn_out.L`    | [batch, seq, hidden]              | o_proj's output (attention's contribution)   |
//! | `resid_mid.L`   | [batch, seq, hidden]              | resid_pre + attn_out                         |
//! | `mlp_out.L`     | [batch, seq, hidden]              | the MLP's contribution                       |
//! | `resid_post.L`  | [batch, seq, hidden]              | resid_mid + mlp_out, the layer's output      |
//!
//! `resid_post.L` equals transformers' `hidden_states[L + 1]` (except the last layer, whose
//! transformers entry has the final norm applied). With a KV cache each step sees only its new
//! positions; captures are concatenated along `seq` across steps. A capture records the value as it
//! leaves the hook point, i.e. after that point's interventions. A skipped layer passes its input
//! through unchanged (only `resid_pre`/`resid_post` exist for it); skip the same layers on every step
//! of a cached run, since a skipped layer writes nothing into the cache.

use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookPoint {
    ResidPre,
    AttnHeads,
    AttnOut,
    ResidMid,
    MlpOut,
    ResidPost,
}

impl HookPoint {
    pub const ALL: [HookPoint; 6] = [
        HookPoint::ResidPre,
        HookPoint::AttnHeads,
        HookPoint::AttnOut,
        HookPoint::ResidMid,
        HookPoint::MlpOut,
        HookPoint::ResidPost,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HookPoint::ResidPre => "resid_pre",
            HookPoint::AttnHeads => "attn_heads",
            HookPoint::AttnOut => "attn_out",
            HookPoint::ResidMid => "resid_mid",
            HookPoint::MlpOut => "mlp_out",
            HookPoint::ResidPost => "resid_post",
        }
    }

    pub fn parse(s: &str) -> Result<HookPoint> {
        HookPoint::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<_> = HookPoint::ALL.iter().map(|p| p.name()).collect();
            Error::input(format!("unknown hook point `{s}` (known: {})", names.join(", ")))
        })
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One hook point of one layer, written `resid_post.12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HookId {
    pub layer: usize,
    pub point: HookPoint,
}

impl HookId {
    pub fn new(point: HookPoint, layer: usize) -> HookId {
        HookId { layer, point }
    }
}

impl fmt::Display for HookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.point, self.layer)
    }
}

impl std::str::FromStr for HookId {
    type Err = Error;
    fn from_str(s: &str) -> Result<HookId> {
        let (p, l) = s
            .rsplit_once('.')
            .ok_or_else(|| Error::input(format!("hook `{s}` is not POINT.LAYER (e.g. resid_post.3)")))?;
        let layer = l.parse().map_err(|_| Error::input(format!("hook `{s}`: `{l}` is not a layer index")))?;
        Ok(HookId { layer, point: HookPoint::parse(p)? })
    }
}

/// What the step being run looks like, for interventions that depend on it.
pub struct HookCtx<'a> {
    pub id: HookId,
    pub batch: usize,
    /// New positions in this step.
    pub seq: usize,
    /// The rotary position of every (row, step position), row-major [batch * seq]; with left
    /// padding the pad slots repeat position 0 of their row.
    pub positions: &'a [u32],
    /// The token ids of this step, one row per batch row (left padding included), so that a
    /// custom hook can run another model on the same tokens.
    pub tokens: &'a [Vec<u32>],
}

/// A user function run at a hook point: gets the activation, returns its replacement (same shape).
pub type HookFn = Arc<dyn Fn(&HookCtx, &Tensor) -> Result<Tensor> + Send + Sync>;

/// How an activation is overwritten.
#[derive(Clone)]
pub enum Action {
    /// Set to 0.
    Zero,
    /// Replace every position by the mean over this step's positions (per row). For mean ablation
    /// over a dataset, compute the mean from captures and use `Replace` with it.
    MeanOverPositions,
    /// Replace by a value that is either one vector for every position (shape: the hook's trailing
    /// dims, e.g. [hidden] or [heads, head_dim]), or one per position ([positions, ...] indexed by
    /// rotary position, e.g. a capture of another run or another model), or the hook's exact shape.
    Replace(Tensor),
    /// Add a value shaped as for `Replace` (steering vectors).
    Add(Tensor),
    /// Multiply by a constant.
    Scale(f64),
    /// Anything else.
    Custom(HookFn),
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Zero => f.write_str("Zero"),
            Action::MeanOverPositions => f.write_str("MeanOverPositions"),
            Action::Replace(t) => write!(f, "Replace({:?})", t.dims()),
            Action::Add(t) => write!(f, "Add({:?})", t.dims()),
            Action::Scale(k) => write!(f, "Scale({k})"),
            Action::Custom(_) => f.write_str("Custom"),
        }
    }
}

/// An action, optionally limited to some positions (rotary positions, per row) and, at
/// `attn_heads`, to some heads.
#[derive(Debug, Clone)]
pub struct Intervention {
    pub action: Action,
    pub positions: Option<Vec<usize>>,
    pub heads: Option<Vec<usize>>,
}

impl Intervention {
    pub fn new(action: Action) -> Intervention {
        Intervention { action, positions: None, heads: None }
    }
    pub fn at_positions(mut self, positions: impl IntoIterator<Item = usize>) -> Intervention {
        self.positions = Some(positions.into_iter().collect());
        self
    }
    pub fn on_heads(mut self, heads: impl IntoIterator<Item = usize>) -> Intervention {
        self.heads = Some(heads.into_iter().collect());
        self
    }
}

/// What to capture, overwrite and skip during a run, and what was captured.
#[derive(Default)]
pub struct Hooks {
    capture: BTreeSet<HookId>,
    interventions: BTreeMap<HookId, Vec<Intervention>>,
    skip: BTreeSet<usize>,
    /// Captured parts per hook, one per forward step: [batch, seq_step, ...].
    captured: BTreeMap<HookId, Vec<Tensor>>,
}

/// Captured activations, each [batch, seq, ...] over every step run.
pub type ActivationCache = BTreeMap<HookId, Tensor>;

impl Hooks {
    pub fn new() -> Hooks {
        Hooks::default()
    }

    /// Record this hook point's activation on every run.
    pub fn capture(&mut self, id: HookId) -> &mut Self {
        self.capture.insert(id);
        self
    }

    /// Record `point` at each of `layers`.
    pub fn capture_layers(&mut self, point: HookPoint, layers: impl IntoIterator<Item = usize>) -> &mut Self {
        for l in layers {
            self.capture.insert(HookId::new(point, l));
        }
        self
    }

    /// Overwrite the activation at `id` (several interventions at one point run in the order given).
    pub fn intervene(&mut self, id: HookId, intervention: Intervention) -> &mut Self {
        self.interventions.entry(id).or_default().push(intervention);
        self
    }

    /// Pass `layer`'s input through unchanged.
    pub fn skip_layer(&mut self, layer: usize) -> &mut Self {
        self.skip.insert(layer);
        self
    }

    pub fn skipped(&self, layer: usize) -> bool {
        self.skip.contains(&layer)
    }

    /// The largest layer index any hook names (to check against the model).
    pub fn max_layer(&self) -> Option<usize> {
        let a = self.capture.iter().map(|h| h.layer).max();
        let b = self.interventions.keys().map(|h| h.layer).max();
        let c = self.skip.iter().copied().max();
        a.max(b).max(c)
    }

    /// The capture of `id` so far, [batch, seq, ...]; None if nothing was captured there.
    pub fn get(&self, id: HookId) -> Result<Option<Tensor>> {
        match self.captured.get(&id) {
            None => Ok(None),
            Some(parts) if parts.len() == 1 => Ok(Some(parts[0].clone())),
            Some(parts) => Ok(Some(Tensor::cat(parts, 1)?)),
        }
    }

    /// Every capture so far, concatenated over steps; the captures are cleared.
    pub fn take_captured(&mut self) -> Result<ActivationCache> {
        let ids: Vec<HookId> = self.captured.keys().copied().collect();
        let mut out = ActivationCache::new();
        for id in ids {
            if let Some(t) = self.get(id)? {
                out.insert(id, t);
            }
        }
        self.captured.clear();
        Ok(out)
    }

    pub fn clear_captured(&mut self) {
        self.captured.clear();
    }

    /// Whether anything happens at `id` (lets the model skip work).
    pub(crate) fn active(&self, id: HookId) -> bool {
        self.capture.contains(&id) || self.interventions.contains_key(&id)
    }

    /// Run the interventions at `id` on `x`, then capture it if asked.
    pub(crate) fn at(&mut self, id: HookId, x: Tensor, ctx: &HookCtx) -> Result<Tensor> {
        if !self.active(id) {
            return Ok(x);
        }
        let mut x = x;
        if let Some(list) = self.interventions.get(&id) {
            for iv in list {
                x = apply(iv, &x, ctx)?;
            }
        }
        if self.capture.contains(&id) {
            self.captured.entry(id).or_default().push(x.clone());
        }
        Ok(x)
    }
}

/// x [batch, seq, *rest] after one intervention.
fn apply(iv: &Intervention, x: &Tensor, ctx: &HookCtx) -> Result<Tensor> {
    let bad = |msg: String| Error::input(format!("intervention at {}: {msg}", ctx.id));
    let new = match &iv.action {
        Action::Zero => x.zeros_like()?,
        Action::MeanOverPositions => x.mean_keepdim(1)?.broadcast_as(x.shape())?.contiguous()?,
        Action::Replace(v) => value_for(v, x, ctx).map_err(|e| bad(e.to_string()))?,
        Action::Add(v) => (x + value_for(v, x, ctx).map_err(|e| bad(e.to_string()))?)?,
        Action::Scale(k) => (x * *k)?,
        Action::Custom(f) => {
            let y = f(ctx, x)?;
            if y.dims() != x.dims() {
                return Err(bad(format!("custom hook returned shape {:?} for {:?}", y.dims(), x.dims())));
            }
            y
        }
    };
    if iv.positions.is_none() && iv.heads.is_none() {
        return Ok(new);
    }
    // Blend: new where selected, x elsewhere. mask [batch, seq, 1] or [batch, seq, heads, 1].
    let dims = x.dims();
    let (b, s) = (dims[0], dims[1]);
    let heads = match (&iv.heads, ctx.id.point) {
        (None, _) => 1,
        (Some(_), HookPoint::AttnHeads) => dims[2],
        (Some(_), p) => return Err(bad(format!("heads can only be chosen at attn_heads, not {p}"))),
    };
    if let Some(hs) = &iv.heads {
        if let Some(&h) = hs.iter().find(|&&h| h >= heads) {
            return Err(bad(format!("head {h} does not exist (the model has {heads})")));
        }
    }
    let mut mask = vec![0f32; b * s * heads];
    for (i, &p) in ctx.positions.iter().enumerate() {
        if iv.positions.as_ref().is_none_or(|ps| ps.contains(&(p as usize))) {
            for h in 0..heads {
                if iv.heads.as_ref().is_none_or(|hs| hs.contains(&h)) {
                    mask[i * heads + h] = 1.0;
                }
            }
        }
    }
    let mask_shape: Vec<usize> =
        if iv.heads.is_some() { vec![b, s, heads, 1] } else { [vec![b, s], vec![1; dims.len() - 2]].concat() };
    let m = Tensor::from_vec(mask, mask_shape, x.device())?;
    let keep = (1.0 - &m)?;
    Ok((x.broadcast_mul(&keep)? + new.broadcast_mul(&m)?)?)
}

/// A Replace/Add value brought to x's shape [batch, seq, *rest].
fn value_for(v: &Tensor, x: &Tensor, ctx: &HookCtx) -> Result<Tensor> {
    let v = v.to_device(x.device())?.to_dtype(x.dtype())?;
    let dims = x.dims();
    let rest = &dims[2..];
    if v.dims() == dims {
        return Ok(v);
    }
    if v.dims() == rest {
        return Ok(v.broadcast_as(dims)?.contiguous()?);
    }
    if v.rank() == rest.len() + 1 && &v.dims()[1..] == rest {
        let n = v.dims()[0];
        if let Some(&p) = ctx.positions.iter().find(|&&p| p as usize >= n) {
            return Err(Error::input(format!("value has {n} positions, the run reaches position {p}")));
        }
        let idx = Tensor::from_slice(ctx.positions, ctx.positions.len(), &Device::Cpu)?.to_device(x.device())?;
        return Ok(v.index_select(&idx, 0)?.reshape(dims)?);
    }
    Err(Error::input(format!(
        "value of shape {:?} fits neither {:?} (one vector), [positions, {}] nor {:?}",
        v.dims(),
        rest,
        rest.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
        dims
    )))
}
