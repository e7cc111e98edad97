//! Parity with Hugging Face transformers: logits and every hook point of the tiny transformers-made
//! checkpoints (tools/reference/make_model_fixtures.py) must agree within 1e-4 (max |diff|, f32).
//! Each comparison prints its max |diff|.

mod common;

use common::*;
use sfn_model::{HookId, HookPoint, Hooks};

const TOL: f32 = 1e-4;

fn check_model(name: &str) {
    let reference = reference(name);
    let ck = open_fixture(name);
    let model = load(&ck);
    let ids = reference_ids(&reference);
    let n = model.config.num_layers;
    let mut hooks = Hooks::new();
    for p in HookPoint::ALL {
        hooks.capture_layers(p, 0..n);
    }
    let logits = model.forward(&ids, &mut hooks).unwrap();
    let mut worst = max_abs_diff(&logits, &reference["logits"]);
    println!("{name}: logits max |diff| = {worst:e}");
    assert!(worst <= TOL, "{name}: logits differ by {worst}");
    for l in 0..n {
        for p in HookPoint::ALL {
            let id = HookId::new(p, l);
            let got = hooks.get(id).unwrap().unwrap().squeeze(0).unwrap();
            let d = max_abs_diff(&got, &reference[&id.to_string()]);
            println!("{name}: {id} max |diff| = {d:e}");
            assert!(d <= TOL, "{name}: {id} differs by {d}");
            worst = worst.max(d);
        }
        // transformers' hidden_states[l + 1] is layer l's output (the last one after the final norm).
        if l + 1 < n {
            let got = hooks.get(HookId::new(HookPoint::ResidPost, l)).unwrap().unwrap().squeeze(0).unwrap();
            let d = max_abs_diff(&got, &reference[&format!("hidden_states.{}", l + 1)]);
            assert!(d <= TOL, "{name}: hidden_states.{} differs by {d}", l + 1);
        }
    }
    let d = max_abs_diff(
        &hooks.get(HookId::new(HookPoint::ResidPre, 0)).unwrap().unwrap().squeeze(0).unwrap(),
        &reference["hidden_states.0"],
    );
    assert!(d <= TOL, "{name}: embeddings differ by {d}");
    println!("{name}: worst max |diff| over logits and all hook points = {worst:e}");
}

#[test]
fn qwen2_with_qkv_bias_and_tied_embeddings_matches_transformers() {
    check_model("qwen2-bias-tied-bf16-sharded");
}

#[test]
fn llama_with_gqa_and_untied_head_matches_transformers() {
    check_model("llama-gqa-untied-f32");
}

#[test]
fn qwen3_with_qk_norms_matches_transformers() {
    check_model("qwen3-qknorm-f16");
}

#[test]
fn llama3_rope_scaling_matches_transformers() {
    check_model("llama3-rope-f32");
}

#[test]
fn llama3_rope_scaling_matters_for_the_fixture() {
    // Guard against a fixture too small to notice the scaling: without it logits must differ.
    let name = "llama3-rope-f32";
    let reference = reference(name);
    let ck = open_fixture(name);
    let mut cfg = ck.config.clone().unwrap();
    let scaled = sfn_model::layers::inv_freq(&cfg).unwrap();
    cfg.rope_scaling = None;
    let plain = sfn_model::layers::inv_freq(&cfg).unwrap();
    let differ = scaled.iter().zip(&plain).filter(|(a, b)| a != b).count();
    assert!(differ >= 2, "scaling changes only {differ} frequencies");
    let mut unscaled_ck = open_fixture(name);
    unscaled_ck.config = Some(cfg);
    let model = load(&unscaled_ck);
    let logits = model.forward(&reference_ids(&reference), &mut Hooks::new()).unwrap();
    let d = max_abs_diff(&logits, &reference["logits"]);
    println!("{name}: logits without the scaling differ by {d:e}");
    assert!(d > 10.0 * TOL, "ignoring llama3 scaling changes logits by only {d}");
}

#[test]
fn batched_left_padded_rows_equal_single_rows() {
    let ck = open_fixture("qwen2-bias-tied-bf16-sharded");
    let model = load(&ck);
    let rows = vec![vec![5u32, 17, 42, 3, 88, 23, 9], vec![64, 31, 7], vec![1, 2, 3, 4, 5]];
    let batch = model.forward_batch(&rows, &mut Hooks::new()).unwrap(); // [3, 7, vocab]
    let width = batch.dim(1).unwrap();
    let mut worst = 0f32;
    for (i, r) in rows.iter().enumerate() {
        let single = model.forward(r, &mut Hooks::new()).unwrap();
        let got = batch.get(i).unwrap().narrow(0, width - r.len(), r.len()).unwrap();
        worst = worst.max(max_abs_diff(&got, &single));
    }
    println!("batched vs single rows: max |diff| = {worst:e}");
    assert!(worst <= 1e-5, "{worst}");
}

#[test]
fn token_ids_outside_the_vocabulary_are_an_error_not_a_panic() {
    let ck = open_fixture("llama-gqa-untied-f32");
    let model = load(&ck);
    let err = model.forward(&[1, 2, 96], &mut Hooks::new()).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
    let err = model.forward(&[], &mut Hooks::new()).unwrap_err();
    assert!(err.to_string().contains("no tokens"), "{err}");
    let mut hooks = Hooks::new();
    hooks.capture(HookId::new(HookPoint::ResidPost, 3));
    let err = model.forward(&[1, 2], &mut hooks).unwrap_err();
    assert!(err.to_string().contains("layer 3"), "{err}");
}

/// tools/reference/merged_logits.py: transformers' logits of the checkpoint `sfn merge A B --take
/// o_proj --layers 1..3` wrote (equal to an independent numpy merge). The same merge as a lazy
/// view, never written, must run to the same logits.
#[test]
fn merged_view_in_memory_gives_the_logits_transformers_gives_the_written_merge() {
    use sfn_checkpoint::edit::{Edit, EditPlan, EditView, Rule};
    use sfn_checkpoint::selector::Selector;
    let edit = crate_dir().join("../sfn-checkpoint/tests/fixtures/edit");
    let a = open_fixture("llama-gqa-untied-f32");
    let b = sfn_checkpoint::Checkpoint::open(edit.join("llama-b-f32")).unwrap();
    let sel = Selector::parse("o_proj").unwrap().with_layers("1..3").unwrap();
    let plan = EditPlan { rules: vec![Rule::new(sel, Edit::TakeB)], ..Default::default() };
    let view = EditView::new(&a, Some(&b), plan).unwrap();
    let model = sfn_model::Model::load(&view, &sfn_model::LoadOptions::default()).unwrap();
    let p = edit.join("take-o-layers1-3.logits.safetensors");
    let reference = candle_core::safetensors::load(&p, &candle_core::Device::Cpu).unwrap();
    let logits = model.forward(&reference_ids(&reference), &mut Hooks::new()).unwrap();
    let d = max_abs_diff(&logits, &reference["logits"]);
    println!("merged view vs transformers on the written merge: logits max |diff| = {d:e}");
    assert!(d <= TOL, "logits differ by {d}");
    // Not a vacuous check: A alone is measurably different.
    let d_a =
        max_abs_diff(&load(&a).forward(&reference_ids(&reference), &mut Hooks::new()).unwrap(), &reference["logits"]);
    assert!(d_a > 100.0 * TOL.max(d), "A alone differs by only {d_a}");
}
