//! Tracing: one forward pass whose logits and chosen hook points are kept, and saving such tensors
//! as a safetensors file with string metadata (what `sfn trace` writes).

use crate::error::{Error, Result};
use crate::hooks::{HookId, HookPoint, Hooks};
use crate::model::Model;
use candle_core::{Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Run `ids` once; return `logits` [tokens, vocab], `input_ids` [tokens] (i64) and, for every
/// point × layer, `<point>.<layer>` [tokens, …], all on the CPU.
pub fn trace(model: &Model, ids: &[u32], points: &[HookPoint], layers: &[usize]) -> Result<BTreeMap<String, Tensor>> {
    let mut hooks = Hooks::new();
    for &p in points {
        hooks.capture_layers(p, layers.iter().copied());
    }
    let logits = model.forward(ids, &mut hooks)?;
    let mut out = BTreeMap::new();
    out.insert("logits".to_string(), logits.to_device(&Device::Cpu)?);
    let ids64: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
    out.insert("input_ids".to_string(), Tensor::from_vec(ids64, ids.len(), &Device::Cpu)?);
    for &p in points {
        for &l in layers {
            let id = HookId::new(p, l);
            let t = hooks.get(id)?.ok_or_else(|| Error::input(format!("{id} was not captured")))?;
            out.insert(id.to_string(), t.squeeze(0)?.to_device(&Device::Cpu)?);
        }
    }
    Ok(out)
}

/// Write `tensors` (contiguous CPU tensors) to `path` with `metadata` as the header's `__metadata__`.
pub fn save_safetensors(
    tensors: &BTreeMap<String, Tensor>,
    metadata: HashMap<String, String>,
    path: &Path,
) -> Result<()> {
    let contiguous: Vec<(String, Tensor)> =
        tensors.iter().map(|(k, t)| Ok((k.clone(), t.contiguous()?))).collect::<Result<_>>()?;
    safetensors::serialize_to_file(contiguous.iter().map(|(k, t)| (k.as_str(), t)), Some(metadata), path)
        .map_err(|e| Error::input(format!("{}: {e}", path.display())))
}
