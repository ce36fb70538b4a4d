//! `vidcap familiarity fit|score`: (re)compute a model directory's summary of its training
//! clips from a dataset's cached features, and measure how many clips of a split it flags.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::json;

use super::train::FeatureArgs;
use super::{EXIT_OK, Global};
use crate::atomic::write_atomic;
use crate::dataset::Split;
use crate::decoder::CaptionModel;
use crate::decoder::model::CONFIG_FILE;
use crate::familiarity::{
    DEFAULT_MIN_FAMILIARITY, DimLayout, FILE, Familiarity, FamiliarityBuilder, longest_caption,
};
use crate::features::FeatureSource;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Fit the summary on a split's clips, calibrate it on another's, and write it into
    /// the model directory (also records the longest training caption when the model's
    /// config lacks it).
    Fit(FitArgs),
    /// Familiarity of every clip of a split, and the fraction flagged unfamiliar.
    Score(ScoreArgs),
}

#[derive(clap::Args, Debug)]
pub struct FitArgs {
    /// Decoder model directory.
    pub model: PathBuf,
    /// Annotation file or directory whose cached clips are summarised.
    pub dataset: PathBuf,
    /// Split whose clips the summary describes (the model's training clips).
    #[arg(long, default_value = "train")]
    pub fit_split: Split,
    /// Split of held-out in-distribution clips that calibrates it.
    #[arg(long, default_value = "val")]
    pub calibration_split: Split,
    #[command(flatten)]
    pub features: FeatureArgs,
    /// One JSON document instead of the summary lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    /// Annotation file or directory.
    pub dataset: PathBuf,
    /// Decoder model directory with a familiarity summary.
    #[arg(long)]
    pub model: PathBuf,
    /// Split whose clips are scored against the summary.
    #[arg(long, default_value = "test")]
    pub split: Split,
    /// Clips whose familiarity (a fraction in [0, 1]) is below this are counted unfamiliar.
    #[arg(long, default_value_t = DEFAULT_MIN_FAMILIARITY, value_name = "FRACTION")]
    pub min_familiarity: f64,
    #[command(flatten)]
    pub features: FeatureArgs,
    /// One JSON document with every clip's familiarity.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<u8> {
    match args.command {
        Command::Fit(a) => fit(a, global),
        Command::Score(a) => score(a),
    }
}

fn open(
    model_dir: &std::path::Path,
    dataset: &std::path::Path,
    features: &FeatureArgs,
) -> anyhow::Result<(CaptionModel, FeatureSource)> {
    let model = CaptionModel::load(model_dir)
        .with_context(|| format!("{}: cannot load the decoder", model_dir.display()))?;
    let mut spec = features.spec();
    spec.layout.motion = model.config.motion;
    let source = FeatureSource::open(dataset, &spec)?;
    if source.key.encoder != model.config.encoder {
        bail!(
            "{} was trained on {} features, the cache holds {}",
            model_dir.display(),
            model.config.encoder,
            source.key.encoder
        );
    }
    Ok((model, source))
}

fn fit(args: FitArgs, _global: &Global) -> anyhow::Result<u8> {
    let clock = Instant::now();
    let (mut model, source) = open(&args.model, &args.dataset, &args.features)?;
    let regions = model.config.regions;
    let fit_split = source.load(args.fit_split, regions)?;
    let calibration = source.load(args.calibration_split, regions)?;
    let mut builder = FamiliarityBuilder::new(DimLayout::of(&model.config));
    for clip in &fit_split.features {
        builder.add_clip(clip)?;
    }
    let fam = builder.finish(&calibration.features).with_context(|| {
        format!(
            "{}: {} {} clips, {} {} clips",
            args.dataset.display(),
            fit_split.features.len(),
            args.fit_split,
            calibration.features.len(),
            args.calibration_split
        )
    })?;
    fam.save(&args.model)?;
    if model.config.longest_caption.is_none() {
        model.config.longest_caption = longest_caption(
            &model.vocab,
            fit_split
                .clips
                .iter()
                .flat_map(|c| c.captions.iter().map(String::as_str)),
            model.config.max_len,
        );
        write_atomic(
            &args.model.join(CONFIG_FILE),
            &serde_json::to_vec_pretty(&model.config)?,
        )?;
    }
    let path = args.model.join(FILE);
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let report = json!({
        "model": args.model.display().to_string(),
        "dataset": args.dataset.display().to_string(),
        "fit_split": args.fit_split.as_str(),
        "fit_clips": fam.fit_clips(),
        "calibration_split": args.calibration_split.as_str(),
        "calibration_clips": fam.calibration_clips(),
        "longest_caption": model.config.longest_caption,
        "file": path.display().to_string(),
        "bytes": bytes,
        "seconds": clock.elapsed().as_secs_f64(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "familiarity: fitted on {} {} clips, calibrated on {} {} clips in {:.1} s; {} ({} KB)",
            fam.fit_clips(),
            args.fit_split,
            fam.calibration_clips(),
            args.calibration_split,
            clock.elapsed().as_secs_f64(),
            path.display(),
            bytes.div_ceil(1024)
        );
    }
    Ok(EXIT_OK)
}

fn score(args: ScoreArgs) -> anyhow::Result<u8> {
    let (_, source) = open(&args.model, &args.dataset, &args.features)?;
    let fam = Familiarity::load(&args.model)?.with_context(|| {
        format!(
            "{}: no familiarity summary ({FILE}); run `vidcap familiarity fit` first",
            args.model.display()
        )
    })?;
    let model = CaptionModel::load(&args.model)?;
    let split = source.load(args.split, model.config.regions)?;
    if split.clips.is_empty() {
        bail!("{}: no {} clips", args.dataset.display(), args.split);
    }
    let mut clips = Vec::new();
    let mut flagged = 0usize;
    for (clip, features) in split.clips.iter().zip(&split.features) {
        let f = fam.score(features)?;
        let familiar = f >= args.min_familiarity;
        flagged += usize::from(!familiar);
        clips.push(json!({"id": clip.id, "familiarity": f, "familiar": familiar}));
    }
    let fraction = flagged as f64 / clips.len() as f64;
    if args.json {
        let doc = json!({
            "dataset": args.dataset.display().to_string(),
            "split": args.split.as_str(),
            "model": args.model.display().to_string(),
            "min_familiarity": args.min_familiarity,
            "clips": clips.len(),
            "flagged": flagged,
            "flagged_fraction": fraction,
            "per_clip": clips,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "{} {} clips: {flagged} flagged unfamiliar ({:.1} %) at --min-familiarity {}",
            clips.len(),
            args.split,
            100.0 * fraction,
            args.min_familiarity
        );
    }
    Ok(EXIT_OK)
}
