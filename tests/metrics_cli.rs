//! `vidcap score` end to end: the numbers it prints against pycocoevalcap's (committed by
//! scripts/metrics_reference.py), both hypothesis formats, and its errors on bad input.
mod util;
use std::path::{Path, PathBuf};
use std::process::Command;
use util::vidcap;

use serde_json::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/metrics")
        .join(name)
}

fn score_json(refs: &Path, hyps: &Path) -> Value {
    let out = vidcap(&[
        "score",
        "--refs",
        refs.to_str().unwrap(),
        "--hyps",
        hyps.to_str().unwrap(),
        "--json",
        "--per-id",
        "--no-meteor",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_close(ours: &Value, theirs: &Value, what: &str) {
    let (a, b) = (ours.as_f64().unwrap(), theirs.as_f64().unwrap());
    assert!(
        (a - b).abs() <= 1e-6,
        "{what}: vidcap {a} pycocoevalcap {b}"
    );
}

fn assert_matches_reference(doc: &Value, expected: &Value) {
    // coco-caption's keys (pycocoevalcap's `CIDEr` is CIDEr-D); expected files use ours.
    for (key, theirs) in [
        ("Bleu_1", "bleu1"),
        ("Bleu_2", "bleu2"),
        ("Bleu_3", "bleu3"),
        ("Bleu_4", "bleu4"),
        ("ROUGE_L", "rouge_l"),
        ("CIDEr", "cider_d"),
    ] {
        assert_close(&doc[key], &expected["corpus"][theirs], key);
    }
    let per_id = expected["per_id"].as_object().unwrap();
    assert_eq!(doc["ids"].as_u64().unwrap() as usize, per_id.len());
    for (id, want) in per_id {
        let got = &doc["per_id"][id];
        assert_close(&got["Bleu_4"], &want["bleu4"], id);
        assert_close(&got["ROUGE_L"], &want["rouge_l"], id);
        assert_close(&got["CIDEr"], &want["cider_d"], id);
    }
}

fn expected(set: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(data(&format!("{set}_expected.json"))).unwrap())
        .unwrap()
}

#[test]
fn score_prints_pycocoevalcap_numbers() {
    let doc = score_json(&data("edge_refs.json"), &data("edge_hyps.json"));
    assert_matches_reference(&doc, &expected("edge"));
    assert!(doc.get("METEOR").is_none(), "--no-meteor leaves METEOR out");
}

#[test]
fn score_accepts_coco_results_list() {
    let dir = tempfile::tempdir().unwrap();
    let hyps: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(data("edge_hyps.json")).unwrap()).unwrap();
    let list: Vec<Value> = hyps
        .iter()
        .enumerate()
        .map(|(i, (id, caption))| {
            let key = if i % 2 == 0 { "video_id" } else { "image_id" };
            serde_json::json!({ key: id, "caption": caption, "score": 0.5 })
        })
        .collect();
    let path = dir.path().join("results.json");
    std::fs::write(&path, serde_json::to_string(&list).unwrap()).unwrap();
    let doc = score_json(&data("edge_refs.json"), &path);
    assert_matches_reference(&doc, &expected("edge"));
}

#[test]
fn score_accepts_coco_annotation_references() {
    let dir = tempfile::tempdir().unwrap();
    let refs: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(data("edge_refs.json")).unwrap()).unwrap();
    let mut annotations = Vec::new();
    for (id, captions) in &refs {
        for caption in captions.as_array().unwrap() {
            let n = annotations.len() + 1;
            annotations.push(serde_json::json!({"id": n, "image_id": id, "caption": caption}));
        }
    }
    let images: Vec<Value> = refs
        .keys()
        .map(|id| serde_json::json!({"id": id}))
        .collect();
    let coco = serde_json::json!({"info": {}, "images": images, "annotations": annotations});
    let path = dir.path().join("captions_val.json");
    std::fs::write(&path, serde_json::to_string(&coco).unwrap()).unwrap();
    let doc = score_json(&path, &data("edge_hyps.json"));
    assert_matches_reference(&doc, &expected("edge"));
}

#[test]
fn numeric_ids_in_results_match_string_ids_in_references() {
    let dir = tempfile::tempdir().unwrap();
    let refs = dir.path().join("refs.json");
    let hyps = dir.path().join("hyps.json");
    std::fs::write(&refs, r#"{"7": ["a dog runs"], "12": ["a cat sleeps"]}"#).unwrap();
    std::fs::write(&hyps, r#"[{"image_id": 7, "caption": "a dog runs"}, {"image_id": 12, "caption": "a cat sleeps"}]"#).unwrap();
    let doc = score_json(&refs, &hyps);
    assert_eq!(doc["ids"], 2);
    assert_close(&doc["Bleu_1"], &Value::from(1.0), "identical captions");
}

/// Runs `score` on the given files' contents; returns (exit code, stderr).
fn score_failure(refs: &str, hyps: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let (r, h) = (dir.path().join("refs.json"), dir.path().join("hyps.json"));
    std::fs::write(&r, refs).unwrap();
    std::fs::write(&h, hyps).unwrap();
    let out = vidcap(&[
        "score",
        "--refs",
        r.to_str().unwrap(),
        "--hyps",
        h.to_str().unwrap(),
        "--no-meteor",
    ]);
    assert!(out.stdout.is_empty(), "no partial output on failure");
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_input_is_a_clear_error() {
    let good_refs = r#"{"a": ["a dog runs"], "b": ["a cat sleeps"]}"#;
    let good_hyps = r#"{"a": "a dog", "b": "a cat"}"#;

    let (code, err) = score_failure("{\"a\": [\"a dog runs\"],\n \"b\": [\"x\" ", good_hyps);
    assert_eq!(code, 1);
    assert!(
        err.contains("refs.json") && err.contains("malformed JSON") && err.contains("line 2"),
        "{err}"
    );

    let (code, err) = score_failure(good_refs, r#"{"a": "a dog", "b": 3}"#);
    assert_eq!(code, 1);
    assert!(
        err.contains("hyps.json") && err.contains("line 1 column"),
        "{err}"
    );

    let (code, err) = score_failure(good_refs, r#"{"a": "a dog"}"#);
    assert_eq!(code, 1);
    assert!(
        err.contains("no hypothesis") && err.contains("\"b\""),
        "{err}"
    );

    let (code, err) = score_failure(good_refs, r#"{"a": "a dog", "b": "a cat", "c": "a bird"}"#);
    assert_eq!(code, 1);
    assert!(
        err.contains("no references") && err.contains("\"c\""),
        "{err}"
    );

    let (code, err) = score_failure(good_refs, r#"{"a": "a dog", "b": "  "}"#);
    assert_eq!(code, 1);
    assert!(
        err.contains("\"b\"") && err.contains("hypothesis is empty"),
        "{err}"
    );

    let (code, err) = score_failure(r#"{"a": ["a dog runs", ""], "b": ["a cat"]}"#, good_hyps);
    assert_eq!(code, 1);
    assert!(
        err.contains("\"a\"") && err.contains("reference 2 is empty"),
        "{err}"
    );

    let (code, err) = score_failure(
        good_refs,
        r#"[{"video_id": "a", "caption": "x"}, {"video_id": "a", "caption": "y"}]"#,
    );
    assert_eq!(code, 1);
    assert!(err.contains("appears twice"), "{err}");

    let (code, err) = score_failure(good_refs, r#"[{"caption": "x"}]"#);
    assert_eq!(code, 1);
    assert!(err.contains("entry 1") && err.contains("video_id"), "{err}");
}

#[test]
fn missing_file_and_usage_errors() {
    let out = vidcap(&[
        "score",
        "--refs",
        "/nonexistent/refs.json",
        "--hyps",
        "/nonexistent/hyps.json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/refs.json"));
    let out = vidcap(&["score", "--refs", "x.json"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn meteor_is_left_out_and_said_once_without_a_jar() {
    let out = Command::new(env!("CARGO_BIN_EXE_vidcap"))
        .args([
            "score",
            "--refs",
            data("edge_refs.json").to_str().unwrap(),
            "--hyps",
            data("edge_hyps.json").to_str().unwrap(),
        ])
        .env_remove("VIDCAP_METEOR_JAR")
        .env_remove("VIRTUAL_ENV")
        // no python3 with pycocoevalcap and no java on this PATH
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stdout.contains("METEOR"), "{stdout}");
    assert_eq!(stderr.matches("METEOR left out").count(), 1, "{stderr}");
    let explicit = vidcap(&[
        "score",
        "--refs",
        data("edge_refs.json").to_str().unwrap(),
        "--hyps",
        data("edge_hyps.json").to_str().unwrap(),
        "--meteor-jar",
        "/nonexistent/meteor-1.5.jar",
    ]);
    assert_eq!(
        explicit.status.code(),
        Some(1),
        "an explicit jar that is missing is an error"
    );
    let from_env = Command::new(env!("CARGO_BIN_EXE_vidcap"))
        .args([
            "score",
            "--refs",
            data("edge_refs.json").to_str().unwrap(),
            "--hyps",
            data("edge_hyps.json").to_str().unwrap(),
        ])
        .env("VIDCAP_METEOR_JAR", "/nonexistent/meteor-1.5.jar")
        .output()
        .unwrap();
    assert_eq!(
        from_env.status.code(),
        Some(1),
        "so is one named by $VIDCAP_METEOR_JAR"
    );
    assert!(String::from_utf8_lossy(&from_env.stderr).contains("/nonexistent/meteor-1.5.jar"));
}
