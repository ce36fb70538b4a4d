//! Which frames to keep: uniform N over a window, fixed fps, or every frame.
//!
//! Targets are reached by seeking (to the keyframe before the target, decoder flushed,
//! decode forward to the first frame with pts >= target) when that keyframe lies ahead of
//! the current decode position, and by decoding straight on otherwise: seeking can only
//! save work when it skips frames we would otherwise have to decode.
use std::path::Path;

use ffmpeg_next::util::frame::video::Video as AvFrame;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use super::decode::{Converter, Source, report_damage};
use super::{Frame, Resize, VideoError, VideoInfo};

/// Which timestamps to sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// N frames at t_i = start + (i + 0.5) * (end - start) / N.
    Uniform { count: usize },
    /// N frames, one drawn uniformly inside each of the N equal slots of the window
    /// (seeded): a temporally jittered version of `Uniform`, for training augmentation.
    Jittered { count: usize, seed: u64 },
    /// Frames at t_k = start + k / fps while t_k < end.
    Fps { fps: f64 },
    /// Every decoded frame with start <= pts < end.
    Every,
}

/// What to sample from a video: the timestamps, an optional window (seconds from the
/// stream's start; `end` defaults to the duration) and the output size.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSpec {
    pub sampling: Sampling,
    pub start: Option<f64>,
    pub end: Option<f64>,
    pub resize: Resize,
    /// For each target, the keyframe nearest to it (preferring keyframes inside the window)
    /// instead of the first frame at or after it: one keyframe decoded per target instead of
    /// everything from the keyframe before it. Targets closer together than the keyframes
    /// repeat a frame. Files without a seek index are sampled exactly.
    pub keyframes: bool,
}

impl SampleSpec {
    /// N uniform frames over the whole clip, shorter side 256.
    pub fn uniform(count: usize) -> Self {
        SampleSpec {
            sampling: Sampling::Uniform { count },
            start: None,
            end: None,
            resize: Resize::ShortSide(256),
            keyframes: false,
        }
    }
}

thread_local! {
    /// Threads that sampling on this thread may use; 0 = the rayon pool's size.
    static DECODE_THREADS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Limits the threads that sampling started on the calling thread uses (frame threads of one
/// decoder, or parallel decoders over chunks of the targets); 0 restores the default, the
/// rayon pool's size. Decode workers that run side by side set their share of the cores:
/// more decoding threads than cores cost ~6 % more CPU for the same frames (measured on a
/// batch of 720p H.264 files, two workers of two threads each on two cores).
pub fn set_decode_threads(threads: usize) {
    DECODE_THREADS.set(threads);
}

fn decode_threads() -> usize {
    match DECODE_THREADS.get() {
        0 => rayon::current_num_threads(),
        n => n,
    }
}

/// Keeps the frames `spec` asks for, in order.
pub fn sample_frames(path: &Path, spec: &SampleSpec) -> Result<Vec<Frame>, VideoError> {
    let mut frames = Vec::new();
    for_each_frame(path, spec, |f| {
        frames.push(f);
        Ok(())
    })?;
    Ok(frames)
}

/// Streams the frames `spec` asks for to `f`, in order; returns the video's properties.
pub fn for_each_frame(
    path: &Path,
    spec: &SampleSpec,
    f: impl FnMut(Frame) -> Result<(), VideoError>,
) -> Result<VideoInfo, VideoError> {
    let damage = Arc::new(AtomicUsize::new(0));
    let result = sample_with(path, spec, f, &damage);
    report_damage(path, &damage);
    result
}

fn sample_with(
    path: &Path,
    spec: &SampleSpec,
    mut f: impl FnMut(Frame) -> Result<(), VideoError>,
    damage: &Arc<AtomicUsize>,
) -> Result<VideoInfo, VideoError> {
    // Decoder threads follow the process-wide pool size (`--threads`) unless limited.
    let source = Source::open(path, decode_threads(), damage.clone())?;
    let info = source.info.clone();
    let (lo, hi) = window(path, spec, &info)?;
    let targets: Vec<f64> = match spec.sampling {
        Sampling::Every if spec.keyframes => {
            return Err(VideoError::InvalidSpec {
                path: path.to_path_buf(),
                reason: "keyframe sampling needs a frame count or an fps".into(),
            });
        }
        Sampling::Every => {
            let mut sampler = Sampler::new(source, spec.resize, None);
            sampler.every(lo, hi, &mut f)?;
            sampler.log_work();
            return Ok(info);
        }
        Sampling::Uniform { count } => {
            let step = (hi - lo) / count as f64;
            (0..count).map(|i| lo + (i as f64 + 0.5) * step).collect()
        }
        Sampling::Jittered { count, seed } => {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let step = (hi - lo) / count as f64;
            (0..count)
                .map(|i| lo + (i as f64 + rng.random::<f64>()) * step)
                .collect()
        }
        Sampling::Fps { fps } => {
            let n = ((hi - lo) * fps - 1e-9).ceil().max(0.0) as usize;
            (0..n).map(|k| lo + k as f64 / fps).collect()
        }
    };
    let chunks = plan_chunks(&source, &targets);
    let keyframes = spec.keyframes.then_some((lo, hi));
    if chunks.len() <= 1 {
        let mut sampler = Sampler::new(source, spec.resize, keyframes);
        sampler.at_targets(&targets, 0, &mut f)?;
        sampler.log_work();
    } else {
        drop(source);
        let how = (spec.resize, keyframes);
        sample_in_parallel(path, how, &targets, &chunks, &mut f, damage)?;
    }
    Ok(info)
}

/// Splits sparse targets into contiguous chunks, one per worker, at keyframe-interval
/// boundaries (so no two workers decode the same frames). One chunk when the targets are
/// dense, the file has no seek index, or only one thread is allowed.
///
/// Why: a seek restarts the decoder, and FFmpeg's frame threads then idle while the
/// pipeline refills; independent single-threaded decoders on separate targets keep every
/// core busy instead (measured: ~20 % less CPU for the same frames).
fn plan_chunks(source: &Source, targets: &[f64]) -> Vec<std::ops::Range<usize>> {
    let workers = decode_threads().min(MAX_WORKERS);
    #[allow(clippy::single_range_in_vec_init)] // one chunk holding every target
    let whole = vec![0..targets.len()];
    if workers < 2 || targets.len() < 2 * workers || targets.len() > MAX_PARALLEL_TARGETS {
        return whole;
    }
    let mut keys = Vec::with_capacity(targets.len());
    for &t in targets {
        match source.indexed_keyframe_before(t) {
            Some(k) => keys.push(k),
            None => return whole,
        }
    }
    let mut distinct = keys.clone();
    distinct.dedup();
    if distinct.len() < 2 * workers {
        return whole;
    }
    let mut chunks = Vec::new();
    let mut start = 0;
    for w in 1..workers {
        let mut cut = (targets.len() * w / workers).max(start + 1);
        while cut < targets.len() && keys[cut] == keys[cut - 1] {
            cut += 1;
        }
        if cut >= targets.len() {
            break;
        }
        chunks.push(start..cut);
        start = cut;
    }
    chunks.push(start..targets.len());
    chunks
}

/// Runs one sampler per chunk on its own thread; frames reach `f` in target order.
fn sample_in_parallel(
    path: &Path,
    (resize, keyframes): (Resize, Option<(f64, f64)>),
    targets: &[f64],
    chunks: &[std::ops::Range<usize>],
    f: &mut impl FnMut(Frame) -> Result<(), VideoError>,
    damage: &Arc<AtomicUsize>,
) -> Result<(), VideoError> {
    std::thread::scope(|scope| {
        let receivers: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                let (tx, rx) = std::sync::mpsc::sync_channel(chunk.len().min(64));
                let chunk = chunk.clone();
                scope.spawn(move || {
                    let run = || -> Result<(), VideoError> {
                        let source = Source::open(path, 1, damage.clone())?;
                        let mut sampler = Sampler::new(source, resize, keyframes);
                        sampler.at_targets(&targets[chunk.clone()], chunk.start, &mut |frame| {
                            // The receiver is gone when the consumer stopped early: stop too.
                            tx.send(Ok(frame)).map_err(|_| VideoError::Consumer {
                                path: path.to_path_buf(),
                                reason: "sampling cancelled".into(),
                            })
                        })?;
                        sampler.log_work();
                        Ok(())
                    };
                    if let Err(e) = run() {
                        let _ = tx.send(Err(e));
                    }
                });
                rx
            })
            .collect();
        for rx in receivers {
            for message in rx {
                f(message?)?;
            }
        }
        Ok(())
    })
}

/// Decoding workers for sparse targets, at most.
const MAX_WORKERS: usize = 8;
/// Above this many targets sampling is dense enough to decode straight through.
const MAX_PARALLEL_TARGETS: usize = 4096;

impl Sampler {
    fn new(src: Source, resize: Resize, keyframe_window: Option<(f64, f64)>) -> Self {
        Sampler {
            keyframe_window,
            last_key: None,
            conv: Converter::new(resize, src.info.rotation),
            src,
            last: AvFrame::empty(),
            last_pts: None,
            last_end: None,
            scratch: AvFrame::empty(),
            cached: None,
            seeked: false,
            decoded: 0,
            seeks: 0,
        }
    }

    fn log_work(&self) {
        tracing::debug!(
            "{}: {} frames decoded, {} seeks",
            self.src.path.display(),
            self.decoded,
            self.seeks
        );
    }
}

/// The absolute [lo, hi) window in stream presentation time, validated.
fn window(path: &Path, spec: &SampleSpec, info: &VideoInfo) -> Result<(f64, f64), VideoError> {
    let bad = |reason: String| VideoError::InvalidSpec {
        path: path.to_path_buf(),
        reason,
    };
    match spec.sampling {
        Sampling::Uniform { count: 0 } | Sampling::Jittered { count: 0, .. } => {
            return Err(bad("frame count must be at least 1".into()));
        }
        Sampling::Fps { fps } if !(fps.is_finite() && fps > 0.0) => {
            return Err(bad(format!("fps must be a positive number, got {fps}")));
        }
        _ => {}
    }
    if let Resize::ShortSide(0) = spec.resize {
        return Err(bad("the short side must be at least 1 pixel".into()));
    }
    let start = spec.start.unwrap_or(0.0);
    if !(start.is_finite() && start >= 0.0) {
        return Err(bad(format!("start must be >= 0, got {start}")));
    }
    let end = match spec.end {
        Some(e) => e,
        None if info.duration_s > 0.0 => info.duration_s,
        None if matches!(spec.sampling, Sampling::Every) => f64::INFINITY,
        None => {
            return Err(bad(
                "the duration is unknown; give an end time or sample every frame".into(),
            ));
        }
    };
    if end.is_nan() || end <= start {
        return Err(bad(format!("end ({end}) must be after start ({start})")));
    }
    if info.duration_s > 0.0 && start >= info.duration_s {
        return Err(VideoError::WindowPastEnd {
            path: path.to_path_buf(),
            start,
            duration: info.duration_s,
        });
    }
    // A window that runs past the end is sampled over the part that exists.
    let end = if info.duration_s > 0.0 && end.is_finite() && end > info.duration_s + 1e-3 {
        tracing::warn!(
            "{}: window end {end}s is past the end of the video ({:.3}s); sampling up to the end",
            path.display(),
            info.duration_s
        );
        info.duration_s
    } else {
        end
    };
    Ok((info.start_time_s + start, info.start_time_s + end))
}

/// Seeking costs a decoder flush and refill; below this many frames of skipped decoding it
/// does not pay.
const SEEK_OVERHEAD_FRAMES: f64 = 8.0;
/// Keyframe interval assumed for containers without an index until one is observed.
const DEFAULT_KEY_INTERVAL_S: f64 = 5.0;
/// Tolerance for comparing float timestamps (well below any frame interval).
const EPS: f64 = 1e-6;

struct Sampler {
    src: Source,
    conv: Converter,
    /// The most recently decoded frame (decode order = presentation order).
    last: AvFrame,
    last_pts: Option<f64>,
    last_end: Option<f64>,
    scratch: AvFrame,
    /// The converted form of `last`, for targets that map to the same frame.
    cached: Option<Frame>,
    seeked: bool,
    decoded: usize,
    seeks: usize,
    /// Keyframe sampling over this [lo, hi) window (see [`SampleSpec::keyframes`]).
    keyframe_window: Option<(f64, f64)>,
    /// The index time of the keyframe in `last`, in keyframe sampling.
    last_key: Option<f64>,
}

enum Advance {
    Reached,
    EndOfStream,
}

impl Sampler {
    fn frame_interval(&self) -> f64 {
        if self.src.info.fps > 0.0 {
            1.0 / self.src.info.fps
        } else {
            0.04
        }
    }

    /// Decodes one frame into `last`; false at the end of the stream.
    fn decode_one(&mut self) -> Result<bool, VideoError> {
        if !self.src.next_frame(&mut self.scratch)? {
            return Ok(false);
        }
        self.accept_scratch();
        Ok(true)
    }

    /// Makes the frame just decoded into `scratch` the last one.
    fn accept_scratch(&mut self) {
        // No timestamp at all: one frame interval after the previous frame (rounded to
        // nanoseconds so that long runs of such frames do not drift by float error).
        let pts = self.src.frame_pts(&self.scratch).unwrap_or_else(|| {
            self.last_pts.map_or(self.src.info.start_time_s, |p| {
                ((p + self.frame_interval()) * 1e9).round() / 1e9
            })
        });
        self.decoded += 1;
        let dur = self.src.frame_duration(&self.scratch);
        std::mem::swap(&mut self.last, &mut self.scratch);
        self.last_pts = Some(pts);
        self.last_end = Some(pts + dur.unwrap_or(self.frame_interval()));
        self.cached = None;
    }

    /// Positions `last` on the keyframe nearest to `t`, preferring keyframes inside the
    /// window `(lo, hi)`; None when the file has no seek index (then `t` is sampled exactly).
    fn reach_keyframe(
        &mut self,
        t: f64,
        (lo, hi): (f64, f64),
    ) -> Result<Option<Advance>, VideoError> {
        // Keyframes by index time, compared by (estimated) presentation time.
        let lead = self.src.index_lead();
        let keys = [
            self.src.indexed_keyframe_before(t - lead),
            self.src.indexed_keyframe_after(t - lead),
        ];
        // The first of equally near keyframes: the one before `t`.
        let nearest = |keep: &dyn Fn(f64) -> bool| {
            keys.into_iter()
                .flatten()
                .filter(|&k| keep(k + lead))
                .min_by(|a, b| (a + lead - t).abs().total_cmp(&(b + lead - t).abs()))
        };
        let inside = |p: f64| p >= lo - EPS && p < hi;
        let Some(key) = nearest(&inside).or_else(|| nearest(&|_| true)) else {
            return Ok(None);
        };
        if self.last_key == Some(key) {
            return Ok(Some(Advance::Reached));
        }
        self.seeks += 1;
        self.seeked = true;
        if !self.src.keyframe_at(key, &mut self.scratch)? {
            return Ok(Some(Advance::EndOfStream));
        }
        self.last_pts = None;
        self.accept_scratch();
        self.last_key = Some(key);
        Ok(Some(Advance::Reached))
    }

    /// Decodes forward until `last` is the first frame with pts >= t.
    fn advance_to(&mut self, t: f64) -> Result<Advance, VideoError> {
        self.src.set_skip_before(Some(t));
        let result = loop {
            if self.last_pts.is_some_and(|p| p >= t - EPS) {
                break Ok(Advance::Reached);
            }
            match self.decode_one() {
                Ok(true) => {}
                Ok(false) => break Ok(Advance::EndOfStream),
                Err(e) => break Err(e),
            }
        };
        self.src.set_skip_before(None);
        result
    }

    /// Whether seeking to the keyframe before `t` saves decoding compared to going on.
    fn should_seek(&self, t: f64) -> bool {
        let pos = self.last_pts.unwrap_or(self.src.info.start_time_s);
        if t <= pos {
            return false;
        }
        let overhead = SEEK_OVERHEAD_FRAMES * self.frame_interval();
        match self.src.indexed_keyframe_before(t) {
            Some(key) => key > pos + overhead,
            None => {
                let interval = if self.src.max_key_interval > 0.0 {
                    self.src.max_key_interval
                } else {
                    DEFAULT_KEY_INTERVAL_S
                };
                t - pos > 2.0 * interval + overhead
            }
        }
    }

    /// Positions `last` on the first frame with pts >= t, seeking when that pays (or, in
    /// keyframe sampling, on the keyframe nearest to t).
    fn reach(&mut self, t: f64) -> Result<Advance, VideoError> {
        if let Some(window) = self.keyframe_window {
            if let Some(advance) = self.reach_keyframe(t, window)? {
                return Ok(advance);
            }
            self.keyframe_window = None;
        }
        if self.last_pts.is_some_and(|p| p >= t - EPS) {
            return Ok(Advance::Reached);
        }
        if !self.should_seek(t) {
            return self.advance_to(t);
        }
        // A demuxer may land after t (e.g. keyframes whose dts precede their pts); then back
        // off further and try again, ending at the start of the stream.
        let origin = self.src.info.start_time_s;
        let mut back = 0.0;
        for _ in 0..8 {
            let seek_to = (t - back).max(origin);
            if !self.src.seek(seek_to) {
                return self.advance_to(t);
            }
            self.seeked = true;
            self.seeks += 1;
            self.last_pts = None;
            self.cached = None;
            if !self.decode_one()? {
                if seek_to <= origin {
                    return Ok(Advance::EndOfStream);
                }
            } else {
                let first = self.last_pts.expect("decode_one sets pts");
                let overshoot = first > t + 1.5 * self.frame_interval();
                if !overshoot || seek_to <= origin {
                    return self.advance_to(t);
                }
            }
            back = if back == 0.0 { 1.0 } else { back * 2.0 };
        }
        self.advance_to(t)
    }

    fn emit(
        &mut self,
        index: usize,
        f: &mut impl FnMut(Frame) -> Result<(), VideoError>,
    ) -> Result<(), VideoError> {
        let mut frame = match self.cached.take() {
            Some(frame) => frame,
            None => {
                let (width, height, rgb) = self.conv.convert(&self.src.path, &self.last)?;
                Frame {
                    index,
                    pts: self.last_pts.unwrap_or(0.0),
                    width,
                    height,
                    rgb,
                }
            }
        };
        frame.index = index;
        self.cached = Some(frame.clone());
        f(frame)
    }

    fn no_frame_error(&self) -> VideoError {
        VideoError::NoFrames {
            path: self.src.path.clone(),
            reason: self
                .src
                .read_error
                .clone()
                .unwrap_or_else(|| "the video stream ended before its first frame".into()),
        }
    }

    /// Past the last frame: fine when the stream simply ends (the last frame is kept), an
    /// error when the demuxer gave up well before the target (a cut or damaged file).
    fn check_end(&mut self, t: f64) -> Result<(), VideoError> {
        if self.last_pts.is_none() && self.seeked {
            // The seek landed beyond the decodable data: decode the whole stream instead.
            self.seeked = false;
            if self.src.seek(self.src.info.start_time_s) {
                while self.decode_one()? {}
            }
        }
        let Some(end) = self.last_end else {
            return Err(self.no_frame_error());
        };
        // A stream may simply end before a target (audio running longer, a rounded
        // duration): then its last frame stands. It is damage when the demuxer failed, or
        // the stream's own metadata says it goes on well past where decoding stopped.
        let tolerance = (2.0 * self.frame_interval()).max(0.25);
        let cut_short = self.src.stream_end.is_some_and(|e| e > end + tolerance);
        if t > end + tolerance && (self.src.read_error.is_some() || cut_short) {
            let why = self
                .src
                .read_error
                .clone()
                .unwrap_or_else(|| "the data ends early".into());
            return Err(VideoError::Truncated {
                path: self.src.path.clone(),
                reason: format!(
                    "no frame after {:.3}s of {:.3}s ({why})",
                    end - self.src.info.start_time_s,
                    self.src.info.duration_s
                ),
            });
        }
        Ok(())
    }

    /// Emits the frame for each target; indices start at `first_index`.
    fn at_targets(
        &mut self,
        targets: &[f64],
        first_index: usize,
        f: &mut impl FnMut(Frame) -> Result<(), VideoError>,
    ) -> Result<(), VideoError> {
        for (index, &t) in (first_index..).zip(targets) {
            if let Advance::EndOfStream = self.reach(t)? {
                self.check_end(t)?;
            }
            self.emit(index, f)?;
        }
        Ok(())
    }

    fn every(
        &mut self,
        lo: f64,
        hi: f64,
        f: &mut impl FnMut(Frame) -> Result<(), VideoError>,
    ) -> Result<(), VideoError> {
        let mut index = 0;
        if let Advance::EndOfStream = self.reach(lo)? {
            self.check_end(lo)?;
            return Ok(());
        }
        loop {
            let pts = self.last_pts.expect("a frame was decoded");
            if pts >= hi - EPS {
                break;
            }
            if pts >= lo - EPS {
                self.emit(index, f)?;
                index += 1;
            }
            if !self.decode_one()? {
                // Ended before `hi`: a cut or damaged file is an error here as for targets.
                let expected_end = self.src.stream_end.unwrap_or(hi).min(hi);
                if expected_end.is_finite() {
                    self.check_end(expected_end - EPS)?;
                }
                break;
            }
        }
        Ok(())
    }
}
