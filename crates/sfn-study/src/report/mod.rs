//! `sfn report DIR`: DIR/index.html, one static page built from the results files of an sfn run
//! directory alone (a study, the lab, or a single delta, sweep, freeze or evaluation run).
//!
//! The page: the findings (the lab's verdicts) at the top, then one section per stethoscope —
//! delta (heatmaps, module bars, histogram grid, module table), merge, freeze and destruction
//! (tables with accuracy, intervals, level distributions and example outputs per level, folded;
//! loss curves), evaluations, activations — and the metadata of every run read (inputs with
//! fingerprints, versions, seeds, command lines). Figures are the runs' own SVG files, inlined
//! (their element ids are already unique per figure); no script, font or file outside the page
//! is referenced, so it opens from file:// and prints. A section with no results says "not run";
//! a partial or failed run says so, with its error.
//!
//! `page` reads the directory into the page's data; the template (report.html, minijinja) lays it
//! out.

mod page;

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

pub const INDEX: &str = "index.html";

const TEMPLATE: &str = include_str!("report.html");

/// Write DIR/index.html (atomically) and return its path.
pub fn write(dir: &Path) -> Result<PathBuf> {
    let html = render(dir)?;
    let path = dir.join(INDEX);
    sfn_run::write_atomic(&path, html.as_bytes())?;
    Ok(path)
}

/// The page of `dir`, as HTML.
pub fn render(dir: &Path) -> Result<String> {
    if !dir.join(sfn_run::rundir::RUN_FILE).is_file() {
        return Err(Error::Invalid {
            path: dir.to_path_buf(),
            msg:
                "has no run.json: not an sfn results directory (give the -o directory of an sfn command, study or lab)"
                    .into(),
        });
    }
    let page = page::read(dir)?;
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("report.html", TEMPLATE)?;
    Ok(env.get_template("report.html")?.render(&page)?)
}
