//! Helpers shared by the integration tests: fixture paths, the transformers reference of a fixture
//! (batch, loss, gradients, logits; see tools/reference/train_reference.py) and comparisons that
//! print what they measured.
#![allow(dead_code)] // each test file uses its own subset

use sfn_checkpoint::Checkpoint;
use sfn_train::{Batch, TrainModel, Trainable};
use std::path::PathBuf;

pub const MODELS: [&str; 4] = ["qwen2-tied-bias", "llama-untied-linrope", "qwen3-qknorm", "mistral-window"];

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn open(name: &str) -> Checkpoint {
    Checkpoint::open(fixture(name)).unwrap()
}

/// A fixture's reference batch and loss.
pub struct Reference {
    pub batch: Batch,
    /// [rows, cols] 1 on real tokens
    pub mask: Vec<u8>,
    pub loss: f64,
    pub tensors: Checkpoint,
}

impl Reference {
    /// A reference tensor (`grad.<name>`, `logits`) as f32.
    pub fn get(&self, name: &str) -> Vec<f32> {
        self.tensors.read_f32(self.tensors.tensor(name).unwrap()).unwrap()
    }
}

pub fn reference(name: &str) -> Reference {
    let text = std::fs::read_to_string(fixture(&format!("{name}.reference.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let grid = |key: &str| -> Vec<Vec<i64>> { serde_json::from_value(v[key].clone()).unwrap() };
    let (ids, labels, mask) = (grid("input_ids"), grid("labels"), grid("attention_mask"));
    let (rows, cols) = (ids.len(), ids[0].len());
    let tokens = ids.concat().into_iter().map(|x| x as u32).collect();
    let labels = labels.concat().into_iter().map(|x| x as i32).collect();
    let batch = Batch::new(rows, cols, tokens, labels).unwrap();
    let mask = mask.concat().into_iter().map(|x| x as u8).collect();
    let tensors = Checkpoint::open(fixture(&format!("{name}.reference.safetensors"))).unwrap();
    Reference { batch, mask, loss: v["loss"].as_f64().unwrap(), tensors }
}

pub fn load(name: &str, selector: &str) -> TrainModel {
    let sel = sfn_checkpoint::selector::Selector::parse(selector).unwrap();
    TrainModel::load(&open(name), Trainable::Selector(&sel)).unwrap()
}

/// max |a − b| and max |b|.
pub fn max_diff(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let d = a.iter().zip(b).fold(0f32, |m, (&x, &y)| m.max((x - y).abs()));
    (d, b.iter().fold(0f32, |m, &x| m.max(x.abs())))
}

/// Gradients of every trainable parameter, by name.
pub fn grads(model: &TrainModel) -> Vec<(String, Vec<f32>)> {
    model.params().filter_map(|p| p.grad.map(|g| (p.name.to_string(), g.to_vec()))).collect()
}

/// Weights of every parameter, by name.
pub fn weights(model: &TrainModel) -> Vec<(String, Vec<f32>)> {
    model.params().map(|p| (p.name.to_string(), p.data.to_vec())).collect()
}
