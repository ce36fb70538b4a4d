//! `vidcap train DATASET --out MODEL_DIR`: trains the caption decoder on cached features
//! (never on video: `vidcap extract` fills the cache first) and records how in
//! `training_report.json`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{EXIT_OK, Global};
use crate::atomic::write_atomic;
use crate::decoder::{Arch, ClipFeatures};
use crate::encoder::{load_encoder, models_dir};
use crate::train::cache::{
    CacheKey, FeatureCache, GRID_REGIONS, describe_uncached, encoder_weights_sha256, split_features,
};
use crate::train::data::{Clip, Dataset, DatasetFormat, DatasetOptions, Split, load_dataset};
use crate::train::optim::Decay;
use crate::train::trainer::{self, TrainConfig, TrainExample};

pub const REPORT_FILE: &str = "training_report.json";

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

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Annotation file or directory (own JSONL, MSR-VTT, MSVD txt/csv, VATEX json).
    pub dataset: PathBuf,
    /// Model directory to write (config.json, model.safetensors, vocab.json, logs).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub features: FeatureArgs,
    /// Decoder: temporal attention over the frame features, or their mean only.
    #[arg(long, default_value = "attention", value_parser = ["attention", "meanpool"])]
    pub arch: String,
    /// Regions per frame the decoder sees: 5 (global + 2×2 grid) or 1 (global pool).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=5))]
    pub regions: u64,
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    #[arg(long, default_value_t = 512)]
    pub hidden: usize,
    #[arg(long, default_value_t = 300)]
    pub embed: usize,
    /// Width of the additive attention's hidden layer.
    #[arg(long, default_value_t = 256)]
    pub att_dim: usize,
    #[arg(long, default_value_t = 0.3)]
    pub dropout: f64,
    /// Words seen fewer times in the training captions become <unk>.
    #[arg(long, default_value_t = 2)]
    pub min_count: usize,
    /// Longest caption in tokens (<eos> included).
    #[arg(long, default_value_t = 20)]
    pub max_len: usize,
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f32,
    #[arg(long, default_value_t = 200)]
    pub warmup_steps: u64,
    /// Learning-rate decay after the warm-up: cosine, linear or constant.
    #[arg(long, default_value = "cosine", value_parser = ["cosine", "linear", "constant"])]
    pub decay: String,
    /// Global gradient-norm limit (0: none).
    #[arg(long, default_value_t = 5.0)]
    pub clip_norm: f32,
    #[arg(long, default_value_t = 0.1)]
    pub label_smoothing: f64,
    /// Final probability of feeding the model's own word (ramped from 0).
    #[arg(long, default_value_t = 0.0)]
    pub scheduled_sampling: f64,
    /// Stop after this many epochs without a better validation CIDEr-D (0: never).
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    /// Stop (with a checkpoint) after this many epochs in this run; --resume continues.
    #[arg(long)]
    pub stop_after_epochs: Option<usize>,
    /// Continue from MODEL_DIR's checkpoint as an uninterrupted run would.
    #[arg(long)]
    pub resume: bool,
    /// Print the summary as one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// A split's examples, all cached, or an error naming how many are not and how to fix it.
pub(super) struct LoadedSplit {
    pub clips: Vec<Clip>,
    pub features: Vec<ClipFeatures>,
}

/// Resolves the dataset, cache and key shared by train and eval.
pub(super) struct FeatureSource {
    pub dataset: Dataset,
    pub cache: FeatureCache,
    pub key: CacheKey,
    dataset_path: PathBuf,
    args: FeatureArgs,
}

impl FeatureSource {
    pub fn open(dataset_path: &Path, args: &FeatureArgs) -> anyhow::Result<Self> {
        let opts = DatasetOptions {
            format: args.format,
            videos: args.videos.clone(),
        };
        let dataset = load_dataset(dataset_path, &opts)?;
        let cache_dir = match &args.cache {
            Some(dir) => dir.clone(),
            None => dataset_dir(dataset_path).join("features"),
        };
        if !cache_dir.is_dir() {
            bail!(
                "feature cache {} does not exist; fill it with `{}`",
                cache_dir.display(),
                extract_command(dataset_path, &cache_dir, args)
            );
        }
        let cache = FeatureCache::open(&cache_dir)?;
        // Only a directory needs loading to learn the encoder's name; a registry name is it.
        let (name, model_dir) = if Path::new(&args.encoder).is_dir() {
            let encoder = load_encoder(&args.encoder)?;
            (encoder.name().to_string(), PathBuf::from(&args.encoder))
        } else {
            (args.encoder.clone(), models_dir().join(&args.encoder))
        };
        let sha = encoder_weights_sha256(&model_dir).with_context(|| {
            format!(
                "the cache key needs the weights' hash of encoder {}",
                args.encoder
            )
        })?;
        let key = CacheKey::new(
            &name,
            &sha,
            args.frames as usize,
            !args.no_grid,
            !args.no_motion,
        );
        Ok(Self {
            dataset,
            cache,
            key,
            dataset_path: dataset_path.to_path_buf(),
            args: args.clone(),
        })
    }

    /// Every clip of `split` with its features cut to `regions` per frame; an error when
    /// any clip has no valid cache entry.
    pub fn load(&self, split: Split, regions: usize) -> anyhow::Result<LoadedSplit> {
        if regions != 1 && regions != self.key.regions {
            bail!(
                "the decoder needs {regions} regions per frame but the cache holds {} (extracted {})",
                self.key.regions,
                if self.args.no_grid {
                    "with --no-grid"
                } else {
                    "with the grid"
                }
            );
        }
        let found = split_features(&self.dataset, &self.cache, &self.key, split);
        if !found.uncached.is_empty() {
            bail!(
                "{} of the {} {split} clips of {} have no valid features in {} (encoder {}, {}, {} regions): {}; run `{}`",
                found.uncached.len(),
                found.uncached.len() + found.found.len(),
                self.dataset_path.display(),
                self.cache.dir().display(),
                self.key.encoder,
                self.key.sampling,
                self.key.regions,
                describe_uncached(&found.uncached),
                extract_command(&self.dataset_path, self.cache.dir(), &self.args)
            );
        }
        let mut clips = Vec::with_capacity(found.found.len());
        let mut features = Vec::with_capacity(found.found.len());
        for (clip, cached) in found.found {
            // Region 0 is the global pool in both layouts, so R = 1 is a prefix.
            let tensor = cached.features.narrow(1, 0, regions)?;
            let (frames, r, dim) = tensor.dims3()?;
            let values = tensor.flatten_all()?.to_vec1::<f32>()?;
            features.push(ClipFeatures {
                features: values,
                frames,
                regions: r,
                dim,
            });
            clips.push(clip);
        }
        Ok(LoadedSplit { clips, features })
    }
}

fn dataset_dir(dataset: &Path) -> PathBuf {
    if dataset.is_dir() {
        dataset.to_path_buf()
    } else {
        dataset
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }
}

/// The `vidcap extract` command that fills `cache` with the features these flags read.
fn extract_command(dataset: &Path, cache: &Path, args: &FeatureArgs) -> String {
    let mut cmd = format!(
        "vidcap extract {} --out {} --encoder {} --frames {}",
        dataset.display(),
        cache.display(),
        args.encoder,
        args.frames
    );
    if args.no_grid {
        cmd.push_str(" --no-grid");
    }
    if args.no_motion {
        cmd.push_str(" --no-motion");
    }
    if let Some(v) = &args.videos {
        cmd.push_str(&format!(" --videos {}", v.display()));
    }
    if let Some(f) = args.format {
        cmd.push_str(&format!(" --format {f}"));
    }
    cmd
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

pub fn run(args: Args, global: &Global) -> anyhow::Result<u8> {
    let clock = Instant::now();
    let regions = args.regions as usize;
    if regions != 1 && regions != GRID_REGIONS {
        bail!("--regions must be 1 or {GRID_REGIONS}, not {regions}");
    }
    let source = FeatureSource::open(&args.dataset, &args.features)?;
    let train_split = source.load(Split::Train, regions)?;
    if train_split.clips.is_empty() {
        bail!("{}: the dataset has no train clips", args.dataset.display());
    }
    let val_split = source.load(Split::Val, regions)?;
    let examples = |split: &LoadedSplit| -> Vec<TrainExample> {
        split
            .clips
            .iter()
            .zip(&split.features)
            .map(|(clip, f)| TrainExample {
                clip: f.clone(),
                captions: clip.captions.clone(),
                id: clip.id.clone(),
            })
            .collect()
    };
    let train_examples = examples(&train_split);
    // Validation clips without references cannot be scored.
    let val_examples: Vec<TrainExample> = examples(&val_split)
        .into_iter()
        .filter(|e| !e.captions.is_empty())
        .collect();
    let val_refs = references(&val_split.clips);
    let score_val = |pairs: &[(String, String)]| -> f64 {
        let hyps: BTreeMap<String, String> = pairs.iter().cloned().collect();
        match crate::metrics::cider_d(&val_refs, &hyps) {
            Ok(score) => score,
            Err(e) => {
                tracing::warn!("validation CIDEr-D failed: {e}");
                0.0
            }
        }
    };
    let cfg = TrainConfig {
        arch: match args.arch.as_str() {
            "meanpool" => Arch::Meanpool,
            _ => Arch::Attention,
        },
        encoder: source.key.encoder.clone(),
        motion: source.key.motion,
        hidden: args.hidden,
        embed: args.embed,
        att_dim: args.att_dim,
        dropout: args.dropout,
        min_count: args.min_count,
        max_len: args.max_len,
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        weight_decay: args.weight_decay,
        warmup_steps: args.warmup_steps,
        decay: match args.decay.as_str() {
            "linear" => Decay::Linear,
            "constant" => Decay::Constant,
            _ => Decay::Cosine,
        },
        min_lr_ratio: TrainConfig::default().min_lr_ratio,
        clip_norm: args.clip_norm,
        label_smoothing: args.label_smoothing,
        scheduled_sampling: args.scheduled_sampling,
        patience: args.patience,
        seed: global.seed,
        stop_after_epochs: args.stop_after_epochs,
    };
    tracing::info!(
        "{} train / {} val clips, {} regions × {} frames, dim {} → {}",
        train_examples.len(),
        val_examples.len(),
        regions,
        train_examples[0].clip.frames,
        train_examples[0].clip.dim,
        args.out.display()
    );
    let summary = trainer::train(
        &cfg,
        &train_examples,
        &val_examples,
        &args.out,
        &score_val,
        args.resume,
    )?;
    // Issue 11: what the training clips look like, so captions can flag unlike footage.
    crate::familiarity::fit_model_dir(
        &args.out,
        train_split.features.iter(),
        val_split.features.iter(),
    );
    let seconds = clock.elapsed().as_secs_f64();
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
        "epochs_done": summary.epochs_done,
        "best_epoch": summary.best_epoch,
        "val_cider_d": summary.best_score,
        "final_train_loss": summary.final_loss,
        "stopped_early": summary.stopped_early,
        "finished": summary.finished,
        "wall_seconds": total_seconds,
        "runs": runs,
    });
    write_atomic(&report_path, &serde_json::to_vec_pretty(&report)?)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "trained {} epoch(s) on {} clips in {:.1} s; best epoch {}, validation CIDEr-D {}; final loss {:.4}{}",
            summary.epochs_done,
            train_examples.len(),
            seconds,
            summary
                .best_epoch
                .map_or_else(|| "-".into(), |e| e.to_string()),
            summary
                .best_score
                .map_or_else(|| "-".into(), |s| format!("{s:.4}")),
            summary.final_loss,
            if summary.stopped_early {
                " (stopped early)"
            } else if !summary.finished {
                " (paused; --resume continues)"
            } else {
                ""
            }
        );
        println!("model: {}", args.out.display());
    }
    Ok(EXIT_OK)
}
