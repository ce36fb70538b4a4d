//! `vidcap train` → `vidcap eval` → `vidcap score` end to end on a tiny learnable dataset
//! whose features are written into the cache directly (no encoder, no decoding), and the
//! errors when features are missing.
mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{Device, Tensor};
use serde_json::Value;
use vidcap::dataset::{DatasetOptions, load_dataset};
use vidcap::features::cache::{CacheKey, FeatureCache};

const ENCODER_SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const FRAMES: usize = 4;
const DIM: usize = 12;

/// Three kinds of clip, each with two reference phrasings; the features say the kind.
const KINDS: [[&str; 2]; 3] = [
    ["a red ball rolls to the left", "a red ball is rolling left"],
    ["a blue cube slides up", "a blue cube moves upward"],
    [
        "a green cat jumps over a fence",
        "a green cat leaps over a fence",
    ],
];

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    dataset: PathBuf,
    cache: PathBuf,
    models: PathBuf,
}

/// xorshift noise, so the fixture repeats exactly.
struct Noise(u64);
impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }
}

/// (id, kind, split) of every clip: 8 train, 3 val, 6 test per the three kinds.
fn clips() -> Vec<(String, usize, &'static str)> {
    let mut out = Vec::new();
    for kind in 0..KINDS.len() {
        for i in 0..8 {
            out.push((format!("k{kind}-train{i}"), kind, "train"));
        }
        out.push((format!("k{kind}-val"), kind, "val"));
        for i in 0..2 {
            out.push((format!("k{kind}-test{i}"), kind, "test"));
        }
    }
    out
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    // The cache key needs only the encoder's weights hash, which its config records.
    let models = root.join("models");
    fs::create_dir_all(models.join("efficientnet-lite0")).unwrap();
    fs::write(
        models.join("efficientnet-lite0/config.json"),
        format!(r#"{{"provenance": {{"sha256": "{ENCODER_SHA}"}}}}"#),
    )
    .unwrap();
    // Training never decodes video; the files only have to exist (the cache stamps them).
    fs::create_dir_all(root.join("videos")).unwrap();
    let mut lines = String::new();
    for (id, kind, split) in clips() {
        fs::write(root.join(format!("videos/{id}.mp4")), id.as_bytes()).unwrap();
        lines.push_str(
            &serde_json::json!({
                "id": id,
                "video": format!("videos/{id}.mp4"),
                "captions": KINDS[kind],
                "split": split,
            })
            .to_string(),
        );
        lines.push('\n');
    }
    let dataset = root.join("annotations.jsonl");
    fs::write(&dataset, lines).unwrap();

    let cache_dir = root.join("cache");
    let cache = FeatureCache::open(&cache_dir).unwrap();
    let key = CacheKey::new("efficientnet-lite0", ENCODER_SHA, FRAMES, true, true);
    let ds = load_dataset(&dataset, &DatasetOptions::default()).unwrap();
    let kind_of = |id: &str| id[1..2].parse::<usize>().unwrap();
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    for clip in &ds.clips {
        let kind = kind_of(&clip.id);
        let (t, r) = (FRAMES, key.regions);
        // Each kind lights up its own block of feature dimensions, under noise.
        let values: Vec<f32> = (0..t * r * DIM)
            .map(|i| {
                let d = i % DIM;
                let signal = if d / 4 == kind { 1.0 } else { 0.0 };
                signal + 0.3 * noise.next()
            })
            .collect();
        let features = Tensor::from_vec(values, (t, r, DIM), &Device::Cpu).unwrap();
        let stamps: Vec<f64> = (0..t).map(|i| i as f64).collect();
        cache.put(clip, &key, &features, &stamps).unwrap();
    }
    Fixture {
        _tmp: tmp,
        root,
        dataset,
        cache: cache_dir,
        models,
    }
}

/// `vidcap ARGS` with the fixture's models folder as the installed models.
fn vidcap(fx: &Fixture, args: &[&str]) -> Output {
    util::vidcap_cmd()
        .args(args)
        .env("VIDCAP_MODELS", &fx.models)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn train(fx: &Fixture, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "-q",
        "--seed",
        "3",
        "train",
        s(&fx.dataset),
        "--out",
        s(out),
        "--cache",
        s(&fx.cache),
        "--frames",
        "4",
        "--hidden",
        "32",
        "--embed",
        "16",
        "--att-dim",
        "16",
        "--batch-size",
        "8",
        "--lr",
        "0.01",
        "--warmup-steps",
        "5",
        "--min-count",
        "1",
        "--dropout",
        "0",
        "--label-smoothing",
        "0",
        "--patience",
        "0",
        "--json",
    ];
    args.extend_from_slice(extra);
    vidcap(fx, &args)
}

#[test]
fn train_eval_score_agree_and_learn() {
    let fx = fixture();
    let model = fx.root.join("model");
    let report = ok(&train(&fx, &model, &["--epochs", "40"]));

    // The training report on disk is what was printed, and records the run.
    let on_disk: Value =
        serde_json::from_slice(&fs::read(model.join("training_report.json")).unwrap()).unwrap();
    assert_eq!(on_disk, report);
    assert_eq!(report["seed"], 3);
    assert_eq!(report["dataset"]["clips"]["train"], 24);
    assert_eq!(report["dataset"]["clips"]["val"], 3);
    assert_eq!(report["dataset"]["clips"]["test"], 6);
    assert_eq!(report["features"]["sampling"], "uniform:4");
    assert_eq!(report["features"]["cache_regions"], 5);
    assert!(report["command"].as_str().unwrap().contains(" train "));
    let best = report["best_epoch"].as_u64().expect("a best epoch");
    assert!((1..=40).contains(&best), "best epoch {best}");
    // Three validation clips are too few for CIDEr-D: the validation loss picks the epoch.
    assert_eq!(report["signal"], "val-loss");
    assert!(report["best_value"].as_f64().unwrap() > 0.0);
    assert!(report["val_cider_d"].is_null());
    for file in [
        "config.json",
        "model.safetensors",
        "vocab.json",
        "train_log.jsonl",
        "train_plot.svg",
    ] {
        assert!(model.join(file).is_file(), "{file} missing");
    }

    let eval_dir = fx.root.join("eval");
    let metrics = ok(&vidcap(
        &fx,
        &[
            "-q",
            "eval",
            s(&fx.dataset),
            "--model",
            s(&model),
            "--cache",
            s(&fx.cache),
            "--frames",
            "4",
            "--split",
            "test",
            "--no-meteor",
            "--out",
            s(&eval_dir),
            "--json",
        ],
    ));
    assert_eq!(metrics["ids"], 6);
    // The right captions are learnable from the features: unseen test clips of each kind
    // get their kind's caption, which a model that ignored the features could not.
    let cider = metrics["CIDEr"].as_f64().unwrap();
    assert!(cider > 2.0, "test CIDEr-D {cider}: {metrics}");
    let predictions = fs::read_to_string(eval_dir.join("predictions.jsonl")).unwrap();
    let lines: Vec<Value> = predictions
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    for line in &lines {
        let id = line["id"].as_str().unwrap();
        let kind: usize = id[1..2].parse().unwrap();
        assert_eq!(line["references"], serde_json::json!(KINDS[kind]));
        assert!(
            line["video"]
                .as_str()
                .unwrap()
                .ends_with(&format!("{id}.mp4"))
        );
        assert!(!line["hypothesis"].as_str().unwrap().is_empty());
    }
    let on_disk: Value =
        serde_json::from_slice(&fs::read(eval_dir.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(on_disk, metrics);

    // `vidcap score` on the written references and coco results gives the same numbers.
    let scored = ok(&vidcap(
        &fx,
        &[
            "-q",
            "score",
            "--refs",
            s(&eval_dir.join("refs.json")),
            "--hyps",
            s(&eval_dir.join("coco_results.json")),
            "--no-meteor",
            "--json",
        ],
    ));
    for field in [
        "ids", "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr",
    ] {
        assert!(metrics[field].is_number(), "{field} in {metrics}");
        assert_eq!(scored[field], metrics[field], "{field}");
    }
    // pycocotools reads the references and loads the results against them, as the
    // coco-caption evaluation does.
    let loaded = pycocotools_load(
        &eval_dir.join("coco_refs.json"),
        &eval_dir.join("coco_results.json"),
    );
    assert_eq!(loaded["images"], 6, "{loaded}");
    assert_eq!(loaded["results"], 6, "{loaded}");
    assert_eq!(loaded["references"], 6 * 2, "{loaded}");
    for line in &lines {
        let id = line["id"].as_str().unwrap();
        assert_eq!(loaded["captions"][id], line["hypothesis"], "{id}");
    }
}

/// pycocotools' `COCO(refs).loadRes(results)`: counts and each id's loaded caption.
fn pycocotools_load(refs: &Path, results: &Path) -> Value {
    let cache = std::env::var_os("VIDCAP_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/vidcap"));
    let python = cache.join("test-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/fetch_test_python.sh (`make test` does)",
        python.display()
    );
    let script = r#"
import json, sys, contextlib, io
from pycocotools.coco import COCO
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(sys.argv[1])
    res = gt.loadRes(sys.argv[2])
print(json.dumps({
    "images": len(gt.getImgIds()),
    "references": len(gt.getAnnIds()),
    "results": len(res.getAnnIds()),
    "captions": {a["image_id"]: a["caption"] for a in res.dataset["annotations"]},
}))
"#;
    let out = Command::new(&python)
        .args(["-c", script, s(refs), s(results)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pycocotools: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn global_pool_meanpool_variant_trains_from_the_grid_cache() {
    let fx = fixture();
    let model = fx.root.join("meanpool");
    let report = ok(&train(
        &fx,
        &model,
        &["--epochs", "2", "--arch", "meanpool", "--regions", "1"],
    ));
    assert_eq!(report["features"]["decoder_regions"], 1);
    assert_eq!(report["epochs_done"], 2);
    let config: Value =
        serde_json::from_slice(&fs::read(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["regions"], 1);
    assert_eq!(config["arch"], "meanpool");
}

fn fails_with(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    }
}

#[test]
fn missing_features_are_errors_that_say_how_to_fix_them() {
    let fx = fixture();
    let ds = load_dataset(&fx.dataset, &DatasetOptions::default()).unwrap();
    let cache = FeatureCache::open(&fx.cache).unwrap();
    let path_of = |id: &str| cache.path_for(ds.clips.iter().find(|c| c.id == id).unwrap());

    // A train clip without features stops training before it starts.
    fs::remove_file(path_of("k1-train3")).unwrap();
    let model = fx.root.join("model");
    fails_with(
        &train(&fx, &model, &["--epochs", "1"]),
        &[
            "1 of the 24 train clips",
            "k1-train3 (not cached)",
            "vidcap extract",
        ],
    );
    assert!(!model.join("model.safetensors").exists());

    // Another layout than the one extracted: every clip is stale, and the fix names it.
    let out = train(
        &fx,
        &model,
        &["--epochs", "1", "--no-grid", "--regions", "1"],
    );
    fails_with(&out, &["24 of the 24 train clips", "stale", "--no-grid"]);

    // A cache directory that does not exist.
    let none = fx.root.join("no-cache");
    let out = vidcap(
        &fx,
        &[
            "train",
            s(&fx.dataset),
            "--out",
            s(&model),
            "--cache",
            s(&none),
        ],
    );
    fails_with(&out, &["does not exist", "vidcap extract"]);
    assert!(!none.exists());
}

#[test]
fn eval_names_the_test_clip_that_is_not_cached() {
    let fx = fixture();
    let model = fx.root.join("model");
    ok(&train(&fx, &model, &["--epochs", "1"]));
    let ds = load_dataset(&fx.dataset, &DatasetOptions::default()).unwrap();
    let cache = FeatureCache::open(&fx.cache).unwrap();
    let clip = ds.clips.iter().find(|c| c.id == "k2-test1").unwrap();
    fs::remove_file(cache.path_for(clip)).unwrap();
    let out = vidcap(
        &fx,
        &[
            "eval",
            s(&fx.dataset),
            "--model",
            s(&model),
            "--cache",
            s(&fx.cache),
            "--frames",
            "4",
            "--no-meteor",
        ],
    );
    fails_with(
        &out,
        &[
            "1 of the 6 test clips",
            "k2-test1 (not cached)",
            "vidcap extract",
        ],
    );
    assert!(!model.join("eval-test").exists());
}

/// `vidcap train` with only the flags that name the data (no tuning at all).
fn train_plain(fx: &Fixture, dataset: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "--seed",
        "1",
        "train",
        s(dataset),
        "--out",
        s(out),
        "--cache",
        s(&fx.cache),
        "--frames",
        "4",
    ];
    args.extend_from_slice(extra);
    vidcap(fx, &args)
}

fn report(model: &Path) -> Value {
    serde_json::from_slice(&fs::read(model.join("training_report.json")).unwrap()).unwrap()
}

/// BLEU-4 of greedy captions of the test split.
fn test_bleu4(fx: &Fixture, dataset: &Path, model: &Path) -> f64 {
    let metrics = ok(&vidcap(
        fx,
        &[
            "-q",
            "eval",
            s(dataset),
            "--model",
            s(model),
            "--cache",
            s(&fx.cache),
            "--frames",
            "4",
            "--beam",
            "1",
            "--no-meteor",
            "--json",
        ],
    ));
    metrics["Bleu_4"].as_f64().unwrap()
}

/// The fixture's annotations cut to `per_kind` train clips and `val` val clips of each
/// kind (its cache entries still apply: they are keyed by video and window).
fn subset(fx: &Fixture, name: &str, per_kind: usize, val: bool) -> PathBuf {
    let text = fs::read_to_string(&fx.dataset).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let id = v["id"].as_str().unwrap();
            match v["split"].as_str().unwrap() {
                "train" => id[id.len() - 1..].parse::<usize>().unwrap() < per_kind,
                "val" => val && id.starts_with("k0"),
                _ => true,
            }
        })
        .collect();
    let path = fx.root.join(name);
    fs::write(&path, kept.join("\n")).unwrap();
    path
}

#[test]
fn a_small_set_trains_with_no_flags_and_says_why_it_stopped() {
    let fx = fixture();
    let model = fx.root.join("model");
    // Piped: nothing but the summary.
    let out = train_plain(&fx, &fx.dataset, &model, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Piped, stderr holds only warnings (3 validation clips are too few to calibrate a
    // familiarity summary), never progress.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .all(|l| l.starts_with("vidcap: warning: ") && l.contains("familiarity")),
        "{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].starts_with("trained ") && lines[0].contains("on 24 clips (48 captions"));
    assert!(lines[1].starts_with("stopped: "), "{stdout}");
    assert!(
        lines[2].contains("by validation loss")
            && lines[2].contains("3 validation clip(s): too few for CIDEr-D"),
        "{stdout}"
    );
    assert!(!stdout.contains("Some("), "{stdout}");

    let r = report(&model);
    assert_eq!(r["signal"], "val-loss");
    let plan = &r["plan"];
    let (batch, steps, epochs) = (
        plan["batch_size"].as_u64().unwrap(),
        plan["steps_per_epoch"].as_u64().unwrap(),
        plan["epochs"].as_u64().unwrap(),
    );
    // 48 captions: at least 4 steps an epoch, at least 300 steps planned, warm-up a
    // small part of them, patience at least 60 steps.
    assert!(batch <= 12 && steps >= 4 && steps * epochs >= 300, "{plan}");
    assert!(
        plan["warmup_steps"].as_u64().unwrap() * 10 < steps * epochs,
        "{plan}"
    );
    assert!(plan["patience"].as_u64().unwrap() * steps >= 60, "{plan}");
    assert_eq!(plan["min_count"], 1);
    let reason = r["stop"]["reason"].as_str().unwrap();
    assert!(["patience", "epochs-done"].contains(&reason), "{reason}");
    let vocab: Value =
        serde_json::from_slice(&fs::read(model.join("vocab.json")).unwrap()).unwrap();
    assert_eq!(vocab["min_count"], 1);
    let bleu4 = test_bleu4(&fx, &fx.dataset, &model);
    assert!(bleu4 >= 0.9, "test BLEU-4 {bleu4}");
}

#[test]
fn tiny_sets_with_one_or_no_validation_clip_still_learn() {
    let fx = fixture();
    for (name, val, signal) in [
        ("one-val", true, "val-loss"),
        ("no-val", false, "last-epoch"),
    ] {
        // 3 train clips per kind: 9 clips, 18 captions.
        let dataset = subset(&fx, &format!("{name}.jsonl"), 3, val);
        let model = fx.root.join(name);
        let out = train_plain(&fx, &dataset, &model, &["-q"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = report(&model);
        assert_eq!(r["signal"], signal, "{name}");
        assert_eq!(r["dataset"]["clips"]["train"], 9);
        let bleu4 = test_bleu4(&fx, &dataset, &model);
        assert!(bleu4 >= 0.9, "{name}: test BLEU-4 {bleu4}");
    }
}

#[test]
fn an_existing_model_is_replaced_only_with_overwrite() {
    let fx = fixture();
    let model = fx.root.join("model");
    ok(&train(&fx, &model, &["--epochs", "1"]));
    let before = fs::read(model.join("model.safetensors")).unwrap();
    let out = train(&fx, &model, &["--epochs", "2"]);
    fails_with(&out, &["already holds a model", "--overwrite", "--resume"]);
    assert_eq!(fs::read(model.join("model.safetensors")).unwrap(), before);

    // --overwrite replaces it, and what was beside the old model is gone.
    fs::create_dir_all(model.join("eval-test")).unwrap();
    fs::write(model.join("eval-test/metrics.json"), "{}").unwrap();
    let r = ok(&train(&fx, &model, &["--epochs", "2", "--overwrite"]));
    assert_eq!(r["epochs_done"], 2);
    assert!(!model.join("eval-test").exists());

    // A directory that holds something else is never cleared.
    let other = fx.root.join("notes");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("todo.txt"), "keep me").unwrap();
    fails_with(
        &train(&fx, &other, &["--epochs", "1"]),
        &["not empty", "todo.txt"],
    );
    fails_with(
        &train(&fx, &other, &["--epochs", "1", "--overwrite"]),
        &["nothing was deleted"],
    );
    assert_eq!(
        fs::read_to_string(other.join("todo.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn nonsense_sizes_are_usage_errors() {
    let fx = fixture();
    let model = fx.root.join("model");
    for bad in [
        &["--epochs", "0"][..],
        &["--batch-size", "0"],
        &["--min-count", "0"],
        &["--max-len", "1"],
        &["--stop-after-epochs", "0"],
        &["--lr", "0"],
        &["--dropout", "1"],
        &["--label-smoothing", "-0.1"],
    ] {
        let out = train_plain(&fx, &fx.dataset, &model, bad);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!model.exists());
}

#[test]
fn a_diverging_run_stops_and_says_so() {
    let fx = fixture();
    let model = fx.root.join("model");
    let out = train_plain(
        &fx,
        &fx.dataset,
        &model,
        &[
            "--epochs",
            "3",
            "--lr",
            "1e38",
            "--clip-norm",
            "0",
            "--hidden",
            "16",
        ],
    );
    fails_with(
        &out,
        &["training diverged", "NaN or infinite", "lower --lr"],
    );
    let r = report(&model);
    assert_eq!(r["stop"]["reason"], "diverged");
}

#[test]
fn fine_tuning_extends_the_vocabulary_and_learns_new_words() {
    let fx = fixture();
    let base = fx.root.join("base");
    ok(&train(&fx, &base, &["--epochs", "30"]));
    // The same clips, kind 2 now described with words the base model never saw.
    let text = fs::read_to_string(&fx.dataset).unwrap();
    let renamed = text
        .replace(
            "a green cat jumps over a fence",
            "a purple pyramid spins slowly",
        )
        .replace(
            "a green cat leaps over a fence",
            "a purple pyramid slowly spins",
        );
    let dataset = fx.root.join("renamed.jsonl");
    fs::write(&dataset, renamed).unwrap();
    let tuned = fx.root.join("tuned");
    let out = vidcap(
        &fx,
        &[
            "-q",
            "--seed",
            "2",
            "train",
            s(&dataset),
            "--out",
            s(&tuned),
            "--cache",
            s(&fx.cache),
            "--frames",
            "4",
            "--init-from",
            s(&base),
            "--epochs",
            "30",
            "--batch-size",
            "8",
            "--lr",
            "0.01",
            "--warmup-steps",
            "5",
            "--dropout",
            "0",
            "--label-smoothing",
            "0",
            "--patience",
            "0",
            "--json",
        ],
    );
    let r = ok(&out);
    assert_eq!(r["config"]["init_from"], s(&base));
    // Architecture comes from the initial model.
    assert_eq!(r["config"]["hidden"], 32);
    let words = |dir: &Path| -> Vec<String> {
        let v: Value = serde_json::from_slice(&fs::read(dir.join("vocab.json")).unwrap()).unwrap();
        serde_json::from_value(v["words"].clone()).unwrap()
    };
    let (old, new) = (words(&base), words(&tuned));
    assert_eq!(new[..old.len()], old[..], "known words keep their ids");
    let added: Vec<&str> = new[old.len()..].iter().map(String::as_str).collect();
    let mut sorted = added.clone();
    sorted.sort();
    assert_eq!(sorted, ["purple", "pyramid", "slowly", "spins"]);
    let eval_dir = fx.root.join("eval-tuned");
    ok(&vidcap(
        &fx,
        &[
            "-q",
            "eval",
            s(&dataset),
            "--model",
            s(&tuned),
            "--cache",
            s(&fx.cache),
            "--frames",
            "4",
            "--no-meteor",
            "--out",
            s(&eval_dir),
            "--json",
        ],
    ));
    let predictions = fs::read_to_string(eval_dir.join("predictions.jsonl")).unwrap();
    for line in predictions.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["id"].as_str().unwrap().starts_with("k2") {
            assert!(
                v["hypothesis"].as_str().unwrap().contains("purple pyramid"),
                "{line}"
            );
        }
    }

    // A model of another shape is refused with the reason.
    let refusals: [(&str, &[&str], &[&str]); 2] = [
        (
            "x",
            &["--hidden", "64"],
            &["--hidden 64 contradicts the --init-from model, which has 32"],
        ),
        (
            "y",
            &["--no-motion"],
            &["--init-from", "with the motion descriptor"],
        ),
    ];
    for (out_dir, flags, reasons) in refusals {
        let out_dir = fx.root.join(out_dir);
        let mut args = vec![
            "train",
            s(&dataset),
            "--out",
            s(&out_dir),
            "--cache",
            s(&fx.cache),
            "--frames",
            "4",
            "--init-from",
            s(&base),
        ];
        args.extend_from_slice(flags);
        fails_with(&vidcap(&fx, &args), reasons);
    }
}

#[test]
fn a_terminal_gets_one_line_per_epoch() {
    let fx = fixture();
    let model = fx.root.join("model");
    let cmd = format!(
        "{} --seed 1 train {} --out {} --cache {} --frames 4 --epochs 3 --hidden 16 --embed 8 --att-dim 8",
        env!("CARGO_BIN_EXE_vidcap"),
        s(&fx.dataset),
        s(&model),
        s(&fx.cache)
    );
    // `script` runs the command on a pseudo-terminal, as a user's shell would.
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("VIDCAP_MODELS", &fx.models)
        .output()
        .expect("script (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for epoch in 1..=3 {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("epoch   {epoch}/3 ")) && l.contains("loss"))
            .unwrap_or_else(|| panic!("no line for epoch {epoch} in {text}"));
        for field in ["val loss", "lr ", "eta"] {
            assert!(line.contains(field), "{field:?} not in {line:?}");
        }
    }
    assert!(text.contains("stopped: all 3 epochs done"), "{text}");
}
