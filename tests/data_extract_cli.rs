//! `vidcap extract` end to end with the real encoder (needs `models/efficientnet-lite0`,
//! made by `make models`): exit codes, the JSON summary, resuming, cache contents.
use std::fs;
use std::path::Path;
use std::process::Command;

use vidcap::encoder::encoder_dir;

fn make_video(path: &Path, hue: u32) {
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=duration=2:size=128x96:rate=25")
        .args(["-vf", &format!("hue=h={hue}"), "-c:v", "mpeg4", "-q:v", "4"])
        .arg(path)
        .status()
        .expect("ffmpeg CLI");
    assert!(status.success());
}

fn extract(dataset: &Path, cache: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vidcap"))
        .arg("extract")
        .arg(dataset)
        .arg("--out")
        .arg(cache)
        .args(["--frames", "4", "--jobs", "2", "--json"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

#[test]
fn extract_cli_fills_the_cache_and_resumes() {
    let model = encoder_dir("efficientnet-lite0").expect("run `make models`");
    assert!(
        model.is_dir(),
        "run `make models` to create {}",
        model.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let videos = tmp.path().join("videos");
    fs::create_dir(&videos).unwrap();
    make_video(&videos.join("a.mp4"), 0);
    make_video(&videos.join("b.mp4"), 180);
    fs::write(videos.join("bad.mp4"), b"not a video").unwrap();
    let ann = tmp.path().join("annotations.jsonl");
    fs::write(
        &ann,
        [
            r#"{"video": "videos/a.mp4", "captions": ["a"], "split": "train"}"#,
            r#"{"video": "videos/b.mp4", "start": 0.5, "end": 1.5, "captions": ["b"], "split": "val"}"#,
            r#"{"video": "videos/bad.mp4", "captions": ["c"], "split": "train"}"#,
            r#"{"video": "videos/gone.mp4", "captions": ["d"], "split": "test"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let cache = tmp.path().join("cache");

    let (code, json, stderr) = extract(&ann, &cache, &[]);
    assert_eq!(code, 3, "some inputs failed: {stderr}");
    assert_eq!(json["extracted"], 2, "{json}");
    assert_eq!(json["up_to_date"], 0);
    assert_eq!(json["regions"], 5);
    assert_eq!(json["sampling"], "uniform:4");
    assert_eq!(
        json["encoder_sha256"],
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
    );
    assert_eq!(json["failed"][0]["clip"], "videos/bad.mp4");
    assert!(
        stderr.contains("bad.mp4"),
        "failure reported on stderr: {stderr}"
    );
    assert!(stderr.contains("gone.mp4"), "missing video named: {stderr}");
    assert_eq!(json["missing_videos"].as_array().unwrap().len(), 1);
    assert_eq!(fs::read_dir(&cache).unwrap().count(), 2);

    let (code, json, _) = extract(&ann, &cache, &["--split", "val"]);
    assert_eq!(code, 3);
    assert_eq!(
        (json["clips"].as_u64(), json["up_to_date"].as_u64()),
        (Some(1), Some(1))
    );

    // Only good clips: exit 0; a second encoder setting re-extracts.
    let good = tmp.path().join("good.jsonl");
    let text = fs::read_to_string(&ann).unwrap();
    fs::write(&good, text.lines().take(2).collect::<Vec<_>>().join("\n")).unwrap();
    let (code, json, stderr) = extract(&good, &cache, &["--no-grid"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        (json["extracted"].as_u64(), json["regions"].as_u64()),
        (Some(2), Some(1))
    );

    // Usage errors exit 2; a dataset without videos is fatal (1) and says why.
    let (code, _, _) = extract(&good, &cache, &["--frames", "0"]);
    assert_eq!(code, 2);
    fs::write(
        tmp.path().join("none.jsonl"),
        r#"{"video": "nope.mp4", "captions": ["x"]}"#,
    )
    .unwrap();
    let (code, _, stderr) = extract(&tmp.path().join("none.jsonl"), &cache, &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("none of the 1 annotated videos"),
        "{stderr}"
    );
}

#[test]
fn shards_fill_one_cache_that_equals_a_one_machine_run() {
    use vidcap::dataset::{DatasetOptions, Split, load_dataset};
    use vidcap::features::cache::{CacheKey, FeatureCache, read_clip_features, split_entries};
    let tmp = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for i in 0..6 {
        make_video(&tmp.path().join(format!("c{i}.mp4")), i * 60);
        lines.push(format!(
            r#"{{"id": "clip{i}", "video": "c{i}.mp4", "captions": ["x"], "split": "train"}}"#
        ));
    }
    let ann = tmp.path().join("annotations.jsonl");
    fs::write(&ann, lines.join("\n")).unwrap();
    let (whole, shared) = (tmp.path().join("whole"), tmp.path().join("shared"));
    let (code, json, stderr) = extract(&ann, &whole, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["extracted"], 6);
    // Machine 0 by flag, machine 1 as a Slurm array task with ids from 1.
    let (code, first, stderr) = extract(&ann, &shared, &["--shard", "0/2"]);
    assert_eq!(code, 0, "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_vidcap"))
        .args([
            "extract",
            ann.to_str().unwrap(),
            "--out",
            shared.to_str().unwrap(),
        ])
        .args(["--frames", "4", "--json"])
        .env("SLURM_ARRAY_TASK_ID", "2")
        .env("SLURM_ARRAY_TASK_MIN", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "2")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (first["shard"].as_str(), second["shard"].as_str()),
        (Some("0/2"), Some("1/2"))
    );
    let (a, b) = (
        first["clips"].as_u64().unwrap(),
        second["clips"].as_u64().unwrap(),
    );
    assert_eq!(a + b, 6);
    assert!(a > 0 && b > 0, "both shards get clips: {a} + {b}");
    assert_eq!(
        first["extracted"].as_u64().unwrap() + second["extracted"].as_u64().unwrap(),
        6
    );

    // The union holds the same entries, with the same features.
    let ds = load_dataset(&ann, &DatasetOptions::default()).unwrap();
    let sha = first["encoder_sha256"].as_str().unwrap();
    let key = CacheKey::new("efficientnet-lite0", sha, 4, true, true);
    let one = split_entries(
        &ds,
        &FeatureCache::open(&whole).unwrap(),
        &key,
        Split::Train,
    );
    let many = split_entries(
        &ds,
        &FeatureCache::open(&shared).unwrap(),
        &key,
        Split::Train,
    );
    assert_eq!((one.found.len(), many.found.len()), (6, 6));
    for ((c1, f1), (c2, f2)) in one.found.iter().zip(&many.found) {
        assert_eq!(c1.id, c2.id);
        assert_eq!(
            read_clip_features(&f1[0], 5).unwrap(),
            read_clip_features(&f2[0], 5).unwrap()
        );
    }
    // Shards that cannot exist are usage errors.
    for bad in ["2/2", "0/0", "1"] {
        let (code, _, stderr) = extract(&ann, &shared, &["--shard", bad]);
        assert_eq!(code, 2, "--shard {bad}: {stderr}");
    }
}

/// What a new user does with a dozen captioned clips of their own: `extract`, then `train`
/// with no tuning flag at all, then `eval` of the held-out test clips.
#[test]
fn a_dozen_real_clips_train_with_no_flags_and_caption_their_test_split() {
    let tmp = tempfile::tempdir().unwrap();
    // Four kinds of real decoded footage (FFmpeg's test sources), varied in size and phase.
    let kinds = [
        ("testsrc2", "a colourful test pattern with a moving counter"),
        ("mandelbrot", "a zoom into a glowing fractal"),
        ("smptebars", "colour bars on a screen"),
        (
            "life=mold=10:ratio=0.3",
            "cells grow and die on a dark field",
        ),
    ];
    let mut lines = Vec::new();
    for (k, (source, caption)) in kinds.iter().enumerate() {
        let (name, opts) = source.split_once('=').unwrap_or((source, ""));
        for i in 0..5 {
            let file = format!("k{k}_{i}.mp4");
            let size = format!("{}x{}", 128 + 16 * i, 96 + 12 * i);
            let input = format!(
                "{name}=size={size}:rate=25{}{opts}",
                if opts.is_empty() { "" } else { ":" }
            );
            let status = Command::new("ffmpeg")
                .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i", &input])
                .args(["-ss", &i.to_string(), "-t", "2", "-pix_fmt", "yuv420p"])
                .args(["-c:v", "mpeg4", "-q:v", "4"])
                .arg(tmp.path().join(&file))
                .status()
                .expect("ffmpeg CLI");
            assert!(status.success());
            let split = ["train", "train", "train", "val", "test"][i];
            lines.push(
                serde_json::json!({"video": file, "captions": [caption], "split": split})
                    .to_string(),
            );
        }
    }
    let ann = tmp.path().join("annotations.jsonl");
    fs::write(&ann, lines.join("\n")).unwrap();
    let vidcap = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_vidcap"))
            .args(args)
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    vidcap(&["-q", "extract", "annotations.jsonl", "--out", "features"]);
    let summary = vidcap(&["train", "annotations.jsonl", "--out", "model"]);
    assert!(summary.contains("on 12 clips"), "{summary}");
    let metrics: serde_json::Value = serde_json::from_str(&vidcap(&[
        "-q",
        "eval",
        "annotations.jsonl",
        "--model",
        "model",
        "--no-meteor",
        "--json",
    ]))
    .unwrap();
    assert_eq!(metrics["ids"], 4);
    let bleu4 = metrics["Bleu_4"].as_f64().unwrap();
    assert!(bleu4 >= 0.9, "test BLEU-4 {bleu4}: {metrics}");
}
