//! sfn-model: the transformer runtime of sfn.
//!
//! One decoder implementation for the Llama family (Llama, Mistral, Qwen2, Qwen3), built from any
//! `WeightSource` (a checkpoint, or an edit plan's lazy view) and driven by its config; named hook
//! points to capture or overwrite activations and skip layers; a preallocated KV cache; generation
//! (greedy and seeded sampling, stop tokens and strings, batches, streaming); the tokenizer
//! (tokenizer.json, or built from GGUF metadata) and the model's own Jinja chat template.
//!
//! Compute is f32 on a candle `Device` (CPU by default; the `cuda` feature adds NVIDIA GPUs).
//! GGUF quantized weights stay quantized (see `quant`).

pub mod cache;
pub mod chat;
pub mod device;
pub mod error;
pub mod generate;
pub mod hooks;
pub mod layers;
pub mod model;
pub mod pool;
pub mod quant;
pub mod runtime;
pub mod score;
pub mod source;
pub mod tokenizer;
pub mod trace;

pub use cache::KvCache;
pub use candle_core::{Device, Tensor};
pub use chat::{ChatTemplate, Message};
pub use device::{parse_device, set_threads};
pub use error::{Error, Result};
pub use generate::{
    generate, generate_with_stats, Event, GenerateOptions, GenerateStats, Generation, Sampling, StopReason,
};
pub use hooks::{Action, ActivationCache, HookId, HookPoint, Hooks, Intervention};
pub use layers::LoadOptions;
pub use model::{Logits, Model};
pub use quant::Activations;
pub use runtime::RuntimeSpec;
pub use score::{token_logprobs, TokenLogprob};
pub use source::WeightSource;
pub use tokenizer::Tokenizer;
pub use trace::{save_safetensors, trace};
