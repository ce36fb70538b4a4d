//! vidcap's metrics against the real pycocoevalcap: the expected numbers were computed by
//! scripts/metrics_reference.py (PTBTokenizer jar + Bleu/Rouge/Cider/Meteor) and committed.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use vidcap::metrics::{self, MetricsError, ScoreOptions, Scores, meteor};

const TOLERANCE: f64 = 1e-6;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/metrics")
        .join(name)
}

fn read<T: serde::de::DeserializeOwned>(name: &str) -> T {
    serde_json::from_str(&std::fs::read_to_string(data(name)).unwrap()).unwrap()
}

type Refs = BTreeMap<String, Vec<String>>;
type Hyps = BTreeMap<String, String>;

fn load(set: &str) -> (Refs, Hyps, Value) {
    (
        read(&format!("{set}_refs.json")),
        read(&format!("{set}_hyps.json")),
        read(&format!("{set}_expected.json")),
    )
}

/// (name, ours) pairs of one id or of the corpus, in the reference's naming.
fn named(
    bleu: [f64; 4],
    rouge_l: f64,
    cider_d: f64,
    meteor: Option<f64>,
) -> Vec<(&'static str, Option<f64>)> {
    vec![
        ("bleu1", Some(bleu[0])),
        ("bleu2", Some(bleu[1])),
        ("bleu3", Some(bleu[2])),
        ("bleu4", Some(bleu[3])),
        ("rouge_l", Some(rouge_l)),
        ("cider_d", Some(cider_d)),
        ("meteor", meteor),
    ]
}

/// Compares every metric we computed with the reference; returns the largest difference.
fn compare(scores: &Scores, expected: &Value) -> f64 {
    let mut worst: f64 = 0.0;
    let mut failures = Vec::new();
    let mut check = |what: &str, ours: f64, theirs: &Value| {
        let theirs = theirs
            .as_f64()
            .unwrap_or_else(|| panic!("{what}: no reference value"));
        let diff = (ours - theirs).abs();
        worst = worst.max(diff);
        // Written so that a NaN difference fails too.
        if !matches!(
            diff.partial_cmp(&TOLERANCE),
            Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
        ) {
            failures.push(format!("{what}: ours {ours} pycocoevalcap {theirs}"));
        }
    };
    let corpus = &expected["corpus"];
    for (name, ours) in named(scores.bleu, scores.rouge_l, scores.cider_d, scores.meteor) {
        if let Some(ours) = ours {
            check(&format!("corpus {name}"), ours, &corpus[name]);
        }
    }
    let per_id = expected["per_id"].as_object().unwrap();
    assert_eq!(per_id.len(), scores.per_id.len());
    for (id, s) in &scores.per_id {
        for (name, ours) in named(s.bleu, s.rouge_l, s.cider_d, s.meteor) {
            if let Some(ours) = ours {
                check(&format!("{id} {name}"), ours, &per_id[id][name]);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences over {TOLERANCE}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    worst
}

#[test]
fn edge_cases_match_pycocoevalcap() {
    let (refs, hyps, expected) = load("edge");
    assert!(refs.len() >= 40);
    let scores = metrics::score_all(&refs, &hyps, &ScoreOptions::default()).unwrap();
    let worst = compare(&scores, &expected);
    eprintln!("edge cases: largest difference {worst:e}");
}

#[test]
fn random_set_matches_pycocoevalcap() {
    let (refs, hyps, expected) = load("random");
    assert!(refs.len() >= 500);
    let scores = metrics::score_all(&refs, &hyps, &ScoreOptions::default()).unwrap();
    let worst = compare(&scores, &expected);
    eprintln!("random set: largest difference {worst:e}");
}

#[test]
fn cider_fast_path_matches_full_scoring() {
    let (refs, hyps, expected) = load("random");
    let cider = metrics::cider_d(&refs, &hyps).unwrap();
    let theirs = expected["corpus"]["cider_d"].as_f64().unwrap();
    assert!((cider - theirs).abs() <= TOLERANCE, "{cider} vs {theirs}");
}

#[test]
fn cider_fast_path_scores_empty_hypotheses_zero() {
    let (refs, mut hyps, _) = load("edge");
    let id = hyps.keys().next().unwrap().clone();
    hyps.insert(id.clone(), String::new());
    // score_all refuses it, naming the id ...
    let err = metrics::score_all(&refs, &hyps, &ScoreOptions::default()).unwrap_err();
    assert!(
        matches!(&err, MetricsError::EmptyCaption { id: e, .. } if *e == id),
        "{err}"
    );
    // ... the validation fast path scores it 0, so the corpus mean drops by exactly its share
    let with_empty = metrics::cider_d(&refs, &hyps).unwrap();
    let (_, full_hyps, expected) = load("edge");
    let per_id = expected["per_id"][&id]["cider_d"].as_f64().unwrap();
    let full = metrics::cider_d(&refs, &full_hyps).unwrap();
    let n = refs.len() as f64;
    assert!(
        (with_empty - (full - per_id / n)).abs() < 1e-9,
        "{with_empty} vs {full} - {per_id}/{n}"
    );
}

#[test]
fn mismatched_ids_are_errors() {
    let (mut refs, hyps, _) = load("edge");
    refs.insert("extra_id".into(), vec!["a caption".into()]);
    let err = metrics::score_all(&refs, &hyps, &ScoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("extra_id"), "{err}");
    let (refs, mut hyps, _) = load("edge");
    hyps.insert("stray".into(), "a caption".into());
    let err = metrics::score_all(&refs, &hyps, &ScoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("stray"), "{err}");
}

/// The jar for the METEOR test: the usual search, then the dev benchmark venv
/// (/work/shared/bench: $VIDCAP_BENCH_VENV, default /tmp/vidcap-bench-venv).
fn meteor_config() -> Result<meteor::MeteorConfig, String> {
    meteor::locate(None).or_else(|first| {
        let venv = std::env::var("VIDCAP_BENCH_VENV").unwrap_or("/tmp/vidcap-bench-venv".into());
        let jar = Path::new(&venv)
            .join("lib/python3.11/site-packages/pycocoevalcap/meteor/meteor-1.5.jar");
        if jar.is_file() {
            meteor::locate(Some(&jar))
        } else {
            Err(first)
        }
    })
}

#[test]
fn meteor_matches_pycocoevalcap_when_java_and_jar_exist() {
    let config = match meteor_config() {
        Ok(config) => config,
        Err(why) => {
            eprintln!("SKIPPED meteor parity: {why}");
            return;
        }
    };
    let (refs, hyps, expected) = load("edge");
    let opts = ScoreOptions {
        meteor: Some(config),
    };
    let scores = metrics::score_all(&refs, &hyps, &opts).unwrap();
    assert!(scores.meteor.is_some());
    let worst = compare(&scores, &expected);
    eprintln!("meteor (edge cases): largest difference {worst:e}");
}
