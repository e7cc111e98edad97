//! What the commands print once their library call returns: the evaluation table (or
//! summary.json), resume counts, and what an edit wrote. Printing only; the work is done.

use anyhow::Result;
use sfn_eval::EvalOutcome;
use sfn_scope::edit::EditOutcome;
use std::path::Path;

/// Resume counts on stderr, then the table (or summary.json with `json`) on stdout.
pub fn print_eval(outcome: &EvalOutcome, out_dir: &Path, json: bool) -> Result<()> {
    if outcome.resume.kept_tasks > 0 || outcome.resume.dropped_lines > 0 {
        eprintln!(
            "resumed: {} task(s) already done, {} incomplete line(s) dropped",
            outcome.resume.kept_tasks, outcome.resume.dropped_lines
        );
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome.summary)?);
    } else {
        print!("{}", outcome.summary.table());
        for note in &outcome.summary.notes {
            println!("note: {note}");
        }
    }
    eprintln!(
        "wrote {} and {}",
        out_dir.join(sfn_eval::results::SAMPLES_FILE).display(),
        outcome.summary_path.display()
    );
    Ok(())
}

/// What a merge or destruction wrote.
pub fn print_edit(outcome: &EditOutcome) {
    if let Some(w) = &outcome.written {
        eprintln!(
            "wrote {} ({} tensors, {} edited, {} shard(s))",
            w.dir.display(),
            outcome.tensors,
            outcome.edited_tensors,
            w.shards.len()
        );
    }
}
