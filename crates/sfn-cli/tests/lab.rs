//! `sfn lab --quick` end to end: the pair is trained, every stethoscope runs on it, summary.json
//! holds every variant on reasoning and conversation and a finding per claim; a second run with
//! the same seed reuses the cached pair and writes the same results; a pair trained anew from an
//! empty cache is the same pair, bit for bit. (The default lab, whose B must beat A by a margin
//! whose interval excludes zero, is too long for a test: docs/lab.md records its run.)

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

fn lab(out: &Path, cache: &Path) -> String {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_sfn"))
        .args(["lab", "--quick", "--seed", "3", "-o", out.to_str().unwrap()])
        .env("SFN_CACHE_DIR", cache)
        .output()
        .unwrap();
    ok(&o)
}

/// Every variant's numbers and every output, without the paths of their directories.
fn results(dir: &Path) -> Value {
    let mut s = json_file(&dir.join("summary.json"));
    for (_, v) in s["variants"].as_object_mut().unwrap() {
        for kind in ["reasoning", "conversation"] {
            let d = v[kind]["dir"].as_str().unwrap().to_string();
            v[kind]["outputs"] = Value::Array(
                jsonl_file(&Path::new(&d).join("samples.jsonl"))
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["output"].clone())
                    .collect(),
            );
            v[kind].as_object_mut().unwrap().remove("dir");
        }
    }
    for k in ["pair", "pair_seconds", "study_seconds", "total_seconds"] {
        s.as_object_mut().unwrap().remove(k);
    }
    s
}

#[test]
fn quick_lab_runs_every_stethoscope_deterministically_from_a_cached_pair() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, first, second) = (dir.path().join("cache"), dir.path().join("first"), dir.path().join("second"));
    let stdout = lab(&first, &cache);
    assert!(stdout.contains("Findings") && stdout.contains("27 variants evaluated"), "{stdout}");

    let summary = sfn_lab::LabSummary::read(&first).unwrap();
    let names: Vec<&str> = summary.variants.keys().map(String::as_str).collect();
    for want in [
        "A",
        "B",
        "merge:o_proj",
        "merge:qkv",
        "merge:mlp",
        "merge:embed+lm_head",
        "freeze:F1",
        "freeze:F4",
        "destroy:zero:o_proj",
        "destroy:reinit:down_proj",
        "destroy:remove:layers",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for (name, o) in &summary.variants {
        assert_eq!(o.reasoning.levels.iter().sum::<usize>(), 40, "{name}: every reasoning problem judged");
        assert_eq!(o.conversation.levels.iter().sum::<usize>(), 10, "{name}: every conversation prompt judged");
        assert!(o.reasoning.accuracy.is_some() && o.conversation.accuracy.is_none(), "{name}");
    }
    // The models talk: A and B answer most conversation prompts on the task.
    for m in ["A", "B"] {
        assert!(
            summary.variants[m].conversation.on_task() > 0.5,
            "{m} does not talk: {:?}",
            summary.variants[m].conversation.levels
        );
    }
    assert_eq!(summary.findings.len(), 7);
    assert_eq!(sfn_run::Manifest::read(&first).unwrap().status, sfn_run::Status::Complete);
    for f in [
        "summary.md",
        "delta/delta.json",
        "merge/reasoning/sweep.json",
        "freeze/freeze_sweep.json",
        "destroy/conversation/sweep.json",
    ] {
        assert!(first.join(f).is_file(), "{f}");
    }
    // The pair is a pair of ordinary checkpoints.
    ok(&sfn(&["generate", summary.pair.b.to_str().unwrap(), "--chat", "-p", "What is 12 + 5?", "--max-new", "8"]));

    // Again with the same seed: the pair comes from the cache, the results are the same.
    let stdout = lab(&second, &cache);
    assert!(stdout.contains("cached pair"), "{stdout}");
    assert_eq!(results(&first), results(&second), "a second lab with one seed must give the same results");

    // A pair trained anew, from an empty cache, is the same pair bit for bit.
    let fresh = sfn_lab::pair::build(
        &sfn_lab::pair::Recipe::quick(),
        3,
        &dir.path().join("cache2"),
        &sfn_run::Context::quiet(),
    )
    .unwrap();
    assert!(!fresh.cached);
    for m in ["A", "B"] {
        assert_eq!(
            tensor_hashes(&summary.pair.dir.join(m)),
            tensor_hashes(&fresh.dir.join(m)),
            "{m} differs when trained again"
        );
    }
}
