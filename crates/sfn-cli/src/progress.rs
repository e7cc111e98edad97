//! Progress bars for long work, on stderr. indicatif draws nothing when stderr is not a terminal,
//! so logs and CI output stay clean.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `total` bytes showing throughput and time left.
pub fn bytes_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}
