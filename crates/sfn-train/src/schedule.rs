//! Learning-rate schedules: linear warmup, then constant, linear or cosine decay to a minimum,
//! with the formulas of transformers' `get_constant_schedule_with_warmup`,
//! `get_linear_schedule_with_warmup`, `get_cosine_schedule_with_warmup` (and, with a minimum,
//! `get_cosine_with_min_lr_schedule_with_warmup`).
//!
//! For the 0-based optimizer step s (the value of `Optimizer::steps` before the step), W warmup
//! steps, S total steps, peak P and minimum M:
//!   s < W:  lr = P · s / W            (so with W > 0 the first step has lr 0, as in transformers)
//!   else:   q = (s − W) / max(1, S − W), clamped to [0, 1]
//!     constant: lr = P
//!     linear:   lr = M + (P − M) · (1 − q)
//!     cosine:   lr = M + (P − M) · ½(1 + cos(π q))
//! With W = 0 the first step uses the peak. Past S the rate stays at M (transformers' cosine would
//! rise again; its linear schedule clamps at 0).

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    Constant,
    Linear,
    Cosine,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub peak_lr: f64,
    /// The rate decay ends at (ignored by `Constant`).
    pub min_lr: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
    pub decay: Decay,
}

impl Schedule {
    /// A constant rate, no warmup.
    pub fn constant(lr: f64) -> Schedule {
        Schedule { peak_lr: lr, min_lr: lr, warmup_steps: 0, total_steps: 0, decay: Decay::Constant }
    }

    /// The learning rate of 0-based step `step`.
    pub fn lr(&self, step: u64) -> f64 {
        let (s, w) = (step as f64, self.warmup_steps as f64);
        if step < self.warmup_steps {
            return self.peak_lr * s / w.max(1.0);
        }
        let span = (self.total_steps.saturating_sub(self.warmup_steps) as f64).max(1.0);
        let q = ((s - w) / span).clamp(0.0, 1.0);
        let (p, m) = (self.peak_lr, self.min_lr);
        match self.decay {
            Decay::Constant => p,
            Decay::Linear => m + (p - m) * (1.0 - q),
            Decay::Cosine => m + (p - m) * 0.5 * (1.0 + (std::f64::consts::PI * q).cos()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_steps() {
        let cos = Schedule { peak_lr: 1e-3, min_lr: 0.0, warmup_steps: 10, total_steps: 110, decay: Decay::Cosine };
        assert_eq!(cos.lr(0), 0.0);
        assert!((cos.lr(5) - 5e-4).abs() < 1e-15);
        assert_eq!(cos.lr(10), 1e-3);
        assert!((cos.lr(60) - 5e-4).abs() < 1e-15);
        assert!(cos.lr(110).abs() < 1e-18);
        assert!(cos.lr(500).abs() < 1e-18);
        let lin = Schedule { peak_lr: 2.0, min_lr: 0.5, warmup_steps: 0, total_steps: 4, decay: Decay::Linear };
        let got: Vec<f64> = (0..6).map(|s| lin.lr(s)).collect();
        assert_eq!(got, vec![2.0, 1.625, 1.25, 0.875, 0.5, 0.5]);
        let c = Schedule { decay: Decay::Constant, ..lin };
        assert_eq!(c.lr(3), 2.0);
        assert_eq!(Schedule::constant(0.1).lr(0), 0.1);
    }
}
