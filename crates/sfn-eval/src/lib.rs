//! `sfn-eval`: evaluating a language model: tasks in, graded and judged samples out.
//!
//! - [`task`]: task files (JSONL, auto-detected or mapped field names) and [`synth`] generators;
//! - [`prompt`]: "generate" (raw text) and "chat" (messages) prompts, suffixes, few-shot examples;
//! - [`decode`]: decoding settings (data for the runtime: sampling, n, stop strings, budget forcing);
//! - [`generate`]: the [`Generator`] trait a runtime implements, and [`ReplayGenerator`] for
//!   grading recorded outputs;
//! - [`answer`]: answer extraction, normalisation and comparison;
//! - [`judge`]: the I-IV output-level judge and manual overrides;
//! - [`metrics`]: accuracy with a bootstrap interval, pass@k, maj@k;
//! - [`results`] and [`run`]: the resumable results directory and the run loop with its summary;
//! - [`runtime`]: an sfn-model model as a [`Generator`] and [`ReferenceScorer`].
//!
//! Everything but [`runtime`] sees a model only through those two traits, so recorded outputs
//! (or another runtime) are graded by the same code.

pub mod answer;
pub mod decode;
pub mod error;
pub mod generate;
pub mod io;
pub mod judge;
pub mod metrics;
pub mod prompt;
pub mod results;
pub mod run;
pub mod runtime;
pub mod server;
pub mod spec;
pub mod synth;
pub mod task;

pub use answer::{
    answers_match, extract_answer, grade, grade_sample, normalize_answer, AnswerSource, Extracted, Grade,
};
pub use decode::{BudgetForcing, DecodeSettings};
pub use error::{EvalError, GenerateError, Result};
pub use generate::{Deliver, FinishReason, Generation, Generator, ReferenceScorer, ReplayGenerator, TokenCountKind};
pub use judge::{JudgeConfig, Level, Overrides, Signals, Verdict};
pub use prompt::{FewShot, Message, Prompt, PromptBody, PromptConfig, PromptMode, Role};
pub use results::{ResultsDir, ResumeReport, SampleRecord};
pub use run::{
    evaluate, grade_recorded, run_job, summarize, EvalConfig, EvalJob, EvalOutcome, RunInfo, SampleSource, Summary,
};
pub use runtime::ModelRunner;
pub use sfn_model::Sampling;
pub use spec::{EvalSettings, EvalSpec};
pub use task::{FieldMap, LoadOptions, Task, TaskKind, TaskSet};
