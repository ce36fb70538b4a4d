//! The BPTT training loop, read top to bottom: data → model → optimiser → epochs of
//! (shuffle, batches, scheduled sampling, fused forward/backward, clip, AdamW) → greedy
//! validation scored by the caller → best model, checkpoint, log, plot → early stop.
//!
//! Every random choice (init, shuffle, dropout masks, scheduled sampling) is drawn from a
//! generator seeded by (seed, epoch, step), so a run resumed from the end-of-epoch checkpoint
//! (weights, AdamW moments, epoch/step, best score, log) ends with the same weights, bit for
//! bit, as an uninterrupted one.
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::optim::{AdamW, Decay, LrSchedule, clip_grad_norm};
use crate::atomic::write_atomic;
use crate::decoder::bptt::{Batch, PassOptions, loss_and_grad, teacher_forced_argmax};
use crate::decoder::io::{read_tensor, read_weights, tensors_to_bytes};
use crate::decoder::{Arch, CaptionModel, ClipFeatures, DecoderConfig, SearchOptions, Weights};
use crate::text::Vocab;
use crate::text::vocab::{EOS, PAD};

/// One captioned clip.
#[derive(Debug, Clone)]
pub struct TrainExample {
    pub clip: ClipFeatures,
    pub captions: Vec<String>,
    pub id: String,
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
    /// Stop after this many epochs without a better validation score (0: never).
    pub patience: usize,
    pub seed: u64,
    /// Stop (with a checkpoint) after this many epochs in this invocation, e.g. to fit a
    /// time slot; `resume` continues. `None`: run to the end.
    #[serde(default)]
    pub stop_after_epochs: Option<usize>,
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
        }
    }
}

/// One line of `train_log.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub step: u64,
    pub train_loss: f64,
    pub val_score: Option<f64>,
    pub lr: f32,
    pub grad_norm: f64,
    pub sampling_prob: f64,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    pub epochs_done: usize,
    pub best_epoch: Option<usize>,
    pub best_score: Option<f64>,
    pub final_loss: f64,
    pub stopped_early: bool,
    pub finished: bool,
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
pub const LOG_FILE: &str = "train_log.jsonl";
pub const PLOT_FILE: &str = "train_plot.svg";

/// Trains a decoder; the best model (by `score_val` on greedy captions of `val`, or the
/// last epoch when `val` is empty) goes to `out_dir` as a model directory.
pub fn train(
    cfg: &TrainConfig,
    train: &[TrainExample],
    val: &[TrainExample],
    out_dir: &Path,
    score_val: &dyn Fn(&[(String, String)]) -> f64,
    resume: bool,
) -> anyhow::Result<TrainSummary> {
    // ---- data ----
    ensure!(!train.is_empty(), "no training clips");
    ensure!(
        cfg.batch_size >= 1 && cfg.max_len >= 2,
        "batch_size >= 1 and max_len >= 2 needed"
    );
    let (regions, dim) = (train[0].clip.regions, train[0].clip.dim);
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let ckpt_path = out_dir.join(CHECKPOINT_FILE);
    let ckpt_bytes = if resume {
        Some(
            std::fs::read(&ckpt_path)
                .with_context(|| format!("--resume: cannot read {}", ckpt_path.display()))?,
        )
    } else {
        None
    };
    let vocab = match &ckpt_bytes {
        Some(_) => Vocab::load(&out_dir.join("checkpoint_vocab.json"))?,
        None => Vocab::build(
            train
                .iter()
                .flat_map(|e| e.captions.iter().map(String::as_str)),
            cfg.min_count,
        ),
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
            train
                .iter()
                .flat_map(|e| e.captions.iter().map(String::as_str)),
            cfg.max_len,
        ),
    };
    for e in train.iter().chain(val) {
        e.clip
            .check(&model_cfg)
            .with_context(|| format!("clip {}", e.id))?;
    }
    // (clip, input tokens, targets), each padded to max_len.
    let pairs: Vec<(usize, Vec<u32>, Vec<u32>)> = train
        .iter()
        .enumerate()
        .flat_map(|(i, e)| e.captions.iter().map(move |c| (i, c)))
        .map(|(i, c)| {
            let (tin, tgt) = teacher_forcing_pair(&vocab.encode(c), cfg.max_len);
            (i, tin, tgt)
        })
        .collect();
    ensure!(!pairs.is_empty(), "the training clips have no captions");

    // ---- model and optimiser ----
    let mut model = CaptionModel::new(model_cfg.clone(), vocab, cfg.seed)?;
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
        model.weights = read_weights(&st, "", &dims, &ckpt_path)?;
        opt.m = read_weights(&st, "adam_m.", &dims, &ckpt_path)?;
        opt.v = read_weights(&st, "adam_v.", &dims, &ckpt_path)?;
        opt.t = progress.adam_t;
        // The stored step count must match what the data gives, or the schedule would shift.
        let _ = read_tensor(&st, "steps_per_epoch", &[1], &ckpt_path)?;
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
    let mut stopped_early = false;
    let first_epoch = progress.epochs_done;
    let mut final_loss = progress.log.last().map_or(f64::NAN, |l| l.train_loss);
    for epoch in first_epoch..cfg.epochs {
        if cfg
            .stop_after_epochs
            .is_some_and(|n| epoch - first_epoch >= n)
        {
            break;
        }
        if cfg.patience > 0 && progress.bad_epochs >= cfg.patience {
            stopped_early = true;
            break;
        }
        let started = Instant::now();
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        order.shuffle(&mut rng_for(cfg.seed, epoch as u64, u64::MAX));
        let sampling_prob = if cfg.epochs > 1 {
            cfg.scheduled_sampling * epoch as f64 / (cfg.epochs - 1) as f64
        } else {
            0.0
        };
        let (mut loss_sum, mut norm_sum, mut lr) = (0.0f64, 0.0f64, 0.0f32);
        for chunk in order.chunks(cfg.batch_size) {
            let step = progress.step;
            let mut rng = rng_for(cfg.seed, epoch as u64, step);
            let mut tokens_in = Vec::with_capacity(chunk.len() * cfg.max_len);
            let mut targets = Vec::with_capacity(chunk.len() * cfg.max_len);
            for &p in chunk {
                tokens_in.extend_from_slice(&pairs[p].1);
                targets.extend_from_slice(&pairs[p].2);
            }
            let clips: Vec<&[f32]> = chunk
                .iter()
                .map(|&p| train[pairs[p].0].clip.features.as_slice())
                .collect();
            if sampling_prob > 0.0 {
                let batch = Batch {
                    clips: clips.clone(),
                    tokens_in: &tokens_in,
                    targets: &targets,
                    len: cfg.max_len,
                };
                let preds = teacher_forced_argmax(&model.weights, &dims, &batch);
                for b in 0..chunk.len() {
                    for t in 1..cfg.max_len {
                        let k = b * cfg.max_len + t;
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
                len: cfg.max_len,
            };
            let opts = PassOptions {
                dropout: cfg.dropout,
                label_smoothing: cfg.label_smoothing,
                seed: rng.random(),
                all_positions: false,
            };
            let loss = loss_and_grad(&model.weights, &dims, &batch, &opts, Some(&mut grad));
            ensure!(
                loss.is_finite(),
                "training diverged at epoch {epoch} step {step} (loss {loss})"
            );
            norm_sum += clip_grad_norm(&mut grad, cfg.clip_norm) as f64;
            lr = schedule.at(step);
            opt.step(&mut model.weights, &grad, lr);
            loss_sum += loss as f64;
            progress.step += 1;
        }
        let n_batches = order.len().div_ceil(cfg.batch_size) as f64;
        final_loss = loss_sum / n_batches;

        // ---- validation: greedy captions scored by the caller ----
        let val_score = if val.is_empty() {
            None
        } else {
            let clips: Vec<ClipFeatures> = val.iter().map(|e| e.clip.clone()).collect();
            let opts = SearchOptions {
                beam: 1,
                max_len: cfg.max_len,
                length_penalty: 1.0,
                no_repeat_ngram: 0,
            };
            let hyps = model.caption(&clips, &opts)?;
            let pairs: Vec<(String, String)> = val
                .iter()
                .zip(hyps)
                .map(|(e, h)| (e.id.clone(), h.text))
                .collect();
            Some(score_val(&pairs))
        };
        // Without validation data the last epoch is the best.
        let improved = match (val_score, progress.best_score) {
            (None, _) => true,
            (Some(s), None) => s.is_finite(),
            (Some(s), Some(best)) => s > best,
        };
        if improved {
            progress.best_score = val_score;
            progress.best_epoch = Some(epoch);
            progress.bad_epochs = 0;
            model.save(out_dir)?;
        } else {
            progress.bad_epochs += 1;
        }
        progress.log.push(EpochLog {
            epoch,
            step: progress.step,
            train_loss: final_loss,
            val_score,
            lr,
            grad_norm: norm_sum / n_batches,
            sampling_prob,
            seconds: started.elapsed().as_secs_f64(),
        });
        tracing::info!(
            "epoch {epoch}: loss {final_loss:.4}, val {:?}, lr {lr:.2e}",
            val_score
        );
        progress.epochs_done = epoch + 1;
        progress.adam_t = opt.t;
        save_checkpoint(out_dir, &model, &opt, &progress, steps_per_epoch)?;
        write_log(out_dir, &progress.log)?;
        plot(&out_dir.join(PLOT_FILE), &progress.log)?;
    }
    if cfg.patience > 0 && progress.bad_epochs >= cfg.patience && progress.epochs_done < cfg.epochs
    {
        stopped_early = true;
    }
    Ok(TrainSummary {
        epochs_done: progress.epochs_done,
        best_epoch: progress.best_epoch,
        best_score: progress.best_score,
        final_loss,
        stopped_early,
        finished: stopped_early || progress.epochs_done >= cfg.epochs,
    })
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
            ("", &model.weights),
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
    model.vocab.save(
        &dir.join("checkpoint_vocab.json"),
        progress.config.min_count,
    )?;
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
        let series: [(&str, Vec<(f64, f64)>, RGBColor); 2] = [
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
