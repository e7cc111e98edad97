//! The KV cache: each layer's keys and values for the positions run so far, allocated in full up
//! front ([batch, kv_heads, capacity, head_dim] per layer, f32) so memory is known before generation
//! starts and never grows. Also remembers each row's left padding.

use crate::error::{Error, Result};
use crate::layers::F32;
use candle_core::{Device, Tensor};
use sfn_checkpoint::ModelConfig;

#[derive(Debug)]
pub struct KvCache {
    /// Per layer: [batch, kv_heads, capacity, head_dim].
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    batch: usize,
    capacity: usize,
    len: usize,
    /// Left padding of each row (columns before its first token).
    pad: Vec<usize>,
}

impl KvCache {
    pub fn new(cfg: &ModelConfig, batch: usize, capacity: usize, device: &Device) -> Result<KvCache> {
        if batch == 0 || capacity == 0 {
            return Err(Error::input("a KV cache needs at least one row and one position"));
        }
        let shape = (batch, cfg.num_kv_heads, capacity, cfg.head_dim);
        let mut k = Vec::with_capacity(cfg.num_layers);
        let mut v = Vec::with_capacity(cfg.num_layers);
        for _ in 0..cfg.num_layers {
            k.push(Tensor::zeros(shape, F32, device)?);
            v.push(Tensor::zeros(shape, F32, device)?);
        }
        Ok(KvCache { k, v, batch, capacity, len: 0, pad: vec![0; batch] })
    }

    /// Bytes held (keys and values of all layers).
    pub fn nbytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(|t| t.elem_count() * 4).sum()
    }

    pub fn batch(&self) -> usize {
        self.batch
    }
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    /// Columns filled so far (padding included).
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn padding(&self) -> &[usize] {
        &self.pad
    }

    /// Forget everything (the memory stays allocated).
    pub fn reset(&mut self) {
        self.len = 0;
        self.pad.iter_mut().for_each(|p| *p = 0);
    }

    pub(crate) fn set_padding(&mut self, pad: Vec<usize>) {
        self.pad = pad;
    }

    /// Write k, v [b, kv_heads, s, hd] at column `offset` of `layer`; return all keys and values so
    /// far, [b, kv_heads, offset + s, hd] (views into the cache).
    pub(crate) fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor, offset: usize) -> Result<(Tensor, Tensor)> {
        let s = k.dim(2)?;
        self.k[layer].slice_set(&k.contiguous()?, 2, offset)?;
        self.v[layer].slice_set(&v.contiguous()?, 2, offset)?;
        Ok((self.k[layer].narrow(2, 0, offset + s)?, self.v[layer].narrow(2, 0, offset + s)?))
    }

    pub(crate) fn advance(&mut self, s: usize) {
        self.len += s;
    }
}
