//! The building blocks of a decoder, each loaded by its Hugging Face name from a `WeightSource`:
//! linear layers (dense f32, or quantized GGUF blocks), the token embedding, RMSNorm and rotary
//! position tables (plain, linear- and llama3-scaled).
//!
//! Weights stored as f32/f16/bf16 are widened to f32 once at load time (compute is f32 throughout).
//! GGUF quantized weights stay in their blocks: on the CPU through this crate's kernels
//! (`crate::quant`) where it has them, otherwise through candle's quantized matmul, which also runs
//! on CUDA; `LoadOptions::dequantize` widens them to f32 instead.

use crate::error::{Error, Result};
use crate::quant::{Activations, QMatMulOp, QMatrix};
use crate::source::WeightSource;
use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QMatMul};
use candle_core::{DType as CDType, Device, Module, Tensor, D};
use sfn_checkpoint::config::RopeScaling;
use sfn_checkpoint::{DType, ModelConfig};
use std::sync::Arc;

/// How weights are loaded.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where tensors live and compute runs.
    pub device: Device,
    /// Widen quantized GGUF weights to f32 at load time instead of keeping their blocks (4–7×
    /// the memory, slower decoding; the plain f32 model).
    pub dequantize: bool,
    /// How activations meet quantized weights on the CPU: `F32` (exact up to summation order) or
    /// `Q8` (llama.cpp's 8-bit activations: faster, less exact). See `crate::quant`.
    pub activations: Activations,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { device: Device::Cpu, dequantize: false, activations: Activations::F32 }
    }
}

/// A weight matrix [out, in] in whichever form multiplies fastest on the device.
#[derive(Debug, Clone)]
pub enum Weight {
    /// f32 [out, in].
    Dense(Tensor),
    /// GGUF blocks with this crate's CPU kernels.
    Blocks(Arc<QMatrix>),
    /// GGUF blocks through candle (other types, other devices).
    Candle(Arc<QMatMul>),
    /// Several linears whose outputs are concatenated (stacked matrices that cannot be merged
    /// into one, e.g. candle-quantized ones).
    Parts(Vec<Linear>),
}

/// y = x · Wᵀ (+ b).
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Weight,
    /// [out]
    pub bias: Option<Tensor>,
    pub in_features: usize,
    pub out_features: usize,
}

impl Linear {
    /// Load `{prefix}.weight` (and `{prefix}.bias` when `bias`), checking the shape [out, in].
    pub fn load(
        src: &dyn WeightSource,
        prefix: &str,
        in_f: usize,
        out_f: usize,
        bias: bool,
        opts: &LoadOptions,
    ) -> Result<Linear> {
        let name = format!("{prefix}.weight");
        let weight = load_matrix(src, &name, out_f, in_f, opts)?;
        let bias = if bias { Some(load_vector(src, &format!("{prefix}.bias"), out_f, &opts.device)?) } else { None };
        Ok(Linear { weight, bias, in_features: in_f, out_features: out_f })
    }

    /// x [.., in] → [.., out].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.weight {
            Weight::Dense(w) => {
                let dims = x.dims().to_vec();
                let rows = x.elem_count() / self.in_features;
                let y = x.reshape((rows, self.in_features))?.matmul(&w.t()?)?;
                let mut out = dims;
                *out.last_mut().expect("rank >= 1") = self.out_features;
                y.reshape(out)?
            }
            Weight::Blocks(q) => x.contiguous()?.apply_op1_no_bwd(&QMatMulOp(q))?,
            Weight::Candle(q) => q.forward(&x.contiguous()?)?,
            Weight::Parts(parts) => {
                let ys = parts.iter().map(|p| p.forward(x)).collect::<Result<Vec<_>>>()?;
                Tensor::cat(&ys, D::Minus1)?
            }
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// Bytes of weight data one forward reads (for bandwidth estimates).
    pub fn weight_bytes(&self) -> usize {
        match &self.weight {
            Weight::Dense(w) => w.elem_count() * 4,
            Weight::Blocks(q) => q.nbytes(),
            Weight::Candle(q) => match q.as_ref() {
                QMatMul::QTensor(t) => t.storage_size_in_bytes(),
                QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.elem_count() * t.dtype().size_in_bytes(),
            },
            Weight::Parts(parts) => parts.iter().map(Linear::weight_bytes).sum(),
        }
    }

    /// One linear computing all of `parts` (same input size) at once: outputs concatenated in
    /// order. Matrices are stacked by rows where their storage allows (so one matmul reads them),
    /// otherwise kept as parts.
    pub fn stack(parts: Vec<Linear>) -> Result<Linear> {
        let in_f = parts[0].in_features;
        if parts.iter().any(|p| p.in_features != in_f) {
            return Err(Error::unsupported("stacked linears must share their input size"));
        }
        let out_f: usize = parts.iter().map(|p| p.out_features).sum();
        let dev = match &parts[0].weight {
            Weight::Dense(w) => Some(w.device().clone()),
            _ => None,
        };
        let bias = if parts.iter().any(|p| p.bias.is_some()) {
            let bs = parts
                .iter()
                .map(|p| match (&p.bias, &dev) {
                    (Some(b), _) => Ok(b.clone()),
                    (None, Some(d)) => Ok(Tensor::zeros(p.out_features, F32, d)?),
                    (None, None) => Err(Error::unsupported("stacking a linear without bias onto one with")),
                })
                .collect::<Result<Vec<_>>>();
            match bs {
                Ok(bs) => Some(Tensor::cat(&bs, 0)?),
                Err(_) => {
                    return Ok(Linear {
                        weight: Weight::Parts(parts),
                        bias: None,
                        in_features: in_f,
                        out_features: out_f,
                    })
                }
            }
        } else {
            None
        };
        let weight = if parts.iter().all(|p| matches!(p.weight, Weight::Dense(_))) {
            let ws: Vec<Tensor> = parts
                .iter()
                .map(|p| match &p.weight {
                    Weight::Dense(w) => w.clone(),
                    _ => unreachable!(),
                })
                .collect();
            Weight::Dense(Tensor::cat(&ws, 0)?)
        } else if let Some(q) = QMatrix::stack(parts.iter().map(|p| match &p.weight {
            Weight::Blocks(q) => Some(q.as_ref()),
            _ => None,
        }))? {
            Weight::Blocks(Arc::new(q))
        } else {
            return Ok(Linear { weight: Weight::Parts(parts), bias: None, in_features: in_f, out_features: out_f });
        };
        Ok(Linear { weight, bias, in_features: in_f, out_features: out_f })
    }
}

fn shape_error(name: &str, want: &[usize], got: Option<Vec<usize>>) -> Error {
    match got {
        None => Error::unsupported(format!("tensor {name} is missing from the checkpoint")),
        Some(g) => Error::unsupported(format!("tensor {name} has shape {g:?}, the config implies {want:?}")),
    }
}

fn check_shape(src: &dyn WeightSource, name: &str, want: &[usize]) -> Result<()> {
    match src.shape(name) {
        Some(s) if s == want => Ok(()),
        got => Err(shape_error(name, want, got)),
    }
}

/// A [rows, cols] matrix as a `Weight`.
pub fn load_matrix(src: &dyn WeightSource, name: &str, rows: usize, cols: usize, opts: &LoadOptions) -> Result<Weight> {
    check_shape(src, name, &[rows, cols])?;
    if !opts.dequantize {
        if let Some((dtype, bytes)) = src.load_quantized(name)? {
            if opts.device.is_cpu() && QMatrix::supports(dtype) {
                return Ok(Weight::Blocks(Arc::new(QMatrix::new(dtype, rows, cols, bytes, opts.activations)?)));
            }
            if let Some(g) = ggml_dtype(dtype) {
                let qt = qtensor_from_ggml(g, &bytes, vec![rows, cols], &opts.device)?;
                return Ok(Weight::Candle(Arc::new(QMatMul::from_qtensor(qt)?)));
            }
        }
    }
    let data = src.load_f32(name)?;
    Ok(Weight::Dense(Tensor::from_vec(data, (rows, cols), &opts.device)?))
}

/// A [len] vector as an f32 tensor.
pub fn load_vector(src: &dyn WeightSource, name: &str, len: usize, device: &Device) -> Result<Tensor> {
    check_shape(src, name, &[len])?;
    Ok(Tensor::from_vec(src.load_f32(name)?, len, device)?)
}

fn ggml_dtype(d: DType) -> Option<GgmlDType> {
    Some(match d {
        DType::Q8_0 => GgmlDType::Q8_0,
        DType::Q4_0 => GgmlDType::Q4_0,
        DType::Q4_1 => GgmlDType::Q4_1,
        DType::Q4_K => GgmlDType::Q4K,
        DType::Q5_K => GgmlDType::Q5K,
        DType::Q6_K => GgmlDType::Q6K,
        _ => return None,
    })
}

/// The token embedding [vocab, hidden]: rows looked up by id. When the stored matrix is quantized
/// the rows are widened on lookup, so the table stays in its blocks (and can double as a tied
/// lm_head).
#[derive(Debug, Clone)]
pub struct Embedding {
    /// The table as a matrix (the tied lm_head multiplies by it).
    pub weight: Weight,
    pub vocab: usize,
    pub hidden: usize,
}

impl Embedding {
    pub fn load(
        src: &dyn WeightSource,
        name: &str,
        vocab: usize,
        hidden: usize,
        opts: &LoadOptions,
    ) -> Result<Embedding> {
        let mut weight = load_matrix(src, name, vocab, hidden, opts)?;
        if let Weight::Candle(_) | Weight::Parts(_) = weight {
            // Rows cannot be read out of candle's quantized tensors: keep an f32 table instead.
            weight = Weight::Dense(Tensor::from_vec(src.load_f32(name)?, (vocab, hidden), &opts.device)?);
        }
        Ok(Embedding { weight, vocab, hidden })
    }

    /// ids [n] (u32, checked < vocab by the caller) → [n, hidden].
    pub fn forward(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        match &self.weight {
            Weight::Dense(w) => {
                let idx = Tensor::from_slice(ids, ids.len(), device)?;
                Ok(w.index_select(&idx, 0)?)
            }
            Weight::Blocks(q) => {
                let mut out = vec![0f32; ids.len() * self.hidden];
                for (row, &id) in out.chunks_mut(self.hidden).zip(ids) {
                    q.dequantize_row(id as usize, row);
                }
                Ok(Tensor::from_vec(out, (ids.len(), self.hidden), device)?)
            }
            Weight::Candle(_) | Weight::Parts(_) => unreachable!("Embedding::load makes Dense or Blocks tables"),
        }
    }
}

/// RMSNorm over the last dimension: x / sqrt(mean(x²) + eps) · w, computed in f32.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    /// [dim]
    pub weight: Tensor,
    pub eps: f32,
}

impl RmsNorm {
    pub fn load(src: &dyn WeightSource, name: &str, dim: usize, eps: f64, device: &Device) -> Result<RmsNorm> {
        Ok(RmsNorm { weight: load_vector(src, name, dim, device)?, eps: eps as f32 })
    }

    /// x [.., dim] → same shape.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps)?)
    }
}

/// Rotary position tables, Hugging Face's "rotate half" convention (not llama.cpp's interleaved one:
/// GGUF q/k rows were put back in Hugging Face order on load).
#[derive(Debug, Clone)]
pub struct Rope {
    /// [max_positions, head_dim / 2]
    pub cos: Tensor,
    /// [max_positions, head_dim / 2]
    pub sin: Tensor,
    pub max_positions: usize,
}

impl Rope {
    pub fn new(cfg: &ModelConfig, max_positions: usize, device: &Device) -> Result<Rope> {
        let inv_freq = inv_freq(cfg)?;
        let half = inv_freq.len();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            for &f in &inv_freq {
                // transformers multiplies in f32: keep that rounding, then take cos/sin in f64.
                let angle = (p as f32 * f) as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Ok(Rope {
            cos: Tensor::from_vec(cos, (max_positions, half), device)?,
            sin: Tensor::from_vec(sin, (max_positions, half), device)?,
            max_positions,
        })
    }

    /// cos and sin [batch, seq, head_dim / 2] at `positions` [batch, seq] (u32 tensor).
    pub fn at(&self, positions: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, s) = positions.dims2()?;
        let flat = positions.flatten_all()?;
        let half = self.cos.dim(D::Minus1)?;
        let cos = self.cos.index_select(&flat, 0)?.reshape((b, s, half))?;
        let sin = self.sin.index_select(&flat, 0)?.reshape((b, s, half))?;
        Ok((cos, sin))
    }

    /// Rotate x [batch, heads, seq, head_dim] by the tables from `at`.
    pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)?)
    }
}

/// The rotary inverse frequencies [head_dim / 2], with the config's scaling applied (computed in
/// f32 as transformers does).
pub fn inv_freq(cfg: &ModelConfig) -> Result<Vec<f32>> {
    let dim = cfg.head_dim;
    if !dim.is_multiple_of(2) {
        return Err(Error::unsupported(format!("head_dim {dim} is odd; rotary embeddings need an even one")));
    }
    let base = cfg.rope_theta as f32;
    let mut f: Vec<f32> = (0..dim / 2).map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32)).collect();
    match &cfg.rope_scaling {
        None => {}
        Some(RopeScaling { rope_type, factor, .. }) if rope_type == "linear" => {
            f.iter_mut().for_each(|x| *x /= *factor as f32);
        }
        Some(r) if r.rope_type == "llama3" => {
            let need = |v: Option<f64>, k: &str| {
                v.ok_or_else(|| Error::unsupported(format!("llama3 rope scaling without `{k}`")))
            };
            let factor = r.factor as f32;
            let low = need(r.low_freq_factor, "low_freq_factor")? as f32;
            let high = need(r.high_freq_factor, "high_freq_factor")? as f32;
            let old = r
                .original_max_position_embeddings
                .ok_or_else(|| Error::unsupported("llama3 rope scaling without `original_max_position_embeddings`"))?
                as f32;
            let (low_wavelen, high_wavelen) = (old / low, old / high);
            for x in f.iter_mut() {
                let wavelen = 2.0 * std::f32::consts::PI / *x;
                let scaled = if wavelen > low_wavelen { *x / factor } else { *x };
                let smooth = (old / wavelen - low) / (high - low);
                let smoothed = (1.0 - smooth) * scaled / factor + smooth * scaled;
                let medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
                *x = if medium { smoothed } else { scaled };
            }
        }
        Some(r) => {
            return Err(Error::unsupported(format!(
                "rope scaling `{}` is not supported (supported: linear, llama3)",
                r.rope_type
            )))
        }
    }
    Ok(f)
}

/// silu(gate) · up, elementwise.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    Ok((candle_nn::ops::silu(gate)? * up)?)
}

/// Keep candle's dtype name out of the rest of the crate.
pub const F32: CDType = CDType::F32;
