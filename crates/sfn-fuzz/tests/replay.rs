//! Replays every fuzz corpus (fuzz/corpus/<target>/: the seeds and what fuzzing kept), every
//! regression case (fuzz/regressions/<target>/: crashes found, named after what they were) and any
//! crash file libFuzzer left in fuzz/artifacts/ through the targets' bodies, on stable. A panic in
//! any of them fails the test, naming the file; so does a corpus none of whose inputs is accepted.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    out.sort();
    out
}

#[test]
fn every_corpus_and_crash_file_replays_without_a_finding() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut failures = Vec::new();
    for (target, _) in sfn_fuzz::TARGETS {
        let seeds = files(&fuzz.join("corpus").join(target));
        assert!(seeds.len() >= 3, "{target}: the seed corpus fuzz/corpus/{target} has {} files", seeds.len());
        let mut inputs = seeds;
        inputs.extend(files(&fuzz.join("regressions").join(target)));
        inputs.extend(files(&fuzz.join("artifacts").join(target)));
        let mut accepted = 0;
        for path in &inputs {
            let data = std::fs::read(path).unwrap();
            match catch_unwind(AssertUnwindSafe(|| sfn_fuzz::run(target, &data))) {
                Ok(ok) => accepted += ok as usize,
                Err(e) => {
                    let msg = e.downcast_ref::<String>().cloned().or(e.downcast_ref::<&str>().map(|s| s.to_string()));
                    failures.push(format!("{target}: {}: {}", path.display(), msg.unwrap_or_default()));
                }
            }
        }
        println!("{target}: {} inputs replayed, {accepted} accepted", inputs.len());
        // A target whose every seed is refused would fuzz only the first lines of its parser.
        assert!(accepted > 0, "{target}: no input of the corpus is accepted");
    }
    assert!(failures.is_empty(), "{} inputs fail:\n{}", failures.len(), failures.join("\n"));
}

/// The fuzz/ crate has one target file per body here, and no other.
#[test]
fn every_target_has_a_cargo_fuzz_entry() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut on_disk: Vec<String> = files(&fuzz.join("fuzz_targets"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut ours: Vec<String> = sfn_fuzz::TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    ours.sort();
    assert_eq!(on_disk, ours);
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
    for name in &ours {
        assert!(manifest.contains(&format!("path = \"fuzz_targets/{name}.rs\"")), "fuzz/Cargo.toml lacks {name}");
    }
}
