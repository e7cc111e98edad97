//! Optimizers over a `TrainModel`'s trainable tensors: AdamW with PyTorch's semantics and plain
//! SGD, and their state as named f32 tensors plus a step count, so a later save/resume can put it
//! back bit for bit.
//!
//! AdamW follows `torch.optim.AdamW` (single-tensor path, the CPU default) operation by operation:
//! step t += 1; p ← p·(1 − lr·wd); m ← lerp(m, g, 1 − β1); v ← v·β2 + (1 − β2)·g²;
//! p ← p − (lr / (1 − β1ᵗ))·m / (√v / √(1 − β2ᵗ) + eps). Scalars are derived in f64 and applied in
//! f32, as PyTorch does. Limits: no amsgrad, no momentum for SGD, no per-group learning rates.

use crate::error::{Error, Result};
use crate::kernels::{ops, simd::AdamScalars};
use crate::model::TrainModel;

/// AdamW settings (the learning rate comes from the schedule at each step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay (PyTorch's `weight_decay`).
    pub weight_decay: f64,
    /// Exempt one-dimensional tensors (norm weights and biases) from weight decay, as
    /// transformers' Trainer does; PyTorch alone decays everything.
    pub exempt_norms_and_biases: bool,
}

impl Default for AdamW {
    /// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01, everything decayed.
    fn default() -> Self {
        AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, exempt_norms_and_biases: false }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerKind {
    AdamW(AdamW),
    /// p ← p − lr·g.
    Sgd,
}

/// One named tensor of optimizer state, e.g. `exp_avg.model.layers.0.self_attn.o_proj.weight`.
#[derive(Debug, Clone, PartialEq)]
pub struct StateTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Everything an optimizer carries between steps: the number of steps taken and, for AdamW, the
/// first and second moments of every trainable tensor (`exp_avg.<name>`, `exp_avg_sq.<name>`, the
/// names of PyTorch's state).
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState {
    pub steps: u64,
    pub tensors: Vec<StateTensor>,
}

/// An optimizer bound to the trainable set of the model it was made for.
#[derive(Debug)]
pub struct Optimizer {
    kind: OptimizerKind,
    steps: u64,
    /// Parameter indices it updates (the model's trainable set at creation).
    params: Vec<usize>,
    /// AdamW (m, v) per entry of `params`; empty for SGD.
    moments: Vec<(Vec<f32>, Vec<f32>)>,
}

impl Optimizer {
    /// An optimizer for `model`'s trainable tensors, with zeroed state.
    pub fn new(kind: OptimizerKind, model: &TrainModel) -> Result<Optimizer> {
        if let OptimizerKind::AdamW(a) = kind {
            let unit = |x: f64| (0.0..1.0).contains(&x);
            if !unit(a.beta1)
                || !unit(a.beta2)
                || a.eps.is_nan()
                || a.eps < 0.0
                || a.weight_decay.is_nan()
                || a.weight_decay < 0.0
            {
                return Err(Error::Optimizer(format!(
                    "AdamW needs betas in [0, 1) and non-negative eps and weight decay (got {a:?})"
                )));
            }
        }
        let store = model.store();
        let params: Vec<usize> = (0..store.names.len()).filter(|&i| store.trainable(i)).collect();
        let moments = match kind {
            OptimizerKind::AdamW(_) => {
                params.iter().map(|&i| (vec![0.0; store.data[i].len()], vec![0.0; store.data[i].len()])).collect()
            }
            OptimizerKind::Sgd => Vec::new(),
        };
        Ok(Optimizer { kind, steps: 0, params, moments })
    }

    pub fn kind(&self) -> OptimizerKind {
        self.kind
    }

    /// Steps taken so far (the 0-based index of the next step, for `Schedule::lr`).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    fn check_model(&self, model: &TrainModel) -> Result<()> {
        let store = model.store();
        let now: Vec<usize> = (0..store.names.len()).filter(|&i| store.trainable(i)).collect();
        if now != self.params {
            return Err(Error::Optimizer(
                "the model's trainable set is not the one this optimizer was made for".into(),
            ));
        }
        Ok(())
    }

    /// Update every trainable tensor from its accumulated gradient with learning rate `lr`
    /// (gradients are left as they are; call `TrainModel::zero_grad` before the next step).
    pub fn step(&mut self, model: &mut TrainModel, lr: f64) -> Result<()> {
        self.check_model(model)?;
        if !lr.is_finite() || lr < 0.0 {
            return Err(Error::Optimizer(format!("learning rate {lr} must be finite and non-negative")));
        }
        self.steps += 1;
        let t = self.steps as f64;
        let store = model.store_mut();
        match self.kind {
            OptimizerKind::Sgd => {
                for &i in &self.params {
                    let g = store.grads[i].as_deref().expect("trainable parameters have gradients");
                    ops::sgd(&mut store.data[i], g, -lr as f32);
                }
            }
            OptimizerKind::AdamW(a) => {
                let bias_correction1 = 1.0 - a.beta1.powf(t);
                let bias_correction2 = 1.0 - a.beta2.powf(t);
                for (&i, (m, v)) in self.params.iter().zip(&mut self.moments) {
                    let exempt = a.exempt_norms_and_biases && store.shapes[i].len() == 1;
                    let k = AdamScalars {
                        decay: if exempt { 1.0 } else { (1.0 - lr * a.weight_decay) as f32 },
                        one_minus_beta1: (1.0 - a.beta1) as f32,
                        beta2: a.beta2 as f32,
                        one_minus_beta2: (1.0 - a.beta2) as f32,
                        neg_step_size: (-(lr / bias_correction1)) as f32,
                        bias_correction2_sqrt: bias_correction2.sqrt() as f32,
                        eps: a.eps as f32,
                    };
                    let g = store.grads[i].as_deref().expect("trainable parameters have gradients");
                    ops::adamw(&mut store.data[i], g, m, v, &k);
                }
            }
        }
        Ok(())
    }

    /// The state as named tensors (copies), in the model's parameter order.
    pub fn export(&self, model: &TrainModel) -> OptimizerState {
        let store = model.store();
        let mut tensors = Vec::with_capacity(2 * self.moments.len());
        for (&i, (m, v)) in self.params.iter().zip(&self.moments) {
            for (prefix, data) in [("exp_avg", m), ("exp_avg_sq", v)] {
                tensors.push(StateTensor {
                    name: format!("{prefix}.{}", store.names[i]),
                    shape: store.shapes[i].clone(),
                    data: data.clone(),
                });
            }
        }
        OptimizerState { steps: self.steps, tensors }
    }

    /// Restore exported state: the step count and every moment tensor, which must match this
    /// optimizer's tensors by name and shape (none missing, none extra).
    pub fn import(&mut self, state: &OptimizerState, model: &TrainModel) -> Result<()> {
        self.check_model(model)?;
        let store = model.store();
        let mut by_name: std::collections::HashMap<&str, &StateTensor> =
            state.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut restored = Vec::with_capacity(self.moments.len());
        if !self.moments.is_empty() {
            for &i in &self.params {
                let mut take = |prefix: &str| -> Result<Vec<f32>> {
                    let name = format!("{prefix}.{}", store.names[i]);
                    let t = by_name
                        .remove(name.as_str())
                        .ok_or_else(|| Error::Optimizer(format!("state has no `{name}`")))?;
                    if t.shape != store.shapes[i] || t.data.len() != store.data[i].len() {
                        return Err(Error::Optimizer(format!(
                            "`{name}` has shape {:?} ({} values); the parameter is {:?}",
                            t.shape,
                            t.data.len(),
                            store.shapes[i]
                        )));
                    }
                    Ok(t.data.clone())
                };
                restored.push((take("exp_avg")?, take("exp_avg_sq")?));
            }
        }
        if let Some(extra) = by_name.keys().min() {
            return Err(Error::Optimizer(format!("state holds `{extra}`, which this optimizer does not have")));
        }
        if !self.moments.is_empty() {
            self.moments = restored;
        }
        self.steps = state.steps;
        Ok(())
    }
}
