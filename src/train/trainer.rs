//! The BPTT training loop, read top to bottom: data → model → optimiser → epochs of
//! (shuffle, batches, scheduled sampling, fused forward/backward, clip, AdamW) → validation
//! → best model, checkpoint, log, plot → early stop.
//!
//! Features stream: [`Examples`] hands out one clip's features on demand, a loader thread
//! reads the next batch while the current one trains, and only the validation clips are
//! held in memory, so a corpus far larger than memory trains at the speed of a small one.
//!
//! Every random choice (init, shuffle, sampling pick, dropout masks, scheduled sampling) is
//! drawn from a generator seeded by (seed, epoch, step), so a run resumed from an
//! end-of-epoch checkpoint (weights, AdamW moments, epoch/step, best score, log) ends with
//! the same weights, bit for bit, as an uninterrupted one.
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::optim::{AdamW, Decay, LrSchedule, clip_grad_norm};
use crate::atomic::write_atomic;
use crate::decoder::bptt::{
    Batch, PassOptions, Tape, loss_and_grad, loss_and_grad_with, teacher_forced_argmax,
};
use crate::decoder::io::{read_tensor, read_weights, tensors_to_bytes};
use crate::decoder::{Arch, CaptionModel, DecoderConfig, SearchOptions, Weights};
use crate::features::ClipFeatures;
use crate::features::cache::{CachedExamples, read_clip_features};
use crate::text::Vocab;
use crate::text::vocab::{EOS, PAD};

/// One captioned clip held in memory.
#[derive(Debug, Clone)]
pub struct TrainExample {
    pub clip: ClipFeatures,
    pub captions: Vec<String>,
    pub id: String,
}

/// The clips a run trains or validates on: ids and captions at hand, features loaded on
/// demand (from memory, or from the feature cache one file per clip).
pub trait Examples: Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn id(&self, i: usize) -> &str;
    fn captions(&self, i: usize) -> &[String];
    /// Feature samplings stored for clip `i` (temporally jittered ones from
    /// `extract --samplings`); training draws one per clip per epoch.
    fn samplings(&self, _i: usize) -> usize {
        1
    }
    fn features(&self, i: usize, sampling: usize) -> anyhow::Result<ClipFeatures>;
}

/// Cached examples, read one clip file at a time.
impl Examples for CachedExamples {
    fn len(&self) -> usize {
        self.clips.len()
    }
    fn id(&self, i: usize) -> &str {
        &self.clips[i].id
    }
    fn captions(&self, i: usize) -> &[String] {
        &self.clips[i].captions
    }
    fn samplings(&self, i: usize) -> usize {
        self.files[i].len()
    }
    fn features(&self, i: usize, sampling: usize) -> anyhow::Result<ClipFeatures> {
        read_clip_features(&self.files[i][sampling], self.regions)
    }
}

/// In-memory examples as [`Examples`].
struct InMemory<'a>(&'a [TrainExample]);

impl Examples for InMemory<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn id(&self, i: usize) -> &str {
        &self.0[i].id
    }
    fn captions(&self, i: usize) -> &[String] {
        &self.0[i].captions
    }
    fn features(&self, i: usize, _sampling: usize) -> anyhow::Result<ClipFeatures> {
        Ok(self.0[i].clip.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub arch: Arch,
    pub encoder: String,
    /// The clips' items end with the motion descriptor (recorded in the model's config).
    #[serde(default)]
    pub motion: bool,
    pub hidden: usize,
    pub embed: usize,
    pub att_dim: usize,
    pub dropout: f64,
    /// Words seen fewer times in the training captions become `<unk>`.
    pub min_count: usize,
    /// Longest caption in tokens (`<eos>` included); longer ones are cut.
    pub max_len: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f32,
    pub weight_decay: f32,
    pub warmup_steps: u64,
    pub decay: Decay,
    pub min_lr_ratio: f32,
    /// Global gradient-norm limit (0: no clipping).
    pub clip_norm: f32,
    pub label_smoothing: f64,
    /// Probability of feeding the model's own prediction instead of the reference word,
    /// ramped linearly from 0 in the first epoch to this value in the last.
    pub scheduled_sampling: f64,
    /// Stop after this many epochs past the warm-up without a better validation signal
    /// (0: never).
    pub patience: usize,
    pub seed: u64,
    /// Stop (with a checkpoint) after this many epochs in this invocation, e.g. to fit a
    /// time slot; `resume` continues. `None`: run to the end.
    #[serde(default)]
    pub stop_after_epochs: Option<usize>,
    /// The model directory the weights started from (fine-tuning), if any.
    #[serde(default)]
    pub init_from: Option<String>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            arch: Arch::Attention,
            encoder: "efficientnet-lite0".into(),
            motion: false,
            hidden: 512,
            embed: 300,
            att_dim: 256,
            dropout: 0.3,
            min_count: 2,
            max_len: 20,
            epochs: 30,
            batch_size: 64,
            lr: 1e-3,
            weight_decay: 1e-4,
            warmup_steps: 200,
            decay: Decay::Cosine,
            min_lr_ratio: 0.05,
            clip_norm: 5.0,
            label_smoothing: 0.1,
            scheduled_sampling: 0.0,
            patience: 5,
            seed: 0,
            stop_after_epochs: None,
            init_from: None,
        }
    }
}

/// What picks the best epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    /// The caller's score of greedy validation captions (CIDEr-D in `vidcap train`); higher
    /// is better.
    ValScore,
    /// Teacher-forced cross-entropy on the validation captions; lower is better.
    ValLoss,
    /// No validation clips: the last epoch is kept.
    LastEpoch,
}

impl Signal {
    fn better(self, new: f64, best: Option<f64>) -> bool {
        match (self, best) {
            (Signal::LastEpoch, _) => true,
            (_, None) => new.is_finite(),
            (Signal::ValScore, Some(b)) => new > b,
            (Signal::ValLoss, Some(b)) => new < b,
        }
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "reason")]
pub enum StopReason {
    /// All planned epochs ran.
    EpochsDone,
    /// `patience` epochs past the warm-up without a better signal.
    Patience,
    /// `stop_after_epochs` reached; `--resume` continues.
    Paused,
    /// The loss became NaN or infinite at this epoch and step; the best model so far is kept.
    Diverged { epoch: usize, step: u64 },
}

/// One line of `train_log.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub step: u64,
    pub train_loss: f64,
    /// The caller's score of greedy validation captions (CIDEr-D), when that is the signal.
    pub val_score: Option<f64>,
    /// Teacher-forced validation cross-entropy (no dropout or smoothing).
    #[serde(default)]
    pub val_loss: Option<f64>,
    pub lr: f32,
    pub grad_norm: f64,
    pub sampling_prob: f64,
    pub seconds: f64,
    /// Target tokens trained on this epoch.
    #[serde(default)]
    pub tokens: u64,
    #[serde(default)]
    pub improved: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    pub epochs_done: usize,
    pub best_epoch: Option<usize>,
    /// The best epoch's value of `signal` (score or loss).
    pub best_score: Option<f64>,
    pub signal: Signal,
    pub stop: StopReason,
    pub final_loss: f64,
    pub stopped_early: bool,
    pub finished: bool,
    /// Target tokens per second of training steps in this invocation (validation excluded).
    pub tokens_per_s: f64,
}

/// Where training stands after an epoch: everything resume needs besides the tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Progress {
    config: TrainConfig,
    epochs_done: usize,
    step: u64,
    adam_t: u64,
    best_score: Option<f64>,
    best_epoch: Option<usize>,
    bad_epochs: usize,
    log: Vec<EpochLog>,
}

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const CHECKPOINT_VOCAB_FILE: &str = "checkpoint_vocab.json";
pub const LOG_FILE: &str = "train_log.jsonl";
pub const PLOT_FILE: &str = "train_plot.svg";

/// Scores greedy validation captions `(id, caption)`; higher is better.
pub type ScoreCaptions<'a> = dyn Fn(&[(String, String)]) -> f64 + 'a;

/// How a run is driven, beyond its configuration.
pub struct RunOptions<'a> {
    /// Scores greedy validation captions `(id, caption)` (higher is better); `None` makes
    /// the validation loss the signal.
    pub score_val: Option<&'a ScoreCaptions<'a>>,
    /// Continue from `out_dir`'s checkpoint.
    pub resume: bool,
    /// Start from this model's weights; words of the training captions it lacks extend
    /// its vocabulary.
    pub init: Option<CaptionModel>,
    /// Called after every epoch (for progress display).
    pub on_epoch: Option<&'a dyn Fn(&EpochLog)>,
    /// Least time between two checkpoints (the last epoch of a run is always saved).
    pub checkpoint_every: Duration,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        Self {
            score_val: None,
            resume: false,
            init: None,
            on_epoch: None,
            checkpoint_every: Duration::from_secs(30),
        }
    }
}

/// Trains on in-memory examples; the best model (by `score_val` on greedy captions of
/// `val`, or the last epoch when `val` is empty) goes to `out_dir` as a model directory.
pub fn train(
    cfg: &TrainConfig,
    train: &[TrainExample],
    val: &[TrainExample],
    out_dir: &Path,
    score_val: &ScoreCaptions,
    resume: bool,
) -> anyhow::Result<TrainSummary> {
    let opts = RunOptions {
        score_val: Some(score_val),
        resume,
        checkpoint_every: Duration::ZERO,
        ..RunOptions::default()
    };
    train_examples(cfg, &InMemory(train), &InMemory(val), out_dir, opts)
}

/// The vocabulary of a run: the training captions' words seen `min_count` times, or, when
/// fine-tuning, the initial model's words followed by the new ones.
fn build_vocab(cfg: &TrainConfig, train: &dyn Examples, init: Option<&Vocab>) -> Vocab {
    let captions = (0..train.len()).flat_map(|i| train.captions(i).iter().map(String::as_str));
    let fresh = Vocab::build(captions, cfg.min_count);
    match init {
        Some(base) => base.extended(&fresh),
        None => fresh,
    }
}

/// `init`'s weights in a model of `vocab` (which starts with `init`'s words): the rows of
/// new words are initialised as a fresh model's, their output bias at the mean of the known
/// words' so they start neither favoured nor ruled out.
fn grow_vocab(init: &CaptionModel, cfg: &DecoderConfig, seed: u64) -> Weights<f32> {
    let dims = cfg.dims();
    let old = init.config.vocab_size;
    let fresh = Weights::<f32>::init(&dims, seed);
    let mut w = init.weights().clone();
    let (e, h) = (dims.embed, dims.hidden);
    w.embed.extend_from_slice(&fresh.embed[old * e..]);
    w.out_w.extend_from_slice(&fresh.out_w[old * h..]);
    let known = &init.weights().out_b[crate::text::vocab::SPECIAL_COUNT.min(old)..];
    let mean = known.iter().sum::<f32>() / known.len().max(1) as f32;
    w.out_b.resize(dims.vocab, mean);
    w
}

/// Trains on any [`Examples`]; see [`train`].
pub fn train_examples(
    cfg: &TrainConfig,
    train: &dyn Examples,
    val: &dyn Examples,
    out_dir: &Path,
    run: RunOptions,
) -> anyhow::Result<TrainSummary> {
    // ---- data ----
    ensure!(!train.is_empty(), "no training clips");
    ensure!(
        cfg.batch_size >= 1 && cfg.max_len >= 2 && cfg.epochs >= 1,
        "batch_size >= 1, epochs >= 1 and max_len >= 2 needed"
    );
    let first = train
        .features(0, 0)
        .context("reading the first training clip")?;
    let (regions, dim) = (first.regions, first.dim);
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let ckpt_path = out_dir.join(CHECKPOINT_FILE);
    let ckpt_bytes = if run.resume {
        Some(
            std::fs::read(&ckpt_path)
                .with_context(|| format!("--resume: cannot read {}", ckpt_path.display()))?,
        )
    } else {
        None
    };
    let vocab = match &ckpt_bytes {
        Some(_) => Vocab::load(&out_dir.join(CHECKPOINT_VOCAB_FILE))?,
        None => build_vocab(cfg, train, run.init.as_ref().map(|m| &m.vocab)),
    };
    let model_cfg = DecoderConfig {
        arch: cfg.arch,
        encoder: cfg.encoder.clone(),
        regions,
        feat_dim: dim,
        motion: cfg.motion,
        hidden: cfg.hidden,
        embed: cfg.embed,
        att_dim: cfg.att_dim,
        vocab_size: vocab.len(),
        max_len: cfg.max_len,
        dropout: cfg.dropout,
        longest_caption: crate::familiarity::longest_caption(
            &vocab,
            (0..train.len()).flat_map(|i| train.captions(i).iter().map(String::as_str)),
            cfg.max_len,
        ),
    };
    if let Some(init) = &run.init {
        let same = |a: &DecoderConfig| {
            (
                a.arch,
                a.encoder.clone(),
                a.regions,
                a.feat_dim,
                a.motion,
                a.hidden,
                a.embed,
            )
        };
        ensure!(
            same(&init.config) == same(&model_cfg)
                && (cfg.arch == Arch::Meanpool || init.config.att_dim == cfg.att_dim),
            "the initial model ({:?} {} regions={} feat_dim={} motion={} hidden={} embed={}) does not match this run ({:?} {} regions={} feat_dim={} motion={} hidden={} embed={})",
            init.config.arch,
            init.config.encoder,
            init.config.regions,
            init.config.feat_dim,
            init.config.motion,
            init.config.hidden,
            init.config.embed,
            cfg.arch,
            cfg.encoder,
            regions,
            dim,
            cfg.motion,
            cfg.hidden,
            cfg.embed
        );
    }
    model_cfg
        .check_clip(&first)
        .with_context(|| format!("clip {}", train.id(0)))?;
    // (clip, input tokens, targets), each padded to max_len.
    let pairs: Vec<(usize, Vec<u32>, Vec<u32>)> = (0..train.len())
        .flat_map(|i| train.captions(i).iter().map(move |c| (i, c)))
        .map(|(i, c)| {
            let (tin, tgt) = teacher_forcing_pair(&vocab.encode(c), cfg.max_len);
            (i, tin, tgt)
        })
        .collect();
    ensure!(!pairs.is_empty(), "the training clips have no captions");
    // Validation clips stay in memory: they are read every epoch.
    let val_clips: Vec<ClipFeatures> = (0..val.len())
        .map(|i| {
            let f = val.features(i, 0)?;
            model_cfg
                .check_clip(&f)
                .with_context(|| format!("validation clip {}", val.id(i)))?;
            Ok(f)
        })
        .collect::<anyhow::Result<_>>()?;
    let val_pairs: Vec<(usize, Vec<u32>, Vec<u32>)> = (0..val.len())
        .flat_map(|i| val.captions(i).iter().map(move |c| (i, c)))
        .map(|(i, c)| {
            let (tin, tgt) = teacher_forcing_pair(&vocab.encode(c), cfg.max_len);
            (i, tin, tgt)
        })
        .collect();
    let signal = if val_pairs.is_empty() {
        Signal::LastEpoch
    } else if run.score_val.is_some() {
        Signal::ValScore
    } else {
        Signal::ValLoss
    };

    // ---- model and optimiser ----
    let mut model = CaptionModel::new(model_cfg.clone(), vocab, cfg.seed)?;
    if let Some(init) = &run.init {
        *model.weights_mut() = grow_vocab(init, &model_cfg, cfg.seed);
    }
    let dims = model_cfg.dims();
    let mut opt = AdamW::new(&dims, cfg.weight_decay);
    let mut progress = Progress {
        config: cfg.clone(),
        epochs_done: 0,
        step: 0,
        adam_t: 0,
        best_score: None,
        best_epoch: None,
        bad_epochs: 0,
        log: vec![],
    };
    if let Some(bytes) = &ckpt_bytes {
        let st = SafeTensors::deserialize(bytes)
            .with_context(|| format!("{}: not a safetensors file", ckpt_path.display()))?;
        let (_, meta) = SafeTensors::read_metadata(bytes)?;
        let json = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("progress"))
            .with_context(|| format!("{}: no training progress metadata", ckpt_path.display()))?;
        progress = serde_json::from_str(json)
            .with_context(|| format!("{}: bad progress metadata", ckpt_path.display()))?;
        let mut saved = progress.config.clone();
        saved.stop_after_epochs = cfg.stop_after_epochs;
        if saved != *cfg {
            bail!(
                "{}: was written with a different training configuration; resume needs the same one",
                ckpt_path.display()
            );
        }
        *model.weights_mut() = read_weights(&st, "", &dims, &ckpt_path)?;
        opt.m = read_weights(&st, "adam_m.", &dims, &ckpt_path)?;
        opt.v = read_weights(&st, "adam_v.", &dims, &ckpt_path)?;
        opt.t = progress.adam_t;
        // The stored step count must match what the data gives, or the schedule would shift.
        let stored = read_tensor(&st, "steps_per_epoch", &[1], &ckpt_path)?[0] as u64;
        let now = pairs.len().div_ceil(cfg.batch_size) as u64;
        ensure!(
            stored == now,
            "{}: the checkpoint has {stored} steps per epoch, the data now gives {now}; resume needs the same training set",
            ckpt_path.display()
        );
    }
    let steps_per_epoch = pairs.len().div_ceil(cfg.batch_size) as u64;
    let schedule = LrSchedule {
        base: cfg.lr,
        warmup: cfg.warmup_steps,
        total: steps_per_epoch * cfg.epochs as u64,
        decay: cfg.decay,
        min_ratio: cfg.min_lr_ratio,
    };

    // ---- loop ----
    let mut grad = Weights::zeros(&dims);
    // The pass's buffers, reused step after step.
    let mut tape = Tape::default();
    let mut stop = StopReason::EpochsDone;
    let first_epoch = progress.epochs_done;
    let mut final_loss = progress.log.last().map_or(f64::NAN, |l| l.train_loss);
    // The best model waits in memory until the next checkpoint writes it with the
    // progress that names it.
    let mut best_unsaved: Option<Weights<f32>> = None;
    let mut last_checkpoint = Instant::now();
    let (mut run_tokens, mut run_step_seconds) = (0u64, 0f64);
    for epoch in first_epoch..cfg.epochs {
        if cfg
            .stop_after_epochs
            .is_some_and(|n| epoch - first_epoch >= n)
        {
            stop = StopReason::Paused;
            break;
        }
        if cfg.patience > 0 && progress.bad_epochs >= cfg.patience {
            stop = StopReason::Patience;
            break;
        }
        let started = Instant::now();
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        order.shuffle(&mut rng_for(cfg.seed, epoch as u64, u64::MAX));
        // One feature sampling per clip for the whole epoch.
        let mut pick_rng = rng_for(cfg.seed, epoch as u64, u64::MAX - 1);
        let picks: Vec<usize> = (0..train.len())
            .map(|i| match train.samplings(i) {
                0 | 1 => 0,
                n => pick_rng.random_range(0..n),
            })
            .collect();
        let sampling_prob = if cfg.epochs > 1 {
            cfg.scheduled_sampling * epoch as f64 / (cfg.epochs - 1) as f64
        } else {
            0.0
        };
        let (mut loss_sum, mut norm_sum, mut lr, mut tokens) = (0.0f64, 0.0f64, 0.0f32, 0u64);
        let chunks: Vec<&[usize]> = order.chunks(cfg.batch_size).collect();
        let diverged = std::thread::scope(|scope| -> anyhow::Result<Option<u64>> {
            // The loader reads batch k+1 while batch k trains.
            let (tx, rx) = std::sync::mpsc::sync_channel::<anyhow::Result<BatchFeatures>>(2);
            let (pairs, picks, chunks) = (&pairs, &picks, &chunks);
            scope.spawn(move || {
                for chunk in chunks {
                    let loaded = load_batch(train, chunk, pairs, picks);
                    if tx.send(loaded).is_err() {
                        break;
                    }
                }
            });
            for chunk in chunks.iter() {
                let loaded = rx.recv().context("the feature loader stopped")??;
                let step = progress.step;
                let step_started = Instant::now();
                let mut rng = rng_for(cfg.seed, epoch as u64, step);
                // Positions past the batch's longest caption are all padding: cut them.
                let len = batch_len(chunk.iter().map(|&p| pairs[p].2.as_slice()));
                let mut tokens_in = Vec::with_capacity(chunk.len() * len);
                let mut targets = Vec::with_capacity(chunk.len() * len);
                for &p in chunk.iter() {
                    tokens_in.extend_from_slice(&pairs[p].1[..len]);
                    targets.extend_from_slice(&pairs[p].2[..len]);
                }
                let clips: Vec<&[f32]> = loaded
                    .slot
                    .iter()
                    .map(|&s| loaded.clips[s].features.as_slice())
                    .collect();
                if sampling_prob > 0.0 {
                    let batch = Batch {
                        clips: clips.clone(),
                        tokens_in: &tokens_in,
                        targets: &targets,
                        len,
                    };
                    let preds = teacher_forced_argmax(model.weights(), &dims, &batch);
                    for b in 0..chunk.len() {
                        for t in 1..len {
                            let k = b * len + t;
                            if tokens_in[k] != PAD && rng.random::<f64>() < sampling_prob {
                                tokens_in[k] = preds[k - 1];
                            }
                        }
                    }
                }
                let batch = Batch {
                    clips,
                    tokens_in: &tokens_in,
                    targets: &targets,
                    len,
                };
                let opts = PassOptions {
                    dropout: cfg.dropout,
                    label_smoothing: cfg.label_smoothing,
                    seed: rng.random(),
                    all_positions: false,
                };
                let loss = loss_and_grad_with(
                    &mut tape,
                    model.weights(),
                    &dims,
                    &batch,
                    &opts,
                    Some(&mut grad),
                );
                if !loss.is_finite() {
                    return Ok(Some(step));
                }
                norm_sum += clip_grad_norm(&mut grad, cfg.clip_norm) as f64;
                lr = schedule.at(step);
                opt.step(model.weights_mut(), &grad, lr);
                loss_sum += loss as f64;
                tokens += targets.iter().filter(|&&t| t != PAD).count() as u64;
                run_step_seconds += step_started.elapsed().as_secs_f64();
                progress.step += 1;
            }
            Ok(None)
        })?;
        if let Some(step) = diverged {
            stop = StopReason::Diverged { epoch, step };
            break;
        }
        run_tokens += tokens;
        let n_batches = chunks.len() as f64;
        final_loss = loss_sum / n_batches;

        // ---- validation ----
        let val_loss = (!val_pairs.is_empty())
            .then(|| mean_loss(&model, &val_clips, &val_pairs, cfg.batch_size));
        let val_score = match (signal, run.score_val) {
            (Signal::ValScore, Some(score)) => {
                let opts = SearchOptions {
                    beam: 1,
                    max_len: cfg.max_len,
                    length_penalty: 1.0,
                    no_repeat_ngram: 0,
                };
                let hyps = model.caption(&val_clips, &opts)?;
                let named: Vec<(String, String)> = (0..val.len())
                    .zip(hyps)
                    .map(|(i, h)| (val.id(i).to_string(), h.text))
                    .collect();
                Some(score(&named))
            }
            _ => None,
        };
        let value = match signal {
            Signal::ValScore => val_score.unwrap_or(f64::NAN),
            Signal::ValLoss => val_loss.unwrap_or(f64::NAN),
            Signal::LastEpoch => final_loss,
        };
        let improved = signal.better(value, progress.best_score);
        if improved {
            progress.best_score = Some(value);
            progress.best_epoch = Some(epoch);
            progress.bad_epochs = 0;
            best_unsaved = Some(model.weights().clone());
        } else if progress.step > cfg.warmup_steps {
            // Patience counts only once the learning rate has left its warm-up.
            progress.bad_epochs += 1;
        }
        let entry = EpochLog {
            epoch,
            step: progress.step,
            train_loss: final_loss,
            val_score,
            val_loss,
            lr,
            grad_norm: norm_sum / n_batches,
            sampling_prob,
            seconds: started.elapsed().as_secs_f64(),
            tokens,
            improved,
        };
        tracing::debug!("epoch {epoch}: {entry:?}");
        if let Some(on_epoch) = run.on_epoch {
            on_epoch(&entry);
        }
        progress.log.push(entry);
        progress.epochs_done = epoch + 1;
        progress.adam_t = opt.t;
        let last_of_run = epoch + 1 == cfg.epochs
            || (cfg.patience > 0 && progress.bad_epochs >= cfg.patience)
            || cfg
                .stop_after_epochs
                .is_some_and(|n| epoch + 1 - first_epoch >= n);
        if last_of_run || last_checkpoint.elapsed() >= run.checkpoint_every {
            save_progress(
                out_dir,
                &mut model,
                &mut best_unsaved,
                &opt,
                &progress,
                steps_per_epoch,
            )?;
            last_checkpoint = Instant::now();
        }
    }
    if matches!(stop, StopReason::EpochsDone)
        && cfg.patience > 0
        && progress.bad_epochs >= cfg.patience
        && progress.epochs_done < cfg.epochs
    {
        stop = StopReason::Patience;
    }
    // A diverged run keeps its last checkpoint (a consistent epoch boundary) and gets the
    // best model it found since.
    if let Some(best) = best_unsaved.take() {
        *model.weights_mut() = best;
        model.save(out_dir)?;
        write_log(out_dir, &progress.log)?;
    }
    Ok(TrainSummary {
        epochs_done: progress.epochs_done,
        best_epoch: progress.best_epoch,
        best_score: progress.best_score,
        signal,
        stop,
        final_loss,
        stopped_early: stop == StopReason::Patience,
        finished: matches!(stop, StopReason::Patience | StopReason::EpochsDone),
        tokens_per_s: if run_step_seconds > 0.0 {
            run_tokens as f64 / run_step_seconds
        } else {
            0.0
        },
    })
}

/// Positions a batch needs: up to its longest target sequence (`<eos>` included).
fn batch_len<'a>(targets: impl Iterator<Item = &'a [u32]>) -> usize {
    targets
        .map(|t| t.iter().rposition(|&w| w != PAD).map_or(1, |i| i + 1))
        .max()
        .unwrap_or(1)
}

/// One batch's clip features, each distinct clip read once.
struct BatchFeatures {
    clips: Vec<ClipFeatures>,
    /// Per pair of the chunk, its clip's index in `clips`.
    slot: Vec<usize>,
}

fn load_batch(
    train: &dyn Examples,
    chunk: &[usize],
    pairs: &[(usize, Vec<u32>, Vec<u32>)],
    picks: &[usize],
) -> anyhow::Result<BatchFeatures> {
    let mut index: HashMap<usize, usize> = HashMap::new();
    let mut clips = Vec::new();
    let mut slot = Vec::with_capacity(chunk.len());
    for &p in chunk {
        let clip = pairs[p].0;
        let s = match index.get(&clip) {
            Some(&s) => s,
            None => {
                let f = train
                    .features(clip, picks[clip])
                    .with_context(|| format!("training clip {}", train.id(clip)))?;
                ensure!(
                    f.regions
                        == clips
                            .first()
                            .map_or(f.regions, |c: &ClipFeatures| c.regions)
                        && f.dim == clips.first().map_or(f.dim, |c: &ClipFeatures| c.dim),
                    "training clip {}: features [T, {}, {}] differ from the batch's",
                    train.id(clip),
                    f.regions,
                    f.dim
                );
                clips.push(f);
                index.insert(clip, clips.len() - 1);
                clips.len() - 1
            }
        };
        slot.push(s);
    }
    Ok(BatchFeatures { clips, slot })
}

/// Mean teacher-forced cross-entropy per target token over `pairs` (no dropout, no
/// smoothing): the validation loss.
fn mean_loss(
    model: &CaptionModel,
    clips: &[ClipFeatures],
    pairs: &[(usize, Vec<u32>, Vec<u32>)],
    batch_size: usize,
) -> f64 {
    let dims = model.config.dims();
    let (mut sum, mut count) = (0.0f64, 0usize);
    for chunk in pairs.chunks(batch_size.max(1)) {
        let len = batch_len(chunk.iter().map(|p| p.2.as_slice()));
        let tokens_in: Vec<u32> = chunk
            .iter()
            .flat_map(|p| p.1[..len].iter().copied())
            .collect();
        let targets: Vec<u32> = chunk
            .iter()
            .flat_map(|p| p.2[..len].iter().copied())
            .collect();
        let n = targets.iter().filter(|&&t| t != PAD).count();
        let batch = Batch {
            clips: chunk
                .iter()
                .map(|p| clips[p.0].features.as_slice())
                .collect(),
            tokens_in: &tokens_in,
            targets: &targets,
            len,
        };
        let loss = loss_and_grad(
            model.weights(),
            &dims,
            &batch,
            &PassOptions::default(),
            None,
        );
        sum += loss as f64 * n as f64;
        count += n;
    }
    sum / count.max(1) as f64
}

/// Writes the best model if it changed, then the checkpoint, log and plot.
fn save_progress(
    out_dir: &Path,
    model: &mut CaptionModel,
    best_unsaved: &mut Option<Weights<f32>>,
    opt: &AdamW,
    progress: &Progress,
    steps_per_epoch: u64,
) -> anyhow::Result<()> {
    if let Some(best) = best_unsaved.take() {
        let current = std::mem::replace(model.weights_mut(), best);
        let saved = model.save(out_dir);
        *model.weights_mut() = current;
        saved?;
    }
    save_checkpoint(out_dir, model, opt, progress, steps_per_epoch)?;
    write_log(out_dir, &progress.log)?;
    plot(&out_dir.join(PLOT_FILE), &progress.log)
}

/// `<bos> w1 … wn` → `w1 … wn <eos>`, cut to `max_len` and padded with `<pad>`.
pub fn teacher_forcing_pair(words: &[u32], max_len: usize) -> (Vec<u32>, Vec<u32>) {
    let n = words.len().min(max_len - 1);
    let mut tin = vec![PAD; max_len];
    let mut tgt = vec![PAD; max_len];
    tin[0] = crate::text::vocab::BOS;
    tin[1..=n].copy_from_slice(&words[..n]);
    tgt[..n].copy_from_slice(&words[..n]);
    tgt[n] = EOS;
    (tin, tgt)
}

/// The generator for one (epoch, step); `step = u64::MAX` is the epoch's shuffle.
fn rng_for(seed: u64, epoch: u64, step: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step);
    rng
}

fn save_checkpoint(
    dir: &Path,
    model: &CaptionModel,
    opt: &AdamW,
    progress: &Progress,
    steps_per_epoch: u64,
) -> anyhow::Result<()> {
    let meta = HashMap::from([("progress".to_string(), serde_json::to_string(progress)?)]);
    let bytes = tensors_to_bytes(
        &[
            ("", model.weights()),
            ("adam_m.", &opt.m),
            ("adam_v.", &opt.v),
        ],
        &model.config.dims(),
        vec![(
            "steps_per_epoch".into(),
            vec![1],
            vec![steps_per_epoch as f32],
        )],
        meta,
    )?;
    model.vocab.save(&dir.join(CHECKPOINT_VOCAB_FILE))?;
    write_atomic(&dir.join(CHECKPOINT_FILE), &bytes)
}

/// The weights stored in a training checkpoint (e.g. to compare runs).
pub fn checkpoint_weights(dir: &Path, dims: &crate::decoder::Dims) -> anyhow::Result<Weights<f32>> {
    let path = dir.join(CHECKPOINT_FILE);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)?;
    read_weights(&st, "", dims, &path)
}

fn write_log(dir: &Path, log: &[EpochLog]) -> anyhow::Result<()> {
    let mut text = String::new();
    for entry in log {
        text.push_str(&serde_json::to_string(entry)?);
        text.push('\n');
    }
    write_atomic(&dir.join(LOG_FILE), text.as_bytes())
}

/// Training loss (top) and validation score (bottom) per epoch, as SVG.
fn plot(path: &Path, log: &[EpochLog]) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 560)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        let (top, bottom) = root.split_vertically(280);
        let x_max = log.last().map_or(1.0, |l| l.epoch as f64 + 1.0).max(1.0);
        // (label, (epoch, loss) points, colour)
        type Series<'l> = (&'l str, Vec<(f64, f64)>, RGBColor);
        let series: [Series; 2] = [
            (
                "training loss",
                log.iter().map(|l| (l.epoch as f64, l.train_loss)).collect(),
                BLUE,
            ),
            (
                "validation score (CIDEr-D)",
                log.iter()
                    .filter_map(|l| l.val_score.map(|s| (l.epoch as f64, s)))
                    .collect(),
                RED,
            ),
        ];
        for (area, (title, points, color)) in [top, bottom].iter().zip(series) {
            let (lo, hi) = points
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                    (a.min(p.1), b.max(p.1))
                });
            let (lo, hi) = if lo.is_finite() {
                (lo.min(0.0), hi.max(lo + 1e-3) * 1.05)
            } else {
                (0.0, 1.0)
            };
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(50)
                .build_cartesian_2d(0f64..x_max, lo..hi)
                .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .draw()
                .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
            chart
                .draw_series(LineSeries::new(points, &color))
                .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        }
        root.present().map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    }
    write_atomic(path, svg.as_bytes())
}
