//! The architecture facts sfn needs, read from a Hugging Face `config.json` (transformers 4.x and
//! 5.x) or built from GGUF metadata. Only decoder-only Llama-like families are described; fields
//! other families add are kept in `raw` for whoever needs them.
//!
//! transformers 5.x moved `rope_theta` (and `rope_scaling`) into `rope_parameters` and writes
//! `sliding_window: null`; both spellings are accepted here so no other crate has to care.

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RopeScaling {
    /// "linear", "llama3", "dynamic", ... as in the config.
    pub rope_type: String,
    pub factor: f64,
    pub low_freq_factor: Option<f64>,
    pub high_freq_factor: Option<f64>,
    pub original_max_position_embeddings: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelConfig {
    /// `model_type` ("llama", "qwen2", "mistral", "qwen3") or the GGUF `general.architecture`.
    pub family: String,
    pub num_layers: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub tied_embeddings: bool,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub max_position_embeddings: usize,
    /// q/k/v carry a bias (Qwen2 always does; Llama when `attention_bias`).
    pub attention_bias: bool,
    pub sliding_window: Option<usize>,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    /// The dtype the checkpoint says it was saved in (`torch_dtype` / 5.x `dtype`), if any.
    pub torch_dtype: Option<String>,
}

impl ModelConfig {
    /// Read and interpret `config.json`; errors name the file and the missing or malformed key.
    pub fn from_file(path: &Path) -> Result<ModelConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let json: Value =
            serde_json::from_str(&text).map_err(|e| Error::invalid(path, format!("invalid JSON: {e}")))?;
        ModelConfig::from_json(&json).map_err(|msg| Error::invalid(path, msg))
    }

    pub fn from_json(v: &Value) -> std::result::Result<ModelConfig, String> {
        if !v.is_object() {
            return Err("config is not a JSON object".into());
        }
        let uint = |key: &str| -> std::result::Result<Option<usize>, String> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_u64()
                    .map(|n| Some(n as usize))
                    .ok_or_else(|| format!("`{key}` must be a non-negative integer, found {x}")),
            }
        };
        let need =
            |key: &str| -> std::result::Result<usize, String> { uint(key)?.ok_or_else(|| format!("missing `{key}`")) };
        let float = |obj: &Value, key: &str| -> std::result::Result<Option<f64>, String> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x.as_f64().map(Some).ok_or_else(|| format!("`{key}` must be a number, found {x}")),
            }
        };
        let family = v.get("model_type").and_then(Value::as_str).ok_or("missing `model_type`")?.to_string();
        let hidden_size = need("hidden_size")?;
        let num_heads = need("num_attention_heads")?;
        if num_heads == 0 {
            return Err("`num_attention_heads` is 0".into());
        }
        let num_kv_heads = uint("num_key_value_heads")?.unwrap_or(num_heads);
        if num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(format!(
                "`num_key_value_heads` = {num_kv_heads} does not divide `num_attention_heads` = {num_heads}"
            ));
        }
        let head_dim = uint("head_dim")?.unwrap_or(hidden_size / num_heads);
        // Rotary embeddings rotate pairs of a head's dimensions.
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(format!("head dimension {head_dim} (`head_dim`, or `hidden_size` / `num_attention_heads`) must be even and positive"));
        }
        // 5.x: rope settings live in `rope_parameters`; 4.x: top-level `rope_theta` + `rope_scaling`.
        let rope_params = v.get("rope_parameters").filter(|p| p.is_object());
        let rope_theta = match rope_params {
            Some(p) => float(p, "rope_theta")?,
            None => None,
        }
        .or(float(v, "rope_theta")?)
        .unwrap_or(10000.0);
        let scaling_obj = v.get("rope_scaling").filter(|s| s.is_object()).or(rope_params);
        let rope_scaling = match scaling_obj {
            Some(s) => {
                let kind = s.get("rope_type").or_else(|| s.get("type")).and_then(Value::as_str);
                match kind {
                    None | Some("default") => None,
                    Some(kind) => Some(RopeScaling {
                        rope_type: kind.to_string(),
                        factor: float(s, "factor")?.ok_or(format!("rope scaling `{kind}` without `factor`"))?,
                        low_freq_factor: float(s, "low_freq_factor")?,
                        high_freq_factor: float(s, "high_freq_factor")?,
                        original_max_position_embeddings: s
                            .get("original_max_position_embeddings")
                            .and_then(Value::as_u64)
                            .map(|n| n as usize),
                    }),
                }
            }
            None => None,
        };
        let token_ids = |key: &str| -> Vec<u32> {
            match v.get(key) {
                Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_u64).map(|x| x as u32).collect(),
                _ => vec![],
            }
        };
        let attention_bias = match v.get("attention_bias").and_then(Value::as_bool) {
            Some(b) => b,
            None => family == "qwen2",
        };
        Ok(ModelConfig {
            num_layers: need("num_hidden_layers")?,
            hidden_size,
            intermediate_size: need("intermediate_size")?,
            num_heads,
            num_kv_heads,
            head_dim,
            vocab_size: need("vocab_size")?,
            tied_embeddings: v.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(false),
            rms_norm_eps: float(v, "rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: uint("max_position_embeddings")?.unwrap_or(2048),
            attention_bias,
            sliding_window: uint("sliding_window")?,
            bos_token_id: token_ids("bos_token_id").first().copied(),
            eos_token_ids: token_ids("eos_token_id"),
            torch_dtype: v.get("torch_dtype").or_else(|| v.get("dtype")).and_then(Value::as_str).map(str::to_string),
            family,
        })
    }
}

impl ModelConfig {
    /// A transformers `config.json` describing this architecture, for checkpoints sfn writes from
    /// a source without one (GGUF). Uses the 4.x spelling (top-level `rope_theta`), which 5.x reads.
    pub fn to_hf_json(&self) -> Value {
        let arch = match self.family.as_str() {
            "llama" => "LlamaForCausalLM",
            "mistral" => "MistralForCausalLM",
            "qwen2" => "Qwen2ForCausalLM",
            "qwen3" => "Qwen3ForCausalLM",
            _ => "LlamaForCausalLM",
        };
        let mut v = serde_json::json!({
            "architectures": [arch],
            "model_type": self.family,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab_size,
            "tie_word_embeddings": self.tied_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "attention_bias": self.attention_bias,
            "hidden_act": "silu",
            "bos_token_id": self.bos_token_id,
            "eos_token_id": match self.eos_token_ids.as_slice() {
                [one] => Value::from(*one),
                many => Value::from(many.to_vec()),
            },
        });
        if let Some(r) = &self.rope_scaling {
            v["rope_scaling"] = serde_json::json!({
                "rope_type": r.rope_type, "factor": r.factor, "low_freq_factor": r.low_freq_factor,
                "high_freq_factor": r.high_freq_factor,
                "original_max_position_embeddings": r.original_max_position_embeddings,
            });
        }
        if let Some(w) = self.sliding_window {
            v["sliding_window"] = w.into();
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        serde_json::json!({
            "model_type": "llama", "hidden_size": 576, "num_attention_heads": 9,
            "num_key_value_heads": 3, "num_hidden_layers": 30, "intermediate_size": 1536,
            "vocab_size": 49152, "tie_word_embeddings": true, "rms_norm_eps": 1e-5
        })
    }

    #[test]
    fn transformers_4_top_level_rope_theta() {
        let mut v = base();
        v["rope_theta"] = 100000.0.into();
        v["sliding_window"] = 4096.into();
        let c = ModelConfig::from_json(&v).unwrap();
        assert_eq!((c.num_layers, c.head_dim, c.num_kv_heads), (30, 64, 3));
        assert_eq!(c.rope_theta, 100000.0);
        assert_eq!(c.sliding_window, Some(4096));
        assert!(c.tied_embeddings);
    }

    #[test]
    fn transformers_5_rope_parameters_and_null_sliding_window() {
        let mut v = base();
        v["rope_parameters"] = serde_json::json!({"rope_theta": 1000000.0, "rope_type": "default"});
        v["sliding_window"] = Value::Null;
        v["dtype"] = "bfloat16".into();
        let c = ModelConfig::from_json(&v).unwrap();
        assert_eq!(c.rope_theta, 1000000.0);
        assert_eq!(c.rope_scaling, None);
        assert_eq!(c.sliding_window, None);
        assert_eq!(c.torch_dtype.as_deref(), Some("bfloat16"));
    }

    #[test]
    fn llama3_rope_scaling_in_either_place() {
        let scaling = serde_json::json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192});
        let mut v4 = base();
        v4["rope_scaling"] = scaling.clone();
        let mut v5 = base();
        let mut p = scaling;
        p["rope_theta"] = 500000.0.into();
        v5["rope_parameters"] = p;
        let (c4, c5) = (ModelConfig::from_json(&v4).unwrap(), ModelConfig::from_json(&v5).unwrap());
        assert_eq!(c4.rope_scaling, c5.rope_scaling);
        assert_eq!(c5.rope_scaling.unwrap().factor, 8.0);
        assert_eq!(c5.rope_theta, 500000.0);
    }

    #[test]
    fn missing_key_and_bad_heads_are_named() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("hidden_size");
        assert_eq!(ModelConfig::from_json(&v).unwrap_err(), "missing `hidden_size`");
        let mut v = base();
        v["num_key_value_heads"] = 4.into();
        assert!(ModelConfig::from_json(&v).unwrap_err().contains("does not divide"));
    }

    #[test]
    fn hf_json_reads_back_to_the_same_config() {
        let mut v = base();
        v["rope_scaling"] = serde_json::json!({"rope_type": "linear", "factor": 2.0});
        v["eos_token_id"] = serde_json::json!([2, 7]);
        let c = ModelConfig::from_json(&v).unwrap();
        assert_eq!(ModelConfig::from_json(&c.to_hf_json()).unwrap(), c);
    }
}
