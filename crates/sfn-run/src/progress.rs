//! How library calls report progress: through a `Progress` the caller passes in (the CLI draws
//! progress bars with it; tests and studies pass `Silent`). Libraries never print.
//!
//! A long call announces each stage with `stage` (a label, a total and its unit), then advances it;
//! stages of one call follow each other (a sweep: one per variant).

/// What a stage counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Tasks,
    Steps,
    Items,
}

pub trait Progress: Sync {
    /// A new stage begins: `total` units of `unit` (0 when unknown yet).
    fn stage(&self, _label: &str, _total: u64, _unit: Unit) {}
    /// `n` more units are done (callable from any thread).
    fn advance(&self, _n: u64) {}
    /// `done` of `total` units are done.
    fn set(&self, _done: u64, _total: u64) {}
    /// A line worth showing between the bars (resume counts, a trainable-parameter report).
    fn note(&self, _line: &str) {}
    /// The last stage is over.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}

/// What every entry point (one per command: delta, merge, eval, …) is given besides its spec and
/// output directory.
pub struct Context<'a> {
    /// The command line that asked for the run, recorded in provenance.
    pub command: Vec<String>,
    pub progress: &'a dyn Progress,
}

impl Context<'static> {
    /// This process's command line, reporting nothing (tests, library users).
    pub fn quiet() -> Context<'static> {
        Context { command: crate::provenance::command_line(), progress: &Silent }
    }
}
