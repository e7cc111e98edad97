//! Parity with an independent computation: tools/reference/delta_reference.py made a tiny Qwen2
//! pair with transformers (A: bf16, three shards + index; B: f32, one file; known perturbations,
//! a NaN and an Inf) and computed every statistic with numpy in float64 from what the
//! `safetensors` library reads. Norms must agree to 1e-6 relative; histogram counts exactly,
//! except that elements within 1e-6 of a bin edge may sit on either side of it.

use serde_json::Value;
use sfn_checkpoint::Checkpoint;
use sfn_scope::delta::aggregate::{Aggregates, Metric};
use sfn_scope::delta::{delta, DeltaOptions};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/delta")
}

fn rel_err(got: f64, want: f64) -> f64 {
    if want == 0.0 {
        got.abs()
    } else {
        (got - want).abs() / want.abs()
    }
}

#[test]
fn statistics_match_the_numpy_reference_on_a_transformers_pair() {
    let exp: Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap()).unwrap();
    let a = Checkpoint::open(fixtures().join("a-qwen2-bf16-sharded")).unwrap();
    let b = Checkpoint::open(fixtures().join("b-qwen2-f32")).unwrap();
    assert!(a.files().count() > 1 && b.files().count() == 1, "fixture layouts: sharded A, single-file B");
    let r = delta(&a, &b, &DeltaOptions { chunk_elems: 1000, ..Default::default() }, &|_| {}).unwrap();
    let tensors = exp["tensors"].as_object().unwrap();
    assert_eq!(r.tensors.len(), tensors.len());
    assert!(r.only_in_a.is_empty() && r.only_in_b.is_empty() && r.shape_mismatch.is_empty());

    let mut worst = (0.0f64, String::new());
    let mut moved = 0u64;
    for t in &r.tensors {
        let e = &tensors[&t.name];
        let name = &t.name;
        assert_eq!(t.dtype_a, "BF16");
        assert_eq!(t.dtype_b, "F32");
        for (key, got) in [
            ("l2_diff", Some(t.l2_diff)),
            ("l2_a", Some(t.l2_a)),
            ("l2_b", Some(t.l2_b)),
            ("rel_change", t.rel_change),
            ("cosine", t.cosine),
            ("max_abs_diff", Some(t.max_abs_diff)),
        ] {
            match (got, e[key].as_f64()) {
                (Some(g), Some(w)) => {
                    let err = rel_err(g, w);
                    if err > worst.0 {
                        worst = (err, format!("{name} {key}: sfn {g:e} numpy {w:e}"));
                    }
                    assert!(err <= 1e-6, "{name} {key}: sfn {g:e} numpy {w:e} (rel err {err:e})");
                }
                (None, None) => {}
                (g, w) => panic!("{name} {key}: sfn {g:?} numpy {w:?}"),
            }
        }
        let nf = &e["nonfinite"];
        assert_eq!(
            (t.nonfinite.a, t.nonfinite.b, t.nonfinite.pairs),
            (nf["a"].as_u64().unwrap(), nf["b"].as_u64().unwrap(), nf["pairs"].as_u64().unwrap()),
            "{name} non-finite counts"
        );
        // Histogram: sure counts exact; an element near edge i may be in bin i-1 or bin i.
        let sure: Vec<u64> = e["hist_counts_sure"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        let full: Vec<u64> = e["hist_counts"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        let near = |i: usize| e["hist_near_edge"].get(i.to_string()).and_then(Value::as_u64).unwrap_or(0);
        assert_eq!(t.hist.total(), full.iter().sum::<u64>(), "{name}: histogram total");
        for (i, (&got, &lo)) in t.hist.counts.iter().zip(&sure).enumerate() {
            let hi = lo + near(i) + near(i + 1);
            assert!(lo <= got && got <= hi, "{name} bin {i}: sfn {got}, numpy {} (allowed {lo}..={hi})", full[i]);
        }
        moved += t.hist.counts.iter().zip(&full).map(|(x, y)| x.abs_diff(*y)).sum::<u64>() / 2;
        for (got, sure, near, what) in [
            (t.hist.clipped_low, &e["clipped_low_sure"], &e["clipped_low_near"], "clipped_low"),
            (t.hist.clipped_high, &e["clipped_high_sure"], &e["clipped_high_near"], "clipped_high"),
        ] {
            let (s, n) = (sure.as_u64().unwrap(), near.as_u64().unwrap());
            assert!(s <= got && got <= s + n, "{name} {what}: sfn {got}, numpy {s} + up to {n} on the edge");
        }
    }
    println!("largest relative difference: {:e} ({})", worst.0, worst.1);
    println!("elements in a neighbouring bin (all within 1e-6 of its edge): {moved}");

    // The known answers of the perturbations the script applied.
    let get = |n: &str| r.tensors.iter().find(|t| t.name == n).unwrap();
    let agg = Aggregates::of(&r.tensors, Metric::RelChange);
    for l in 0..3 {
        let o = get(&format!("model.layers.{l}.self_attn.o_proj.weight"));
        assert!(o.bimodality.bimodal, "o_proj layer {l}: {:?}", o.bimodality);
        for m in ["self_attn.q_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"] {
            let t = get(&format!("model.layers.{l}.{m}"));
            assert!(!t.bimodality.bimodal, "{}: {:?}", t.name, t.bimodality);
        }
    }
    assert_eq!(get("lm_head.weight").l2_diff, 0.0);
    assert_eq!(get("model.layers.0.self_attn.v_proj.bias").rel_change, None);
    assert!(agg.verdict.starts_with("largest change: o_proj"), "{}", agg.verdict);
    assert!(agg.verdict.contains("bimodal: o_proj in 3 of 3 layers"), "{}", agg.verdict);
}
