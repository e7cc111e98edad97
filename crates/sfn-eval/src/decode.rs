//! Decoding settings: data only. The runtime (`sfn-model`) reads them when it generates; here they
//! are validated and recorded in result files, so a run says exactly how its text was produced.

use crate::error::{EvalError, Result};
use serde::{Deserialize, Serialize};
use sfn_model::Sampling;

/// Budget forcing (s1, Muennighoff et al. 2025): when the model would stop before
/// `max_new_tokens`, the runtime suppresses the stop, appends `cue` and lets it continue, at most
/// `times` times. It makes a model "think longer" at test time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetForcing {
    pub times: u32,
    pub cue: String,
}

impl BudgetForcing {
    pub fn wait(times: u32) -> Self {
        BudgetForcing { times, cue: "Wait".into() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodeSettings {
    /// Generated tokens per sample, budget forcing included.
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Samples per prompt (pass@k and maj@k need n > 1).
    pub n: usize,
    /// Generation stops after any of these strings (they stay in the output); the model's EOS
    /// token always stops it too.
    pub stop: Vec<String>,
    pub budget_forcing: Option<BudgetForcing>,
}

impl Default for DecodeSettings {
    fn default() -> Self {
        DecodeSettings { max_new_tokens: 2048, sampling: Sampling::greedy(), n: 1, stop: vec![], budget_forcing: None }
    }
}

impl DecodeSettings {
    /// Check the settings make sense before any (expensive) generation starts.
    pub fn validate(&self) -> Result<()> {
        let bad = |s: String| Err(EvalError::InvalidSettings(s));
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens must be at least 1".into());
        }
        if self.n == 0 {
            return bad("n (samples per prompt) must be at least 1".into());
        }
        self.sampling.validate().map_err(|e| EvalError::InvalidSettings(e.to_string()))?;
        if self.sampling.is_greedy() && self.n > 1 {
            return bad(format!("greedy decoding gives {} identical samples: use sampling for n > 1", self.n));
        }
        if self.stop.iter().any(|s| s.is_empty()) {
            return bad("stop strings must not be empty".into());
        }
        if let Some(bf) = &self.budget_forcing {
            if bf.cue.trim().is_empty() {
                return bad("the budget-forcing cue must not be empty".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_nonsense() {
        assert!(DecodeSettings::default().validate().is_ok());
        assert!(DecodeSettings { n: 4, ..Default::default() }.validate().is_err());
        let sample = |temperature, top_p| Sampling { temperature, top_k: None, top_p, seed: 0 };
        assert!(DecodeSettings { n: 4, sampling: sample(0.6, Some(0.95)), ..Default::default() }.validate().is_ok());
        // Temperature 0 is greedy: a top-p would be ignored, so it is refused; so are 4 greedy samples.
        assert!(DecodeSettings { sampling: sample(0.0, Some(0.9)), ..Default::default() }.validate().is_err());
        assert!(DecodeSettings { n: 4, sampling: sample(0.0, None), ..Default::default() }.validate().is_err());
        assert!(DecodeSettings { sampling: sample(0.7, Some(1.5)), ..Default::default() }.validate().is_err());
        assert!(DecodeSettings { max_new_tokens: 0, ..Default::default() }.validate().is_err());
    }

    #[test]
    fn settings_round_trip_through_json() {
        let s = DecodeSettings {
            sampling: Sampling { temperature: 0.6, top_k: Some(20), top_p: Some(0.95), seed: 3 },
            n: 8,
            stop: vec!["</s>".into()],
            budget_forcing: Some(BudgetForcing::wait(2)),
            ..Default::default()
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""method":"sample""#), "{json}");
        assert_eq!(serde_json::from_str::<DecodeSettings>(&json).unwrap(), s);
    }
}
