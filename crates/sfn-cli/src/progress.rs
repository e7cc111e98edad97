//! Progress bars for long work, on stderr: the CLI's `sfn_run::Progress`. indicatif draws nothing
//! when stderr is not a terminal, so logs and CI output stay clean; notes are printed either way.

use indicatif::{ProgressBar, ProgressStyle};
use sfn_run::{Context, Progress, Unit};
use std::sync::Mutex;
use std::time::Duration;

/// One bar at a time: each stage of a run replaces the previous stage's bar.
#[derive(Default)]
pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    /// A run context reporting to these bars, with this process's command line.
    pub fn context(&self) -> Context<'_> {
        Context { command: sfn_run::provenance::command_line(), progress: self }
    }

    fn with(&self, f: impl FnOnce(&ProgressBar)) {
        let mut guard = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        f(guard.get_or_insert_with(|| new_bar("", 0, Unit::Tasks)));
    }
}

fn new_bar(label: &str, total: u64, unit: Unit) -> ProgressBar {
    let template = match unit {
        Unit::Bytes => "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        Unit::Tasks => "{msg} [{bar:30}] {pos}/{len} tasks {elapsed_precise} eta {eta}",
        Unit::Steps => "{msg} [{bar:30}] {pos}/{len} steps {elapsed_precise} eta {eta}",
        Unit::Items => "{msg} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}",
    };
    let bar = ProgressBar::new(total);
    bar.set_style(ProgressStyle::with_template(template).expect("static template").progress_chars("=> "));
    bar.set_message(label.to_string());
    if unit != Unit::Bytes {
        // Tasks and steps can take minutes each: keep the clock moving in between.
        bar.enable_steady_tick(Duration::from_millis(500));
    }
    bar
}

impl Progress for Bars {
    fn stage(&self, label: &str, total: u64, unit: Unit) {
        let mut guard = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = guard.replace(new_bar(label, total, unit)) {
            old.finish_and_clear();
        }
    }

    fn advance(&self, n: u64) {
        self.with(|b| b.inc(n));
    }

    fn set(&self, done: u64, total: u64) {
        self.with(|b| {
            b.set_length(total);
            b.set_position(done);
        });
    }

    fn note(&self, line: &str) {
        let guard = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        match &*guard {
            Some(b) if !b.is_hidden() => b.println(line),
            _ => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            b.finish_and_clear();
        }
    }
}
