//! Edit plans against numpy (tools/reference/make_edit_fixtures.py) and against their own
//! identities: taking nothing gives A, taking everything gives B, bit for bit.

use sfn_checkpoint::edit::{Edit, EditPlan, EditView, Rule};
use sfn_checkpoint::selector::Selector;
use sfn_checkpoint::writer::{write_checkpoint, WriteOptions};
use sfn_checkpoint::Checkpoint;
use std::path::{Path, PathBuf};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

fn pair() -> (Checkpoint, Checkpoint) {
    (
        Checkpoint::open(fixture("hf/llama-gqa-untied-f32")).unwrap(),
        Checkpoint::open(fixture("edit/llama-b-f32")).unwrap(),
    )
}

fn plan(sel: &str, edit: Edit) -> EditPlan {
    EditPlan { rules: vec![Rule::new(Selector::parse(sel).unwrap(), edit)], ..Default::default() }
}

/// Write the view and open the result.
fn written(view: &EditView, dir: &Path) -> Checkpoint {
    let out = dir.join("out");
    let opts = WriteOptions {
        side_files_from: Some(view.a.path.clone()),
        config_json: view.config_json().unwrap(),
        inputs: vec![view.a.path.clone()],
        ..Default::default()
    };
    write_checkpoint(&out, &view.specs(None), &opts, |s, w| view.write_tensor(view.get(&s.name).unwrap(), s.dtype, w))
        .unwrap();
    Checkpoint::open(out).unwrap()
}

/// Every tensor of `got` equals the same-named one of `want` bit for bit (and the names agree).
fn assert_bit_identical(got: &Checkpoint, want: &Checkpoint) {
    let names = |c: &Checkpoint| c.tensors().iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(got), names(want));
    for t in want.tensors() {
        let g = got.tensor(&t.name).unwrap();
        assert_eq!((g.dtype, &g.shape), (t.dtype, &t.shape), "{}", t.name);
        assert!(got.raw_bytes(g).unwrap() == want.raw_bytes(t).unwrap(), "{} differs", t.name);
    }
}

#[test]
fn taking_nothing_gives_a_bit_exact() {
    let (a, b) = pair();
    let tmp = tempfile::tempdir().unwrap();
    let view = EditView::new(&a, Some(&b), EditPlan::default()).unwrap();
    assert_bit_identical(&written(&view, tmp.path()), &a);
}

#[test]
fn taking_everything_gives_b_bit_exact() {
    let (a, b) = pair();
    let tmp = tempfile::tempdir().unwrap();
    let view = EditView::new(&a, Some(&b), plan("all", Edit::TakeB)).unwrap();
    assert_bit_identical(&written(&view, tmp.path()), &b);
}

#[test]
fn merge_mix_and_remove_equal_numpy() {
    let (a, b) = pair();
    let cases = [
        ("take-o-layers1-3", plan("layers[1..3].o_proj", Edit::TakeB)),
        ("mix-mlp-0.3", plan("mlp", Edit::Mix { alpha: 0.3 })),
        ("remove-layer-1", EditPlan { remove_layers: [1].into(), ..Default::default() }),
    ];
    for (name, p) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let view = EditView::new(&a, Some(&b), p).unwrap();
        let got = written(&view, tmp.path());
        let want = Checkpoint::open(fixture(&format!("edit/{name}.safetensors"))).unwrap();
        let mut max_diff = 0f32;
        for t in want.tensors() {
            let (x, y) = (got.read_f32(got.tensor(&t.name).unwrap()).unwrap(), want.read_f32(t).unwrap());
            max_diff = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(max_diff, f32::max);
        }
        assert_eq!(got.tensors().len(), want.tensors().len(), "{name}");
        println!("{name}: {} tensors, max |diff| vs numpy {max_diff:e}", want.tensors().len());
        assert_eq!(max_diff, 0.0, "{name}");
    }
}

#[test]
fn removing_layers_renumbers_and_updates_the_config() {
    let a = Checkpoint::open(fixture("hf/qwen3-qknorm-f16")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let view = EditView::new(&a, None, EditPlan { remove_layers: [0, 2].into(), ..Default::default() }).unwrap();
    let got = written(&view, tmp.path());
    let cfg = got.config.as_ref().unwrap();
    assert_eq!(cfg.num_layers, 1);
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(got.path.join("config.json")).unwrap()).unwrap();
    assert_eq!(raw["layer_types"].as_array().unwrap().len(), 1, "transformers 5.x per-layer list shortened");
    // Old layer 1 is the new layer 0.
    let old = a.read_f32(a.tensor("model.layers.1.self_attn.q_norm.weight").unwrap()).unwrap();
    let new = got.read_f32(got.tensor("model.layers.0.self_attn.q_norm.weight").unwrap()).unwrap();
    assert_eq!(old, new);
    assert!(got.get("model.layers.1.self_attn.q_norm.weight").is_none());
}

#[test]
fn reinit_is_reproducible_by_seed_with_the_requested_moments() {
    let a = Checkpoint::open(fixture("hf/llama-gqa-untied-f32")).unwrap();
    let reinit = |seed| {
        let view = EditView::new(&a, None, plan("embed", Edit::Reinit { mean: 0.5, std: 0.02, seed })).unwrap();
        let t = view.get("model.embed_tokens.weight").unwrap().clone();
        let mut whole = vec![0f32; 96 * 32];
        view.read_f32_into(&t, 0, &mut whole).unwrap();
        // Any chunk can be produced on its own and agrees with the whole.
        let mut part = vec![0f32; 100];
        view.read_f32_into(&t, 1000, &mut part).unwrap();
        assert_eq!(&whole[1000..1100], &part[..]);
        whole
    };
    let (x, y, z) = (reinit(7), reinit(7), reinit(8));
    assert_eq!(x, y);
    assert_ne!(x, z);
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    println!("reinit N(0.5, 0.02) over {n} values: mean {mean:.5}, std {std:.5}");
    assert!((mean - 0.5).abs() < 3.0 * 0.02 / n.sqrt() * 2.0, "{mean}");
    assert!((std - 0.02).abs() < 0.02 * 0.05, "{std}");
}

#[test]
fn zero_and_scale_act_only_on_the_selection() {
    let a = Checkpoint::open(fixture("hf/llama-gqa-untied-f32")).unwrap();
    let view = EditView::new(&a, None, plan("layers[2].down", Edit::Scale { factor: -2.0 })).unwrap();
    for t in view.tensors() {
        let mut got = vec![0f32; t.shape.iter().product()];
        view.read_f32_into(t, 0, &mut got).unwrap();
        let orig = a.read_f32(a.tensor(&t.source).unwrap()).unwrap();
        let factor = if t.name == "model.layers.2.mlp.down_proj.weight" { -2.0 } else { 1.0 };
        assert!(got.iter().zip(&orig).all(|(g, o)| *g == o * factor), "{}", t.name);
    }
    let view = EditView::new(&a, None, plan("o", Edit::Zero)).unwrap();
    let zeroed = view.tensors().iter().filter(|t| t.edit == Some(Edit::Zero)).count();
    assert_eq!(zeroed, 3);
}

#[test]
fn mismatched_b_is_refused_naming_the_differences() {
    let a = Checkpoint::open(fixture("hf/llama-gqa-untied-f32")).unwrap();
    let b = Checkpoint::open(fixture("hf/qwen3-qknorm-f16")).unwrap();
    let err = EditView::new(&a, Some(&b), plan("o", Edit::TakeB)).err().unwrap().to_string();
    assert!(err.contains("B does not match A") && err.contains("lm_head.weight is in A but not in B"), "{err}");
    let err = EditView::new(&a, None, EditPlan { remove_layers: [3].into(), ..Default::default() })
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot remove layer 3: the model has layers 0..3"), "{err}");
}

#[test]
fn a_layer_range_past_the_last_layer_is_an_error_not_a_partial_edit() {
    let a = Checkpoint::open(fixture("hf/llama-gqa-untied-f32")).unwrap();
    let err = EditView::new(&a, None, plan("layers[1..5].o", Edit::Zero)).err().unwrap().to_string();
    assert!(err.contains("layers 1..5 go past the model's layers 0..3"), "{err}");
    // Within the model it is fine, and so is the inclusive form of the same layers.
    assert!(EditView::new(&a, None, plan("layers[1..3].o", Edit::Zero)).is_ok());
    assert!(EditView::new(&a, None, plan("layers[1..=2].o", Edit::Zero)).is_ok());
}
