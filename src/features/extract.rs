//! Filling the feature cache: decode each clip's sampled frames, encode them, store them.
//!
//! Resumable by construction: a clip whose cache entry is still valid (same video size and
//! mtime, encoder weights and sampling) is skipped, and every entry is written atomically,
//! so an interrupted run simply continues. Clips run in parallel on a rayon pool; one
//! clip's failure is recorded and the others go on.

use anyhow::{Context, bail};
use candle_core::Tensor;
use rayon::prelude::*;

use super::assemble::{ItemLayout, encode_clip_frames};
pub use super::cache::encoder_weights_sha256;
use super::cache::{CacheKey, FeatureCache};
use crate::dataset::Clip;
use crate::encoder::FrameEncoder;
use crate::video::{Resize, SampleSpec, Sampling, VideoError, sample_frames};
use sha2::{Digest, Sha256};

/// Frames encoded in one forward pass (bounds the memory of long clips).
const ENCODE_BATCH: usize = 16;

/// What goes into each cache entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractSpec {
    /// Uniformly sampled frames per clip.
    pub frames: usize,
    /// Also store the encoder's 2×2 grid: regions are then `[global, top-left, top-right,
    /// bottom-left, bottom-right]` (R = 5), else the global pool only (R = 1).
    pub grid: bool,
    /// Append each frame's motion descriptor (`video::motion`) to its items.
    pub motion: bool,
}

impl ExtractSpec {
    /// The items each sampled frame becomes.
    pub fn layout(&self) -> ItemLayout {
        ItemLayout {
            grid: self.grid,
            motion: self.motion,
        }
    }

    /// The cache key for this spec and encoder; `weights_sha256` identifies its weights.
    pub fn key(&self, encoder: &dyn FrameEncoder, weights_sha256: &str) -> CacheKey {
        CacheKey::new(
            encoder.name(),
            weights_sha256,
            self.frames,
            self.grid,
            self.motion,
        )
    }
}

/// How one clip went.
#[derive(Debug, Clone, PartialEq)]
pub enum ClipOutcome {
    Extracted,
    UpToDate,
    /// The clip cannot be sampled from its video (its window starts after the video ends);
    /// recorded in the cache so that `train` skips it too.
    Skipped(String),
    Failed(String),
}

#[derive(Debug, Default)]
pub struct ExtractReport {
    pub extracted: usize,
    pub up_to_date: usize,
    /// (clip id, video, reason), in dataset order.
    pub skipped: Vec<(String, std::path::PathBuf, String)>,
    /// (clip id, video, reason), in dataset order.
    pub failed: Vec<(String, std::path::PathBuf, String)>,
}

/// The seed of clip `id`'s jittered sampling `k`: the run's seed mixed with both, so each
/// clip gets its own draws and a run repeats with the same `--seed`.
pub fn jitter_seed(seed: u64, id: &str, k: usize) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(id.as_bytes());
    h.update((k as u64).to_le_bytes());
    u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

/// One clip's features `[T, R, D]` and frame timestamps.
pub fn encode_clip(
    encoder: &dyn FrameEncoder,
    clip: &Clip,
    spec: &ExtractSpec,
) -> anyhow::Result<(Tensor, Vec<f64>)> {
    encode_clip_sampled(
        encoder,
        clip,
        spec,
        Sampling::Uniform { count: spec.frames },
    )
}

/// [`encode_clip`] with another frame sampling (a jittered one).
pub fn encode_clip_sampled(
    encoder: &dyn FrameEncoder,
    clip: &Clip,
    spec: &ExtractSpec,
    sampling: Sampling,
) -> anyhow::Result<(Tensor, Vec<f64>)> {
    let sample = SampleSpec {
        sampling,
        start: clip.start,
        end: clip.end,
        resize: Resize::ShortSide(encoder.resize_shorter()),
        keyframes: false,
    };
    let frames = sample_frames(&clip.video, &sample)?;
    if frames.is_empty() {
        bail!("{}: no frame decoded", clip.video.display());
    }
    let features = encode_clip_frames(encoder, &frames, spec.layout(), ENCODE_BATCH)?;
    Ok((features, frames.iter().map(|f| f.pts).collect()))
}

/// How an extraction runs.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Clips decoded and encoded at the same time.
    pub jobs: usize,
    /// Re-extract even clips whose entry is still valid.
    pub force: bool,
    /// Samplings stored per clip: the uniform one, plus `samplings - 1` jittered ones.
    pub samplings: usize,
    /// Seeds the jittered samplings.
    pub seed: u64,
}

/// Extracts one clip: every sampling whose entry is missing or stale.
fn extract_clip(
    clip: &Clip,
    cache: &FeatureCache,
    encoder: &dyn FrameEncoder,
    spec: &ExtractSpec,
    key: &CacheKey,
    run: RunOptions,
) -> ClipOutcome {
    let mut extracted = false;
    for k in 0..run.samplings.max(1) {
        let (key_k, sampling) = if k == 0 {
            (key.clone(), Sampling::Uniform { count: spec.frames })
        } else {
            let seed = jitter_seed(run.seed, &clip.id, k);
            (
                key.jittered(k, seed),
                Sampling::Jittered {
                    count: spec.frames,
                    seed,
                },
            )
        };
        let fresh = !run.force
            && cache
                .check_sampling(clip, &key_k, k)
                .inspect_err(|miss| tracing::debug!("clip {} sampling {k}: {miss}", clip.id))
                .is_ok();
        if fresh {
            continue;
        }
        let result = encode_clip_sampled(encoder, clip, spec, sampling)
            .and_then(|(f, ts)| cache.put_sampling(clip, &key_k, k, &f, &ts));
        match result {
            Ok(_) => extracted = true,
            Err(e) => {
                if let Some(VideoError::WindowPastEnd { .. }) = e.downcast_ref::<VideoError>() {
                    let why = format!("{e:#}");
                    if let Err(mark) = cache.mark_skipped(clip, &why) {
                        return ClipOutcome::Failed(format!("{why}; {mark:#}"));
                    }
                    return ClipOutcome::Skipped(why);
                }
                return ClipOutcome::Failed(format!("{e:#}"));
            }
        }
    }
    cache.clear_skipped(clip);
    if extracted {
        ClipOutcome::Extracted
    } else {
        ClipOutcome::UpToDate
    }
}

/// Encodes every clip whose cache entry is missing or stale (all of them with `force`),
/// `jobs` clips at a time; `progress` is called once per clip as it finishes.
pub fn extract_dataset(
    clips: &[Clip],
    cache: &FeatureCache,
    encoder: &dyn FrameEncoder,
    spec: &ExtractSpec,
    key: &CacheKey,
    run: RunOptions,
    progress: &(dyn Fn(&Clip, &ClipOutcome) + Sync),
) -> anyhow::Result<ExtractReport> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(run.jobs.max(1))
        .build()
        .context("cannot start the extraction thread pool")?;
    let outcomes: Vec<ClipOutcome> = pool.install(|| {
        clips
            .par_iter()
            .map(|clip| {
                let outcome = extract_clip(clip, cache, encoder, spec, key, run);
                progress(clip, &outcome);
                outcome
            })
            .collect()
    });
    let mut report = ExtractReport::default();
    for (clip, outcome) in clips.iter().zip(outcomes) {
        match outcome {
            ClipOutcome::Extracted => report.extracted += 1,
            ClipOutcome::UpToDate => report.up_to_date += 1,
            ClipOutcome::Skipped(why) => {
                report
                    .skipped
                    .push((clip.id.clone(), clip.video.clone(), why))
            }
            ClipOutcome::Failed(why) => {
                report
                    .failed
                    .push((clip.id.clone(), clip.video.clone(), why))
            }
        }
    }
    Ok(report)
}
