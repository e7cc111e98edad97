//! Saving a figure into a run directory: SVG + PNG drawn by sfn-report, listed in run.json.

use crate::error::{Error, Result};
use sfn_run::RunDir;
use std::path::PathBuf;

/// Draw `fig` as `<stem>.svg` and `<stem>.png` in the run directory; returns both paths.
pub fn save(run: &mut RunDir, fig: &impl sfn_report::Figure, stem: &str) -> Result<Vec<PathBuf>> {
    let path = run.join(stem);
    let written = sfn_report::save(fig, &path).map_err(|e| Error::Figure { path: path.clone(), msg: e.to_string() })?;
    for p in &written {
        run.record(&p.file_name().expect("figures have names").to_string_lossy())?;
    }
    Ok(written)
}
