//! `sfn patch` end to end on a known-answer pair: B is A with layer 1's o_proj re-initialised, so
//! A and B agree on everything before that o_proj. Patching layer 1's attn_out (the o_proj output)
//! recovers everything (KL 0, recovery 1) in both directions; patching layer 0 (identical in both)
//! leaves the target exactly as it was (recovery 0, KL unchanged); patching the last layer's
//! resid_post gives the source's distribution exactly (the final norm and head are shared). On a
//! task file the positions that matter are the source's own greedy completion. Decoding A with
//! B's attn_out at that layer (an activation merge) writes exactly B's answers.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

fn patch(args: &[&str], out: &Path) -> Value {
    ok(&sfn(&[&["patch"][..], args, &["-o", out.to_str().unwrap()]].concat()));
    json_file(&out.join("patch.json"))
}

fn record<'a>(r: &'a Value, direction: &str, layer: u64, site: &str) -> &'a Value {
    r["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["direction"] == direction && x["layer"] == layer && x["site"] == site)
        .unwrap_or_else(|| panic!("no record {direction} {site}.{layer}"))
}

/// The exactness checks of the module docs, for both directions.
fn exact(r: &Value, layers: u64, changed: u64) {
    for base in r["baselines"].as_array().unwrap() {
        let d = base["direction"].as_str().unwrap();
        let (kl0, target) = (base["kl"].as_f64().unwrap(), base["target_logprob"].as_f64().unwrap());
        assert!(kl0 > 1e-6, "{d}: the pair must differ (KL {kl0})");
        let last = record(r, d, layers - 1, "resid_post");
        assert!(last["kl"].as_f64().unwrap() < 1e-12, "{d}: last resid_post KL {}", last["kl"]);
        assert!((last["recovery"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{d}: last resid_post {}", last["recovery"]);
        let o = record(r, d, changed, "attn_out");
        assert!(o["kl"].as_f64().unwrap() < 1e-12 && (o["recovery"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{d}: {o}");
        for site in ["attn_out", "mlp_out", "resid_post"] {
            let before = record(r, d, 0, site);
            assert!((before["kl"].as_f64().unwrap() - kl0).abs() < 1e-12, "{d} {site}.0: {before}");
            assert!(
                (before["logprob"].as_f64().unwrap() - target).abs() < 1e-12,
                "{d} {site}.0: nothing to patch before layer {changed}"
            );
            assert!(before["recovery"].as_f64().unwrap().abs() < 1e-9);
        }
    }
}

/// A (the tiny random model), B (A with layer 1's o_proj trained 4 steps at `lr` on worked
/// problems of `seed`) and those problems' file.
fn trained_pair(dir: &Path, seed: u64, lr: &str) -> (String, String, String) {
    let a = tiny_model(dir).display().to_string();
    let data = worked(dir, 6, seed);
    let b = dir.join("b").display().to_string();
    ok(&sfn(&[
        "freeze",
        &a,
        "--data",
        &data,
        "--train",
        "layers[1].o_proj",
        "--max-steps",
        "4",
        "--lr",
        lr,
        "--mode",
        "chat",
        "-o",
        &b,
    ]));
    (a, b, data)
}

#[test]
fn patching_a_known_answer_pair() {
    let dir = tempfile::tempdir().unwrap();
    let a = fixture("sfn-checkpoint/tests/fixtures/hf/llama-gqa-untied-f32");
    let b = dir.path().join("b").display().to_string();
    ok(&sfn(&["destroy", &a, "--select", "layers[1].o_proj", "--method", "reinit", "--seed", "3", "-o", &b]));
    let r = patch(&[&a, &b, "--ids", "5,17,3,90,42,42,8,1"], &dir.path().join("patch"));
    assert_eq!(r["records"].as_array().unwrap().len(), 2 * 3 * 3, "2 directions × 3 layers × 3 sites");
    exact(&r, 3, 1);
    for d in ["denoise", "noise"] {
        assert!(dir.path().join(format!("patch/patch_{d}.svg")).is_file());
    }
    // One direction, chosen layers and sites.
    let r = patch(
        &[&a, &b, "--ids", "5,17,3", "--direction", "noise", "--sites", "attn_out", "--layers", "1..3"],
        &dir.path().join("one"),
    );
    let layers: Vec<u64> = r["records"].as_array().unwrap().iter().map(|x| x["layer"].as_u64().unwrap()).collect();
    assert_eq!(layers, [1, 2]);
}

#[test]
fn patching_scores_the_sources_own_completion_of_a_task() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, data) = trained_pair(dir.path(), 2, "1e-2");
    let r = patch(&[&a, &b, "--task", &data, "--mode", "chat", "--max-new", "6"], &dir.path().join("patch"));
    assert_eq!(r["prompts"], 6);
    for (_, n) in r["scored_positions"].as_array().unwrap().iter().map(|x| (x[0].clone(), x[1].as_u64().unwrap())) {
        assert!(n > 0 && n <= 36, "at most 6 completion tokens per prompt are scored: {n}");
    }
    exact(&r, 2, 1);
}

#[test]
fn an_activation_merge_at_the_one_changed_module_decodes_as_b() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, data) = trained_pair(dir.path(), 4, "3e-2");
    let out = dir.path().join("patch");
    let args = [
        "--ids",
        "1,2,3",
        "--sites",
        "attn_out",
        "--layers",
        "1",
        "--eval",
        &data,
        "--eval-max-new",
        "12",
        "--mode",
        "chat",
    ];
    let r = patch(&[&[a.as_str(), b.as_str()][..], &args].concat(), &out);
    assert_eq!(r["eval"]["samples"], 6);
    let eval_b = dir.path().join("eval-b").display().to_string();
    ok(&sfn(&["eval", &b, "--task", &data, "--mode", "chat", "--max-new", "12", "-o", &eval_b]));
    let eval_a = dir.path().join("eval-a").display().to_string();
    ok(&sfn(&["eval", &a, "--task", &data, "--mode", "chat", "--max-new", "12", "-o", &eval_a]));
    let outputs = |d: &Path| -> Vec<Value> {
        jsonl_file(&d.join("samples.jsonl")).as_array().unwrap().iter().map(|x| x["output"].clone()).collect()
    };
    let merged = outputs(&out.join("eval"));
    assert_eq!(merged, outputs(Path::new(&eval_b)), "A with B's layer-1 attn_out is B");
    assert_ne!(merged, outputs(Path::new(&eval_a)), "the pair must answer differently for the test to mean something");
}
