//! `vidcap train DATASET --out MODEL_DIR`: trains the caption decoder on cached features
//! (never on video: `vidcap extract` fills the cache first) and records how in
//! `training_report.json`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{EXIT_OK, Global};
use crate::atomic::write_atomic;
use crate::dataset::{Clip, DatasetFormat, Split, dataset_dir};
use crate::decoder::model::CONFIG_FILE;
use crate::decoder::{Arch, CaptionModel};
use crate::features::{FeatureSource, FeatureSpec, GRID_REGIONS, ItemLayout};
use crate::model_path;
use crate::train::optim::Decay;
use crate::train::report::REPORT_FILE;
use crate::train::trainer::{
    self, CHECKPOINT_FILE, EpochLog, Examples, LOG_FILE, RunOptions, Signal, StopReason,
    TrainConfig,
};

/// Where a dataset's features come from; the same flags as `vidcap extract`, so the cache
/// key built here is the one extract wrote.
#[derive(clap::Args, Debug, Clone)]
pub struct FeatureArgs {
    /// Feature cache filled by `vidcap extract` (default: features/ next to the annotations).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Encoder name or model directory the features were extracted with.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub encoder: String,
    /// Frames sampled uniformly per clip at extraction.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub frames: u64,
    /// The cache was extracted with `--no-grid` (global pool only, R = 1).
    #[arg(long)]
    pub no_grid: bool,
    /// The cache was extracted with `--no-motion` (no motion descriptor in the items;
    /// eval follows the model instead).
    #[arg(long)]
    pub no_motion: bool,
    /// Directory holding the videos (default: next to the annotations, or its videos/).
    #[arg(long)]
    pub videos: Option<PathBuf>,
    /// Annotation format, when the file name does not tell.
    #[arg(long)]
    pub format: Option<DatasetFormat>,
}

impl FeatureArgs {
    /// The extraction these flags describe.
    pub fn spec(&self) -> FeatureSpec {
        FeatureSpec {
            cache: self.cache.clone(),
            encoder: self.encoder.clone(),
            frames: self.frames as usize,
            layout: ItemLayout {
                grid: !self.no_grid,
                motion: !self.no_motion,
            },
            videos: self.videos.clone(),
            format: self.format,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Annotation file or directory (own JSONL, MSR-VTT, MSVD txt/csv, VATEX json).
    pub dataset: PathBuf,
    /// Model directory to write (config.json, model.safetensors, vocab.json, logs); an
    /// existing model there is replaced only with --overwrite.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the model in --out (the whole directory, its eval folders included).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Fine-tune: start from this decoder (a directory or an installed model's name, e.g.
    /// synth-decoder); new words of the training captions extend its vocabulary.
    #[arg(long, value_name = "MODEL_DIR")]
    pub init_from: Option<String>,
    #[command(flatten)]
    pub features: FeatureArgs,
    /// Feature samplings per clip to draw from, at most (extract --samplings stores
    /// several) [default: all cached].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub samplings: Option<u64>,
    /// Decoder: temporal attention over the frame features, or their mean only
    /// [default: attention, or the --init-from model's].
    #[arg(long, value_parser = ["attention", "meanpool"])]
    pub arch: Option<String>,
    /// Regions per frame the decoder sees: 5 (global + 2×2 grid) or 1 (global pool)
    /// [default: 5, or the --init-from model's].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=5))]
    pub regions: Option<u64>,
    /// Passes over the training captions [default: 30, raised for small sets so the run
    /// takes at least 300 optimiser steps].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: Option<u64>,
    /// Captions per optimiser step [default: 64, lowered for small sets so an epoch has at
    /// least 4 steps; never more than the training captions].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: Option<u64>,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 1e-3, value_parser = positive)]
    pub lr: f32,
    /// GRU hidden units [default: 512, or the --init-from model's].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub hidden: Option<u64>,
    /// Word embedding width [default: 300, or the --init-from model's].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub embed: Option<u64>,
    /// Width of the additive attention's hidden layer [default: 256, or the --init-from
    /// model's].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub att_dim: Option<u64>,
    /// Dropout probability on word embeddings and GRU outputs.
    #[arg(long, default_value_t = 0.3, value_parser = probability)]
    pub dropout: f64,
    /// Words seen fewer times in the training captions become <unk> [default: 1 below
    /// 200 training clips, else 2].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub min_count: Option<u64>,
    /// Longest caption in tokens (<eos> included).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(2..=256))]
    pub max_len: u64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f32,
    /// Learning-rate warm-up as a fraction of all planned steps (capped at 500 steps).
    #[arg(long, default_value_t = 0.05, value_parser = probability)]
    pub warmup: f64,
    /// Warm-up in steps, instead of --warmup.
    #[arg(long)]
    pub warmup_steps: Option<u64>,
    /// Learning-rate decay after the warm-up: cosine, linear or constant.
    #[arg(long, default_value = "cosine", value_parser = ["cosine", "linear", "constant"])]
    pub decay: String,
    /// Global gradient-norm limit (0: none).
    #[arg(long, default_value_t = 5.0)]
    pub clip_norm: f32,
    /// Label smoothing of the training cross-entropy (0 to 1).
    #[arg(long, default_value_t = 0.1, value_parser = probability)]
    pub label_smoothing: f64,
    /// Final probability of feeding the model's own word (ramped from 0).
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    pub scheduled_sampling: f64,
    /// Stop after this many epochs past the warm-up without a better validation signal
    /// (0: never); at least 60 steps' worth of epochs.
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    /// Stop (with a checkpoint) after this many epochs in this run; --resume continues.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub stop_after_epochs: Option<u64>,
    /// Continue from MODEL_DIR's checkpoint as an uninterrupted run would.
    #[arg(long)]
    pub resume: bool,
    /// Print the summary as one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// A finite number above 0 (a usage error otherwise).
fn positive(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{text:?} is not a number above 0")),
    }
}

/// A number in [0, 1) (a usage error otherwise).
fn probability(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a number in [0, 1)")),
    }
}

/// Validation clips below which CIDEr-D says nothing: its IDF weights of n-grams found in
/// every reference are zero, so 1–2 clips always score 0 and a few score noise.
pub const MIN_SCORED_VAL_CLIPS: usize = 10;
/// Optimiser steps a run with default --epochs takes at least (small sets).
const MIN_STEPS: u64 = 300;
/// Steps per epoch a default --batch-size leaves at least.
const MIN_STEPS_PER_EPOCH: u64 = 4;
const WARMUP_CAP: u64 = 500;
/// Patience covers at least this many steps, so tiny epochs do not stop a run on noise.
const MIN_PATIENCE_STEPS: u64 = 60;
/// Training clips below which --min-count defaults to 1 (every word kept).
const SMALL_CORPUS_CLIPS: usize = 200;

/// The run's sizes once the defaults are fitted to the data, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Plan {
    pub epochs: usize,
    pub batch_size: usize,
    pub steps_per_epoch: u64,
    pub warmup_steps: u64,
    pub patience: usize,
    pub min_count: usize,
}

/// Fits the defaults to a training set of `clips` clips and `captions` captions.
pub fn plan(args: &Args, clips: usize, captions: usize) -> Plan {
    let captions = captions.max(1) as u64;
    let batch_size = match args.batch_size {
        Some(b) => b.min(captions),
        None => 64.min(captions.div_ceil(MIN_STEPS_PER_EPOCH)).max(1),
    };
    let steps_per_epoch = captions.div_ceil(batch_size);
    let epochs = args
        .epochs
        .unwrap_or_else(|| 30.max(MIN_STEPS.div_ceil(steps_per_epoch)));
    let total = steps_per_epoch * epochs;
    let warmup_steps = args.warmup_steps.unwrap_or_else(|| {
        ((total as f64 * args.warmup.clamp(0.0, 1.0)).round() as u64).min(WARMUP_CAP)
    });
    let patience = if args.patience == 0 {
        0
    } else {
        args.patience
            .max(MIN_PATIENCE_STEPS.div_ceil(steps_per_epoch) as usize)
    };
    let min_count = args
        .min_count
        .map_or(if clips < SMALL_CORPUS_CLIPS { 1 } else { 2 }, |m| {
            m as usize
        });
    Plan {
        epochs: epochs as usize,
        batch_size: batch_size as usize,
        steps_per_epoch,
        warmup_steps,
        patience,
        min_count,
    }
}

/// References of the clips by id, leaving out clips without captions.
pub(super) fn references(clips: &[Clip]) -> BTreeMap<String, Vec<String>> {
    clips
        .iter()
        .filter(|c| !c.captions.is_empty())
        .map(|c| (c.id.clone(), c.captions.clone()))
        .collect()
}

/// The command line as typed, each argument quoted when the shell would need it.
pub(super) fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What corpus.json next to the annotations says (generator, seed) and its hash.
fn corpus_version(dataset: &Path) -> Value {
    let path = dataset_dir(dataset).join("corpus.json");
    let Ok(bytes) = std::fs::read(&path) else {
        return Value::Null;
    };
    let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    json!({
        "path": path.display().to_string(),
        "sha256": sha,
        "generator": parsed.get("generator"),
        "seed": parsed.get("seed"),
    })
}

/// Refuses to replace a model unless told to; `--overwrite` clears the old model directory
/// (eval folders included) so nothing stale stays beside the new one.
fn prepare_out_dir(out: &Path, overwrite: bool, resume: bool) -> anyhow::Result<()> {
    if resume {
        return Ok(());
    }
    let mut names: Vec<String> = match std::fs::read_dir(out) {
        Ok(dir) => dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => bail!("--out {}: {e}", out.display()),
    };
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    let model_files = [CONFIG_FILE, CHECKPOINT_FILE, LOG_FILE, REPORT_FILE];
    let is_model = model_files.iter().any(|f| out.join(f).is_file());
    match (is_model, overwrite) {
        (true, false) => bail!(
            "{} already holds a model; pass --overwrite to replace it (its eval folders too) or --resume to continue its training",
            out.display()
        ),
        (false, false) => bail!(
            "{} exists and is not empty (it holds {}); choose a new --out directory",
            out.display(),
            names[0]
        ),
        (false, true) => bail!(
            "--overwrite replaces only a vidcap model directory, and {} holds no {} (it holds {}); nothing was deleted",
            out.display(),
            model_files.join(" or "),
            names[0]
        ),
        (true, true) => {
            std::fs::remove_dir_all(out)
                .with_context(|| format!("--overwrite: cannot clear {}", out.display()))?;
            tracing::info!("{}: the old model was removed", out.display());
            Ok(())
        }
    }
}

/// `--init-from`: a model directory, or an installed model's name.
fn load_init(name: &str) -> anyhow::Result<(PathBuf, CaptionModel)> {
    let dir = model_path::locate(name, None)
        .with_context(|| format!("--init-from {name}"))?
        .dir;
    let model = CaptionModel::load(&dir)
        .with_context(|| format!("--init-from {name}: cannot load the decoder"))?;
    Ok((dir, model))
}

/// A size given on the command line, else the initial model's, else the default; a given
/// size that contradicts the initial model is an error.
fn pick_size(
    flag: &str,
    given: Option<u64>,
    from_init: Option<usize>,
    default: usize,
) -> anyhow::Result<usize> {
    match (given.map(|g| g as usize), from_init) {
        (Some(g), Some(i)) if g != i => {
            bail!("--{flag} {g} contradicts the --init-from model, which has {i}")
        }
        (Some(g), _) => Ok(g),
        (None, Some(i)) => Ok(i),
        (None, None) => Ok(default),
    }
}

fn signal_name(signal: Signal) -> &'static str {
    match signal {
        Signal::ValScore => "validation CIDEr-D",
        Signal::ValLoss => "validation loss",
        Signal::LastEpoch => "last epoch",
    }
}

fn stop_text(stop: StopReason, patience: usize, epochs: usize, signal: Signal) -> String {
    match stop {
        StopReason::EpochsDone => format!("all {epochs} epochs done"),
        StopReason::Patience => format!(
            "early stop: no better {} for {patience} epochs after the warm-up",
            signal_name(signal)
        ),
        StopReason::Paused => "paused by --stop-after-epochs (--resume continues)".into(),
        StopReason::Diverged { epoch, step } => {
            format!("the loss became NaN or infinite at epoch {epoch}, step {step}")
        }
    }
}

fn human_seconds(s: f64) -> String {
    if s < 90.0 {
        format!("{s:.1} s")
    } else if s < 5400.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<u8> {
    let clock = Instant::now();
    prepare_out_dir(&args.out, args.overwrite, args.resume)?;
    let init = args.init_from.as_deref().map(load_init).transpose()?;
    let init_cfg = init.as_ref().map(|(_, m)| m.config.clone());
    let regions = pick_size(
        "regions",
        args.regions,
        init_cfg.as_ref().map(|c| c.regions),
        GRID_REGIONS,
    )?;
    if regions != 1 && regions != GRID_REGIONS {
        bail!("--regions must be 1 or {GRID_REGIONS}, not {regions}");
    }
    let source = FeatureSource::open(&args.dataset, &args.features.spec())?;
    if let Some(c) = &init_cfg {
        ensure!(
            c.encoder == source.key.encoder && c.motion == source.key.motion,
            "--init-from: the model was trained on {} features {} the motion descriptor, but the cache holds {} features {} it; extract with the model's encoder{}",
            c.encoder,
            if c.motion { "with" } else { "without" },
            source.key.encoder,
            if source.key.motion { "with" } else { "without" },
            if c.motion { "" } else { " and --no-motion" }
        );
    }
    let (mut train_set, train_skipped) = source.entries(Split::Train, regions)?;
    if let Some(n) = args.samplings {
        for files in &mut train_set.files {
            files.truncate(n as usize);
        }
    }
    let samplings_used = train_set.files.iter().map(Vec::len).max().unwrap_or(0);
    if train_set.is_empty() {
        let in_split = |s: Split| source.dataset.clips.iter().filter(|c| c.split == s).count();
        bail!(
            "{}: the dataset has no usable train clips (train {}, of them {train_skipped} not cached or without captions; val {}; test {}): a clip's \"split\" decides, a clip without one trains; `vidcap merge OUT FILE,split=train` relabels a file",
            args.dataset.display(),
            in_split(Split::Train),
            in_split(Split::Val),
            in_split(Split::Test),
        );
    }
    let (mut val_set, val_skipped) = source.entries(Split::Val, regions)?;
    // Validation clips without references cannot be scored.
    let (clips, files): (Vec<_>, Vec<_>) = val_set
        .clips
        .into_iter()
        .zip(val_set.files)
        .filter(|(c, _)| !c.captions.is_empty())
        .unzip();
    val_set.clips = clips;
    val_set.files = files;
    let captions: usize = train_set.clips.iter().map(|c| c.captions.len()).sum();
    let uncaptioned = train_set
        .clips
        .iter()
        .filter(|c| c.captions.is_empty())
        .count();
    if uncaptioned > 0 {
        tracing::warn!(
            "{}: {uncaptioned} train clip(s) have no caption and teach nothing",
            args.dataset.display()
        );
    }
    let plan = plan(&args, train_set.len(), captions);
    let val_refs = references(&val_set.clips);
    let score_cider = |pairs: &[(String, String)]| -> f64 {
        let hyps: BTreeMap<String, String> = pairs.iter().cloned().collect();
        match crate::metrics::cider_d(&val_refs, &hyps) {
            Ok(score) => score,
            Err(e) => {
                tracing::warn!("validation CIDEr-D failed: {e}");
                0.0
            }
        }
    };
    let arch = match args.arch.as_deref().map(|a| {
        if a == "meanpool" {
            Arch::Meanpool
        } else {
            Arch::Attention
        }
    }) {
        Some(a) if init_cfg.as_ref().is_some_and(|c| c.arch != a) => {
            bail!("--arch contradicts the --init-from model")
        }
        Some(a) => a,
        None => init_cfg.as_ref().map_or(Arch::Attention, |c| c.arch),
    };
    let defaults = TrainConfig::default();
    let cfg = TrainConfig {
        arch,
        encoder: source.key.encoder.clone(),
        motion: source.key.motion,
        hidden: pick_size(
            "hidden",
            args.hidden,
            init_cfg.as_ref().map(|c| c.hidden),
            defaults.hidden,
        )?,
        embed: pick_size(
            "embed",
            args.embed,
            init_cfg.as_ref().map(|c| c.embed),
            defaults.embed,
        )?,
        att_dim: pick_size(
            "att-dim",
            args.att_dim,
            init_cfg.as_ref().map(|c| c.att_dim),
            defaults.att_dim,
        )?,
        dropout: args.dropout,
        min_count: plan.min_count,
        max_len: args.max_len as usize,
        epochs: plan.epochs,
        batch_size: plan.batch_size,
        lr: args.lr,
        weight_decay: args.weight_decay,
        warmup_steps: plan.warmup_steps,
        decay: match args.decay.as_str() {
            "linear" => Decay::Linear,
            "constant" => Decay::Constant,
            _ => Decay::Cosine,
        },
        min_lr_ratio: defaults.min_lr_ratio,
        clip_norm: args.clip_norm,
        label_smoothing: args.label_smoothing,
        scheduled_sampling: args.scheduled_sampling,
        patience: plan.patience,
        seed: global.seed,
        stop_after_epochs: args.stop_after_epochs.map(|n| n as usize),
        init_from: init.as_ref().map(|(dir, _)| dir.display().to_string()),
    };
    let scored = val_set.len() >= MIN_SCORED_VAL_CLIPS;
    tracing::info!(
        "{} train clips ({captions} captions) / {} val clips, {regions} regions, {} epochs × {} steps of {} captions, warm-up {} steps → {}",
        train_set.len(),
        val_set.len(),
        plan.epochs,
        plan.steps_per_epoch,
        plan.batch_size,
        plan.warmup_steps,
        args.out.display()
    );

    let bar = super::progress::bar(
        cfg.epochs as u64,
        !global.quiet && !args.json,
        "{bar:30} epoch {pos}/{len} {elapsed_precise}",
    );
    let epoch_seconds = std::cell::Cell::new((0.0f64, 0usize));
    let on_epoch = |e: &EpochLog| {
        let (sum, n) = epoch_seconds.get();
        epoch_seconds.set((sum + e.seconds, n + 1));
        let left =
            cfg.epochs.saturating_sub(e.epoch + 1) as f64 * (sum + e.seconds) / (n + 1) as f64;
        let val = match (e.val_score, e.val_loss) {
            (Some(s), _) => format!("val CIDEr-D {s:.4}"),
            (None, Some(l)) => format!("val loss {l:.4}"),
            (None, None) => "no val".to_string(),
        };
        bar.set_position(e.epoch as u64 + 1);
        bar.println(format!(
            "epoch {:>3}/{}  loss {:.4}  {val}{}  lr {:.2e}  {}  eta ≤ {}",
            e.epoch + 1,
            cfg.epochs,
            e.train_loss,
            if e.improved { " *" } else { "  " },
            e.lr,
            human_seconds(e.seconds),
            human_seconds(left)
        ));
    };
    let summary = trainer::train_examples(
        &cfg,
        &train_set,
        &val_set,
        &args.out,
        RunOptions {
            score_val: scored.then_some(&score_cider as &dyn Fn(&[(String, String)]) -> f64),
            resume: args.resume,
            init: init.map(|(_, m)| m),
            on_epoch: Some(&on_epoch),
            ..RunOptions::default()
        },
    )?;
    bar.finish_and_clear();
    // What the training clips look like, so captions can flag footage unlike them; read
    // one clip at a time like training.
    let val_features = val_set.load_all()?;
    crate::familiarity::fit_model_dir(
        &args.out,
        (0..train_set.len()).filter_map(|i| {
            train_set
                .features(i, 0)
                .inspect_err(|e| tracing::warn!("familiarity summary: {e:#}"))
                .ok()
        }),
        val_features.iter(),
    );
    let seconds = clock.elapsed().as_secs_f64();
    let signal_reason = match summary.signal {
        Signal::ValScore => format!("{} validation clips", val_set.len()),
        Signal::ValLoss => format!(
            "{} validation clip(s): too few for CIDEr-D, which needs {MIN_SCORED_VAL_CLIPS}",
            val_set.len()
        ),
        Signal::LastEpoch => "no validation clips with captions".to_string(),
    };
    // A resumed run adds its wall time to the earlier runs' recorded in the report.
    let report_path = args.out.join(REPORT_FILE);
    let mut runs: Vec<Value> = if args.resume {
        std::fs::read(&report_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v.get("runs").cloned())
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    runs.push(json!({
        "command": command_line(),
        "resume": args.resume,
        "epochs_done_after": summary.epochs_done,
        "wall_seconds": seconds,
        "tokens_per_s": summary.tokens_per_s,
    }));
    let total_seconds: f64 = runs
        .iter()
        .filter_map(|r| r.get("wall_seconds").and_then(Value::as_f64))
        .sum();
    let count = |s: Split| source.dataset.split(s).count();
    let report = json!({
        "command": command_line(),
        "seed": global.seed,
        "dataset": {
            "path": args.dataset.display().to_string(),
            "format": source.dataset.format.as_str(),
            "corpus": corpus_version(&args.dataset),
            "clips": {
                "train": count(Split::Train),
                "val": count(Split::Val),
                "test": count(Split::Test),
            },
            "train_captions": captions,
            "samplings_per_clip": samplings_used,
            "skipped_clips": {"train": train_skipped, "val": val_skipped},
            "empty_captions_skipped": source.dataset.empty_captions,
            "missing_videos": source.dataset.missing.len(),
        },
        "features": {
            "cache": source.cache.dir().display().to_string(),
            "encoder": source.key.encoder,
            "encoder_sha256": source.key.encoder_sha256,
            "sampling": source.key.sampling,
            "cache_regions": source.key.regions,
            "motion": source.key.motion,
            "decoder_regions": regions,
        },
        "config": cfg,
        "plan": plan,
        "signal": summary.signal,
        "signal_reason": signal_reason,
        "stop": summary.stop,
        "epochs_done": summary.epochs_done,
        "best_epoch": summary.best_epoch,
        "best_value": summary.best_score,
        "val_cider_d": (summary.signal == Signal::ValScore).then_some(summary.best_score).flatten(),
        "final_train_loss": summary.final_loss,
        "tokens_per_s": summary.tokens_per_s,
        "stopped_early": summary.stopped_early,
        "finished": summary.finished,
        "wall_seconds": total_seconds,
        "runs": runs,
    });
    write_atomic(&report_path, &serde_json::to_vec_pretty(&report)?)?;
    let stop = stop_text(summary.stop, cfg.patience, cfg.epochs, summary.signal);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "trained {} epoch(s) on {} clips ({captions} captions, {} steps of {} per epoch) in {}, {:.0} tokens/s",
            summary.epochs_done,
            train_set.len(),
            plan.steps_per_epoch,
            plan.batch_size,
            human_seconds(seconds),
            summary.tokens_per_s
        );
        println!("stopped: {stop}");
        match (summary.best_epoch, summary.best_score) {
            (Some(epoch), Some(value)) if summary.signal != Signal::LastEpoch => println!(
                "best epoch {} by {} {value:.4} ({signal_reason}); final training loss {:.4}",
                epoch + 1,
                signal_name(summary.signal),
                summary.final_loss
            ),
            (Some(epoch), _) => println!(
                "kept the last epoch, {} ({signal_reason}); final training loss {:.4}",
                epoch + 1,
                summary.final_loss
            ),
            _ => println!("no epoch completed"),
        }
        println!("model: {}", args.out.display());
    }
    if let StopReason::Diverged { .. } = summary.stop {
        bail!(
            "training diverged: {stop}; {} (try a lower --lr)",
            match summary.best_epoch {
                Some(e) => format!(
                    "the best model so far (epoch {}) is in {}",
                    e + 1,
                    args.out.display()
                ),
                None => "no model was saved".to_string(),
            }
        );
    }
    Ok(EXIT_OK)
}
