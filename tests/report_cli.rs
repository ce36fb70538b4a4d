//! `vidcap report set`: edits of training_report.json, read back as plain JSON.
mod util;
use std::fs;

use serde_json::{Value, json};
use util::vidcap;

#[test]
fn set_creates_nested_keys_keeps_fields_and_leaves_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("training_report.json");
    fs::write(&report, r#"{"plan": {"epochs": 30}, "test": 5}"#).unwrap();
    let metrics = dir.path().join("metrics.json");
    fs::write(
        &metrics,
        r#"{"Bleu_4": 0.5, "CIDEr": 2.25, "per_id": {"a": 1}}"#,
    )
    .unwrap();
    let model = dir.path().to_str().unwrap();
    let at_metrics = format!("@{}", metrics.display());
    let set = |args: &[&str]| {
        let out = vidcap(&[&["report", "set", model][..], args].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    set(&["eval.fresh", &at_metrics, "--keep", "Bleu_4,CIDEr"]);
    set(&["eval.fresh.what", "\"seed 7\""]);
    let read: Value = serde_json::from_str(&fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        read,
        json!({"plan": {"epochs": 30}, "test": 5,
               "eval": {"fresh": {"Bleu_4": 0.5, "CIDEr": 2.25, "what": "seed 7"}}})
    );

    // Through a number is an error naming the report; the file stays as it was.
    let before = fs::read_to_string(&report).unwrap();
    let out = vidcap(&["report", "set", model, "test.x", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("training_report.json") && err.contains("not a JSON object"),
        "{err}"
    );
    let out = vidcap(&["report", "set", model, "note", "plain words"]);
    assert!(!out.status.success(), "a value that is not JSON is refused");
    assert_eq!(fs::read_to_string(&report).unwrap(), before);
}

#[test]
fn a_model_without_a_report_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = vidcap(&["report", "set", dir.path().to_str().unwrap(), "a", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("training_report.json"), "{err}");
}
