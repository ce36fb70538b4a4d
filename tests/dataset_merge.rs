//! `vidcap merge`: JSONL annotation files into one, checked by reading the result back as
//! plain JSON and through the dataset reader that `extract` and `train` use.
mod util;
use std::fs;
use std::path::Path;

use serde_json::Value;
use util::vidcap;
use vidcap::dataset::{DatasetOptions, Split, load_dataset};

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn records(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn merge_makes_paths_absolute_prefixes_ids_and_sets_splits() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    write(
        &a.join("annotations.jsonl"),
        concat!(
            r#"{"id": "c1", "video": "videos/c1.mp4", "captions": ["a red ball rolls"], "split": "train", "params": {"seed": 7}}"#,
            "\n",
            r#"{"id": "c2", "video": "videos/c2.mp4", "captions": ["a cat sits"], "split": "test"}"#,
            "\n"
        ),
    );
    write(
        &a.join("corpus.json"),
        r#"{"generator": "vidcap-synth 3", "seed": 1}"#,
    );
    write(
        &b.join("annotations.jsonl"),
        concat!(
            r#"{"id": "c1", "video": "c1.mp4", "start": 1.0, "end": 3.5, "captions": ["a dog runs"], "split": "val"}"#,
            "\n"
        ),
    );
    // The reader checks that videos exist; their content does not matter here.
    for video in [
        a.join("videos/c1.mp4"),
        a.join("videos/c2.mp4"),
        b.join("c1.mp4"),
    ] {
        write(&video, "");
    }
    let out = dir.path().join("merged/annotations.jsonl");
    let result = vidcap(&[
        "merge".as_ref(),
        out.as_os_str(),
        a.join("annotations.jsonl").as_os_str(),
        format!(
            "{},split=train,prefix=b_",
            b.join("annotations.jsonl").display()
        )
        .as_ref(),
        "--json".as_ref(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let summary: Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(summary["clips"], 3);
    assert_eq!(summary["splits"]["train"], 2);
    assert_eq!(summary["splits"]["test"], 1);

    let merged = records(&out);
    let ids: Vec<&str> = merged.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["c1", "c2", "b_c1"]);
    // Videos are absolute and point where the source's relative path pointed.
    let video = |i: usize| Path::new(merged[i]["video"].as_str().unwrap()).to_path_buf();
    assert!(video(0).is_absolute());
    assert_eq!(video(0), a.join("videos/c1.mp4"));
    assert_eq!(video(2), b.join("c1.mp4"));
    // Splits: kept, or forced by the source's option; other fields travel unchanged.
    assert_eq!(merged[1]["split"], "test");
    assert_eq!(merged[2]["split"], "train");
    assert_eq!(merged[0]["params"]["seed"], 7);
    assert_eq!(merged[2]["start"], 1.0);
    assert_eq!(merged[2]["captions"][0], "a dog runs");

    let corpus: Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("merged/corpus.json")).unwrap())
            .unwrap();
    assert_eq!(corpus["generator"], "vidcap-synth 3");
    assert_eq!(corpus["seed"], serde_json::json!([1]));
    assert_eq!(corpus["sources"][1]["id_prefix"], "b_");
    assert_eq!(corpus["splits"]["train"], 2);

    // The dataset reader of extract/train takes the merged file as it is.
    let ds = load_dataset(&out, &DatasetOptions::default()).unwrap();
    assert_eq!(ds.split(Split::Train).count(), 2);
    let clip = ds.split(Split::Train).find(|c| c.id == "b_c1").unwrap();
    assert_eq!(clip.video, b.join("c1.mp4"));
    assert_eq!((clip.start, clip.end), (Some(1.0), Some(3.5)));
}

#[test]
fn merge_refuses_colliding_ids_and_bad_records_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    write(
        &a,
        "{\"id\": \"x\", \"video\": \"x.mp4\", \"caption\": \"one\"}\n",
    );
    let out = dir.path().join("out/m.jsonl");
    let twice = vidcap(&[
        "merge".as_ref(),
        out.as_os_str(),
        a.as_os_str(),
        a.as_os_str(),
    ]);
    assert!(!twice.status.success());
    let err = String::from_utf8_lossy(&twice.stderr);
    assert!(
        err.contains("a.jsonl") && err.contains("line 1") && err.contains("twice"),
        "{err}"
    );
    assert!(!out.exists(), "no partial output");

    let bad = dir.path().join("bad.jsonl");
    write(
        &bad,
        "{\"id\": \"y\", \"video\": \"y.mp4\"}\n{\"id\": \"z\"}\n",
    );
    let broken = vidcap(&["merge".as_ref(), out.as_os_str(), bad.as_os_str()]);
    assert!(!broken.status.success());
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(err.contains("bad.jsonl") && err.contains("line 2"), "{err}");

    let option = vidcap(&[
        "merge".as_ref(),
        out.as_os_str(),
        format!("{},split=later", a.display()).as_ref(),
    ]);
    assert_eq!(
        option.status.code(),
        Some(2),
        "a bad option is a usage error"
    );
}
