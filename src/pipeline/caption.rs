//! One video in, captions out: plan the time windows, sample frames in each, encode them,
//! and decode a caption per window.
use std::path::Path;
use std::time::Instant;

use anyhow::Result;

use super::{Segment, VideoCaptions};
use crate::decoder::{CaptionModel, ClipFeatures, SearchOptions};
use crate::encoder::FrameEncoder;
use crate::train::extract::{append_motion, encode_items};
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

#[derive(Debug, Clone)]
pub struct CaptionOptions {
    /// Frames sampled uniformly in each window.
    pub frames: usize,
    /// Keyframe sampling (see [`crate::video::SampleSpec::keyframes`]).
    pub keyframes: bool,
    pub search: SearchOptions,
    pub segments: SegmentMode,
}

/// Frames of one window, decoded and scaled for the encoder.
pub struct WindowFrames {
    pub start: f64,
    pub end: f64,
    pub frames: Vec<Frame>,
}

/// The encoder and decoder that caption windows of frames.
pub struct Captioner {
    pub encoder: Box<dyn FrameEncoder>,
    pub model: CaptionModel,
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
    /// Encode every window's frames in one batch and caption all windows together.
    pub fn caption_windows(
        &self,
        video: &str,
        windows: &[WindowFrames],
        search: &SearchOptions,
    ) -> Result<VideoCaptions> {
        let started = Instant::now();
        let clips = windows
            .iter()
            .map(|w| self.encode(&w.frames))
            .collect::<Result<Vec<_>>>()?;
        let encoded = Instant::now();
        let hyps = self.model.caption(&clips, search)?;
        // Stage times at -v: the benchmark's breakdown reads them.
        tracing::info!(
            "{video}: timing encode_s={:.4} caption_s={:.4}",
            (encoded - started).as_secs_f64(),
            encoded.elapsed().as_secs_f64()
        );
        let segments: Vec<Segment> = windows
            .iter()
            .zip(hyps)
            .map(|(w, h)| Segment {
                start: w.start,
                end: w.end,
                caption: h.text,
                score: h.score,
            })
            .collect();
        Ok(VideoCaptions {
            video: video.to_string(),
            caption: segments.first().map(|s| s.caption.clone()),
            segments,
            error: None,
        })
    }

    /// Frames → `[T, R, D]` items the way `vidcap extract` makes them for this decoder:
    /// the pooled vector, the 2×2 grid when it was trained with regions, the motion
    /// descriptor when it was trained with motion.
    pub fn encode(&self, frames: &[Frame]) -> Result<ClipFeatures> {
        let config = &self.model.config;
        let mut items = encode_items(self.encoder.as_ref(), frames, config.regions > 1)?;
        if config.motion {
            items = append_motion(&items, frames)?;
        }
        let (frames, regions, dim) = items.dims3()?;
        Ok(ClipFeatures {
            features: items.flatten_all()?.to_vec1::<f32>()?,
            frames,
            regions,
            dim,
        })
    }
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
