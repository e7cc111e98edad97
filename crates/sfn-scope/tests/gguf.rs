//! Delta across formats: GGUF (quantized blocks dequantized on read, llama q/k rows un-permuted)
//! against Hugging Face safetensors.
//! - The tiny GGUF fixtures of sfn-checkpoint (every block type, permuted rows) against the
//!   HF-layout f32 values gguf-py computed for them: exactly zero change, with work items cut
//!   down to single blocks so chunk boundaries cross every granule.
//! - The real SmolLM2-135M-Instruct Q4_1 file against a bf16 Hugging Face export of its first
//!   layers: the change is bf16 rounding only, and the tensors not exported are listed.

use sfn_checkpoint::writer::{write_checkpoint, write_tensor_as, TensorSpec, WriteOptions};
use sfn_checkpoint::{Checkpoint, DType};
use sfn_scope::delta::{delta, DeltaOptions};
use std::path::{Path, PathBuf};

fn gguf_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sfn-checkpoint/tests/fixtures/gguf")
}

#[test]
fn gguf_against_the_gguf_py_export_is_exactly_zero() {
    for model in ["tiny-llama", "tiny-qwen2"] {
        let a = Checkpoint::open(gguf_fixtures().join(format!("{model}.gguf"))).unwrap();
        let b = Checkpoint::open(gguf_fixtures().join(format!("{model}.expected.safetensors"))).unwrap();
        for chunk_elems in [1, 100, 1 << 20] {
            let r = delta(&a, &b, &DeltaOptions { chunk_elems, threads: 3, ..Default::default() }, &|_| {}).unwrap();
            assert!(r.only_in_a.is_empty() && r.only_in_b.is_empty() && r.shape_mismatch.is_empty(), "{model}");
            assert_eq!(r.tensors.len(), a.tensors().len());
            for t in &r.tensors {
                assert_eq!((t.l2_diff, t.max_abs_diff), (0.0, 0.0), "{model} {} ({})", t.name, t.dtype_a);
                assert_eq!(t.hist.counts[100], t.numel, "{model} {}", t.name);
            }
        }
    }
}

fn smollm2_path() -> PathBuf {
    let path = match std::env::var_os("SFN_SMOLLM2") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    };
    assert!(
        path.is_file(),
        "SmolLM2 GGUF not found at {}: run scripts/fetch-smollm2 (or set SFN_SMOLLM2 to the file)",
        path.display()
    );
    path
}

#[test]
fn smollm2_gguf_against_its_bf16_hf_export_differs_by_rounding_only() {
    let a = Checkpoint::open(smollm2_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("smollm2-bf16");
    // Layers 0 and 1 and the final norm: enough for every module kind and both Q4_1 and
    // permuted q/k rows, small enough for a debug build.
    let keep =
        |n: &str| n.starts_with("model.layers.0.") || n.starts_with("model.layers.1.") || n == "model.norm.weight";
    let specs: Vec<TensorSpec> = a
        .tensors()
        .iter()
        .filter(|t| keep(&t.name))
        .map(|t| TensorSpec { name: t.name.clone(), dtype: DType::BF16, shape: t.shape.clone() })
        .collect();
    let opts = WriteOptions { config_json: a.config.as_ref().map(|c| c.to_hf_json()), ..Default::default() };
    write_checkpoint(&out, &specs, &opts, |spec, w| write_tensor_as(&a, a.tensor(&spec.name)?, DType::BF16, w))
        .unwrap();
    let b = Checkpoint::open(&out).unwrap();
    let r = delta(&a, &b, &DeltaOptions::default(), &|_| {}).unwrap();
    assert_eq!(r.tensors.len(), specs.len());
    assert_eq!(r.only_in_a.len(), a.tensors().len() - specs.len());
    assert!(r.only_in_b.is_empty());
    for t in &r.tensors {
        // Rounding to bf16 (8 significant bits, to nearest) moves each element by ≤ 2^-9 of it.
        let rel = t.rel_change.unwrap();
        assert!(rel <= 2f64.powi(-9), "{}: {rel}", t.name);
        assert!((t.cosine.unwrap() - 1.0).abs() < 1e-4, "{}", t.name);
        // So the relative change stays inside the two bins around 0 (width 0.01).
        assert_eq!(t.hist.counts[99] + t.hist.counts[100], t.numel, "{}", t.name);
        assert!(!t.bimodality.bimodal);
    }
    let q = r.tensors.iter().find(|t| t.name == "model.layers.1.self_attn.q_proj.weight").unwrap();
    assert_eq!(q.dtype_a, "Q4_1");
    assert!(q.l2_diff > 0.0);
}
