//! sfn-train: the numeric engine of sfn's trainer.
//!
//! A hand-written forward and backward pass of the Llama-family decoder that sfn-model runs
//! (Llama, Mistral, Qwen2, Qwen3), in the style of karpathy's llm.c: f32 master weights loaded
//! under their Hugging Face names from any `WeightSource`, explicit kernels over preallocated
//! activation buffers, matrix products through the `gemm` crate, no autograd graph. Only the
//! tensors in the trainable set get gradient buffers, weight-gradient matmuls and optimizer state.
//!
//! A step: `zero_grad`; for each micro-batch `forward_backward(batch, step_targets)` (the loss is
//! transformers' next-token cross-entropy, averaged over all scored targets of the step); optional
//! `clip_grad_norm`; `Optimizer::step(model, schedule.lr(optimizer.steps()))`.
//!
//! Limits: CPU and f32 only; no dropout; data files, run directories, checkpoints of the trained
//! model and evaluation are built on top of this crate, not in it.

pub mod batch;
pub mod data;
pub mod error;
pub mod export;
mod kernels;
pub mod model;
pub mod optim;
pub mod params;
pub mod schedule;
pub mod trainer;
pub mod view;

pub use batch::{Batch, Sequence, IGNORE};
pub use error::{Error, Result};
pub use model::{MicroStats, TrainModel};
pub use optim::{AdamW, Optimizer, OptimizerKind, OptimizerState, StateTensor};
pub use params::{trained_tensor, ParamView, Trainable, EMBED, LM_HEAD};
pub use schedule::{Decay, Schedule};
