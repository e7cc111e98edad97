//! Parity with PyTorch + transformers (fixtures from tools/reference/train_reference.py): loss,
//! every parameter's gradient, one SGD step, a partial trainable set, logits (also against
//! sfn-model's inference runtime), AdamW and the learning-rate schedules. Every comparison prints
//! what it measured, llm.c style.

mod common;

use common::*;
use sfn_model::{Hooks, LoadOptions, Model};
use sfn_train::{AdamW, Decay, Optimizer, OptimizerKind, Schedule, TrainModel};

/// Gradient tolerance: max |sfn − torch| over a tensor, relative to the tensor's largest |grad|.
const GRAD_TOL: f32 = 1e-4;

/// Run the reference batch as one step and check loss and every trainable gradient; returns the
/// model with its gradients.
fn check_gradients(name: &str, selector: &str) -> TrainModel {
    let r = reference(name);
    let mut model = load(name, selector);
    let stats = model.forward_backward(&r.batch, r.batch.num_targets()).unwrap();
    let loss = stats.mean();
    println!("{name} [{selector}]: loss sfn {loss:.7} torch {:.7} |diff| {:e}", r.loss, (loss - r.loss).abs());
    assert!((loss - r.loss).abs() <= 1e-5 * r.loss, "{name}: loss {loss} vs {}", r.loss);
    for (pname, g) in grads(&model) {
        let want = r.get(&format!("grad.{pname}"));
        let (d, scale) = max_diff(&g, &want);
        println!("  {pname:48} max|grad| {scale:.3e} max|diff| {d:.3e} rel {:.2e}", d / scale);
        assert!(scale > 0.0, "{name}: {pname} has a zero reference gradient (fixture too small)");
        assert!(g.iter().any(|&x| x != 0.0), "{name}: {pname} got no gradient");
        assert!(d <= GRAD_TOL * scale, "{name}: {pname} gradient differs by {d} (max {scale})");
    }
    model
}

/// One SGD step with lr 1 must move every trainable tensor by minus its (torch) gradient.
fn check_sgd_step(name: &str, mut model: TrainModel) {
    let r = reference(name);
    let before = weights(&model);
    let mut opt = Optimizer::new(OptimizerKind::Sgd, &model).unwrap();
    opt.step(&mut model, 1.0).unwrap();
    for ((pname, old), p) in before.iter().zip(model.params()) {
        assert_eq!(pname, p.name);
        if !p.trainable() {
            assert!(old.iter().zip(p.data).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}: frozen {pname} moved");
            continue;
        }
        let moved: Vec<f32> = old.iter().zip(p.data).map(|(a, b)| a - b).collect();
        let (d, scale) = max_diff(&moved, &r.get(&format!("grad.{pname}")));
        println!("  SGD(lr 1) {pname:48} max|Δp + grad_torch| {d:.3e} rel {:.2e}", d / scale);
        assert!(d <= GRAD_TOL * scale, "{name}: SGD step on {pname} off by {d} (max grad {scale})");
    }
}

#[test]
fn qwen2_tied_with_biases_matches_transformers() {
    let m = check_gradients("qwen2-tied-bias", "all");
    check_sgd_step("qwen2-tied-bias", m);
}

#[test]
fn llama_untied_gqa_linear_rope_matches_transformers() {
    let m = check_gradients("llama-untied-linrope", "all");
    check_sgd_step("llama-untied-linrope", m);
}

#[test]
fn qwen3_qk_norms_match_transformers() {
    let m = check_gradients("qwen3-qknorm", "all");
    check_sgd_step("qwen3-qknorm", m);
}

#[test]
fn mistral_sliding_window_matches_transformers() {
    let m = check_gradients("mistral-window", "all");
    check_sgd_step("mistral-window", m);
}

#[test]
fn partial_trainable_set_freezes_the_rest_bit_for_bit() {
    // Sets that stop the backward pass at different places: at the embedding, at layer 0 without
    // its input gradient, inside layer 1, at the final norm, at the head.
    for (name, selector) in [
        ("qwen2-tied-bias", "o_proj,norms,embed,lm_head"),
        ("llama-untied-linrope", "layers[1].mlp,q_norm,lm_head,k"),
        ("qwen3-qknorm", "layers[1].attn"),
        ("mistral-window", "final_norm"),
        ("llama-untied-linrope", "lm_head"),
    ] {
        // q_norm matches nothing in a Llama, but the selector as a whole matches: fine.
        let model = check_gradients(name, selector);
        let frozen = model.params().filter(|p| !p.trainable()).count();
        println!(
            "{name} [{selector}]: {} trainable, {frozen} frozen (no gradient buffers)",
            model.trainable_names().len()
        );
        assert!(frozen > 0);
        check_sgd_step(name, model);
    }
}

#[test]
fn tied_lm_head_selector_trains_the_embedding() {
    let model = load("qwen2-tied-bias", "lm_head");
    assert!(model.tied());
    assert_eq!(model.trainable_names(), vec!["model.embed_tokens.weight"]);
    assert_eq!(sfn_train::trained_tensor("lm_head.weight", true), "model.embed_tokens.weight");
    assert_eq!(sfn_train::trained_tensor("lm_head.weight", false), "lm_head.weight");
    // Its gradient sums both uses; checked against torch by the tests above (qwen2 trains `all`).
    check_gradients("qwen2-tied-bias", "lm_head");
}

#[test]
fn logits_match_transformers_and_sfn_model() {
    for name in MODELS {
        let r = reference(name);
        let model = load(name, "all");
        let logits = model.logits(&r.batch).unwrap();
        let want = r.get("logits");
        let vocab = model.config().vocab_size;
        let runtime = Model::load(&open(name), &LoadOptions::default()).unwrap();
        let (rows, cols) = (r.batch.rows(), r.batch.cols());
        let (mut vs_torch, mut vs_runtime, mut scale) = (0f32, 0f32, 0f32);
        for row in 0..rows {
            let len = r.mask[row * cols..(row + 1) * cols].iter().filter(|&&m| m == 1).count();
            let span = row * cols * vocab..(row * cols + len) * vocab;
            // Pads are never seen by real tokens; compare the real positions only.
            let (d, s) = max_diff(&logits[span.clone()], &want[span.clone()]);
            vs_torch = vs_torch.max(d);
            scale = scale.max(s);
            let ids = &r.batch.tokens()[row * cols..row * cols + len];
            let rt = runtime.forward(ids, &mut Hooks::new()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            vs_runtime = vs_runtime.max(max_diff(&logits[span], &rt).0);
        }
        println!("{name}: logits max|diff| vs transformers {vs_torch:.2e}, vs sfn-model {vs_runtime:.2e} (max|logit| {scale:.2})");
        assert!(vs_torch <= 1e-5 * scale.max(1.0) && vs_runtime <= 1e-5 * scale.max(1.0));
    }
}

#[test]
fn adamw_matches_torch_for_two_steps() {
    let st = sfn_checkpoint::Checkpoint::open(fixture("adamw.reference.safetensors")).unwrap();
    let get = |n: &str| st.read_f32(st.tensor(n).unwrap()).unwrap();
    // The optimizer works on a model: one whose only trainable tensor is a 30 × 10 embedding
    // holding the fixture's 300 values.
    let cfg = tiny_config(30, 10);
    let names = vec!["model.embed_tokens.weight".to_string()];
    let mut model = TrainModel::random(&cfg, 1, 0.02, sfn_train::Trainable::Names(&names)).unwrap();
    model.param_mut("model.embed_tokens.weight").unwrap().copy_from_slice(&get("p0"));
    let adam = AdamW { beta1: 0.9, beta2: 0.95, eps: 1e-6, weight_decay: 0.1, exempt_norms_and_biases: false };
    let mut opt = Optimizer::new(OptimizerKind::AdamW(adam), &model).unwrap();
    for step in 1..=2 {
        set_grad(&mut model, "model.embed_tokens.weight", &get(&format!("g{step}")));
        opt.step(&mut model, 1e-2).unwrap();
        let state = opt.export(&model);
        let p = model.param("model.embed_tokens.weight").unwrap().data.to_vec();
        for (what, got) in [("p", p), ("m", state.tensors[0].data.clone()), ("v", state.tensors[1].data.clone())] {
            let (d, scale) = max_diff(&got, &get(&format!("{what}{step}")));
            println!("AdamW step {step}: {what} max|diff| {d:.2e} (max {scale:.2e})");
            assert!(d <= 2e-6 * scale, "AdamW step {step}: {what} off by {d}");
        }
    }
}

#[test]
fn sgd_is_p_minus_lr_g() {
    let cfg = tiny_config(30, 10);
    let names = vec!["model.norm.weight".to_string()];
    let mut model = TrainModel::random(&cfg, 1, 0.02, sfn_train::Trainable::Names(&names)).unwrap();
    let g: Vec<f32> = (0..10).map(|i| i as f32 * 0.25 - 1.0).collect();
    set_grad(&mut model, "model.norm.weight", &g);
    let mut opt = Optimizer::new(OptimizerKind::Sgd, &model).unwrap();
    opt.step(&mut model, 0.5).unwrap();
    let p = model.param("model.norm.weight").unwrap().data;
    let want: Vec<f32> = g.iter().map(|&g| 1.0 - 0.5 * g).collect();
    assert_eq!(p, want.as_slice());
}

#[test]
fn schedules_match_transformers() {
    let text = std::fs::read_to_string(fixture("schedules.reference.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let (peak, warmup, total) =
        (v["peak_lr"].as_f64().unwrap(), v["warmup_steps"].as_u64().unwrap(), v["total_steps"].as_u64().unwrap());
    let s = |decay, min_lr, warmup_steps| Schedule { peak_lr: peak, min_lr, warmup_steps, total_steps: total, decay };
    for (key, sched) in [
        ("cosine", s(Decay::Cosine, 0.0, warmup)),
        ("linear", s(Decay::Linear, 0.0, warmup)),
        ("constant", s(Decay::Constant, 0.0, warmup)),
        ("cosine_min", s(Decay::Cosine, 1e-4, warmup)),
        ("cosine_no_warmup", s(Decay::Cosine, 0.0, 0)),
    ] {
        let want: Vec<f64> = serde_json::from_value(v[key].clone()).unwrap();
        let worst = want.iter().enumerate().map(|(i, &w)| (sched.lr(i as u64) - w).abs()).fold(0f64, f64::max);
        println!("schedule {key}: max |lr − transformers| over {} steps = {worst:e}", want.len());
        assert!(worst <= 1e-15, "{key}: {worst}");
    }
}

/// A small Llama config for optimizer tests: `vocab` × `hidden` embedding.
fn tiny_config(vocab: usize, hidden: usize) -> sfn_checkpoint::ModelConfig {
    let json = serde_json::json!({
        "model_type": "llama", "hidden_size": hidden, "intermediate_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 1, "num_key_value_heads": 1, "vocab_size": vocab, "tie_word_embeddings": true,
        "max_position_embeddings": 16
    });
    sfn_checkpoint::ModelConfig::from_json(&json).unwrap()
}

/// Make `g` the accumulated gradient of `name`.
fn set_grad(model: &mut TrainModel, name: &str, g: &[f32]) {
    model.zero_grad();
    model.grad_mut(name).unwrap().copy_from_slice(g);
}
