//! Shared helpers of the integration tests: fixture paths, loading, comparing tensors.
#![allow(dead_code)]

use sfn_checkpoint::Checkpoint;
use sfn_model::{LoadOptions, Model, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tiny checkpoint: sfn-model's own fixtures first, then sfn-checkpoint's HF fixtures.
pub fn fixture_dir(name: &str) -> PathBuf {
    let own = crate_dir().join("tests/fixtures").join(name);
    if own.is_dir() {
        return own;
    }
    crate_dir().join("../sfn-checkpoint/tests/fixtures/hf").join(name)
}

pub fn open_fixture(name: &str) -> Checkpoint {
    Checkpoint::open(fixture_dir(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn load(ck: &Checkpoint) -> Model {
    Model::load(ck, &LoadOptions::default()).unwrap()
}

/// transformers' tensors for fixture `name` (see tools/reference/make_model_fixtures.py).
pub fn reference(name: &str) -> HashMap<String, Tensor> {
    let p = crate_dir().join("tests/fixtures").join(format!("{name}.reference.safetensors"));
    candle_core::safetensors::load(&p, &candle_core::Device::Cpu).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn reference_ids(r: &HashMap<String, Tensor>) -> Vec<u32> {
    r["input_ids"].to_vec1::<i64>().unwrap().into_iter().map(|x| x as u32).collect()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}
