//! Hook points: capture, overwrite (zero, mean, scale, add, patch from another run or another model,
//! custom), per-position and per-head limits, and layer skipping — each checked against an
//! independent way of getting the same numbers (mostly an edit plan's lazy view of the checkpoint).

mod common;

use common::*;
use sfn_checkpoint::edit::{Edit, EditPlan, EditView, Rule};
use sfn_checkpoint::selector::Selector;
use sfn_model::hooks::HookFn;
use sfn_model::{Action, HookId, HookPoint, Hooks, Intervention, LoadOptions, Model, Tensor};
use std::sync::Arc;

const IDS: [u32; 9] = [1, 5, 17, 42, 3, 88, 23, 9, 64];
const A: &str = "llama-gqa-untied-f32";

fn edited(ck: &sfn_checkpoint::Checkpoint, b: Option<&sfn_checkpoint::Checkpoint>, plan: EditPlan) -> Model {
    let view = EditView::new(ck, b, plan).unwrap();
    Model::load(&view, &LoadOptions::default()).unwrap()
}

fn rule(sel: &str, edit: Edit) -> Rule {
    Rule::new(Selector::parse(sel).unwrap(), edit)
}

fn logits_with(model: &Model, hooks: &mut Hooks) -> Tensor {
    model.forward(&IDS, hooks).unwrap()
}

fn one(id: HookId, iv: Intervention) -> Hooks {
    let mut h = Hooks::new();
    h.intervene(id, iv);
    h
}

#[test]
fn skipping_a_layer_equals_the_edit_view_without_that_layer() {
    let ck = open_fixture(A);
    let model = load(&ck);
    for layer in 0..3 {
        let mut hooks = Hooks::new();
        hooks.skip_layer(layer);
        let skipped = logits_with(&model, &mut hooks);
        let removed = edited(&ck, None, EditPlan { remove_layers: [layer].into(), ..Default::default() });
        assert_eq!(removed.layers.len(), 2);
        let d = max_abs_diff(&skipped, &logits_with(&removed, &mut Hooks::new()));
        println!("skip layer {layer} vs remove_layers {{{layer}}}: max |diff| = {d:e}");
        assert!(d <= 1e-6, "{d}");
        assert!(max_abs_diff(&skipped, &logits_with(&model, &mut Hooks::new())) > 1e-3, "skipping changed nothing");
    }
}

#[test]
fn zeroing_attn_out_and_mlp_out_equals_zeroing_o_proj_and_down_proj() {
    let ck = open_fixture(A);
    let model = load(&ck);
    for (point, sel) in [(HookPoint::AttnOut, "layers[1].o_proj"), (HookPoint::MlpOut, "layers[1].down_proj")] {
        let mut hooks = one(HookId::new(point, 1), Intervention::new(Action::Zero));
        let zeroed = logits_with(&model, &mut hooks);
        let plan = EditPlan { rules: vec![rule(sel, Edit::Zero)], ..Default::default() };
        let d = max_abs_diff(&zeroed, &logits_with(&edited(&ck, None, plan), &mut Hooks::new()));
        println!("zero {point}.1 vs zero {sel}: max |diff| = {d:e}");
        assert!(d <= 1e-6, "{d}");
    }
}

#[test]
fn zeroing_every_head_equals_zeroing_attn_out() {
    let ck = open_fixture(A);
    let model = load(&ck);
    let heads = model.config.num_heads;
    let mut h1 = one(HookId::new(HookPoint::AttnHeads, 2), Intervention::new(Action::Zero).on_heads(0..heads));
    let mut h2 = one(HookId::new(HookPoint::AttnOut, 2), Intervention::new(Action::Zero));
    assert!(max_abs_diff(&logits_with(&model, &mut h1), &logits_with(&model, &mut h2)) <= 1e-6);
}

#[test]
fn zeroing_one_head_removes_exactly_its_share_of_o_proj() {
    let ck = open_fixture(A);
    let model = load(&ck);
    let (hd, h) = (model.config.head_dim, 2usize);
    let out = HookId::new(HookPoint::AttnOut, 0);
    let heads_id = HookId::new(HookPoint::AttnHeads, 0);
    let mut clean = Hooks::new();
    clean.capture(out).capture(heads_id);
    model.forward(&IDS, &mut clean).unwrap();
    let mut ablated = one(heads_id, Intervention::new(Action::Zero).on_heads([h]));
    ablated.capture(out).capture(heads_id);
    model.forward(&IDS, &mut ablated).unwrap();
    // Head h contributes heads[.., h, :] · W_o[:, h·hd .. (h+1)·hd]ᵀ.
    let w_o = Tensor::from_vec(
        ck.read_f32(ck.tensor("model.layers.0.self_attn.o_proj.weight").unwrap()).unwrap(),
        (32, 32),
        &sfn_model::Device::Cpu,
    )
    .unwrap();
    let head = clean.get(heads_id).unwrap().unwrap().squeeze(0).unwrap().narrow(1, h, 1).unwrap().squeeze(1).unwrap(); // [s, hd]
    let share = head.matmul(&w_o.narrow(1, h * hd, hd).unwrap().t().unwrap()).unwrap();
    let removed = (clean.get(out).unwrap().unwrap() - ablated.get(out).unwrap().unwrap()).unwrap().squeeze(0).unwrap();
    let d = max_abs_diff(&removed, &share);
    println!("one head's share of o_proj: max |diff| = {d:e}");
    assert!(d <= 1e-6, "{d}");
    // The other heads are untouched.
    let got = ablated.get(heads_id).unwrap().unwrap().squeeze(0).unwrap();
    let want = clean.get(heads_id).unwrap().unwrap().squeeze(0).unwrap();
    assert_eq!(max_abs_diff(&got.narrow(1, 0, h).unwrap(), &want.narrow(1, 0, h).unwrap()), 0.0);
    assert_eq!(got.narrow(1, h, 1).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
}

#[test]
fn patching_resid_post_at_every_position_reproduces_the_source_run() {
    let ck = open_fixture(A);
    let model = load(&ck);
    let other: Vec<u32> = IDS.iter().map(|t| (t * 7 + 3) % 96).collect();
    let id = HookId::new(HookPoint::ResidPost, 1);
    let mut src = Hooks::new();
    src.capture(id);
    let want = model.forward(&other, &mut src).unwrap();
    let value = src.get(id).unwrap().unwrap().squeeze(0).unwrap(); // [positions, hidden]
    let mut patched = one(id, Intervention::new(Action::Replace(value)));
    let got = logits_with(&model, &mut patched);
    let d = max_abs_diff(&got, &want);
    println!("patched run vs source run: max |diff| = {d:e}");
    assert!(d <= 1e-6, "{d}");
}

#[test]
fn patching_from_another_model_equals_the_merged_checkpoint() {
    // B with A's layer-1 output patched in runs B's layer 2, norm and head on A's stream: that is
    // the merge "A, with layer 2, the final norm and the head taken from B".
    let a = open_fixture(A);
    let b = sfn_checkpoint::Checkpoint::open(crate_dir().join("../sfn-checkpoint/tests/fixtures/edit/llama-b-f32"))
        .unwrap();
    let (model_a, model_b) = (load(&a), load(&b));
    let id = HookId::new(HookPoint::ResidPost, 1);
    let mut cap = Hooks::new();
    cap.capture(id);
    model_a.forward(&IDS, &mut cap).unwrap();
    let mut patch = one(id, Intervention::new(Action::Replace(cap.get(id).unwrap().unwrap())));
    let patched = logits_with(&model_b, &mut patch);
    let plan = EditPlan { rules: vec![rule("layers[2].all,final_norm,lm_head", Edit::TakeB)], ..Default::default() };
    let merged = logits_with(&edited(&a, Some(&b), plan), &mut Hooks::new());
    let d = max_abs_diff(&patched, &merged);
    println!("B patched with A's resid_post.1 vs merged view: max |diff| = {d:e}");
    assert!(d <= 1e-6, "{d}");
}

#[test]
fn interventions_limited_to_positions_leave_the_others_alone() {
    let ck = open_fixture(A);
    let model = load(&ck);
    let id = HookId::new(HookPoint::ResidMid, 0);
    let mut clean = Hooks::new();
    clean.capture(id);
    model.forward(&IDS, &mut clean).unwrap();
    let clean = clean.get(id).unwrap().unwrap().squeeze(0).unwrap();
    let mut h = one(id, Intervention::new(Action::Zero).at_positions([2, 5]));
    h.capture(id);
    model.forward(&IDS, &mut h).unwrap();
    let got = h.get(id).unwrap().unwrap().squeeze(0).unwrap();
    for p in 0..IDS.len() {
        let row = got.get(p).unwrap();
        let d = max_abs_diff(&row, &clean.get(p).unwrap());
        if p == 2 || p == 5 {
            assert_eq!(row.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
        } else {
            assert_eq!(d, 0.0, "position {p} changed");
        }
    }
}

#[test]
fn mean_scale_add_and_custom_actions_do_what_they_say() {
    let ck = open_fixture(A);
    let model = load(&ck);
    let id = HookId::new(HookPoint::MlpOut, 1);
    let mut clean = Hooks::new();
    clean.capture(id);
    model.forward(&IDS, &mut clean).unwrap();
    let clean = clean.get(id).unwrap().unwrap(); // [1, s, hidden]
    let run = |action: Action| {
        let mut h = one(id, Intervention::new(action));
        h.capture(id);
        model.forward(&IDS, &mut h).unwrap();
        h.get(id).unwrap().unwrap()
    };
    let mean = clean.mean_keepdim(1).unwrap().broadcast_as(clean.shape()).unwrap();
    assert!(max_abs_diff(&run(Action::MeanOverPositions), &mean.contiguous().unwrap()) <= 1e-7);
    assert!(max_abs_diff(&run(Action::Scale(2.0)), &(&clean * 2.0).unwrap()) <= 1e-7);
    let v = Tensor::arange(0f32, 32f32, &sfn_model::Device::Cpu).unwrap();
    assert!(max_abs_diff(&run(Action::Add(v.clone())), &clean.broadcast_add(&v).unwrap()) <= 1e-6);
    let f: HookFn = Arc::new(|_, x| Ok((x * 3.0)?));
    assert!(max_abs_diff(&run(Action::Custom(f)), &(&clean * 3.0).unwrap()) <= 1e-7);
}

#[test]
fn bad_intervention_values_are_errors_naming_the_hook() {
    let ck = open_fixture(A);
    let model = load(&ck);
    let id = HookId::new(HookPoint::ResidPost, 0);
    let wrong = Tensor::zeros(7, candle_core::DType::F32, &sfn_model::Device::Cpu).unwrap();
    let err = model.forward(&IDS, &mut one(id, Intervention::new(Action::Replace(wrong)))).unwrap_err();
    assert!(err.to_string().contains("resid_post.0"), "{err}");
    let short = Tensor::zeros((3, 32), candle_core::DType::F32, &sfn_model::Device::Cpu).unwrap();
    let err = model.forward(&IDS, &mut one(id, Intervention::new(Action::Replace(short)))).unwrap_err();
    assert!(err.to_string().contains("3 positions"), "{err}");
    let err = model.forward(&IDS, &mut one(id, Intervention::new(Action::Zero).on_heads([0]))).unwrap_err();
    assert!(err.to_string().contains("attn_heads"), "{err}");
    assert!("resid_post.x".parse::<HookId>().is_err());
    assert!("nope.1".parse::<HookId>().is_err());
    assert_eq!("attn_heads.12".parse::<HookId>().unwrap(), HookId::new(HookPoint::AttnHeads, 12));
}
