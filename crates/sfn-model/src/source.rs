//! Where a model's weights come from: anything that can name its tensors the Hugging Face way and
//! hand them out, i.e. a `Checkpoint` (HF directory, safetensors file, GGUF) or an edit plan's lazy
//! `EditView` over one or two checkpoints. The runtime is built from a `&dyn WeightSource`, so an
//! edited or merged model runs without being written to disk.
//!
//! Tensors come out either as f32 (any float dtype, any edit) or, for GGUF quantized tensors that
//! are not edited, as their stored blocks (rows in Hugging Face order), which the runtime keeps
//! quantized. Limits: a lone `.safetensors` file has no config and cannot be run.

use crate::error::{Error, Result};
use sfn_checkpoint::edit::EditView;
use sfn_checkpoint::gguf::Value;
use sfn_checkpoint::{Checkpoint, DType, ModelConfig};
use std::collections::BTreeMap;
use std::path::Path;

/// A tensor source the runtime can be built from.
pub trait WeightSource {
    /// The architecture (layer count already adjusted for removed layers).
    fn config(&self) -> Result<ModelConfig>;
    /// Row-major shape of `name`, None when there is no such tensor.
    fn shape(&self, name: &str) -> Option<Vec<usize>>;
    /// The whole tensor as f32, Hugging Face layout.
    fn load_f32(&self, name: &str) -> Result<Vec<f32>>;
    /// The stored quantized blocks of `name` (rows in Hugging Face order), when it is stored
    /// quantized and unedited; None otherwise (then use `load_f32`).
    fn load_quantized(&self, _name: &str) -> Result<Option<(DType, Vec<u8>)>> {
        Ok(None)
    }
    /// GGUF key/values (tokenizer, chat template), when the source is a GGUF file.
    fn gguf_metadata(&self) -> Option<&BTreeMap<String, Value>> {
        None
    }
    /// The checkpoint directory or file, for tokenizer files beside it and for messages.
    fn path(&self) -> &Path;
}

impl WeightSource for Checkpoint {
    fn config(&self) -> Result<ModelConfig> {
        self.config.clone().ok_or_else(|| {
            Error::unsupported(format!(
                "{}: no config (a lone .safetensors file cannot be run; open its directory with config.json)",
                self.path.display()
            ))
        })
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.get(name).map(|t| t.shape.clone())
    }

    fn load_f32(&self, name: &str) -> Result<Vec<f32>> {
        Ok(self.read_f32(self.tensor(name)?)?)
    }

    fn load_quantized(&self, name: &str) -> Result<Option<(DType, Vec<u8>)>> {
        let t = self.tensor(name)?;
        if !t.dtype.is_quantized() {
            return Ok(None);
        }
        Ok(Some((t.dtype, self.stored_rows_hf_order(t))))
    }

    fn gguf_metadata(&self) -> Option<&BTreeMap<String, Value>> {
        self.gguf_metadata.as_ref()
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl WeightSource for EditView<'_> {
    fn config(&self) -> Result<ModelConfig> {
        let mut cfg = self.a.config()?;
        cfg.num_layers = self.num_layers().unwrap_or(cfg.num_layers);
        Ok(cfg)
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.get(name).map(|t| t.shape.clone())
    }

    fn load_f32(&self, name: &str) -> Result<Vec<f32>> {
        let t = self
            .get(name)
            .ok_or_else(|| Error::Checkpoint(sfn_checkpoint::Error::tensor(name, "not in the edited model")))?;
        let mut out = vec![0f32; t.shape.iter().product()];
        self.read_f32_into(t, 0, &mut out)?;
        Ok(out)
    }

    fn load_quantized(&self, name: &str) -> Result<Option<(DType, Vec<u8>)>> {
        match self.get(name) {
            Some(t) if t.edit.is_none() => self.a.load_quantized(&t.source),
            _ => Ok(None),
        }
    }

    fn gguf_metadata(&self) -> Option<&BTreeMap<String, Value>> {
        self.a.gguf_metadata.as_ref()
    }

    fn path(&self) -> &Path {
        &self.a.path
    }
}
