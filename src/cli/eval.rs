//! `vidcap eval DATASET --model DIR [--split test]`: captions a split from cached features,
//! scores it, and writes what `vidcap score` (or pycocoevalcap) needs to check the numbers.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::train::{FeatureArgs, command_line, references};
use super::{EXIT_OK, Global};
use crate::atomic::write_atomic;
use crate::dataset::Split;
use crate::decoder::{CaptionModel, SearchOptions};
use crate::familiarity::{DEFAULT_MIN_FAMILIARITY, Familiarity};
use crate::features::FeatureSource;

pub const PREDICTIONS_FILE: &str = "predictions.jsonl";
pub const METRICS_FILE: &str = "metrics.json";
pub const COCO_RESULTS_FILE: &str = "coco_results.json";
pub const REFS_FILE: &str = "refs.json";
/// The references as a COCO captions annotation file: pycocotools' `COCO(..)` reads it and
/// `loadRes(coco_results.json)` against it, as pycocoevalcap's examples do.
pub const COCO_REFS_FILE: &str = "coco_refs.json";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Annotation file or directory (own JSONL, MSR-VTT, MSVD txt/csv, VATEX json).
    pub dataset: PathBuf,
    /// Decoder model directory (config.json, model.safetensors, vocab.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Split of the dataset to caption and score.
    #[arg(long, default_value = "test")]
    pub split: Split,
    /// Beam width, in hypotheses kept per step (1: greedy; the default is `caption`'s).
    #[arg(long, default_value_t = crate::pipeline::caption::DEFAULT_BEAM as u64, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub beam: u64,
    /// Score = log-prob / length^penalty when ranking beams.
    #[arg(long, default_value_t = 1.0)]
    pub length_penalty: f32,
    /// Never repeat an n-gram of this length within a caption (0: off).
    #[arg(long, default_value_t = 5)]
    pub no_repeat_ngram: usize,
    /// No content word more often than this in a caption (0: no limit).
    #[arg(long, default_value_t = 2)]
    pub max_word_repeats: usize,
    /// Clips whose familiarity is below this are `"familiar": false` in the predictions.
    #[arg(long, default_value_t = DEFAULT_MIN_FAMILIARITY)]
    pub min_familiarity: f64,
    /// Output directory (default: MODEL/eval-SPLIT/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub features: FeatureArgs,
    /// The METEOR 1.5 jar (default: $VIDCAP_METEOR_JAR, else pycocoevalcap's copy).
    #[arg(long, value_name = "PATH")]
    pub meteor_jar: Option<PathBuf>,
    /// Leave METEOR out even when Java and the jar are available.
    #[arg(long, conflicts_with = "meteor_jar")]
    pub no_meteor: bool,
    /// Print the report as one JSON document.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<u8> {
    let clock = Instant::now();
    let model = CaptionModel::load(&args.model)
        .with_context(|| format!("loading decoder {}", args.model.display()))?;
    // The model knows whether its items carry motion descriptors; the cache must match.
    let mut spec = args.features.spec();
    spec.layout.motion = model.config.motion;
    let source = FeatureSource::open(&args.dataset, &spec)?;
    if source.key.encoder != model.config.encoder {
        bail!(
            "{} was trained on {} features but --encoder names {}",
            args.model.display(),
            model.config.encoder,
            source.key.encoder
        );
    }
    let split = source.load(args.split, model.config.regions)?;
    if split.clips.is_empty() {
        bail!(
            "{}: the dataset has no {} clips",
            args.dataset.display(),
            args.split
        );
    }
    if let Some(clip) = split.clips.iter().find(|c| c.captions.is_empty()) {
        bail!(
            "{}: {} clip {} has no reference captions to score against",
            args.dataset.display(),
            args.split,
            clip.id
        );
    }
    let opts = SearchOptions {
        beam: args.beam as usize,
        max_len: model.config.caption_limit(None),
        length_penalty: args.length_penalty,
        no_repeat_ngram: args.no_repeat_ngram,
    };
    let caption_clock = Instant::now();
    let hyps = model.caption_bounded(&split.features, &opts, args.max_word_repeats)?;
    let familiarity = Familiarity::load(&args.model)?;
    if familiarity.is_none() {
        tracing::warn!(
            "{}: no familiarity summary ({}): predictions cannot say whether a clip is like the training clips",
            args.model.display(),
            crate::familiarity::FILE
        );
    }
    let familiarities = split
        .features
        .iter()
        .map(|f| familiarity.as_ref().map(|fam| fam.score(f)).transpose())
        .collect::<anyhow::Result<Vec<Option<f64>>>>()?;
    let caption_seconds = caption_clock.elapsed().as_secs_f64();

    let refs = references(&split.clips);
    let hyp_map: BTreeMap<String, String> = split
        .clips
        .iter()
        .zip(&hyps)
        .map(|(c, h)| (c.id.clone(), h.text.clone()))
        .collect();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.model.join(format!("eval-{}", args.split)));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut predictions = String::new();
    for ((clip, hyp), familiarity) in split.clips.iter().zip(&hyps).zip(&familiarities) {
        let line = json!({
            "id": clip.id,
            "video": clip.video.display().to_string(),
            "start": clip.start,
            "end": clip.end,
            "hypothesis": hyp.text,
            "references": clip.captions,
            "familiarity": familiarity,
            "familiar": familiarity.map(|f| f >= args.min_familiarity),
        });
        predictions.push_str(&serde_json::to_string(&line)?);
        predictions.push('\n');
    }
    write_atomic(&out.join(PREDICTIONS_FILE), predictions.as_bytes())?;
    let coco: Vec<Value> = split
        .clips
        .iter()
        .zip(&hyps)
        .map(|(c, h)| json!({"image_id": c.id, "caption": h.text}))
        .collect();
    write_atomic(
        &out.join(COCO_RESULTS_FILE),
        &serde_json::to_vec_pretty(&coco)?,
    )?;
    write_atomic(&out.join(REFS_FILE), &serde_json::to_vec_pretty(&refs)?)?;
    write_atomic(
        &out.join(COCO_REFS_FILE),
        &serde_json::to_vec_pretty(&coco_annotations(&refs))?,
    )?;
    // A report from an earlier run must not sit beside these predictions.
    let _ = std::fs::remove_file(out.join(METRICS_FILE));

    // The metrics need n-grams on both sides: an empty caption is reported, not scored
    // (the predictions are already written, so nothing is lost).
    let empty: Vec<&str> = hyp_map
        .iter()
        .filter(|(_, h)| h.trim().is_empty())
        .map(|(id, _)| id.as_str())
        .collect();
    if !empty.is_empty() {
        bail!(
            "the decoder produced {} empty caption(s) (e.g. {}); not scored (see {})",
            empty.len(),
            empty[0],
            out.join(PREDICTIONS_FILE).display()
        );
    }
    let scores = super::score::score_with_meteor(
        &refs,
        &hyp_map,
        args.meteor_jar.as_deref(),
        args.no_meteor,
        global,
    )
    .context("scoring the captions")?;

    let mut report = super::score::to_json(&scores, false);
    let doc = report.as_object_mut().expect("to_json gives an object");
    doc.insert("split".into(), json!(args.split.as_str()));
    doc.insert("dataset".into(), json!(args.dataset.display().to_string()));
    doc.insert("model".into(), json!(args.model.display().to_string()));
    doc.insert("beam".into(), json!(args.beam));
    doc.insert("length_penalty".into(), json!(args.length_penalty));
    doc.insert("no_repeat_ngram".into(), json!(args.no_repeat_ngram));
    doc.insert("max_word_repeats".into(), json!(args.max_word_repeats));
    let flagged = familiarities
        .iter()
        .flatten()
        .filter(|&&f| f < args.min_familiarity);
    doc.insert(
        "flagged_unfamiliar".into(),
        json!(familiarity.as_ref().map(|_| flagged.count())),
    );
    doc.insert("command".into(), json!(command_line()));
    doc.insert("caption_seconds".into(), json!(caption_seconds));
    doc.insert("seconds".into(), json!(clock.elapsed().as_secs_f64()));
    doc.insert("out".into(), json!(out.display().to_string()));
    write_atomic(
        &out.join(METRICS_FILE),
        &serde_json::to_vec_pretty(&report)?,
    )?;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", super::score::to_table(&scores, false));
        println!(
            "split {} · {} clips · beam {} · written to {}",
            args.split,
            split.clips.len(),
            args.beam,
            out.display()
        );
    }
    Ok(EXIT_OK)
}

/// `refs` as a COCO captions annotation file (`images`, `annotations` with unique ids).
fn coco_annotations(refs: &BTreeMap<String, Vec<String>>) -> Value {
    let images: Vec<Value> = refs.keys().map(|id| json!({"id": id})).collect();
    let annotations: Vec<Value> = refs
        .iter()
        .flat_map(|(id, captions)| captions.iter().map(move |c| (id, c)))
        .enumerate()
        .map(|(n, (id, caption))| json!({"id": n + 1, "image_id": id, "caption": caption}))
        .collect();
    json!({
        "info": {"description": "vidcap eval references"},
        "licenses": [],
        "type": "captions",
        "images": images,
        "annotations": annotations,
    })
}
