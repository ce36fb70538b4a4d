//! `vidcap caption` and `vidcap batch` end to end: output formats checked by FFmpeg's own
//! subtitle demuxers, bad inputs as error records with exit code 3, kill -9 and resume,
//! and shards that cover every input exactly once. The decoder here has random weights
//! (these tests are about the pipeline, not caption quality); the encoder is the real one.
mod util;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::{VIDCAP, vidcap};

use vidcap::decoder::{Arch, CaptionModel, DecoderConfig};
use vidcap::text::Vocab;

fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg must be installed");
    assert!(status.success(), "ffmpeg {args:?} failed");
}

fn make_clip(path: &Path, source: &str, seconds: u32) {
    let input = format!("{source}=size=160x120:rate=10:duration={seconds}");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &input,
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        path.to_str().unwrap(),
    ]);
}

/// A decoder with random weights over the real encoder's features (5 regions of 1280).
fn random_decoder(dir: &Path) -> PathBuf {
    let captions = [
        "a red ball moves left",
        "a dog runs across a field",
        "the camera pans right slowly",
    ];
    let vocab = Vocab::build(captions.iter().copied(), 1);
    let config = DecoderConfig {
        arch: Arch::Attention,
        encoder: "efficientnet-lite0".into(),
        regions: 5,
        feat_dim: 1280,
        motion: false,
        hidden: 24,
        embed: 12,
        att_dim: 12,
        vocab_size: vocab.len(),
        max_len: 6,
        dropout: 0.0,
        longest_caption: None,
    };
    let model_dir = dir.join("decoder");
    CaptionModel::new(config, vocab, 7)
        .unwrap()
        .save(&model_dir)
        .unwrap();
    model_dir
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

struct Library {
    _dir: tempfile::TempDir,
    root: PathBuf,
    model: PathBuf,
    good: Vec<PathBuf>,
    bad: Vec<PathBuf>,
}

fn library(good_count: usize) -> Library {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("footage");
    fs::create_dir_all(root.join("day2")).unwrap();
    let sources = [
        "testsrc2",
        "smptebars",
        "rgbtestsrc",
        "smptehdbars",
        "testsrc",
    ];
    let good: Vec<PathBuf> = (0..good_count)
        .map(|i| {
            let path = root
                .join(if i % 2 == 0 { "" } else { "day2" })
                .join(format!("clip{i}.mp4"));
            make_clip(&path, sources[i % sources.len()], 2);
            path
        })
        .collect();
    let text = root.join("notes.mp4");
    fs::write(&text, "this is not a video\n").unwrap();
    let truncated = root.join("day2/cut.mp4");
    let bytes = fs::read(&good[0]).unwrap();
    fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let empty = root.join("empty.mkv");
    fs::write(&empty, b"").unwrap();
    let model = random_decoder(dir.path());
    Library {
        root,
        model,
        good,
        bad: vec![text, truncated, empty],
        _dir: dir,
    }
}

#[test]
fn subtitles_parse_in_ffmpeg_with_the_window_times() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("six.mp4");
    make_clip(&video, "testsrc2", 6);
    let model = random_decoder(dir.path());
    for (format, ext) in [("srt", "srt"), ("vtt", "vtt")] {
        let out = vidcap(&[
            "caption",
            video.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--segments",
            "2",
            "--format",
            format,
            "--frames",
            "4",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = dir.path().join(format!("out.{ext}"));
        fs::write(&file, &out.stdout).unwrap();
        // FFmpeg's subtitle demuxer is the independent reader of the file.
        let probe = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_packets",
                "-of",
                "json",
                file.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            probe.status.success(),
            "ffprobe rejects our {format}: {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
        let starts: Vec<f64> = json["packets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pts_time"].as_str().unwrap().parse().unwrap())
            .collect();
        assert_eq!(starts, [0.0, 2.0, 4.0], "{format} cue starts");
    }
}

#[test]
fn caption_json_and_contact_sheet() {
    let lib = library(1);
    let sheet = lib.root.join("sheet.png");
    let out = vidcap(&[
        "caption",
        lib.good[0].to_str().unwrap(),
        "--model",
        lib.model.to_str().unwrap(),
        "--json",
        "--frames",
        "6",
        "--sheet",
        sheet.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let segments = json[0]["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 1);
    assert!((segments[0]["end"].as_f64().unwrap() - 2.0).abs() < 0.01);
    let image = image::open(&sheet).unwrap();
    assert!(
        image.width() > 400 && image.height() > 150,
        "{}x{}",
        image.width(),
        image.height()
    );
    // One bad input alone is a fatal error naming it.
    let out = vidcap(&[
        "caption",
        lib.bad[0].to_str().unwrap(),
        "--model",
        lib.model.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("notes.mp4"), "{stderr}");
}

#[test]
fn batch_records_every_input_and_exits_3_on_failures() {
    let lib = library(3);
    let results = lib.root.parent().unwrap().join("results.jsonl");
    let out = vidcap(&[
        "batch",
        lib.root.to_str().unwrap(),
        "--out",
        results.to_str().unwrap(),
        "--model",
        lib.model.to_str().unwrap(),
        "--frames",
        "4",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = lines(&results);
    let by_video: BTreeMap<String, &serde_json::Value> = records
        .iter()
        .map(|r| (r["video"].as_str().unwrap().to_string(), r))
        .collect();
    assert_eq!(records.len(), by_video.len(), "duplicates in {records:?}");
    for good in &lib.good {
        let r = by_video[good.to_str().unwrap()];
        assert!(r["error"].is_null() && r["caption"].is_string(), "{r}");
    }
    // notes.mp4 and cut.mp4 are found by extension, empty.mkv too; each is an error record.
    for bad in &lib.bad {
        let r = by_video[bad.to_str().unwrap()];
        assert!(r["error"].as_str().is_some_and(|e| !e.is_empty()), "{r}");
    }
    assert_eq!(records.len(), lib.good.len() + lib.bad.len());
    // Running again without --resume must not clobber the results.
    let again = vidcap(&[
        "batch",
        lib.root.to_str().unwrap(),
        "--out",
        results.to_str().unwrap(),
        "--model",
        lib.model.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(lines(&results).len(), records.len());
}

#[test]
fn kill_and_resume_loses_and_duplicates_nothing() {
    let lib = library(8);
    let model = lib.model.to_str().unwrap();
    let root = lib.root.to_str().unwrap();
    let reference = lib.root.parent().unwrap().join("reference.jsonl");
    let out = vidcap(&[
        "batch",
        root,
        "--out",
        reference.to_str().unwrap(),
        "--model",
        model,
        "--jobs",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(3));

    let results = lib.root.parent().unwrap().join("results.jsonl");
    let mut child = Command::new(VIDCAP)
        .args([
            "batch",
            root,
            "--out",
            results.to_str().unwrap(),
            "--model",
            model,
            "--jobs",
            "1",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while fs::read_to_string(&results)
        .map(|t| t.lines().count())
        .unwrap_or(0)
        < 3
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = fs::read_to_string(&results).unwrap().lines().count();
    assert!(
        before < lib.good.len() + lib.bad.len(),
        "the run finished before it could be killed"
    );

    let out = vidcap(&[
        "batch",
        root,
        "--out",
        results.to_str().unwrap(),
        "--model",
        model,
        "--resume",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = |r: &serde_json::Value| {
        (
            r["video"].as_str().unwrap().to_string(),
            r["caption"].to_string(),
            r["error"].is_null(),
        )
    };
    let mut resumed: Vec<_> = lines(&results).iter().map(key).collect();
    let mut uninterrupted: Vec<_> = lines(&reference).iter().map(key).collect();
    resumed.sort();
    uninterrupted.sort();
    assert_eq!(resumed, uninterrupted);
}

#[test]
fn shards_cover_every_input_exactly_once() {
    let lib = library(5);
    let mut seen = Vec::new();
    for index in 0..3 {
        let out_path = lib
            .root
            .parent()
            .unwrap()
            .join(format!("shard{index}.jsonl"));
        let shard = format!("{index}/3");
        let out = vidcap(&[
            "batch",
            lib.root.to_str().unwrap(),
            "--out",
            out_path.to_str().unwrap(),
            "--model",
            lib.model.to_str().unwrap(),
            "--shard",
            &shard,
            "--frames",
            "2",
        ]);
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        seen.extend(
            lines(&out_path)
                .into_iter()
                .map(|r| r["video"].as_str().unwrap().to_string()),
        );
    }
    // The same split through the Slurm variables gives the same shard.
    let slurm_out = lib.root.parent().unwrap().join("slurm1.jsonl");
    let out = Command::new(VIDCAP)
        .args([
            "batch",
            lib.root.to_str().unwrap(),
            "--out",
            slurm_out.to_str().unwrap(),
            "--model",
            lib.model.to_str().unwrap(),
            "--frames",
            "2",
        ])
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 3)));
    let shard1 = lib.root.parent().unwrap().join("shard1.jsonl");
    let videos = |p: &Path| {
        lines(p)
            .into_iter()
            .map(|r| r["video"].as_str().unwrap().to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(videos(&slurm_out), videos(&shard1));

    seen.sort();
    let mut all: Vec<String> = lib
        .good
        .iter()
        .chain(&lib.bad)
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    all.sort();
    assert_eq!(seen, all);
}
