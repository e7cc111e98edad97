//! `sfn study FILE -o DIR`: run a checked study's steps, each through its command's library entry
//! point, into DIR/<section>[/<name>]; then write the report.
//!
//! Resume: a step whose run.json says complete and records the same spec is skipped; a step
//! whose spec changed is removed and redone (only that step); a partial one is rerun into its
//! directory, where the commands that can resume (evaluations, sweeps, training) continue.
//! `force` redoes every step.

use crate::error::{Error, Result};
use crate::file::{Spec, Study};
use serde::{Deserialize, Serialize};
use sfn_checkpoint::Checkpoint;
use sfn_run::{Context, Manifest, Provenance, RunDir};
use std::path::{Path, PathBuf};

/// What happened to a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Done {
    /// Run now (for the first time, or continuing a partial run).
    Ran,
    /// Its settings changed: the old results were removed and it ran again.
    Redone,
    /// Complete with the same settings: skipped.
    UpToDate,
}

#[derive(Debug, Clone)]
pub struct StudyOutcome {
    pub steps: Vec<(String, Done)>,
    pub report: PathBuf,
}

/// Run `study` into `out` (see the module docs); the report is written even when a step fails,
/// and shows the failure.
pub fn run(study: &Study, out: &Path, force: bool, ctx: &Context) -> Result<StudyOutcome> {
    let mut inputs = vec![sfn_run::Input::file("study", &study.path)?];
    for (role, path) in [("A", Some(&study.file.a)), ("B", study.file.b.as_ref())] {
        if let Some(path) = path {
            inputs.push(Checkpoint::open(path).and_then(|c| c.input(role)).map_err(sfn_scope::Error::from)?);
        }
    }
    let spec = serde_json::to_value(&study.file).expect("plain data");
    let provenance = Provenance::new(ctx.command.clone(), spec, inputs, study.file.seed);
    let dir = RunDir::create(out, "study", provenance)?;
    let result = dir.finish_with(|run| -> Result<Vec<(String, Done)>> {
        run.write("study.toml", study.text.as_bytes())?;
        let mut done = vec![];
        for (i, step) in study.steps.iter().enumerate() {
            let dir = run.join(&step.dir);
            let how = state(&dir, &step.spec, force)?;
            ctx.progress.note(&format!(
                "study: step {}/{}: {} ({})",
                i + 1,
                study.steps.len(),
                step.dir,
                match how {
                    Done::UpToDate => "complete, skipped",
                    Done::Redone => "settings changed, running again",
                    Done::Ran => "running",
                }
            ));
            if how == Done::Redone {
                std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            }
            // Listed before it runs, so the report of an interrupted study shows it as partial.
            run.record(&step.dir)?;
            if how != Done::UpToDate {
                execute(&step.spec, &dir, ctx)?;
            }
            done.push((step.dir.clone(), how));
        }
        Ok(done)
    });
    let report = crate::report::write(out)?;
    Ok(StudyOutcome { steps: result?.0, report })
}

/// Whether a step is up to date, to be redone, or to be run (see the module docs).
fn state(dir: &Path, spec: &Spec, force: bool) -> Result<Done> {
    let Some(manifest) = Manifest::read_value(dir)? else { return Ok(Done::Ran) };
    let same = manifest.get("spec") == Some(&spec.to_json());
    let complete = manifest.get("status").and_then(|s| s.as_str()) == Some("complete");
    Ok(match (force, same, complete) {
        (false, true, true) => Done::UpToDate,
        (false, true, false) => Done::Ran,
        _ => Done::Redone,
    })
}

fn execute(spec: &Spec, dir: &Path, ctx: &Context) -> Result<()> {
    match spec {
        Spec::Delta(s) => drop(sfn_scope::delta::run(s, dir, ctx)?),
        Spec::MergeSweep(s) => drop(sfn_scope::sweep::merge_sweep(s, dir, ctx)?),
        Spec::DestroySweep(s) => drop(sfn_scope::sweep::destroy_sweep(s, dir, ctx)?),
        Spec::Freeze(s) => drop(sfn_scope::freeze::run(s, dir, ctx)?),
        Spec::FreezeSweep(s) => drop(sfn_scope::freeze::sweep::run(s, dir, ctx)?),
        Spec::Probe(s) => drop(sfn_scope::probe::run(s, dir, ctx)?),
        Spec::Patch(s) => drop(sfn_scope::patch::run(s, dir, ctx)?),
        Spec::Eval(s) => drop(sfn_eval::spec::run(s, dir, ctx)?),
    }
    Ok(())
}
