//! `sfn probe` end to end: its norms equal those of transformers' own activations (committed by
//! tools/reference/make_model_fixtures.py: o_proj and MLP outputs and layer outputs taken with
//! forward hooks), and against a B that differs from A only in layer 1's o_proj, the A–B cosine
//! is 1 wherever the two share every weight up to the site, and below 1 from that o_proj on.

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// The f32 and i64 tensors of a safetensors file, read here from the format itself.
fn safetensors(path: &Path) -> HashMap<String, (Vec<usize>, Vec<f64>)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut out = HashMap::new();
    for (name, t) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        let shape: Vec<usize> = t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let [start, end] = [0, 1].map(|i| t["data_offsets"][i].as_u64().unwrap() as usize);
        let raw = &data[start..end];
        let values = match t["dtype"].as_str().unwrap() {
            "F32" => raw.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            "I64" => raw.chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            other => panic!("{name}: dtype {other}"),
        };
        out.insert(name.clone(), (shape, values));
    }
    out
}

/// Mean over positions of the L2 norm of each row of a [positions, hidden] tensor.
fn mean_row_norm((shape, v): &(Vec<usize>, Vec<f64>)) -> f64 {
    let hidden = shape[shape.len() - 1];
    let rows: Vec<f64> = v.chunks(hidden).map(|r| r.iter().map(|x| x * x).sum::<f64>().sqrt()).collect();
    rows.iter().sum::<f64>() / rows.len() as f64
}

fn probe(args: &[&str], out: &Path) -> Value {
    ok(&sfn(&[&["probe"][..], args, &["-o", out.to_str().unwrap()]].concat()));
    json_file(&out.join("probe.json"))
}

#[test]
fn probe_norms_equal_those_of_transformers_activations() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["llama-gqa-untied-f32", "qwen2-bias-tied-bf16-sharded", "qwen3-qknorm-f16"] {
        let reference =
            safetensors(&root().join(format!("crates/sfn-model/tests/fixtures/{name}.reference.safetensors")));
        let ids: Vec<String> = reference["input_ids"].1.iter().map(|x| (*x as i64).to_string()).collect();
        let model = fixture(&format!("sfn-checkpoint/tests/fixtures/hf/{name}"));
        let report = probe(&[&model, "--ids", &ids.join(",")], &dir.path().join(name));
        let layers = report["layers"].as_array().unwrap();
        assert_eq!(report["tokens"], ids.len());
        let mut worst: f64 = 0.0;
        for l in layers {
            let layer = l["layer"].as_u64().unwrap();
            for site in ["resid_post", "attn_out", "mlp_out"] {
                let want = mean_row_norm(&reference[&format!("{site}.{layer}")]);
                let got = l[format!("{site}_norm")].as_f64().unwrap();
                let rel = (got - want).abs() / want;
                worst = worst.max(rel);
                assert!(rel <= 1e-4, "{name} {site}.{layer}: sfn {got} transformers {want}");
            }
            assert!(l.get("cos_resid_post").is_none(), "no B, no cosine");
        }
        println!("{name}: {} layers × 3 sites, worst relative difference {worst:.1e}", layers.len());
        assert!(dir.path().join(name).join("probe_norms.svg").is_file());
    }
}

#[test]
fn probe_cosine_is_one_until_the_one_changed_module() {
    let dir = tempfile::tempdir().unwrap();
    let a = fixture("sfn-checkpoint/tests/fixtures/hf/llama-gqa-untied-f32");
    let b = dir.path().join("b").display().to_string();
    ok(&sfn(&["destroy", &a, "--select", "layers[1].o_proj", "--method", "reinit", "--seed", "3", "-o", &b]));
    let report = probe(&[&a, &b, "--ids", "5,17,3,90,42,42,8,1"], &dir.path().join("probe"));
    let layers = report["layers"].as_array().unwrap();
    let cos = |l: usize, site: &str| layers[l][format!("cos_{site}")].as_f64().unwrap();
    for site in ["resid_post", "attn_out", "mlp_out"] {
        assert!((cos(0, site) - 1.0).abs() < 1e-6, "layer 0 {site}: {}", cos(0, site));
    }
    assert!(cos(1, "attn_out") < 0.9, "layer 1's o_proj differs: {}", cos(1, "attn_out"));
    assert!(cos(1, "resid_post") < 1.0 - 1e-4);
    assert_eq!(layers[0]["resid_post_norm"], layers[0]["b_resid_post_norm"]);
    assert!(dir.path().join("probe/probe_cosine.svg").is_file());
    assert_eq!(report["per_prompt"].as_array().unwrap().len(), 1);
}
