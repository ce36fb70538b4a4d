//! Shot-boundary detection for `--segments auto`: colour histograms of frames sampled at a
//! few frames per second, a cut where consecutive histograms differ far more than usual.
//! Histogram differences are the classic, robust cut detector (hard cuts; dissolves show
//! up as several smaller steps and are caught when their sum crosses the threshold).
use std::path::Path;

use super::{Frame, Resize, SampleSpec, Sampling, VideoError, for_each_frame};

/// Frames per second examined; cuts are located to within 1/SCAN_FPS seconds.
pub const SCAN_FPS: f64 = 4.0;
/// Small frames suffice for colour statistics and keep scanning cheap.
const SCAN_SHORT_SIDE: u32 = 64;
const BINS_PER_CHANNEL: usize = 8;

#[derive(Debug, Clone, Copy)]
pub struct CutOptions {
    /// Histogram distance (0 = identical, 1 = disjoint) that always counts as a cut.
    pub threshold: f32,
    /// A step must also exceed this multiple of the recent typical step, so steady motion
    /// in busy footage does not read as a cut.
    pub relative: f32,
}

impl Default for CutOptions {
    fn default() -> Self {
        Self {
            threshold: 0.35,
            relative: 4.0,
        }
    }
}

/// Times (seconds, the pts of the first frame of each new shot) of the cuts in the video.
pub fn detect_cuts(path: &Path, opts: &CutOptions) -> Result<Vec<f64>, VideoError> {
    let spec = SampleSpec {
        sampling: Sampling::Fps { fps: SCAN_FPS },
        start: None,
        end: None,
        resize: Resize::ShortSide(SCAN_SHORT_SIDE),
        keyframes: false,
    };
    let mut cuts = Vec::new();
    let mut previous: Option<Vec<f32>> = None;
    let mut recent_steps: Vec<f32> = Vec::new();
    for_each_frame(path, &spec, |frame| {
        let hist = histogram(&frame);
        if let Some(prev) = &previous {
            let step = distance(prev, &hist);
            let typical = median(&recent_steps).unwrap_or(0.0);
            if step >= opts.threshold && step >= opts.relative * typical {
                cuts.push(frame.pts);
                recent_steps.clear();
            } else {
                recent_steps.push(step);
                if recent_steps.len() > 16 {
                    recent_steps.remove(0);
                }
            }
        }
        previous = Some(hist);
        Ok(())
    })?;
    Ok(cuts)
}

/// Normalised joint RGB histogram (8×8×8 bins).
fn histogram(frame: &Frame) -> Vec<f32> {
    let mut hist = vec![0f32; BINS_PER_CHANNEL.pow(3)];
    let shift = 8 - BINS_PER_CHANNEL.trailing_zeros();
    for px in frame.rgb.chunks_exact(3) {
        let (r, g, b) = (
            (px[0] >> shift) as usize,
            (px[1] >> shift) as usize,
            (px[2] >> shift) as usize,
        );
        hist[(r * BINS_PER_CHANNEL + g) * BINS_PER_CHANNEL + b] += 1.0;
    }
    let total = (frame.rgb.len() / 3).max(1) as f32;
    hist.iter_mut().for_each(|h| *h /= total);
    hist
}

/// Half the L1 distance: the fraction of pixels that would have to change colour bin.
fn distance(a: &[f32], b: &[f32]) -> f32 {
    0.5 * a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>()
}

fn median(values: &[f32]) -> Option<f32> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    Some(sorted[sorted.len() / 2])
}
