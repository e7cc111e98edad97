//! sfn-checkpoint against checkpoints written by Hugging Face transformers
//! (tools/reference/make_hf_fixtures.py): config facts and every tensor's values as the
//! `safetensors` library reads them; write -> read round trips; malformed inputs.

use serde_json::Value;
use sfn_checkpoint::writer::{write_checkpoint, write_tensor_as, TensorSpec, WriteOptions};
use sfn_checkpoint::{Checkpoint, DType};
use std::path::{Path, PathBuf};

const MODELS: &[&str] = &["qwen2-bias-tied-bf16-sharded", "llama-gqa-untied-f32", "qwen3-qknorm-f16"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf")
}

fn expected(model: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(format!("{model}.expected.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn rel_diff(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-30)
}

#[test]
fn config_and_tensors_match_the_safetensors_library() {
    for model in MODELS {
        let exp = expected(model);
        let ck = Checkpoint::open(fixtures().join(model)).unwrap();
        let c = ck.config.as_ref().unwrap();
        assert_eq!(c.family, exp["family"].as_str().unwrap(), "{model}");
        assert_eq!(c.num_layers as u64, exp["num_layers"].as_u64().unwrap());
        assert_eq!(c.hidden_size as u64, exp["hidden_size"].as_u64().unwrap());
        assert_eq!(c.num_heads as u64, exp["num_heads"].as_u64().unwrap());
        assert_eq!(c.num_kv_heads as u64, exp["num_kv_heads"].as_u64().unwrap());
        assert_eq!(c.head_dim as u64, exp["head_dim"].as_u64().unwrap());
        assert_eq!(c.vocab_size as u64, exp["vocab_size"].as_u64().unwrap());
        assert_eq!(c.tied_embeddings, exp["tied_embeddings"].as_bool().unwrap());
        let tensors = exp["tensors"].as_object().unwrap();
        assert_eq!(ck.tensors().len(), tensors.len(), "{model}: tensor count");
        let mut max_rel = 0f64;
        for (name, e) in tensors {
            let t = ck.tensor(name).unwrap();
            let dtype = match e["dtype"].as_str().unwrap() {
                "float32" => DType::F32,
                "float16" => DType::F16,
                "bfloat16" => DType::BF16,
                other => panic!("unexpected dtype {other}"),
            };
            assert_eq!(t.dtype, dtype, "{name}");
            let shape: Vec<usize> =
                e["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            assert_eq!(t.shape, shape, "{name}");
            assert_eq!(ck.file_of(t).file_name().unwrap().to_str().unwrap(), e["file"].as_str().unwrap());
            let v = ck.read_f32(t).unwrap();
            let head: Vec<f64> = e["head"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            let ours: Vec<f64> = v.iter().take(8).map(|&x| x as f64).collect();
            assert_eq!(ours, head, "{name}: first values");
            let sum: f64 = v.iter().map(|&x| x as f64).sum();
            let sumsq: f64 = v.iter().map(|&x| (x as f64) * (x as f64)).sum();
            max_rel = max_rel.max(rel_diff(sumsq, e["sumsq"].as_f64().unwrap()));
            assert!((sum - e["sum"].as_f64().unwrap()).abs() <= 1e-9 * sumsq.sqrt().max(1.0), "{name}: sum");
        }
        println!("{model}: {} tensors, max relative |diff| of sum of squares {max_rel:.2e}", tensors.len());
        assert!(max_rel < 1e-12);
    }
}

#[test]
fn chunked_reads_equal_whole_reads() {
    let ck = Checkpoint::open(fixtures().join("llama-gqa-untied-f32")).unwrap();
    let t = ck.tensor("model.embed_tokens.weight").unwrap();
    let whole = ck.read_f32(t).unwrap();
    let mut streamed = Vec::new();
    ck.for_each_f32_chunk::<sfn_checkpoint::Error>(t, 100, |start, chunk| {
        assert_eq!(start, streamed.len());
        streamed.extend_from_slice(chunk);
        Ok(())
    })
    .unwrap();
    assert_eq!(whole, streamed);
}

/// Write `ck` as `dtype` into `out` with small shards; returns the written checkpoint.
fn rewrite(ck: &Checkpoint, dtype: DType, out: &Path, max_shard_bytes: u64) -> Checkpoint {
    let specs: Vec<TensorSpec> =
        ck.tensors().iter().map(|t| TensorSpec { name: t.name.clone(), dtype, shape: t.shape.clone() }).collect();
    let opts = WriteOptions {
        max_shard_bytes,
        side_files_from: Some(ck.path.clone()),
        inputs: vec![ck.path.clone()],
        ..Default::default()
    };
    write_checkpoint(out, &specs, &opts, |s, w| write_tensor_as(ck, ck.tensor(&s.name)?, s.dtype, w)).unwrap();
    Checkpoint::open(out).unwrap()
}

#[test]
fn write_then_read_round_trips_every_dtype_and_layout() {
    let tmp = tempfile::tempdir().unwrap();
    for model in MODELS {
        let ck = Checkpoint::open(fixtures().join(model)).unwrap();
        for dtype in [DType::F64, DType::F32, DType::F16, DType::BF16] {
            for shard_bytes in [1_000_000_000, 4096] {
                let out = tmp.path().join(format!("{model}-{dtype}-{shard_bytes}"));
                let back = rewrite(&ck, dtype, &out, shard_bytes);
                assert_eq!(back.tensors().len(), ck.tensors().len());
                assert!(out.join("config.json").is_file() && out.join("generation_config.json").is_file());
                let sharded = out.join("model.safetensors.index.json").is_file();
                assert_eq!(sharded, shard_bytes == 4096, "{model} {dtype}: index presence");
                for t in ck.tensors() {
                    let (a, b) = (ck.read_f32(t).unwrap(), back.read_f32(back.tensor(&t.name).unwrap()).unwrap());
                    let widening = t.dtype == dtype
                        || dtype == DType::F64
                        || (dtype == DType::F32)
                        || (t.dtype == DType::BF16 && dtype == DType::BF16);
                    if widening {
                        assert_eq!(a, b, "{model} {} as {dtype}", t.name);
                    } else {
                        // Narrowing: within the target's rounding (relative 2^-8 for bf16, 2^-11 for f16).
                        let tol = if dtype == DType::BF16 { 1.0 / 256.0 } else { 1.0 / 2048.0 };
                        for (x, y) in a.iter().zip(&b) {
                            assert!((x - y).abs() <= tol * x.abs() + 1e-7, "{model} {}: {x} vs {y}", t.name);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn sharded_index_maps_every_tensor_to_its_shard_and_totals_the_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = Checkpoint::open(fixtures().join("llama-gqa-untied-f32")).unwrap();
    let out = tmp.path().join("sharded");
    let back = rewrite(&ck, DType::BF16, &out, 5000);
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.safetensors.index.json")).unwrap()).unwrap();
    let map = index["weight_map"].as_object().unwrap();
    assert_eq!(map.len(), ck.tensors().len());
    let total: u64 = back.tensors().iter().map(|t| t.nbytes() as u64).sum();
    assert_eq!(index["metadata"]["total_size"].as_u64().unwrap(), total);
    for t in back.tensors() {
        assert_eq!(map[&t.name].as_str().unwrap(), back.file_of(t).file_name().unwrap().to_str().unwrap());
    }
    let shards: std::collections::BTreeSet<&str> = map.values().map(|v| v.as_str().unwrap()).collect();
    let n = shards.len();
    assert!(n > 1);
    for (i, s) in shards.iter().enumerate() {
        assert_eq!(*s, format!("model-{:05}-of-{n:05}.safetensors", i + 1));
        let size = std::fs::metadata(out.join(s)).unwrap().len();
        assert!(size <= 5000 + 4096, "{s}: {size} bytes");
    }
}

#[test]
fn writer_refuses_to_write_over_its_input_and_leaves_no_partial_output() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    copy_dir(&fixtures().join("llama-gqa-untied-f32"), &src);
    let ck = Checkpoint::open(&src).unwrap();
    let before = std::fs::read(src.join("model.safetensors")).unwrap();
    let specs: Vec<TensorSpec> = ck
        .tensors()
        .iter()
        .map(|t| TensorSpec { name: t.name.clone(), dtype: t.dtype, shape: t.shape.clone() })
        .collect();
    let opts = WriteOptions { inputs: vec![src.clone()], overwrite: true, ..Default::default() };
    let err = write_checkpoint(&src, &specs, &opts, |_, _| Ok(())).unwrap_err().to_string();
    assert!(err.contains("overlaps the input"), "{err}");
    assert_eq!(std::fs::read(src.join("model.safetensors")).unwrap(), before);

    // A provider that fails midway: no output directory, no temporary left behind.
    let out = tmp.path().join("out");
    let err = write_checkpoint(&out, &specs, &WriteOptions::default(), |s, w| {
        if s.name.contains("layers.1") {
            return Err(sfn_checkpoint::Error::tensor(&s.name, "simulated failure"));
        }
        write_tensor_as(&ck, ck.tensor(&s.name)?, s.dtype, w)
    })
    .unwrap_err();
    assert!(err.to_string().contains("simulated failure"));
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1, "only src remains");

    // A provider that writes the wrong number of bytes is caught.
    let err = write_checkpoint(&out, &specs, &WriteOptions::default(), |_, w| {
        let _: () = w.write_all(&[0u8; 3]).unwrap();
        Ok(())
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("3 bytes supplied") && err.contains("expected"), "{err}");
    assert!(!out.exists());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

// ---- malformed inputs: each gives one clear error naming the file and the problem ----

/// A lone safetensors file with the given header JSON and `data_len` bytes of data.
fn safetensors_file(dir: &Path, header: &str, data_len: usize) -> PathBuf {
    let path = dir.join("bad.safetensors");
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(std::iter::repeat_n(0u8, data_len));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn open_err(path: &Path) -> String {
    let err = Checkpoint::open(path).unwrap_err().to_string();
    let shown = path.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(shown), "error does not name the file: {err}");
    err
}

#[test]
fn truncated_file_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("short.safetensors");
    std::fs::write(&path, [1u8, 2, 3]).unwrap();
    assert!(open_err(&path).contains("truncated"));
}

#[test]
fn header_length_larger_than_the_file_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("big-header.safetensors");
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&path, bytes).unwrap();
    assert!(open_err(&path).contains("header length 1000 is larger than the file"));
}

#[test]
fn tensor_offsets_out_of_range_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let p = safetensors_file(tmp.path(), r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, 8);
    let err = open_err(&p);
    assert!(err.contains("tensor w") && err.contains("past the end of the data"), "{err}");
}

#[test]
fn overlapping_tensors_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let p = safetensors_file(
        tmp.path(),
        r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#,
        24,
    );
    assert!(open_err(&p).contains("tensors a and b overlap"));
}

#[test]
fn dtype_shape_and_byte_size_mismatch_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let p = safetensors_file(tmp.path(), r#"{"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,24]}}"#, 24);
    let err = open_err(&p);
    assert!(err.contains("tensor w: shape [2, 3] of BF16 needs 12 bytes but data_offsets give 24"), "{err}");
}

#[test]
fn unsupported_dtype_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let p = safetensors_file(tmp.path(), r#"{"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}"#, 16);
    let err = open_err(&p);
    assert!(err.contains("tensor ids: unsupported dtype I64"), "{err}");
}

#[test]
fn invalid_json_header_and_config_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let p = safetensors_file(tmp.path(), r#"{"w": {"dtype": "F32",,}"#, 0);
    assert!(open_err(&p).contains("invalid JSON header"));

    let dir = tmp.path().join("model");
    copy_dir(&fixtures().join("llama-gqa-untied-f32"), &dir);
    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    let err = Checkpoint::open(&dir).unwrap_err().to_string();
    assert!(err.contains("config.json") && err.contains("invalid JSON"), "{err}");
}

/// The sharded fixture with its index edited by `edit`.
fn with_index(tmp: &Path, edit: impl Fn(&mut Value)) -> PathBuf {
    let dir = tmp.join("sharded");
    copy_dir(&fixtures().join("qwen2-bias-tied-bf16-sharded"), &dir);
    let path = dir.join("model.safetensors.index.json");
    let mut index: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut index);
    std::fs::write(&path, index.to_string()).unwrap();
    dir
}

#[test]
fn index_naming_a_shard_outside_the_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = with_index(tmp.path(), |v| v["weight_map"]["model.norm.weight"] = "../x.safetensors".into());
    let err = Checkpoint::open(&dir).unwrap_err().to_string();
    assert!(
        err.contains("model.safetensors.index.json") && err.contains("`../x.safetensors` is not a file inside"),
        "{err}"
    );
}

#[test]
fn index_naming_a_missing_shard_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = with_index(tmp.path(), |_| {});
    std::fs::remove_file(dir.join("model-00003-of-00009.safetensors")).unwrap();
    let err = Checkpoint::open(&dir).unwrap_err().to_string();
    assert!(err.contains("shard `model-00003-of-00009.safetensors` named by the index is missing"), "{err}");
}

#[test]
fn index_disagreeing_with_the_shards_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = with_index(tmp.path(), |v| {
        v["weight_map"]["model.nonexistent.weight"] = "model-00001-of-00009.safetensors".into()
    });
    let err = Checkpoint::open(&dir).unwrap_err().to_string();
    assert!(err.contains("model.nonexistent.weight") && err.contains("does not hold it"), "{err}");
}

#[test]
fn directory_without_config_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Checkpoint::open(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("no config.json"), "{err}");
}
