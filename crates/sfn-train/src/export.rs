//! A model trained from scratch (the lab's) as a Hugging Face checkpoint: every parameter, in f32
//! or the dtype asked for, with config.json from its config and the files the caller adds
//! (tokenizer, chat template, model card). Fine-tuned models are written by the Freeze stethoscope
//! instead, which copies A's frozen tensors as they were read.

use crate::error::Result;
use crate::model::TrainModel;
use sfn_checkpoint::writer::{write_checkpoint, TensorSpec, WriteOptions, WriteSummary};
use sfn_checkpoint::DType;
use std::path::Path;

/// Write `model` into the new directory `out` (atomically; `overwrite` replaces an old one).
pub fn write_model(
    model: &TrainModel,
    out: &Path,
    dtype: DType,
    extra_files: Vec<(String, String)>,
    overwrite: bool,
) -> Result<WriteSummary> {
    let specs: Vec<TensorSpec> =
        model.params().map(|p| TensorSpec { name: p.name.to_string(), dtype, shape: p.shape.to_vec() }).collect();
    let opts =
        WriteOptions { config_json: Some(model.config().to_hf_json()), extra_files, overwrite, ..Default::default() };
    Ok(write_checkpoint(out, &specs, &opts, |spec, w| {
        let p = model.param(&spec.name).expect("specs come from the model");
        let mut bytes = Vec::with_capacity(spec.nbytes() as usize);
        sfn_checkpoint::dtype::from_f32(spec.dtype, p.data, &mut bytes);
        w.write_all(&bytes).map_err(|e| sfn_checkpoint::Error::io(out, e))
    })?)
}
