//! What the page shows beside a clip: its sampled frames as a strip and, with a model, the
//! suggested caption and the clip's familiarity. One worker thread owns the encoder and the
//! decoder; the page's requests go first, then every clip in the background (so the list
//! can be ordered by familiarity), each window analysed once. Background analyses keep no
//! strip (thousands of clips would hold their JPEGs in memory): a clip the page opens gets
//! one then.
use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use anyhow::{Context, Result};
use image::codecs::jpeg::JpegEncoder;

use crate::output::sheet::{self, SheetLayout, Thumb};
use crate::pipeline::caption::{CaptionOptions, Captioner, WindowFrames};
use crate::video::{self, Resize, SampleSpec, Sampling};

/// Frames per row of the strip.
pub const STRIP_COLUMNS: usize = 8;
/// Width of one frame in the strip, pixels.
const STRIP_THUMB_WIDTH: u32 = 160;
/// Shorter side frames are decoded at when no encoder needs them larger.
const STRIP_SHORT_SIDE: u32 = 160;
const JPEG_QUALITY: u8 = 82;

/// A clip's window, to the millisecond: what an analysis is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WindowKey {
    pub clip: usize,
    pub start_ms: u64,
    /// `None`: to the end of the video.
    pub end_ms: Option<u64>,
}

impl WindowKey {
    pub fn new(clip: usize, start: Option<f64>, end: Option<f64>) -> Self {
        let ms = |t: f64| (t.max(0.0) * 1000.0).round() as u64;
        Self {
            clip,
            start_ms: start.map_or(0, ms),
            end_ms: end.map(ms),
        }
    }

    pub fn start(&self) -> f64 {
        self.start_ms as f64 / 1000.0
    }

    pub fn end(&self) -> Option<f64> {
        self.end_ms.map(|e| e as f64 / 1000.0)
    }
}

/// One window to analyse.
#[derive(Debug, Clone)]
pub struct Job {
    pub key: WindowKey,
    pub path: PathBuf,
    /// How the video is named in messages.
    pub name: String,
    /// Draw the frames strip (the page shows this clip), not only the caption.
    pub strip: bool,
}

/// A window's frames and, with a model, its suggested caption.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// The window analysed, seconds (the end clipped to the video).
    pub start: f64,
    pub end: f64,
    pub duration: f64,
    /// Codec of the video stream (the page says when a browser may not play it).
    pub codec: String,
    /// Presentation times of the sampled frames, seconds.
    pub frames: Vec<f64>,
    /// The frames as a JPEG strip of [`STRIP_COLUMNS`] a row, with their times; `None`
    /// when no font is installed to write the times, or when none was asked for.
    pub strip: Option<Vec<u8>>,
    /// No strip was asked for (a background analysis).
    pub strip_skipped: bool,
    pub caption: Option<String>,
    /// Log-probability per token of the caption.
    pub score: Option<f32>,
    pub familiarity: Option<f64>,
    pub familiar: Option<bool>,
    /// Why the window could not be analysed.
    pub error: Option<String>,
}

/// What the worker runs: the captioner, or nothing but the frames (`--model none`).
pub struct Suggester {
    pub captioner: Option<(Captioner, CaptionOptions)>,
    /// Frames sampled per window.
    pub frames: usize,
}

impl Analysis {
    /// Whether this analysis answers `job` (a job that wants a strip needs one that tried).
    pub fn answers(&self, job: &Job) -> bool {
        !job.strip || !self.strip_skipped || self.error.is_some()
    }
}

impl Suggester {
    fn analyse(&self, job: &Job, font: Option<&ab_glyph::FontVec>) -> Result<Analysis> {
        let info = video::probe(&job.path)?;
        let start = job.key.start();
        let end = job
            .key
            .end()
            .unwrap_or(info.duration_s)
            .min(info.duration_s);
        anyhow::ensure!(
            end > start,
            "{}: the window {start:.3}–{end:.3} s is empty (the video lasts {:.3} s)",
            job.name,
            info.duration_s
        );
        let short_side = match &self.captioner {
            Some((c, _)) => c.encoder.resize_shorter(),
            None => STRIP_SHORT_SIDE,
        };
        let spec = SampleSpec {
            sampling: Sampling::Uniform {
                count: self.frames.max(1),
            },
            start: Some(start),
            end: Some(end),
            resize: Resize::ShortSide(short_side),
            keyframes: false,
        };
        let frames = video::sample_frames(&job.path, &spec)?;
        anyhow::ensure!(
            !frames.is_empty(),
            "{}: no frame decoded in {start:.2}–{end:.2} s",
            job.name
        );
        let strip = match font {
            Some(font) if job.strip => Some(strip_jpeg(&frames, font)?),
            _ => None,
        };
        let mut analysis = Analysis {
            start,
            end,
            duration: info.duration_s,
            codec: info.codec.clone(),
            frames: frames.iter().map(|f| f.pts).collect(),
            strip,
            strip_skipped: !job.strip,
            ..Analysis::default()
        };
        if let Some((captioner, opts)) = &self.captioner {
            let window = WindowFrames { start, end, frames };
            let captions = captioner.caption_windows(&job.name, &[window], opts)?;
            if let Some(segment) = captions.segments.into_iter().next() {
                analysis.caption = Some(segment.caption);
                analysis.score = Some(segment.score);
                analysis.familiarity = segment.familiarity;
                analysis.familiar = segment.familiar;
            }
        }
        Ok(analysis)
    }
}

/// The sampled frames in rows of [`STRIP_COLUMNS`], with their times, as JPEG.
fn strip_jpeg(frames: &[video::Frame], font: &ab_glyph::FontVec) -> Result<Vec<u8>> {
    let thumbs: Vec<Thumb> = frames.iter().map(Thumb::from).collect();
    let layout = SheetLayout {
        columns: STRIP_COLUMNS as u32,
        thumb_width: STRIP_THUMB_WIDTH,
    };
    let image = sheet::render(&thumbs, &[], &layout, font)?;
    let mut bytes = Vec::new();
    image
        .write_with_encoder(JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY))
        .context("cannot encode the frame strip")?;
    Ok(bytes)
}

#[derive(Default)]
struct Queue {
    /// Asked for by the page: newest first.
    urgent: VecDeque<Job>,
    /// Every clip's window, in the order of the list.
    background: VecDeque<Job>,
    stop: bool,
}

struct Inner {
    queue: Mutex<Queue>,
    wake: Condvar,
    done: Mutex<HashMap<WindowKey, Arc<Analysis>>>,
    on_done: Box<dyn Fn() + Send + Sync>,
}

/// The worker thread and its results.
#[derive(Clone)]
pub struct Analyzer {
    inner: Arc<Inner>,
}

impl Analyzer {
    /// Starts the worker on `background` jobs; `on_done` is called after every analysis
    /// (the server wakes the requests waiting for one).
    pub fn start(
        suggester: Suggester,
        background: Vec<Job>,
        on_done: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue {
                background: background.into(),
                ..Queue::default()
            }),
            wake: Condvar::new(),
            done: Mutex::new(HashMap::new()),
            on_done: Box::new(on_done),
        });
        let worker = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("annotate-analysis".into())
            .spawn(move || run(worker, suggester))
            .expect("cannot start the analysis thread");
        Self { inner }
    }

    /// The analysis of a window, if done.
    pub fn get(&self, key: &WindowKey) -> Option<Arc<Analysis>> {
        self.inner.done.lock().unwrap().get(key).cloned()
    }

    /// The analysis that answers `job`, if done.
    pub fn answer(&self, job: &Job) -> Option<Arc<Analysis>> {
        self.get(&job.key).filter(|a| a.answers(job))
    }

    /// Puts a window first in the queue (unless it is done).
    pub fn request(&self, job: Job) {
        if self.answer(&job).is_some() {
            return;
        }
        let mut queue = self.inner.queue.lock().unwrap();
        queue.urgent.retain(|j| j.key != job.key);
        queue.urgent.push_front(job);
        self.inner.wake.notify_one();
    }

    /// Background windows not analysed yet.
    pub fn background_left(&self) -> usize {
        self.inner.queue.lock().unwrap().background.len()
    }

    /// Stops the worker after the window in hand.
    pub fn stop(&self) {
        self.inner.queue.lock().unwrap().stop = true;
        self.inner.wake.notify_all();
    }
}

fn run(inner: Arc<Inner>, suggester: Suggester) {
    let font = match sheet::load_font() {
        Ok(font) => Some(font),
        Err(e) => {
            tracing::warn!("no frame strip on the page: {e:#}");
            None
        }
    };
    loop {
        let job = {
            let mut queue = inner.queue.lock().unwrap();
            loop {
                if queue.stop {
                    return;
                }
                if let Some(job) = queue.urgent.pop_front() {
                    break job;
                }
                if let Some(job) = queue.background.front().cloned() {
                    // Left in the queue until done, so the count of what is left is right.
                    break job;
                }
                queue = inner.wake.wait(queue).unwrap();
            }
        };
        let known = inner
            .done
            .lock()
            .unwrap()
            .get(&job.key)
            .is_some_and(|a| a.answers(&job));
        if !known {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                suggester.analyse(&job, font.as_ref())
            }));
            let analysis = match outcome {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => Analysis {
                    error: Some(format!("{e:#}")),
                    strip_skipped: !job.strip,
                    ..Analysis::default()
                },
                Err(_) => Analysis {
                    error: Some(format!("{}: the analysis panicked", job.name)),
                    strip_skipped: !job.strip,
                    ..Analysis::default()
                },
            };
            if let Some(error) = &analysis.error {
                tracing::warn!("{error}");
            }
            inner
                .done
                .lock()
                .unwrap()
                .insert(job.key, Arc::new(analysis));
        }
        inner
            .queue
            .lock()
            .unwrap()
            .background
            .retain(|j| j.key != job.key);
        (inner.on_done)();
    }
}
