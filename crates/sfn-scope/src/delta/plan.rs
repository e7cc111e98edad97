//! Which tensors a Delta run compares: those in both checkpoints with equal shapes (restricted
//! to a selector), and the ones it cannot compare, listed (an error under `strict`).

use super::{DeltaOptions, MAX_BINS};
use crate::error::{Error, Result};
use sfn_checkpoint::Checkpoint;
use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShapeMismatch {
    pub name: String,
    pub shape_a: Vec<usize>,
    pub shape_b: Vec<usize>,
}

/// Which tensors are compared, and which cannot be.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Names in both with equal shapes, in A's (natural) order.
    pub common: Vec<String>,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    pub shape_mismatch: Vec<ShapeMismatch>,
    /// Stored bytes of the compared tensors, A + B (what the progress bar counts).
    pub total_bytes: u64,
}

impl Plan {
    /// Pair A's and B's tensors, restricted to `opts.selector`. Errors: the selector matches no
    /// tensor of either; `strict` and the tensor sets or shapes differ.
    pub fn new(a: &Checkpoint, b: &Checkpoint, opts: &DeltaOptions) -> Result<Plan> {
        if opts.bins < 2 || opts.bins > MAX_BINS {
            return Err(Error::Options(format!("bins must be between 2 and {MAX_BINS}, not {}", opts.bins)));
        }
        let names_a: Vec<&str> = a.tensors().iter().map(|t| t.name.as_str()).collect();
        let mut union: Vec<&str> = names_a.clone();
        union.extend(b.tensors().iter().map(|t| t.name.as_str()).filter(|n| a.get(n).is_none()));
        let wanted: HashSet<&str> = match &opts.selector {
            Some(sel) => sel.select(union.iter().copied())?.into_iter().collect(),
            None => union.iter().copied().collect(),
        };
        let mut plan =
            Plan { common: vec![], only_in_a: vec![], only_in_b: vec![], shape_mismatch: vec![], total_bytes: 0 };
        for ta in a.tensors().iter().filter(|t| wanted.contains(t.name.as_str())) {
            match b.get(&ta.name) {
                None => plan.only_in_a.push(ta.name.clone()),
                Some(tb) if tb.shape != ta.shape => plan.shape_mismatch.push(ShapeMismatch {
                    name: ta.name.clone(),
                    shape_a: ta.shape.clone(),
                    shape_b: tb.shape.clone(),
                }),
                Some(tb) => {
                    plan.total_bytes += (ta.nbytes() + tb.nbytes()) as u64;
                    plan.common.push(ta.name.clone());
                }
            }
        }
        plan.only_in_b = b
            .tensors()
            .iter()
            .filter(|t| a.get(&t.name).is_none() && wanted.contains(t.name.as_str()))
            .map(|t| t.name.clone())
            .collect();
        if opts.strict && !plan.is_exact() {
            return Err(Error::Mismatch(format!("--strict: {}", plan.mismatch_summary())));
        }
        Ok(plan)
    }

    /// Both checkpoints hold exactly the same (selected) tensors with the same shapes.
    pub fn is_exact(&self) -> bool {
        self.only_in_a.is_empty() && self.only_in_b.is_empty() && self.shape_mismatch.is_empty()
    }

    /// One line naming what differs ("2 tensors only in A (lm_head.weight, …), …").
    pub fn mismatch_summary(&self) -> String {
        let list = |v: &[String]| {
            let mut s = v.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
            if v.len() > 3 {
                s.push_str(&format!(", … {} more", v.len() - 3));
            }
            s
        };
        let mut parts = vec![];
        if !self.only_in_a.is_empty() {
            parts.push(format!("{} tensor(s) only in A ({})", self.only_in_a.len(), list(&self.only_in_a)));
        }
        if !self.only_in_b.is_empty() {
            parts.push(format!("{} tensor(s) only in B ({})", self.only_in_b.len(), list(&self.only_in_b)));
        }
        if !self.shape_mismatch.is_empty() {
            let m = &self.shape_mismatch[0];
            parts.push(format!(
                "{} tensor(s) with different shapes (first: {} {:?} vs {:?})",
                self.shape_mismatch.len(),
                m.name,
                m.shape_a,
                m.shape_b
            ));
        }
        if parts.is_empty() {
            "A and B hold the same tensors".into()
        } else {
            parts.join("; ")
        }
    }
}
