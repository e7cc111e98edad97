//! The `sfn` binary end to end: `inspect` on the real SmolLM2 model and on transformers-made
//! fixtures, `convert` round trips, exit codes and one-line errors on bad input.

mod common;

use common::*;
use serde_json::Value;
use std::process::Output;

fn hf_fixture(name: &str) -> String {
    root().join("crates/sfn-checkpoint/tests/fixtures/hf").join(name).display().to_string()
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "sfn failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

#[test]
fn inspect_reports_smollm2_architecture() {
    let v = json_of(&sfn(&["inspect", &smollm2(), "--json"]));
    assert_eq!(v["family"], "llama");
    assert_eq!(v["num_layers"], 30);
    assert_eq!(v["hidden_size"], 576);
    assert_eq!(v["num_heads"], 9);
    assert_eq!(v["num_kv_heads"], 3);
    assert_eq!(v["head_dim"], 64);
    assert_eq!(v["vocab_size"], 49152);
    assert_eq!(v["tied_embeddings"], true);
    let params = v["num_parameters"].as_u64().unwrap();
    // SmolLM2-135M: 134,515,008 parameters with the tied head counted once.
    assert_eq!(params, 134_515_008, "{params}");
    let by_module = v["parameters_by_module"].as_object().unwrap();
    assert_eq!(by_module["embed"], 49152 * 576);
    assert_eq!(by_module["o_proj"], 30 * 576 * 576);
    assert_eq!(by_module["k_proj"], 30 * 192 * 576);
    assert_eq!(by_module.values().map(|p| p.as_u64().unwrap()).sum::<u64>(), params);
    assert_eq!(v["dtypes"]["Q4_1"], 210);
    assert_eq!(v["dtypes"]["Q8_0"], 1);
    assert_eq!(v["dtypes"]["F32"], 61);
}

#[test]
fn inspect_text_shows_the_module_table() {
    let out = sfn(&["inspect", &smollm2()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in ["layers 30", "hidden 576", "tied embeddings", "o_proj", "134.5M"] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
}

#[test]
fn inspect_select_lists_what_a_selector_matches() {
    let v = json_of(&sfn(&["inspect", &smollm2(), "--select", "o_proj", "--layers", "5..30", "--json"]));
    let sel = &v["selection"];
    assert_eq!(sel["num_tensors"], 25);
    assert_eq!(sel["num_parameters"], 25 * 576 * 576);
    assert_eq!(sel["tensors"][0], "model.layers.5.self_attn.o_proj.weight");
    let out = sfn(&["inspect", &smollm2(), "--select", "layers[40..50].o_proj"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("matches no tensor"), "{err}");
}

#[test]
fn inspect_matches_transformers_on_hf_fixtures() {
    for name in ["qwen2-bias-tied-bf16-sharded", "llama-gqa-untied-f32", "qwen3-qknorm-f16"] {
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(
                root().join(format!("crates/sfn-checkpoint/tests/fixtures/hf/{name}.expected.json")),
            )
            .unwrap(),
        )
        .unwrap();
        let v = json_of(&sfn(&["inspect", &hf_fixture(name), "--json"]));
        for key in [
            "family",
            "num_layers",
            "hidden_size",
            "num_heads",
            "num_kv_heads",
            "head_dim",
            "vocab_size",
            "tied_embeddings",
            "num_parameters",
        ] {
            assert_eq!(v[key], expected[key], "{name}: {key}");
        }
    }
}

#[test]
fn convert_gguf_to_hf_then_inspect_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("smollm2-hf");
    let o = sfn(&["convert", &smollm2(), "-o", out.to_str().unwrap(), "--dtype", "bf16", "--max-shard-size", "100MB"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("model.safetensors.index.json").is_file(), "270 MB of bf16 in 100 MB shards");
    let a = json_of(&sfn(&["inspect", &smollm2(), "--json"]));
    let b = json_of(&sfn(&["inspect", out.to_str().unwrap(), "--json"]));
    for key in [
        "num_layers",
        "hidden_size",
        "num_heads",
        "num_kv_heads",
        "head_dim",
        "vocab_size",
        "tied_embeddings",
        "num_parameters",
        "parameters_by_module",
    ] {
        assert_eq!(a[key], b[key], "{key}");
    }
    assert_eq!(b["dtypes"]["BF16"], 272);
}

#[test]
fn exit_codes_usage_2_failure_1_with_one_line() {
    assert_eq!(sfn(&["inspect"]).status.code(), Some(2));
    assert_eq!(sfn(&["no-such-command"]).status.code(), Some(2));
    let out = sfn(&["inspect", "/nonexistent/model"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/model"), "{err}");
}

#[test]
fn convert_refuses_to_write_over_its_input() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("m");
    std::fs::create_dir(&src).unwrap();
    for e in std::fs::read_dir(hf_fixture("llama-gqa-untied-f32")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), src.join(e.file_name())).unwrap();
    }
    let before = std::fs::read(src.join("model.safetensors")).unwrap();
    let out = sfn(&["convert", src.to_str().unwrap(), "-o", src.to_str().unwrap(), "--force"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("overlaps the input"));
    assert_eq!(std::fs::read(src.join("model.safetensors")).unwrap(), before);
    let out = sfn(&["convert", src.to_str().unwrap(), "-o", tmp.path().join("x").to_str().unwrap(), "--dtype", "int4"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dtype int4: choose f32, f16, bf16 or f64"));
    assert!(!tmp.path().join("x").exists());
}

#[test]
fn help_works_for_the_binary_and_every_subcommand() {
    let out = sfn(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let subcommands: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(subcommands.contains(&"inspect") && subcommands.len() >= 4, "{text}");
    for c in subcommands {
        let out = sfn(&[c, "--help"]);
        assert!(out.status.success(), "sfn {c} --help");
        assert!(String::from_utf8(out.stdout).unwrap().contains("Usage: sfn"), "sfn {c} --help");
    }
}
