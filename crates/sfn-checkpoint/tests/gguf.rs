//! sfn's GGUF reader against gguf-py (tools/reference/make_gguf_fixtures.py): block
//! dequantization of every supported type, two tiny models written by GGUFWriter (Llama with
//! permuted q/k rows, Qwen2 without), rows of the real SmolLM2-135M-Instruct Q4_1 file, and
//! malformed files that must give errors naming the problem, never panics.
//!
//! Dequantization is compared bit for bit: sfn does the same f32 operations in the same order as
//! ggml and gguf-py, so every max |diff| printed here is expected to be exactly 0.

use serde_json::{json, Value as Json};
use sfn_checkpoint::gguf::Value;
use sfn_checkpoint::{dtype, Checkpoint, DType, TensorInfo};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf")
}

fn expected() -> Json {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Largest |a - b|, and whether every pair is bit-identical.
fn compare(ours: &[f32], reference: &[f32]) -> (f64, bool) {
    assert_eq!(ours.len(), reference.len());
    let max = ours.iter().zip(reference).map(|(a, b)| (*a as f64 - *b as f64).abs()).fold(0.0, f64::max);
    let identical = ours.iter().zip(reference).all(|(a, b)| a.to_bits() == b.to_bits());
    (max, identical)
}

fn dtype_named(name: &str) -> DType {
    match name {
        "F32" => DType::F32,
        "F64" => DType::F64,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "Q8_0" => DType::Q8_0,
        "Q4_0" => DType::Q4_0,
        "Q4_1" => DType::Q4_1,
        "Q4_K" => DType::Q4_K,
        "Q5_K" => DType::Q5_K,
        "Q6_K" => DType::Q6_K,
        other => panic!("fixture names unknown dtype {other}"),
    }
}

#[test]
fn gguf_dequantization_matches_gguf_py_for_every_type() {
    let exp = expected();
    let blocks = exp["blocks"].as_object().unwrap();
    assert_eq!(blocks.len(), 8);
    for (name, info) in blocks {
        let dt = dtype_named(name);
        let raw = std::fs::read(fixtures().join(format!("blocks/{name}.bin"))).unwrap();
        let reference = f32s(&std::fs::read(fixtures().join(format!("blocks/{name}.f32"))).unwrap());
        assert_eq!(reference.len() as u64, info["elements"].as_u64().unwrap());
        assert_eq!(Some(raw.len()), dt.byte_len(reference.len()), "{name}: block size");
        let mut ours = vec![0f32; reference.len()];
        dtype::to_f32(dt, &raw, &mut ours);
        let (max, identical) = compare(&ours, &reference);
        println!("{name:>5}: {:>4} elements, max |diff| vs gguf-py {max:.3e}, bit-identical: {identical}", ours.len());
        assert!(identical, "{name}: differs from gguf-py (max |diff| {max:e})");
    }
}

/// Open `<model>.gguf` and compare everything with `<model>.expected.safetensors` and expected.json.
fn check_tiny_model(model: &str) -> Checkpoint {
    let exp = &expected()[model];
    let ck = Checkpoint::open(fixtures().join(format!("{model}.gguf"))).unwrap();
    let reference = Checkpoint::open(fixtures().join(format!("{model}.expected.safetensors"))).unwrap();
    let c = serde_json::to_value(ck.config.as_ref().unwrap()).unwrap();
    for (key, want) in exp["config"].as_object().unwrap() {
        let got = &c[key.as_str()];
        match key.as_str() {
            // rope_scaling carries more optional fields than the fixture names.
            "rope_scaling" if !want.is_null() => {
                assert_eq!(got["rope_type"], want["rope_type"], "{model}: rope_scaling");
                assert_eq!(got["factor"], want["factor"], "{model}: rope_scaling");
            }
            _ => assert_eq!(got, want, "{model}: config.{key}"),
        }
    }
    let tensors = exp["tensors"].as_object().unwrap();
    assert_eq!(ck.tensors().len(), tensors.len(), "{model}: tensor count");
    let mut worst = 0f64;
    for (name, e) in tensors {
        let t = ck.tensor(name).unwrap();
        assert_eq!(t.dtype, dtype_named(e["dtype"].as_str().unwrap()), "{name}: dtype");
        let shape: Vec<usize> = e["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        assert_eq!(t.shape, shape, "{name}: shape");
        assert_eq!(t.rope_permuted_heads, e["rope_permuted_heads"].as_u64().map(|h| h as usize), "{name}");
        let ours = ck.read_f32(t).unwrap();
        let want = reference.read_f32(reference.tensor(name).unwrap()).unwrap();
        let (max, identical) = compare(&ours, &want);
        worst = worst.max(max);
        assert!(identical, "{model} {name} ({}): max |diff| {max:e}", t.dtype);
    }
    println!("{model}: {} tensors, max |diff| vs gguf-py + numpy un-permute {worst:.3e}", tensors.len());
    ck
}

#[test]
fn gguf_tiny_llama_reads_as_hugging_face_tensors() {
    let ck = check_tiny_model("tiny-llama");
    assert_eq!(ck.format, sfn_checkpoint::Format::Gguf);
    let md = ck.gguf_metadata.as_ref().unwrap();
    assert_eq!(md["general.architecture"], Value::String("llama".into()));
}

#[test]
fn gguf_tiny_qwen2_reads_as_hugging_face_tensors() {
    let ck = check_tiny_model("tiny-qwen2");
    // Qwen2 is stored in Hugging Face row order: nothing may be un-permuted.
    assert!(ck.tensors().iter().all(|t| t.rope_permuted_heads.is_none()));
    let md = ck.gguf_metadata.as_ref().unwrap();
    assert_eq!(md["general.alignment"], Value::U32(64));
    assert_eq!(md["tokenizer.ggml.tokens"].as_array().unwrap().len(), 64);
}

#[test]
fn gguf_q_k_rows_are_unpermuted() {
    let ck = Checkpoint::open(fixtures().join("tiny-llama.gguf")).unwrap();
    let reference = Checkpoint::open(fixtures().join("tiny-llama.expected.safetensors")).unwrap();
    for (name, heads) in [
        ("model.layers.0.self_attn.q_proj.weight", 4),
        ("model.layers.0.self_attn.k_proj.weight", 2),
        ("model.layers.1.self_attn.q_proj.bias", 4),
        ("model.layers.1.self_attn.k_proj.weight", 2),
    ] {
        let t = ck.tensor(name).unwrap();
        assert_eq!(t.rope_permuted_heads, Some(heads), "{name}");
        let want = reference.read_f32(reference.tensor(name).unwrap()).unwrap();
        assert_eq!(ck.read_f32(t).unwrap(), want, "{name}: un-permuted rows");
        // The same bytes read without un-permuting are different: the check above has teeth.
        let as_stored = TensorInfo { rope_permuted_heads: None, ..t.clone() };
        assert_ne!(ck.read_f32(&as_stored).unwrap(), want, "{name}: stored order equals HF order?");
        // Permuted tensors are not handed out as raw bytes (they are not in Hugging Face layout).
        assert!(ck.raw_bytes(t).is_none());
    }
}

#[test]
fn gguf_stored_rows_in_hf_order_dequantize_to_what_read_f32_gives() {
    // What a runtime keeping weights quantized loads: for permuted q/k too.
    for model in ["tiny-llama.gguf", "tiny-qwen2.gguf"] {
        let ck = Checkpoint::open(fixtures().join(model)).unwrap();
        let mut permuted = 0;
        for t in ck.tensors() {
            let bytes = ck.stored_rows_hf_order(t);
            assert_eq!(bytes.len(), t.nbytes(), "{}", t.name);
            let mut widened = vec![0f32; t.numel()];
            sfn_checkpoint::dtype::to_f32(t.dtype, &bytes, &mut widened);
            assert_eq!(widened, ck.read_f32(t).unwrap(), "{model} {}", t.name);
            permuted += t.rope_permuted_heads.is_some() as usize;
        }
        if model == "tiny-llama.gguf" {
            assert!(permuted > 0, "the llama fixture has permuted q/k tensors");
        }
    }
}

#[test]
fn gguf_chunked_reads_of_permuted_and_quantized_tensors_equal_whole_reads() {
    let ck = Checkpoint::open(fixtures().join("tiny-llama.gguf")).unwrap();
    for t in ck.tensors() {
        let whole = ck.read_f32(t).unwrap();
        let mut streamed = Vec::new();
        ck.for_each_f32_chunk::<sfn_checkpoint::Error>(t, 1, |start, chunk| {
            assert_eq!(start, streamed.len());
            streamed.extend_from_slice(chunk);
            Ok(())
        })
        .unwrap();
        assert_eq!(whole, streamed, "{}", t.name);
    }
}

/// A metadata value in the fixture's typed JSON form.
fn typed(v: &Value) -> Json {
    let (ty, value) = match v {
        Value::U8(x) => ("UINT8", json!(x)),
        Value::I8(x) => ("INT8", json!(x)),
        Value::U16(x) => ("UINT16", json!(x)),
        Value::I16(x) => ("INT16", json!(x)),
        Value::U32(x) => ("UINT32", json!(x)),
        Value::I32(x) => ("INT32", json!(x)),
        Value::U64(x) => ("UINT64", json!(x)),
        Value::I64(x) => ("INT64", json!(x)),
        Value::F32(x) => ("FLOAT32", json!(*x as f64)),
        Value::F64(x) => ("FLOAT64", json!(x)),
        Value::Bool(x) => ("BOOL", json!(x)),
        Value::String(x) => ("STRING", json!(x)),
        Value::Array(items) => return json!({"type": "ARRAY", "items": items.iter().map(typed).collect::<Vec<_>>()}),
    };
    json!({"type": ty, "value": value})
}

#[test]
fn gguf_metadata_values_of_every_type_are_read() {
    let ck = Checkpoint::open(fixtures().join("tiny-llama.gguf")).unwrap();
    let md = ck.gguf_metadata.as_ref().unwrap();
    let exp = expected();
    let want = exp["tiny-llama"]["metadata"].as_object().unwrap();
    assert_eq!(want.len(), 15);
    for (key, w) in want {
        let got = md.get(key).unwrap_or_else(|| panic!("metadata key {key} missing"));
        assert_eq!(&typed(got), w, "{key}");
    }
}

// ---------------------------------------------------------------------------------------------
// The real SmolLM2-135M-Instruct Q4_1 file

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
fn gguf_smollm2_config_and_tensors() {
    let path = smollm2_path();
    let exp = expected();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        exp["smollm2"]["file_bytes"].as_u64().unwrap(),
        "{} is not the file the fixtures were made from",
        path.display()
    );
    let ck = Checkpoint::open(&path).unwrap();
    assert_eq!(ck.tensors().len(), 272);
    let c = ck.config.as_ref().unwrap();
    assert_eq!(c.family, "llama");
    assert_eq!((c.num_layers, c.hidden_size, c.intermediate_size), (30, 576, 1536));
    assert_eq!((c.num_heads, c.num_kv_heads, c.head_dim), (9, 3, 64));
    assert_eq!(c.vocab_size, 49152);
    assert!(c.tied_embeddings);
    assert!(!c.attention_bias);
    assert_eq!(c.rope_theta, 100000.0);
    assert_eq!(c.rope_scaling, None);
    assert_eq!(c.rms_norm_eps, 1e-5f32 as f64);
    assert_eq!(c.max_position_embeddings, 8192);
    assert_eq!((c.bos_token_id, c.eos_token_ids.as_slice()), (Some(1), &[2u32][..]));
    assert!(ck.get("lm_head.weight").is_none());
    let count = |dt| ck.tensors().iter().filter(|t| t.dtype == dt).count();
    assert_eq!((count(DType::Q4_1), count(DType::Q8_0), count(DType::F32)), (210, 1, 61));
    for layer in 0..30 {
        let q = ck.tensor(&format!("model.layers.{layer}.self_attn.q_proj.weight")).unwrap();
        let k = ck.tensor(&format!("model.layers.{layer}.self_attn.k_proj.weight")).unwrap();
        assert_eq!((q.shape.as_slice(), q.rope_permuted_heads), (&[576, 576][..], Some(9)));
        assert_eq!((k.shape.as_slice(), k.rope_permuted_heads), (&[192, 576][..], Some(3)));
        let v = ck.tensor(&format!("model.layers.{layer}.self_attn.v_proj.weight")).unwrap();
        assert_eq!(v.rope_permuted_heads, None);
    }
    let md = ck.gguf_metadata.as_ref().unwrap();
    assert!(md["tokenizer.chat_template"].as_str().unwrap().contains("<|im_start|>"));
    assert_eq!(md["tokenizer.ggml.merges"].as_array().unwrap().len(), 48900);
}

#[test]
fn gguf_smollm2_rows_match_gguf_py() {
    let ck = Checkpoint::open(smollm2_path()).unwrap();
    let rows_file = Checkpoint::open(fixtures().join("smollm2-rows.safetensors")).unwrap();
    let exp = expected();
    for (name, info) in exp["smollm2"]["tensors"].as_object().unwrap() {
        let t = ck.tensor(name).unwrap();
        assert_eq!(t.dtype, dtype_named(info["dtype"].as_str().unwrap()), "{name}");
        let want = rows_file.read_f32(rows_file.tensor(name).unwrap()).unwrap();
        let row_len = t.row_len();
        let ours: Vec<f32> = match info["rows"].as_array() {
            None => ck.read_f32(t).unwrap(),
            Some(rows) => {
                let mut out = vec![0f32; rows.len() * row_len];
                for (dst, r) in out.chunks_mut(row_len).zip(rows) {
                    ck.read_f32_into(t, r.as_u64().unwrap() as usize * row_len, dst).unwrap();
                }
                out
            }
        };
        let (max, identical) = compare(&ours, &want);
        println!("SmolLM2 {name} ({}, {} values): max |diff| vs gguf-py {max:.3e}", t.dtype, ours.len());
        assert!(identical, "{name}: max |diff| {max:e}");
    }
}

#[test]
fn gguf_smollm2_every_tensor_reads_finite() {
    let ck = Checkpoint::open(smollm2_path()).unwrap();
    let mut total = 0usize;
    for t in ck.tensors() {
        ck.for_each_f32_chunk::<sfn_checkpoint::Error>(t, 1 << 20, |_, chunk| {
            assert!(chunk.iter().all(|x| x.is_finite()), "{}: non-finite value", t.name);
            total += chunk.len();
            Ok(())
        })
        .unwrap();
    }
    assert_eq!(total, 134_515_008);
}

// ---------------------------------------------------------------------------------------------
// Malformed files

/// A GGUF file put together byte by byte, valid until a test breaks it.
struct Builder {
    magic: [u8; 4],
    version: u32,
    kv: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    n_tensors: u64,
    data: Vec<u8>,
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend((s.len() as u64).to_le_bytes());
    b.extend(s.as_bytes());
}

impl Builder {
    /// A one-layer Llama config and two F32 tensors: token_embd [8 tokens, 32] and output_norm.
    fn llama() -> Builder {
        let mut b =
            Builder { magic: *b"GGUF", version: 3, kv: vec![], n_kv: 0, infos: vec![], n_tensors: 0, data: vec![] };
        b.kv_str("general.architecture", "llama");
        for (k, v) in [
            ("llama.block_count", 1),
            ("llama.embedding_length", 32),
            ("llama.feed_forward_length", 64),
            ("llama.attention.head_count", 4),
            ("llama.attention.head_count_kv", 2),
            ("llama.context_length", 128),
        ] {
            b.kv_u32(k, v);
        }
        b.kv_raw("llama.attention.layer_norm_rms_epsilon", 6, &1e-5f32.to_le_bytes());
        b.tensor("token_embd.weight", &[32, 8], 0, 0);
        b.tensor("output_norm.weight", &[32], 0, 1024);
        b.data = vec![0u8; 1024 + 128];
        b
    }

    fn kv_raw(&mut self, key: &str, ty: u32, value: &[u8]) -> &mut Self {
        put_str(&mut self.kv, key);
        self.kv.extend(ty.to_le_bytes());
        self.kv.extend(value);
        self.n_kv += 1;
        self
    }

    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.kv_raw(key, 4, &v.to_le_bytes())
    }

    fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        let mut s = Vec::new();
        put_str(&mut s, v);
        self.kv_raw(key, 8, &s)
    }

    fn tensor(&mut self, name: &str, dims: &[u64], ggml_type: u32, offset: u64) -> &mut Self {
        put_str(&mut self.infos, name);
        self.infos.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.infos.extend(d.to_le_bytes());
        }
        self.infos.extend(ggml_type.to_le_bytes());
        self.infos.extend(offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(self.magic);
        b.extend(self.version.to_le_bytes());
        b.extend(self.n_tensors.to_le_bytes());
        b.extend(self.n_kv.to_le_bytes());
        b.extend(&self.kv);
        b.extend(&self.infos);
        b.resize(b.len().div_ceil(32) * 32, 0);
        b.extend(&self.data);
        b
    }
}

/// Write `bytes` as a .gguf file in a fresh temp dir and open it through `Checkpoint::open`.
fn open_bytes(bytes: &[u8]) -> sfn_checkpoint::Result<Checkpoint> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, bytes).unwrap();
    Checkpoint::open(&path)
}

/// The error message of opening `bytes`, which must fail.
fn open_err(bytes: &[u8]) -> String {
    match open_bytes(bytes) {
        Ok(_) => panic!("malformed file opened without error"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("model.gguf: "), "error does not name the file: {msg}");
            msg
        }
    }
}

#[test]
fn gguf_crafted_valid_file_opens() {
    // The baseline the malformed files below are made from must itself be fine.
    let ck = open_bytes(&Builder::llama().bytes()).unwrap();
    assert_eq!(ck.tensors().len(), 2);
    let c = ck.config.unwrap();
    assert_eq!((c.vocab_size, c.head_dim, c.rope_theta, c.tied_embeddings), (8, 8, 10000.0, true));
}

#[test]
fn gguf_truncated_file_is_an_error_naming_what_was_cut() {
    let b = Builder::llama();
    let full = b.bytes();
    let msg = open_err(&full[..10]);
    assert!(msg.contains("truncated") && msg.contains("header"), "{msg}");
    // Cut inside the tensor table (in the last tensor's offset): the message names the tensor.
    let cut = 24 + b.kv.len() + b.infos.len() - 5;
    let msg = open_err(&full[..cut]);
    assert!(msg.contains("truncated") && msg.contains("output_norm.weight"), "{msg}");
    // Cut inside the data: the tensor whose bytes are missing is named.
    let msg = open_err(&full[..full.len() - 1]);
    assert!(msg.contains("tensor output_norm.weight") && msg.contains("runs past the end of the file"), "{msg}");
    assert!(open_err(&[]).contains("truncated"));
}

#[test]
fn gguf_every_prefix_of_a_real_file_is_an_error_not_a_panic() {
    let full = std::fs::read(fixtures().join("tiny-llama.gguf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.gguf");
    let mut lens: Vec<usize> = (0..full.len().min(4096)).collect();
    lens.extend((4096..full.len()).step_by(997));
    for len in lens {
        std::fs::write(&path, &full[..len]).unwrap();
        let msg = match Checkpoint::open(&path) {
            Ok(_) => panic!("prefix of {len} bytes opened"),
            Err(e) => e.to_string(),
        };
        assert!(
            ["truncated", "larger than the rest of the file", "cannot fit", "impossible", "runs past the end"]
                .iter()
                .any(|p| msg.contains(p)),
            "prefix of {len} bytes: {msg}"
        );
    }
}

#[test]
fn gguf_corrupted_headers_never_panic() {
    // Deterministic pseudo-random byte changes in the header region of a real file; whatever
    // opens must also read without panicking (every range was validated up front).
    let full = std::fs::read(fixtures().join("tiny-llama.gguf")).unwrap();
    let header_len = 3000.min(full.len());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.gguf");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut opened, mut refused) = (0, 0);
    for _ in 0..400 {
        let mut bytes = full.clone();
        for _ in 0..1 + next() % 3 {
            let at = (next() % header_len as u64) as usize;
            bytes[at] = match next() % 4 {
                0 => 0xFF,
                1 => 0,
                2 => bytes[at] ^ (1 << (next() % 8)),
                _ => next() as u8,
            };
        }
        std::fs::write(&path, &bytes).unwrap();
        match Checkpoint::open(&path) {
            Ok(ck) => {
                opened += 1;
                for t in ck.tensors() {
                    ck.read_f32(t).unwrap();
                }
            }
            Err(e) => {
                refused += 1;
                // A refusal is one clear line naming the file.
                let msg = e.to_string();
                assert!(msg.contains("fuzz.gguf") && !msg.contains('\n'), "{msg}");
            }
        }
    }
    println!("corrupted headers: {opened} opened and read, {refused} refused");
    // The changes are deterministic, so are the counts: most corruptions of the header are caught
    // on open; the rest changed bytes that leave a valid file (names, values) and must read.
    assert_eq!((opened, refused), (96, 304));
}

#[test]
fn gguf_bad_magic_is_rejected() {
    let mut b = Builder::llama();
    b.magic = *b"GGML";
    let msg = open_err(&b.bytes());
    assert!(msg.contains("not a GGUF file") && msg.contains("magic"), "{msg}");
}

#[test]
fn gguf_version_1_and_big_endian_are_rejected() {
    let mut b = Builder::llama();
    b.version = 1;
    let msg = open_err(&b.bytes());
    assert!(msg.contains("GGUF version 1 is not supported"), "{msg}");
    b.version = 3u32.swap_bytes();
    let msg = open_err(&b.bytes());
    assert!(msg.contains("big-endian GGUF"), "{msg}");
    b.version = 7;
    let msg = open_err(&b.bytes());
    assert!(msg.contains("unsupported GGUF version 7"), "{msg}");
}

#[test]
fn gguf_unsupported_ggml_type_names_the_tensor() {
    let mut b = Builder::llama();
    b.tensor("blk.0.attn_q.weight", &[256, 1], 17, 1152);
    b.data.extend([0u8; 66 + 30]);
    let msg = open_err(&b.bytes());
    assert!(
        msg.contains(
            "tensor blk.0.attn_q.weight has GGML type IQ2_XS (17), which sfn cannot dequantize \
             (supported: F32, F16, BF16, F64, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K)"
        ),
        "{msg}"
    );
    let mut b = Builder::llama();
    b.tensor("blk.0.attn_q.weight", &[32], 99, 1152);
    let msg = open_err(&b.bytes());
    assert!(msg.contains("blk.0.attn_q.weight has unknown GGML type id 99"), "{msg}");
}

#[test]
fn gguf_data_offset_out_of_range_names_the_tensor() {
    let mut b = Builder::llama();
    b.tensor("blk.0.ffn_norm.weight", &[32], 0, 1 << 40);
    let msg = open_err(&b.bytes());
    assert!(msg.contains("tensor blk.0.ffn_norm.weight") && msg.contains("runs past the end of the file"), "{msg}");
    // An offset so large that adding it overflows is the same error, not a wrap-around.
    let mut b = Builder::llama();
    b.tensor("blk.0.ffn_norm.weight", &[32], 0, u64::MAX - 31);
    let msg = open_err(&b.bytes());
    assert!(msg.contains("tensor blk.0.ffn_norm.weight") && msg.contains("runs past the end of the file"), "{msg}");
}

#[test]
fn gguf_overlapping_tensors_are_rejected() {
    let mut b = Builder::llama();
    // Starts inside token_embd (bytes 0..1024 of the data section).
    b.tensor("blk.0.ffn_norm.weight", &[32], 0, 992);
    let msg = open_err(&b.bytes());
    assert!(
        msg.contains("token_embd.weight") && msg.contains("blk.0.ffn_norm.weight") && msg.contains("overlap"),
        "{msg}"
    );
}

#[test]
fn gguf_metadata_string_longer_than_the_file_is_rejected() {
    let mut b = Builder::llama();
    let mut v = Vec::new();
    v.extend(1_000_000_000u64.to_le_bytes());
    v.extend(b"short");
    b.kv_raw("general.name", 8, &v);
    let msg = open_err(&b.bytes());
    assert!(
        msg.contains("metadata key `general.name`")
            && msg.contains("string length 1000000000")
            && msg.contains("larger than the rest of the file"),
        "{msg}"
    );
}

#[test]
fn gguf_absurd_counts_are_rejected_before_allocating() {
    let mut bytes = Builder::llama().bytes();
    bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(open_err(&bytes).contains("tensor count 18446744073709551615 is impossible"));
    let mut bytes = Builder::llama().bytes();
    bytes[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(open_err(&bytes).contains("metadata count 1099511627776 is impossible"));
    let mut b = Builder::llama();
    let mut v = Vec::new();
    v.extend(4u32.to_le_bytes());
    v.extend((1u64 << 50).to_le_bytes());
    b.kv_raw("tokenizer.ggml.token_type", 9, &v);
    let msg = open_err(&b.bytes());
    assert!(msg.contains("`tokenizer.ggml.token_type`") && msg.contains("array length 1125899906842624"), "{msg}");
}

#[test]
fn gguf_unknown_metadata_type_is_rejected() {
    let mut b = Builder::llama();
    b.kv_raw("general.mystery", 13, &[0u8; 8]);
    let msg = open_err(&b.bytes());
    assert!(msg.contains("metadata key `general.mystery`") && msg.contains("unknown metadata value type 13"), "{msg}");
}

#[test]
fn gguf_row_length_not_a_multiple_of_the_block_is_rejected() {
    let mut b = Builder::llama();
    b.tensor("blk.0.attn_v.weight", &[48, 2], 8, 1152);
    b.data.extend([0u8; 128]);
    let msg = open_err(&b.bytes());
    assert!(msg.contains("tensor blk.0.attn_v.weight is Q8_0") && msg.contains("ne0) of 48"), "{msg}");
}

#[test]
fn gguf_too_many_dimensions_and_misaligned_offsets_are_rejected() {
    let mut b = Builder::llama();
    b.tensor("blk.0.ffn_norm.weight", &[1, 1, 1, 1, 32], 0, 1152);
    assert!(open_err(&b.bytes()).contains("tensor blk.0.ffn_norm.weight has 5 dimensions"));
    let mut b = Builder::llama();
    b.tensor("blk.0.ffn_norm.weight", &[4], 0, 1156);
    b.data.extend([0u8; 32]);
    let msg = open_err(&b.bytes());
    assert!(msg.contains("blk.0.ffn_norm.weight: data offset 1156 is not a multiple of the alignment 32"), "{msg}");
}

#[test]
fn gguf_missing_config_key_is_named() {
    let mut b = Builder::llama();
    b.kv.clear();
    b.n_kv = 0;
    b.kv_str("general.architecture", "llama");
    b.kv_u32("llama.embedding_length", 32);
    b.kv_u32("llama.attention.head_count", 4);
    let msg = open_err(&b.bytes());
    assert!(msg.contains("metadata key `llama.block_count` is missing"), "{msg}");
    let mut b = Builder::llama();
    b.kv.clear();
    b.n_kv = 0;
    let msg = open_err(&b.bytes());
    assert!(msg.contains("metadata key `general.architecture` is missing"), "{msg}");
}

#[test]
fn gguf_permuted_rows_that_do_not_split_into_heads_are_rejected() {
    let mut b = Builder::llama();
    // 6 rows cannot be 4 heads of even size.
    b.tensor("blk.0.attn_q.weight", &[32, 6], 0, 1152);
    b.data.extend([0u8; 6 * 128]);
    let msg = open_err(&b.bytes());
    assert!(msg.contains("tensor blk.0.attn_q.weight has 6 rows") && msg.contains("4 heads"), "{msg}");
}
