//! The trainer's own promises, beyond parity with transformers: gradient accumulation equals one
//! big batch, packed rows equal padded rows, pads are invisible, frozen tensors cost nothing,
//! results do not depend on the thread count, optimizer state survives export/import bit for bit,
//! a toy task is learned, and bad input is an error naming what is wrong.

mod common;

use common::*;
use sfn_checkpoint::selector::Selector;
use sfn_checkpoint::{Checkpoint, DType, ModelConfig};
use sfn_model::WeightSource;
use sfn_run::SplitMix64 as Rng;
use sfn_train::{AdamW, Batch, Decay, Optimizer, OptimizerKind, Schedule, Sequence, TrainModel, Trainable};

fn config(family: &str, vocab: usize, hidden: usize, tied: bool) -> ModelConfig {
    let json = serde_json::json!({
        "model_type": family, "hidden_size": hidden, "intermediate_size": 2 * hidden, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": vocab, "tie_word_embeddings": tied,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-5
    });
    ModelConfig::from_json(&json).unwrap()
}

fn random_model(cfg: &ModelConfig, selector: &str) -> TrainModel {
    let sel = Selector::parse(selector).unwrap();
    TrainModel::random(cfg, 42, 0.1, Trainable::Selector(&sel)).unwrap()
}

/// `count` examples of random lengths in [min, max], tokens in 1..vocab, the first two unscored.
fn examples(seed: u64, count: usize, min: usize, max: usize, vocab: usize) -> Vec<Sequence> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let len = min + rng.below((max - min + 1) as u64) as usize;
            let tokens: Vec<u32> = (0..len).map(|_| 1 + rng.below(vocab as u64 - 1) as u32).collect();
            let mut e = Sequence::scored(tokens);
            e.labels[..2].fill(-100);
            e
        })
        .collect()
}

/// Largest |a − b| relative to max |b| over all gradients, printed per call.
fn worst_rel(label: &str, a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f32 {
    let mut worst = 0f32;
    for ((na, ga), (nb, gb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        let (d, s) = max_diff(ga, gb);
        worst = worst.max(d / s.max(1e-30));
    }
    println!("{label}: worst gradient difference {worst:.2e} (relative to each tensor's max)");
    worst
}

fn bits_equal(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((na, x), (nb, y))| na == nb && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()))
}

#[test]
fn accumulating_two_micro_batches_equals_one_batch() {
    let cfg = config("qwen2", 97, 32, true);
    let ex = examples(1, 4, 5, 20, 97);
    let whole = Batch::padded(&ex, 20, 0).unwrap();
    let (half1, half2) = (Batch::padded(&ex[..2], 20, 0).unwrap(), Batch::padded(&ex[2..], 20, 0).unwrap());
    let total = whole.num_targets();
    assert_eq!(total, half1.num_targets() + half2.num_targets());
    let mut one = random_model(&cfg, "all");
    let s = one.forward_backward(&whole, total).unwrap();
    let mut two = random_model(&cfg, "all");
    let s2 = two.forward_backward(&half1, total).unwrap() + two.forward_backward(&half2, total).unwrap();
    println!("loss one batch {:.7}, two micro-batches {:.7}", s.mean(), s2.mean());
    assert_eq!(s.targets, s2.targets);
    assert!((s.mean() - s2.mean()).abs() < 1e-6);
    assert!(worst_rel("accumulation", &grads(&two), &grads(&one)) < 1e-5);
}

#[test]
fn packed_examples_train_like_padded_rows() {
    let cfg = config("llama", 61, 32, false);
    let ex = examples(2, 3, 6, 14, 61);
    let padded = Batch::padded(&ex, 14, 0).unwrap();
    let packed = Batch::packed(std::slice::from_ref(&ex), 48, 0).unwrap();
    assert_eq!(padded.num_targets(), packed.num_targets());
    let (mut a, mut b) = (random_model(&cfg, "all"), random_model(&cfg, "all"));
    let sa = a.forward_backward(&padded, padded.num_targets()).unwrap();
    let sb = b.forward_backward(&packed, packed.num_targets()).unwrap();
    println!("loss padded {:.7}, packed {:.7}", sa.mean(), sb.mean());
    assert!((sa.mean() - sb.mean()).abs() < 1e-6);
    assert!(worst_rel("packing", &grads(&b), &grads(&a)) < 1e-5);
}

#[test]
fn pad_tokens_after_a_row_change_nothing() {
    // transformers masks pads with the attention mask; here nothing masks them, and nothing needs
    // to: causal attention keeps real tokens from seeing later pads, and pads are never scored.
    let cfg = config("qwen2", 50, 32, true);
    let ex = examples(3, 3, 4, 12, 50);
    let (mut a, mut b) = (random_model(&cfg, "all"), random_model(&cfg, "all"));
    let (pad0, pad7) = (Batch::padded(&ex, 12, 0).unwrap(), Batch::padded(&ex, 12, 7).unwrap());
    let sa = a.forward_backward(&pad0, pad0.num_targets()).unwrap();
    let sb = b.forward_backward(&pad7, pad7.num_targets()).unwrap();
    assert_eq!(sa.loss_sum.to_bits(), sb.loss_sum.to_bits());
    assert!(bits_equal(&grads(&a), &grads(&b)), "pad ids changed a gradient");
}

#[test]
fn frozen_tensors_have_no_gradient_buffers_and_eval_loss_agrees() {
    let cfg = config("qwen3", 64, 32, true);
    let mut m = random_model(&cfg, "o_proj,norms,embed,lm_head");
    for p in m.params() {
        let want = p.name.contains("o_proj") || p.name.contains("norm") || p.name.contains("embed");
        assert_eq!(p.trainable(), want, "{}", p.name);
    }
    let (all, trainable) = m.num_params();
    println!("o_proj,norms,embed,lm_head: {trainable} of {all} parameters trainable");
    let b = Batch::padded(&examples(4, 2, 5, 9, 64), 9, 0).unwrap();
    let s = m.forward_backward(&b, b.num_targets()).unwrap();
    let e = m.loss(&b).unwrap();
    assert_eq!(s.loss_sum.to_bits(), e.loss_sum.to_bits(), "training and evaluation forward passes differ");
    assert_eq!(s.targets, e.targets);
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // Big enough that gemm splits its products among threads.
    let cfg = config("qwen2", 512, 128, true);
    let batch = Batch::padded(&examples(5, 4, 40, 64, 512), 64, 0).unwrap();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut m = random_model(&cfg, "all");
            let mut opt = Optimizer::new(OptimizerKind::AdamW(AdamW::default()), &m).unwrap();
            let s = m.forward_backward(&batch, batch.num_targets()).unwrap();
            let g = grads(&m);
            opt.step(&mut m, 1e-3).unwrap();
            (s.loss_sum, g, weights(&m))
        })
    };
    let (l1, g1, w1) = run(1);
    for threads in [2, 3] {
        let (l, g, w) = run(threads);
        assert_eq!(l.to_bits(), l1.to_bits(), "{threads} threads: loss differs");
        assert!(bits_equal(&g, &g1), "{threads} threads: gradients differ");
        assert!(bits_equal(&w, &w1), "{threads} threads: weights after AdamW differ");
    }
    println!("1, 2 and 3 threads: bit-identical loss, gradients and AdamW step");
}

#[test]
fn optimizer_state_export_import_resumes_bit_for_bit() {
    let cfg = config("llama", 40, 32, false);
    let batches: Vec<Batch> = (0..3).map(|i| Batch::padded(&examples(10 + i, 3, 6, 10, 40), 10, 0).unwrap()).collect();
    let adam = AdamW { weight_decay: 0.1, exempt_norms_and_biases: true, ..AdamW::default() };
    let sched = Schedule { peak_lr: 3e-3, min_lr: 3e-4, warmup_steps: 1, total_steps: 3, decay: Decay::Cosine };
    let step = |m: &mut TrainModel, opt: &mut Optimizer, b: &Batch| {
        m.zero_grad();
        m.forward_backward(b, b.num_targets()).unwrap();
        m.clip_grad_norm(1.0);
        opt.step(m, sched.lr(opt.steps())).unwrap();
    };
    let mut a = random_model(&cfg, "all");
    let mut oa = Optimizer::new(OptimizerKind::AdamW(adam), &a).unwrap();
    step(&mut a, &mut oa, &batches[0]);
    step(&mut a, &mut oa, &batches[1]);
    let (saved_weights, saved_state) = (weights(&a), oa.export(&a));
    step(&mut a, &mut oa, &batches[2]);

    // A fresh model and optimizer, restored from what was saved after step 2.
    let mut b = random_model(&cfg, "all");
    for (name, w) in &saved_weights {
        b.param_mut(name).unwrap().copy_from_slice(w);
    }
    let mut ob = Optimizer::new(OptimizerKind::AdamW(adam), &b).unwrap();
    ob.import(&saved_state, &b).unwrap();
    assert_eq!(ob.steps(), 2);
    step(&mut b, &mut ob, &batches[2]);
    assert!(bits_equal(&weights(&a), &weights(&b)), "resumed run differs from the uninterrupted one");
    assert_eq!(oa.export(&a), ob.export(&b));

    // State that does not fit is refused, naming the tensor.
    let mut bad = saved_state.clone();
    bad.tensors[3].shape = vec![1];
    let e = ob.import(&bad, &b).unwrap_err().to_string();
    assert!(e.contains("exp_avg_sq.model.layers.0.input_layernorm.weight"), "{e}");
    bad = saved_state.clone();
    bad.tensors.pop();
    assert!(ob.import(&bad, &b).unwrap_err().to_string().contains("state has no `exp_avg_sq.lm_head.weight`"));
}

#[test]
fn a_toy_task_is_learned() {
    // Memorise four random sequences: the loss must fall from about ln(vocab).
    let cfg = config("qwen2", 48, 64, true);
    let mut m = random_model(&cfg, "all");
    let ex: Vec<Sequence> = examples(20, 4, 16, 16, 48);
    let batch = Batch::padded(&ex, 16, 0).unwrap();
    let adam = AdamW { weight_decay: 0.0, ..AdamW::default() };
    let mut opt = Optimizer::new(OptimizerKind::AdamW(adam), &m).unwrap();
    let sched = Schedule { peak_lr: 1e-2, min_lr: 1e-3, warmup_steps: 3, total_steps: 40, decay: Decay::Cosine };
    let mut losses = Vec::new();
    for _ in 0..40 {
        m.zero_grad();
        losses.push(m.forward_backward(&batch, batch.num_targets()).unwrap().mean());
        opt.step(&mut m, sched.lr(opt.steps())).unwrap();
    }
    let last = m.loss(&batch).unwrap().mean();
    println!("toy task: loss {:.3} → {:.3} → {last:.4} (steps 0, 20, 40)", losses[0], losses[20]);
    assert!(losses[0] > 3.0 && last < 0.1, "loss did not fall: {losses:?}");
}

#[test]
fn bad_input_is_an_error_naming_what_is_wrong() {
    let cfg = config("llama", 30, 32, false);
    let mut m = random_model(&cfg, "all");
    let err = |m: &mut TrainModel, b: Batch| m.forward_backward(&b, 100).unwrap_err().to_string();
    let e = err(&mut m, Batch::new(1, 3, vec![1, 30, 2], vec![1, 2, 3]).unwrap());
    assert!(e.contains("token id 30 at row 0, column 1 is outside the vocabulary (size 30)"), "{e}");
    let e = err(&mut m, Batch::new(1, 3, vec![1, 2, 3], vec![1, 2, 31]).unwrap());
    assert!(e.contains("label 31 at row 0, column 2"), "{e}");
    let b = Batch::new(1, 2, vec![1, 2], vec![1, 2]).unwrap().with_positions(vec![0, 256]).unwrap();
    assert!(err(&mut m, b).contains("position 256 at row 0, column 1 is beyond the model's 256 positions"));
    let b = Batch::new(1, 4, vec![1, 2, 3, 4], vec![1, 2, 3, 4]).unwrap();
    let e = m.forward_backward(&b, 2).unwrap_err().to_string();
    assert!(e.contains("scores 3 targets but the step is said to have 2"), "{e}");

    let names = vec!["model.layers.7.mlp.up_proj.weight".to_string()];
    let e = TrainModel::random(&cfg, 1, 0.02, Trainable::Names(&names)).unwrap_err().to_string();
    assert!(e.contains("`model.layers.7.mlp.up_proj.weight` is not a parameter of this model"), "{e}");
    let sel = Selector::parse("q_norm").unwrap();
    let e = TrainModel::random(&cfg, 1, 0.02, Trainable::Selector(&sel)).unwrap_err().to_string();
    assert!(e.contains("matches no tensor"), "{e}");

    // A checkpoint whose tensor has the wrong shape.
    struct Lying(Checkpoint);
    impl WeightSource for Lying {
        fn config(&self) -> sfn_model::Result<ModelConfig> {
            self.0.config()
        }
        fn shape(&self, name: &str) -> Option<Vec<usize>> {
            if name == "model.layers.1.self_attn.k_proj.weight" {
                return Some(vec![3, 32]);
            }
            WeightSource::shape(&self.0, name)
        }
        fn load_f32(&self, name: &str) -> sfn_model::Result<Vec<f32>> {
            self.0.load_f32(name)
        }
        fn load_quantized(&self, name: &str) -> sfn_model::Result<Option<(DType, Vec<u8>)>> {
            self.0.load_quantized(name)
        }
        fn path(&self) -> &std::path::Path {
            WeightSource::path(&self.0)
        }
    }
    let e = TrainModel::load(&Lying(open("llama-untied-linrope")), Trainable::Names(&[])).unwrap_err().to_string();
    assert!(e.contains("model.layers.1.self_attn.k_proj.weight: has shape [3, 32], the config implies [8, 32]"), "{e}");
}

#[test]
fn quantized_gguf_trains_in_f32_and_o_proj_bias_gradients_match_finite_differences() {
    // A GGUF with Q4_0/Q4_1/Q8_0/F16 tensors and biases on q, k, v and o: widened to f32 on load.
    let path = fixture("../../../sfn-checkpoint/tests/fixtures/gguf/tiny-llama.gguf");
    let ck = Checkpoint::open(&path).unwrap();
    let mut m = TrainModel::load(&ck, Trainable::Selector(&Selector::parse("all").unwrap())).unwrap();
    let opts = sfn_model::LoadOptions { dequantize: true, ..Default::default() };
    let runtime = sfn_model::Model::load(&ck, &opts).unwrap();
    let ex = examples(30, 2, 7, 11, 64);
    let batch = Batch::padded(&ex, 11, 0).unwrap();
    let logits = m.logits(&batch).unwrap();
    let (mut worst, mut scale) = (0f32, 0f32);
    for (r, e) in ex.iter().enumerate() {
        let want = runtime.forward(&e.tokens, &mut sfn_model::Hooks::new()).unwrap();
        let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (d, s) = max_diff(&logits[r * 11 * 64..(r * 11 + e.tokens.len()) * 64], &want);
        (worst, scale) = (worst.max(d), scale.max(s));
    }
    println!("gguf: logits max|diff| vs sfn-model (dequantized) {worst:.2e} (max|logit| {scale:.1})");
    assert!(worst <= 1e-5 * scale.max(1.0));

    let targets = batch.num_targets();
    m.forward_backward(&batch, targets).unwrap();
    assert!(m.params().all(|p| p.grad.unwrap().iter().any(|&g| g != 0.0)), "a tensor got no gradient");
    // Central differences of the mean loss at each tensor's largest gradient, o_proj biases among
    // them (the transformers fixtures have none).
    for name in [
        "model.layers.0.self_attn.o_proj.bias",
        "model.layers.1.self_attn.o_proj.bias",
        "model.layers.0.self_attn.k_proj.bias",
        "model.layers.1.mlp.down_proj.weight",
        "model.embed_tokens.weight",
    ] {
        let g = m.param(name).unwrap().grad.unwrap();
        let idx = (0..g.len()).max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs())).unwrap();
        let analytic = g[idx] as f64;
        // A step that moves the loss by about 1e-2: small enough for the curvature, large enough
        // for f32 rounding.
        let eps = 1e-2 / g[idx].abs().max(1.0);
        let at = |m: &mut TrainModel, delta: f32| {
            m.param_mut(name).unwrap()[idx] += delta;
            let s = m.loss(&batch).unwrap();
            s.loss_sum / targets as f64
        };
        let up = at(&mut m, eps);
        let down = at(&mut m, -2.0 * eps);
        at(&mut m, eps);
        let numeric = (up - down) / (2.0 * eps as f64);
        let diff = (numeric - analytic).abs();
        println!("  {name}[{idx}]: analytic {analytic:.6e} numeric {numeric:.6e} rel {:.1e}", diff / analytic.abs());
        // 1e-5 absolute: the f32 loss's rounding divided by the step.
        assert!(diff <= 1e-2 * analytic.abs() + 1e-5, "{name}[{idx}]: finite differences disagree");
    }
}
