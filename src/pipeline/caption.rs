//! One video in, captions out: plan the time windows, sample frames in each, encode them,
//! and decode a caption per window.
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::DType;

use super::{Segment, Tag, VideoCaptions};
use crate::decoder::{CaptionModel, SearchOptions};
use crate::encoder::{FrameEncoder, load_encoder, load_encoder_beside};
use crate::familiarity::{DEFAULT_MIN_FAMILIARITY, Familiarity};
use crate::features::ClipFeatures;
use crate::features::{append_motion, encode_items};
use crate::model_path;
use crate::video::{self, Frame, Resize, SampleSpec, Sampling};

/// How a video is split into captioned spans.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SegmentMode {
    /// One caption for the whole video.
    Whole,
    /// Fixed windows of this many seconds (the last one may be shorter).
    Fixed(f64),
    /// Shot boundaries, with segments kept between `min_s` and `max_s` seconds.
    Auto { min_s: f64, max_s: f64 },
}

/// The decoder used when none is named: the bundled one, trained on synthetic clips.
pub const DEFAULT_DECODER: &str = "synth-decoder";
/// Beam width of `caption`, `batch` and `eval` unless told otherwise.
pub const DEFAULT_BEAM: usize = 3;

/// How [`Captioner::caption_file`] samples, splits and decodes a video. The defaults are
/// those of `vidcap caption`.
#[derive(Debug, Clone)]
pub struct CaptionOptions {
    /// Frames sampled uniformly in each window.
    pub frames: usize,
    /// Keyframe sampling (see [`crate::video::SampleSpec::keyframes`]).
    pub keyframes: bool,
    /// Beam width and n-gram blocking (its `max_len` is set from [`Self::max_len`]).
    pub search: SearchOptions,
    /// Longest caption, in tokens (`None`: the decoder's own); never more than the longest
    /// caption the decoder was trained on.
    pub max_len: Option<usize>,
    /// No content word more often than this in a caption (0: no limit).
    pub max_word_repeats: usize,
    /// One caption per video, or per fixed or shot-bounded window.
    pub segments: SegmentMode,
    /// A span is familiar when its familiarity reaches this.
    pub min_familiarity: f64,
    /// ImageNet classes listed per span (0: none).
    pub tags: usize,
}

impl Default for CaptionOptions {
    fn default() -> Self {
        Self {
            frames: 16,
            keyframes: false,
            search: SearchOptions {
                beam: DEFAULT_BEAM,
                no_repeat_ngram: 5,
                ..SearchOptions::default()
            },
            max_len: None,
            max_word_repeats: 2,
            segments: SegmentMode::Whole,
            min_familiarity: DEFAULT_MIN_FAMILIARITY,
            tags: 0,
        }
    }
}

/// Frames of one window, decoded and scaled for the encoder.
pub struct WindowFrames {
    pub start: f64,
    pub end: f64,
    pub frames: Vec<Frame>,
}

/// A decoder with the encoder it was trained on: the one object needed to caption videos.
///
/// ```no_run
/// use vidcap::{CaptionOptions, Captioner};
///
/// let captioner = Captioner::load("synth-decoder")?;
/// let result = captioner.caption_file("clip.mp4", &CaptionOptions::default())?;
/// println!("{}", result.caption.unwrap_or_default());
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct Captioner {
    /// The frame encoder the decoder was trained on.
    pub encoder: Box<dyn FrameEncoder>,
    /// The caption decoder with its vocabulary.
    pub model: CaptionModel,
    /// The model's summary of its training clips; `None` for models without one.
    pub familiarity: Option<Familiarity>,
}

/// One window's decoder items and, when the encoder classifies, its per-frame class
/// probabilities `[T, classes]`.
pub struct EncodedWindow {
    pub clip: ClipFeatures,
    pub probs: Option<(Vec<f64>, usize)>,
}

/// Decode what one video needs: its windows and their frames. This is the part that runs
/// in parallel decode workers.
pub fn decode_windows(
    path: &Path,
    encoder_short_side: u32,
    opts: &CaptionOptions,
) -> Result<Vec<WindowFrames>> {
    let started = Instant::now();
    let info = video::probe(path)?;
    let windows = match opts.segments {
        SegmentMode::Whole => vec![(0.0, info.duration_s)],
        SegmentMode::Fixed(seconds) => fixed_windows(info.duration_s, seconds),
        SegmentMode::Auto { min_s, max_s } => {
            let cuts = video::scene::detect_cuts(path, &video::scene::CutOptions::default())?;
            shot_windows(info.duration_s, &cuts, min_s, max_s)
        }
    };
    let windows = windows
        .into_iter()
        .map(|(start, end)| {
            let spec = SampleSpec {
                sampling: Sampling::Uniform { count: opts.frames },
                start: Some(start),
                end: Some(end),
                resize: Resize::ShortSide(encoder_short_side),
                keyframes: opts.keyframes,
            };
            let frames = video::sample_frames(path, &spec)?;
            anyhow::ensure!(
                !frames.is_empty(),
                "{}: no frame decoded in {start:.2}-{end:.2} s",
                path.display()
            );
            Ok(WindowFrames { start, end, frames })
        })
        .collect::<Result<Vec<_>>>()?;
    tracing::info!(
        "{}: timing decode_s={:.4}",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(windows)
}

impl Captioner {
    /// Loads a decoder model directory, or an installed decoder by name (looked up as
    /// [`crate::model_path`] describes), with the encoder it was trained on (found beside
    /// it first) and its familiarity summary when it has one.
    pub fn load(decoder: &str) -> Result<Self> {
        let dir = model_path::locate(decoder, None)?.dir;
        Self::from_dir(&dir)
    }

    /// [`Captioner::load`] from a decoder model directory.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::from_parts(dir.as_ref(), None)
    }

    /// [`Captioner::from_dir`] with another encoder (a name or directory) than the one the
    /// decoder names; an error unless it gives the features the decoder was trained on.
    pub fn from_dir_with_encoder(dir: impl AsRef<Path>, encoder: &str) -> Result<Self> {
        Self::from_parts(dir.as_ref(), Some(encoder))
    }

    fn from_parts(dir: &Path, encoder: Option<&str>) -> Result<Self> {
        let model = CaptionModel::load(dir)
            .with_context(|| format!("{}: cannot load the decoder", dir.display()))?;
        let encoder = match encoder {
            Some(name) => load_encoder(name)?,
            None => load_encoder_beside(&model.config.encoder, dir)?,
        };
        model.expect_encoder(encoder.name(), encoder.feature_dim())?;
        let familiarity = Familiarity::load(dir)?;
        if familiarity.is_none() {
            tracing::warn!(
                "{}: no familiarity summary ({}), so vidcap cannot tell whether footage is like the clips this decoder was trained on; `vidcap familiarity fit` makes one",
                dir.display(),
                crate::familiarity::FILE
            );
        }
        Ok(Self {
            encoder,
            model,
            familiarity,
        })
    }

    /// Captions one video file: decodes the windows `opts` asks for, encodes their frames
    /// and decodes a caption per window, each with its familiarity.
    pub fn caption_file(
        &self,
        path: impl AsRef<Path>,
        opts: &CaptionOptions,
    ) -> Result<VideoCaptions> {
        let path = path.as_ref();
        let windows = decode_windows(path, self.encoder.resize_shorter(), opts)?;
        self.caption_windows(&path.display().to_string(), &windows, opts)
    }

    /// Encode every window's frames in one batch and caption all windows together.
    pub fn caption_windows(
        &self,
        video: &str,
        windows: &[WindowFrames],
        opts: &CaptionOptions,
    ) -> Result<VideoCaptions> {
        let started = Instant::now();
        let encoded = windows
            .iter()
            .map(|w| self.encode_window(&w.frames, opts.tags > 0))
            .collect::<Result<Vec<_>>>()?;
        let clips: Vec<ClipFeatures> = encoded.iter().map(|e| e.clip.clone()).collect();
        let encoded_at = Instant::now();
        let search = SearchOptions {
            max_len: self.model.config.caption_limit(opts.max_len),
            ..opts.search.clone()
        };
        let hyps = self
            .model
            .caption_bounded(&clips, &search, opts.max_word_repeats)?;
        // Stage times at -v: the benchmark's breakdown reads them.
        tracing::info!(
            "{video}: timing encode_s={:.4} caption_s={:.4}",
            (encoded_at - started).as_secs_f64(),
            encoded_at.elapsed().as_secs_f64()
        );
        let labels = if opts.tags > 0 {
            Some(self.encoder.labels().with_context(|| {
                format!(
                    "--tags: encoder {} has no class labels",
                    self.encoder.name()
                )
            })?)
        } else {
            None
        };
        let tags_of = |windows: &[&EncodedWindow]| -> Option<Vec<Tag>> {
            labels.map(|labels| top_tags(windows, labels, opts.tags))
        };
        let segments = windows
            .iter()
            .zip(&encoded)
            .zip(hyps)
            .map(|((w, e), h)| {
                let familiarity = match &self.familiarity {
                    Some(f) => Some(f.score(&e.clip)?),
                    None => None,
                };
                Ok(Segment {
                    start: w.start,
                    end: w.end,
                    caption: h.text,
                    score: h.score,
                    familiarity,
                    familiar: familiarity.map(|f| f >= opts.min_familiarity),
                    tags: tags_of(&[e]),
                })
            })
            .collect::<Result<Vec<Segment>>>()?;
        let first = segments.first();
        Ok(VideoCaptions {
            video: video.to_string(),
            caption: first.map(|s| s.caption.clone()),
            familiarity: first.and_then(|s| s.familiarity),
            familiar: first.and_then(|s| s.familiar),
            tags: tags_of(&encoded.iter().collect::<Vec<_>>()),
            segments,
            error: None,
        })
    }

    /// Frames → `[T, R, D]` items the way `vidcap extract` makes them for this decoder:
    /// the pooled vector, the 2×2 grid when it was trained with regions, the motion
    /// descriptor when it was trained with motion.
    pub fn encode(&self, frames: &[Frame]) -> Result<ClipFeatures> {
        Ok(self.encode_window(frames, false)?.clip)
    }

    /// [`Self::encode`], plus the class probabilities of the same forward pass when
    /// `classes` is set.
    pub fn encode_window(&self, frames: &[Frame], classes: bool) -> Result<EncodedWindow> {
        let config = &self.model.config;
        let out = encode_items(self.encoder.as_ref(), frames, config.regions > 1)?;
        let items = if config.motion {
            append_motion(&out.items, frames)?
        } else {
            out.items
        };
        let probs = match (classes, out.logits) {
            (true, Some(logits)) => {
                let (t, n) = logits.dims2()?;
                let logits = logits
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                let mut probs = Vec::with_capacity(t * n);
                for row in logits.chunks_exact(n) {
                    probs.extend(softmax(row));
                }
                Some((probs, n))
            }
            (true, None) => anyhow::bail!(
                "--tags: encoder {} has no classifier head",
                self.encoder.name()
            ),
            (false, _) => None,
        };
        Ok(EncodedWindow {
            clip: ClipFeatures::from_tensor(&items)?,
            probs,
        })
    }
}

/// Softmax of one row of logits, in f64.
fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// The `k` classes of highest mean probability over all frames of `windows`.
fn top_tags(windows: &[&EncodedWindow], labels: &[String], k: usize) -> Vec<Tag> {
    let mut mean: Vec<f64> = vec![];
    let mut frames = 0usize;
    for (probs, n) in windows.iter().filter_map(|w| w.probs.as_ref()) {
        mean.resize(*n, 0.0);
        for row in probs.chunks_exact(*n) {
            mean.iter_mut().zip(row).for_each(|(m, p)| *m += p);
            frames += 1;
        }
    }
    let mut order: Vec<usize> = (0..mean.len()).collect();
    order.sort_by(|&a, &b| mean[b].total_cmp(&mean[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|i| Tag {
            label: labels
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("class {i}")),
            score: mean[i] / frames.max(1) as f64,
        })
        .collect()
}

/// Consecutive windows of `seconds`; a last sliver shorter than a quarter window joins
/// the one before it.
pub fn fixed_windows(duration: f64, seconds: f64) -> Vec<(f64, f64)> {
    let mut windows = Vec::new();
    let mut start = 0.0;
    while start < duration {
        let end = (start + seconds).min(duration);
        windows.push((start, end));
        start = end;
    }
    if windows.len() > 1 && windows.last().is_some_and(|&(s, e)| e - s < seconds / 4.0) {
        let (_, end) = windows.pop().unwrap();
        windows.last_mut().unwrap().1 = end;
    }
    windows
}

/// Shots from cut times, merged until at least `min_s` long and split into equal parts no
/// longer than `max_s`.
pub fn shot_windows(duration: f64, cuts: &[f64], min_s: f64, max_s: f64) -> Vec<(f64, f64)> {
    let mut bounds = vec![0.0];
    for &cut in cuts {
        if cut - bounds.last().unwrap() >= min_s && duration - cut >= min_s {
            bounds.push(cut);
        }
    }
    bounds.push(duration);
    let mut windows = Vec::new();
    for pair in bounds.windows(2) {
        let (start, end) = (pair[0], pair[1]);
        let parts = ((end - start) / max_s).ceil().max(1.0) as usize;
        let step = (end - start) / parts as f64;
        windows.extend((0..parts).map(|i| {
            (
                start + i as f64 * step,
                if i + 1 == parts {
                    end
                } else {
                    start + (i + 1) as f64 * step
                },
            )
        }));
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_windows_cover_the_video() {
        assert_eq!(
            fixed_windows(10.0, 4.0),
            vec![(0.0, 4.0), (4.0, 8.0), (8.0, 10.0)]
        );
        assert_eq!(fixed_windows(8.5, 4.0), vec![(0.0, 4.0), (4.0, 8.5)]);
        assert_eq!(fixed_windows(3.0, 4.0), vec![(0.0, 3.0)]);
    }

    #[test]
    fn shot_windows_respect_min_and_max() {
        let w = shot_windows(30.0, &[1.0, 6.0, 7.0, 29.5], 2.0, 10.0);
        assert_eq!(w[0], (0.0, 6.0));
        assert!(
            w.iter()
                .all(|&(s, e)| e - s >= 2.0 - 1e-9 && e - s <= 10.0 + 1e-9),
            "{w:?}"
        );
        assert_eq!(w.last().unwrap().1, 30.0);
        assert!(w.windows(2).all(|p| p[0].1 == p[1].0));
    }
}
