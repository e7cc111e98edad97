//! Task files as they come: the real aime2024.jsonl layout loads as it is, and every kind of bad
//! input (empty file, malformed JSON, missing or mistyped fields, duplicate ids, unknown ids in
//! outputs, bad override levels) is a typed error whose message names the file and line.

use sfn_eval::generate::ReplayGenerator;
use sfn_eval::task::{FieldMap, LoadOptions, TaskKind, TaskSet};
use sfn_eval::{EvalError, Level, Overrides};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The real AIME 2024 file (a copy of the shared data set; see tests/fixtures/README.md).
fn aime_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aime2024.jsonl")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn load(path: &Path) -> Result<TaskSet, EvalError> {
    TaskSet::load(path, &LoadOptions::default())
}

#[test]
fn aime2024_loads_as_is_with_auto_detected_fields() {
    let set = load(&aime_path()).unwrap();
    assert_eq!(set.tasks.len(), 30);
    let t = &set.tasks[0];
    assert_eq!(t.id, "0");
    assert_eq!(t.answer.as_deref(), Some("204"));
    assert_eq!(t.kind, TaskKind::Reasoning);
    assert!(t.prompt.contains("Aya"));
    assert_eq!(set.resolved.id.as_deref(), Some("index"));
    assert_eq!(set.resolved.prompt.as_deref(), Some("origin_prompt"));
    assert_eq!(set.resolved.answer.as_deref(), Some("gold_answer"));
}

#[test]
fn explicit_field_mapping_matches_auto_detection_and_can_rename() {
    let fields = FieldMap::parse_assignments(&["id=index", "prompt=origin_prompt", "answer=gold_answer"]).unwrap();
    let explicit = TaskSet::load(&aime_path(), &LoadOptions { fields, default_kind: None }).unwrap();
    assert_eq!(explicit.tasks, load(&aime_path()).unwrap().tasks);

    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "q.jsonl", "{\"qid\": \"a\", \"text\": \"Hi there\"}\n");
    let fields = FieldMap::parse_assignments(&["id=qid", "prompt=text"]).unwrap();
    let set = TaskSet::load(&p, &LoadOptions { fields, default_kind: None }).unwrap();
    assert_eq!(set.tasks[0].prompt, "Hi there");
    assert_eq!(set.tasks[0].kind, TaskKind::Conversation, "no answer, no kind: conversation");

    let p = write(
        dir.path(),
        "noid.jsonl",
        "{\"question\": \"1+1?\", \"answer\": \"2\"}\n{\"question\": \"2+2?\", \"answer\": \"4\"}\n",
    );
    let fields = FieldMap::parse_assignments(&["id=@line"]).unwrap();
    let set = TaskSet::load(&p, &LoadOptions { fields, default_kind: None }).unwrap();
    assert_eq!(set.tasks[1].id, "2");
}

#[test]
fn empty_task_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for text in ["", "\n\n  \n"] {
        let p = write(dir.path(), "empty.jsonl", text);
        let err = load(&p).unwrap_err();
        assert!(matches!(err, EvalError::EmptyTaskFile { .. }), "{err}");
        assert!(err.to_string().contains("empty.jsonl: no tasks"), "{err}");
    }
}

#[test]
fn malformed_json_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "tasks.jsonl",
        "{\"id\": \"a\", \"prompt\": \"x\"}\n\n{\"id\": \"b\", \"prompt\": \"y\"\n{\"id\": \"c\", \"prompt\": \"z\"}\n",
    );
    let err = load(&p).unwrap_err();
    assert!(matches!(err, EvalError::MalformedJson { line: 3, .. }), "{err}");
    assert!(err.to_string().contains("tasks.jsonl:3: malformed JSON"), "{err}");

    let p = write(dir.path(), "arr.jsonl", "[1, 2]\n");
    assert!(load(&p).unwrap_err().to_string().contains("arr.jsonl:1: expected a JSON object, found an array"));
}

#[test]
fn missing_fields_name_the_field_the_line_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "t.jsonl", "{\"id\": \"a\", \"prompt\": \"x\"}\n{\"id\": \"b\", \"text\": \"y\"}\n");
    let err = load(&p).unwrap_err();
    assert!(matches!(err, EvalError::MissingField { line: 2, .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("t.jsonl:2: missing field `prompt`") && msg.contains("id, text"), "{msg}");

    let p = write(dir.path(), "noid.jsonl", "{\"prompt\": \"x\"}\n");
    let msg = load(&p).unwrap_err().to_string();
    assert!(msg.contains("missing field `id`") && msg.contains("--field id="), "{msg}");

    // An explicit mapping to a field that is not there names the input field.
    let fields = FieldMap::parse_assignments(&["prompt=question"]).unwrap();
    let msg = TaskSet::load(&aime_path(), &LoadOptions { fields, default_kind: None }).unwrap_err().to_string();
    assert!(msg.contains("aime2024.jsonl:1: missing field `question`"), "{msg}");
}

#[test]
fn mistyped_fields_duplicates_and_unknown_kinds_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "t.jsonl", "{\"id\": \"a\", \"prompt\": 5}\n");
    assert!(load(&p).unwrap_err().to_string().contains("t.jsonl:1: field `prompt` must be a string, found a number"));

    let p = write(
        dir.path(),
        "d.jsonl",
        "{\"id\": 1, \"prompt\": \"x\"}\n{\"id\": \"2\", \"prompt\": \"y\"}\n{\"id\": \"1\", \"prompt\": \"z\"}\n",
    );
    let err = load(&p).unwrap_err();
    assert!(matches!(err, EvalError::DuplicateId { line: 3, first_line: 1, .. }), "{err}");

    let p = write(dir.path(), "k.jsonl", "{\"id\": \"a\", \"prompt\": \"x\", \"kind\": \"poetry\"}\n");
    assert!(load(&p).unwrap_err().to_string().contains("unknown task kind `poetry`"));

    let p = dir.path().join("u.jsonl");
    std::fs::write(&p, b"{\"id\": \"a\", \"prompt\": \"x\"}\n\xff\xfe\n").unwrap();
    assert!(load(&p).unwrap_err().to_string().contains("u.jsonl:2: not valid UTF-8"));
}

#[test]
fn outputs_files_are_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    let ids: HashSet<&str> = ["0", "1"].into_iter().collect();
    let p = write(dir.path(), "o.jsonl", "{\"id\": 0, \"output\": \"a\"}\n{\"id\": 7, \"output\": \"b\"}\n");
    let err = ReplayGenerator::load(&p, &ids).unwrap_err();
    assert!(err.to_string().contains("o.jsonl:2: id `7` is not a task"), "{err}");
    let p = write(dir.path(), "o2.jsonl", "{\"id\": 0}\n");
    assert!(ReplayGenerator::load(&p, &ids).unwrap_err().to_string().contains("o2.jsonl:1: missing field `output`"));
    let p = write(dir.path(), "o3.jsonl", "");
    assert!(matches!(ReplayGenerator::load(&p, &ids).unwrap_err(), EvalError::EmptyFile { .. }));
}

#[test]
fn override_files_in_both_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "ov.json", "{\"0\": \"III\", \"1#2\": 4}");
    let o = Overrides::load(&p).unwrap();
    assert_eq!(o.get("0", 0), Some(Level::III));
    assert_eq!(o.get("1", 2), Some(Level::IV));
    assert_eq!(o.get("1", 0), None);
    let p = write(dir.path(), "ov.jsonl", "{\"id\": 5, \"level\": \"ii\"}\n{\"id\": 6, \"level\": \"V\"}\n");
    let err = Overrides::load(&p).unwrap_err();
    assert!(err.to_string().contains("ov.jsonl:2: unknown level `V`"), "{err}");
}
