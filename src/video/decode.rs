//! Opening, probing, seeking and decoding one video stream, and the RGB conversion.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ff::format::context::Input;
use ff::software::scaling;
use ff::sys as ffi;
use ff::util::frame::video::Video as AvFrame;
use ffmpeg_next as ff;

use super::{Resize, VideoError, VideoInfo, init_ffmpeg};

/// Packets read without a single decoded frame before we call the file stalled: far more
/// than any real decoder delay, small enough to end a garbage loop in seconds.
const MAX_PACKETS_WITHOUT_FRAME: usize = 20_000;
/// Consecutive demuxer read errors after which the rest of the file counts as unreadable.
const MAX_CONSECUTIVE_READ_ERRORS: usize = 64;
/// Consecutive decoder errors tolerated while draining one frame.
const MAX_CONSECUTIVE_DECODE_ERRORS: usize = 1_000;

/// Damage warnings printed one by one per file; the rest are counted in one summary line.
const DAMAGE_WARNINGS_SHOWN: usize = 3;

/// Reads the properties of the best video stream of `path`.
pub fn probe(path: &Path) -> Result<VideoInfo, VideoError> {
    Ok(Source::open(path, 1, Default::default())?.info.clone())
}

fn check_file(path: &Path) -> Result<(), VideoError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => VideoError::NotFound {
            path: path.to_path_buf(),
        },
        _ => VideoError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })?;
    if meta.is_dir() {
        return Err(VideoError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    // FFmpeg's own message for a permission problem is vague; ask the OS first.
    std::fs::File::open(path).map_err(|e| VideoError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if meta.len() == 0 {
        return Err(VideoError::NotVideo {
            path: path.to_path_buf(),
            reason: "the file is empty".into(),
        });
    }
    Ok(())
}

fn is_eagain(e: &ff::Error) -> bool {
    matches!(e, ff::Error::Other { errno } if *errno == ffi::EAGAIN)
}

fn rational(r: ff::Rational) -> Option<f64> {
    (r.numerator() > 0 && r.denominator() > 0).then(|| f64::from(r))
}

/// Clockwise display rotation in degrees (0/90/180/270) from the stream's display matrix,
/// falling back to the legacy `rotate` tag.
fn rotation_of(stream: &ff::format::stream::Stream) -> i32 {
    let from_matrix = stream.side_data().find_map(|sd| {
        let data = sd.data();
        (sd.kind() == ff::codec::packet::side_data::Type::DisplayMatrix && data.len() >= 36).then(
            || {
                let mut m = [0i32; 9];
                for (i, v) in m.iter_mut().enumerate() {
                    *v = i32::from_ne_bytes(data[i * 4..i * 4 + 4].try_into().unwrap());
                }
                // av_display_rotation_get gives degrees counter-clockwise.
                // SAFETY: it reads the 9 i32s of a display matrix, which `m` holds.
                -unsafe { ffi::av_display_rotation_get(m.as_ptr()) }
            },
        )
    });
    let degrees = from_matrix.or_else(|| {
        stream
            .metadata()
            .get("rotate")
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    match degrees {
        Some(d) if d.is_finite() => ((d / 90.0).round() as i64).rem_euclid(4) as i32 * 90,
        _ => 0,
    }
}

/// One open file positioned somewhere in its best video stream.
pub(crate) struct Source {
    pub path: PathBuf,
    /// False for streams without any timestamps: frame times are then counted from the
    /// start, so seeking (which would lose the count) is off.
    has_timestamps: bool,
    /// Where the stream's own metadata says it ends (presentation time, seconds).
    pub stream_end: Option<f64>,
    pub info: VideoInfo,
    input: Input,
    stream_index: usize,
    time_base: f64,
    decoder: ff::decoder::Video,
    eof_sent: bool,
    /// The demuxer gave up before the end of the stream (truncated or damaged file).
    pub read_error: Option<String>,
    packets_without_frame: usize,
    /// Packets whose pts lies before this (stream time base) are decoded with non-reference
    /// frames skipped: such frames are never shown and nothing depends on them.
    skip_before: Option<i64>,
    skip_active: bool,
    /// Longest keyframe interval seen so far, seconds (for files without a seek index).
    last_key_pts: Option<f64>,
    pub max_key_interval: f64,
    damage: Arc<AtomicUsize>,
}

impl Source {
    /// Opens `path` with `decoder_threads` decoding threads (0: as many as FFmpeg likes).
    /// Damage found while decoding is counted in `damage`, which the sources of one
    /// sampling call share, so warnings stay few however many decoders run.
    pub fn open(
        path: &Path,
        decoder_threads: usize,
        damage: Arc<AtomicUsize>,
    ) -> Result<Self, VideoError> {
        init_ffmpeg();
        check_file(path)?;
        let path_buf = path.to_path_buf();
        let input = ff::format::input(&path).map_err(|e| VideoError::NotVideo {
            path: path_buf.clone(),
            reason: e.to_string(),
        })?;
        let stream = pick_video_stream(&input).ok_or_else(|| VideoError::NoVideoStream {
            path: path_buf.clone(),
            reason: describe_streams(&input),
        })?;
        let stream_index = stream.index();
        let params = stream.parameters();
        let codec_name = params.id().name().to_string();
        let codec_err = |e: ff::Error| VideoError::Codec {
            path: path_buf.clone(),
            codec: codec_name.clone(),
            reason: e.to_string(),
        };
        let mut ctx = ff::codec::context::Context::from_parameters(params).map_err(codec_err)?;
        // Frame threading; count 0 = automatic, as the ffmpeg CLI does.
        ctx.set_threading(ff::threading::Config {
            kind: ff::threading::Type::Frame,
            count: decoder_threads,
            ..Default::default()
        });
        let mut dec = ctx.decoder();
        dec.set_packet_time_base(stream.time_base());
        let decoder = dec.video().map_err(|e| match e {
            ff::Error::DecoderNotFound => VideoError::Codec {
                path: path_buf.clone(),
                codec: codec_name.clone(),
                reason: "this FFmpeg build has no decoder for it".into(),
            },
            e => codec_err(e),
        })?;

        let tb = stream.time_base();
        let time_base = f64::from(tb);
        let rotation = rotation_of(&stream);
        let fps = rational(stream.avg_frame_rate())
            .or_else(|| rational(stream.rate()))
            .unwrap_or(0.0);
        let stream_duration = (stream.duration() > 0 && time_base > 0.0)
            .then(|| stream.duration() as f64 * time_base)
            .or_else(|| stream.metadata().get("DURATION").and_then(parse_hms));
        let container_duration =
            (input.duration() > 0).then(|| input.duration() as f64 / f64::from(ffi::AV_TIME_BASE));
        let nb_frames = u64::try_from(stream.frames()).unwrap_or(0);
        let duration_s = stream_duration
            .or(container_duration)
            .or_else(|| (nb_frames > 0 && fps > 0.0).then(|| nb_frames as f64 / fps))
            .unwrap_or(0.0);
        let frame_count_estimate = if nb_frames > 0 {
            nb_frames
        } else {
            (duration_s * fps).round() as u64
        };
        // SAFETY: `input` owns a live, opened AVFormatContext; reading a plain field.
        let container_start = unsafe { (*input.as_ptr()).start_time };
        let start_time_s = if stream.start_time() != ffi::AV_NOPTS_VALUE {
            stream.start_time() as f64 * time_base
        } else if container_start != ffi::AV_NOPTS_VALUE {
            container_start as f64 / f64::from(ffi::AV_TIME_BASE)
        } else {
            0.0
        };
        let (w, h) = (decoder.width(), decoder.height());
        let (width, height) = if rotation % 180 == 0 { (w, h) } else { (h, w) };
        if width == 0 || height == 0 {
            return Err(VideoError::Codec {
                path: path_buf,
                codec: codec_name,
                reason: "the stream has no frame size".into(),
            });
        }
        let pixel_format = decoder
            .format()
            .descriptor()
            .map(|d| d.name().to_string())
            .unwrap_or_else(|| "unknown".into());
        let info = VideoInfo {
            path: path_buf.clone(),
            duration_s,
            width,
            height,
            fps,
            codec: codec_name,
            frame_count_estimate,
            rotation,
            pixel_format,
            start_time_s,
        };
        let (mut input, mut info) = (input, info);
        let mut has_timestamps = true;
        if info.duration_s <= 0.0 {
            // Neither container nor stream says how long (e.g. a raw H.264 stream): count
            // the packets (demuxing only, no decoding), then start again from the top.
            let scan = scan_packets(&mut input, stream_index, time_base);
            input = ff::format::input(&path).map_err(|e| VideoError::NotVideo {
                path: path_buf.clone(),
                reason: e.to_string(),
            })?;
            has_timestamps = scan.last_end.is_some();
            info.duration_s = match scan.last_end {
                Some(end) => (end - start_time_s).max(0.0),
                None if fps > 0.0 => scan.packets as f64 / fps,
                None => 0.0,
            };
            info.frame_count_estimate = scan.packets;
        }
        Ok(Source {
            has_timestamps,
            stream_end: stream_duration.map(|d| start_time_s + d),
            path: path_buf,
            info,
            input,
            stream_index,
            time_base,
            decoder,
            eof_sent: false,
            read_error: None,
            packets_without_frame: 0,
            skip_before: None,
            skip_active: false,
            last_key_pts: None,
            max_key_interval: 0.0,
            damage,
        })
    }

    /// Seconds of a frame's timestamp: best-effort pts, then pts, then the packet's dts.
    pub fn frame_pts(&self, frame: &AvFrame) -> Option<f64> {
        frame
            .timestamp()
            .or_else(|| frame.pts())
            .or_else(|| Some(frame.packet().dts).filter(|&d| d != ffi::AV_NOPTS_VALUE))
            .map(|t| t as f64 * self.time_base)
    }

    /// Duration of a decoded frame in seconds, if the container says.
    pub fn frame_duration(&self, frame: &AvFrame) -> Option<f64> {
        let d = frame.packet().duration;
        (d > 0).then_some(d as f64 * self.time_base)
    }

    /// Decode with non-reference frames skipped for packets before `t` (None: skip nothing).
    pub fn set_skip_before(&mut self, t: Option<f64>) {
        self.skip_before = t.map(|t| (t / self.time_base).floor() as i64);
    }

    /// Next frame in presentation order into `out`; `false` at the end of the stream.
    pub fn next_frame(&mut self, out: &mut AvFrame) -> Result<bool, VideoError> {
        let mut decode_errors = 0usize;
        let mut read_errors = 0usize;
        loop {
            match self.decoder.receive_frame(out) {
                Ok(()) => {
                    self.packets_without_frame = 0;
                    if out.is_corrupt() || out.has_decode_errors() {
                        let at = self.frame_pts(out).unwrap_or(f64::NAN);
                        self.damage(format_args!(
                            "frame at {at:.3}s decoded with errors (damaged data, concealed)"
                        ));
                    }
                    return Ok(true);
                }
                Err(ff::Error::Eof) => return Ok(false),
                Err(e) if is_eagain(&e) => {}
                Err(e) => {
                    self.note_decode_error(&e, &mut decode_errors)?;
                    continue;
                }
            }
            if self.eof_sent {
                // A decoder that neither gives frames nor EOF while draining: stop here.
                return Ok(false);
            }
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    read_errors = 0;
                    if packet.stream() != self.stream_index {
                        continue;
                    }
                    self.packets_without_frame += 1;
                    if self.packets_without_frame > MAX_PACKETS_WITHOUT_FRAME {
                        return Err(VideoError::Stalled {
                            path: self.path.clone(),
                            reason: format!(
                                "{MAX_PACKETS_WITHOUT_FRAME} packets read without a decoded frame"
                            ),
                        });
                    }
                    self.observe_packet(&packet);
                    self.apply_skip(&packet);
                    match self.decoder.send_packet(&packet) {
                        Ok(()) => {}
                        Err(e) if is_eagain(&e) => {
                            // Cannot happen after draining, but never lose the packet silently.
                            tracing::debug!("{}: decoder refused a packet", self.path.display());
                        }
                        Err(e) if packet.is_corrupt() => {
                            // An incomplete packet (the data ends inside it): the caller
                            // reports a cut file if frames are missing, so no warning here.
                            tracing::debug!("{}: incomplete packet: {e}", self.path.display());
                            self.read_error
                                .get_or_insert_with(|| "the last packet is incomplete".into());
                        }
                        Err(e) => {
                            let at = packet
                                .pts()
                                .or(packet.dts())
                                .map_or("unknown time".into(), |t| {
                                    format!("{:.3}s", t as f64 * self.time_base)
                                });
                            self.damage(format_args!("skipping a corrupt packet at {at}: {e}"));
                            decode_errors += 1;
                            if decode_errors > MAX_CONSECUTIVE_DECODE_ERRORS {
                                return Err(self.too_many_errors(&e));
                            }
                        }
                    }
                }
                Err(ff::Error::Eof) => self.start_draining(),
                Err(e) if is_eagain(&e) => {
                    read_errors += 1;
                    if read_errors > MAX_CONSECUTIVE_READ_ERRORS {
                        self.read_error = Some("the demuxer keeps asking to retry".into());
                        self.start_draining();
                    }
                }
                Err(e) => {
                    read_errors += 1;
                    if self.read_error.is_none() {
                        tracing::warn!("{}: read error, skipping: {e}", self.path.display());
                        self.read_error = Some(e.to_string());
                    }
                    if read_errors > MAX_CONSECUTIVE_READ_ERRORS {
                        self.start_draining();
                    }
                }
            }
        }
    }

    /// Reports damaged data: the first few cases one by one, the rest in a summary on drop.
    fn damage(&mut self, what: std::fmt::Arguments) {
        if self.damage.fetch_add(1, Ordering::Relaxed) < DAMAGE_WARNINGS_SHOWN {
            tracing::warn!("{}: {what}", self.path.display());
        }
    }

    fn note_decode_error(&mut self, e: &ff::Error, count: &mut usize) -> Result<(), VideoError> {
        self.damage(format_args!("skipping an undecodable frame: {e}"));
        *count += 1;
        if *count > MAX_CONSECUTIVE_DECODE_ERRORS {
            return Err(self.too_many_errors(e));
        }
        Ok(())
    }

    fn too_many_errors(&self, e: &ff::Error) -> VideoError {
        VideoError::NoFrames {
            path: self.path.clone(),
            reason: format!("{MAX_CONSECUTIVE_DECODE_ERRORS} decoder errors in a row, last: {e}"),
        }
    }

    fn start_draining(&mut self) {
        let _ = self.decoder.send_eof();
        self.eof_sent = true;
    }

    fn observe_packet(&mut self, packet: &ff::Packet) {
        if !packet.is_key() {
            return;
        }
        if let Some(t) = packet
            .pts()
            .or(packet.dts())
            .map(|t| t as f64 * self.time_base)
        {
            if let Some(prev) = self.last_key_pts
                && t > prev
            {
                self.max_key_interval = self.max_key_interval.max(t - prev);
            }
            self.last_key_pts = Some(t);
        }
    }

    fn apply_skip(&mut self, packet: &ff::Packet) {
        let skip =
            matches!((self.skip_before, packet.pts()), (Some(limit), Some(pts)) if pts < limit);
        if skip != self.skip_active {
            // Frame threads copy this setting per packet, so toggling between packets is safe.
            self.decoder.skip_frame(if skip {
                ff::Discard::NonReference
            } else {
                ff::Discard::Default
            });
            self.skip_active = skip;
        }
    }

    /// Presentation time of the last keyframe at or before `t` per the demuxer's index, if
    /// the container has one.
    pub fn indexed_keyframe_before(&self, t: f64) -> Option<f64> {
        let ts = (t / self.time_base).floor() as i64;
        // SAFETY: `input` owns a live AVFormatContext whose `streams` array holds the stream
        // `stream_index` was taken from; the index entry, when not null, points into that
        // stream's index and is read before anything can change it.
        unsafe {
            let st = *(*self.input.as_ptr()).streams.add(self.stream_index);
            let entry =
                ffi::avformat_index_get_entry_from_timestamp(st, ts, ffi::AVSEEK_FLAG_BACKWARD);
            (!entry.is_null()).then(|| (*entry).timestamp as f64 * self.time_base)
        }
    }

    /// How far the demuxer's index times lead presentation times, seconds: MP4 indexes decode
    /// times, which run ahead by the decoder's reordering delay; 0 for indexes of
    /// presentation times. Read off the first index entry against the stream's start.
    pub fn index_lead(&self) -> f64 {
        // SAFETY: `input` owns a live AVFormatContext whose `streams` array holds the stream
        // `stream_index` was taken from; the index entry, when not null, points into that
        // stream's index and is read before anything can change it.
        unsafe {
            let st = *(*self.input.as_ptr()).streams.add(self.stream_index);
            let first = ffi::avformat_index_get_entry(st, 0);
            if first.is_null() || (*st).start_time == ffi::AV_NOPTS_VALUE {
                return 0.0;
            }
            let lead = ((*st).start_time - (*first).timestamp) as f64 * self.time_base;
            if (0.0..1.0).contains(&lead) {
                lead
            } else {
                0.0
            }
        }
    }

    /// Time of the first keyframe after `t` per the demuxer's index, if the container has one
    /// and there is such a keyframe.
    pub fn indexed_keyframe_after(&self, t: f64) -> Option<f64> {
        let ts = (t / self.time_base).floor() as i64 + 1;
        // SAFETY: `input` owns a live AVFormatContext whose `streams` array holds the stream
        // `stream_index` was taken from; the index entry, when not null, points into that
        // stream's index and is read before anything can change it.
        unsafe {
            let st = *(*self.input.as_ptr()).streams.add(self.stream_index);
            // Without AVSEEK_FLAG_BACKWARD: the first keyframe entry at or after `ts`.
            let entry = ffi::avformat_index_get_entry_from_timestamp(st, ts, 0);
            (!entry.is_null()).then(|| (*entry).timestamp as f64 * self.time_base)
        }
    }

    /// Decodes the keyframe the demuxer's index puts at `key` (a time from
    /// [`Self::indexed_keyframe_before`] or [`Self::indexed_keyframe_after`]) into `out`,
    /// and nothing else: seek, one packet, drain. `false` if no keyframe could be decoded
    /// there. The decoder is left drained; the next call seeks again.
    pub fn keyframe_at(&mut self, key: f64, out: &mut AvFrame) -> Result<bool, VideoError> {
        if !self.seek_to_key(key) {
            return Ok(false);
        }
        let mut skipped = 0usize;
        loop {
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {}
                Err(ff::Error::Eof) => return Ok(false),
                Err(e) => {
                    self.read_error.get_or_insert_with(|| e.to_string());
                    return Ok(false);
                }
            }
            if packet.stream() != self.stream_index {
                continue;
            }
            if !packet.is_key() {
                // The demuxer landed before the keyframe (or between keyframes): skip ahead.
                skipped += 1;
                if skipped > MAX_PACKETS_WITHOUT_FRAME {
                    return Err(VideoError::Stalled {
                        path: self.path.clone(),
                        reason: format!("{MAX_PACKETS_WITHOUT_FRAME} packets without a keyframe"),
                    });
                }
                continue;
            }
            self.observe_packet(&packet);
            self.skip_before = None;
            self.apply_skip(&packet);
            if let Err(e) = self.decoder.send_packet(&packet) {
                let at = packet.pts().map_or(key, |t| t as f64 * self.time_base);
                self.damage(format_args!("skipping a corrupt keyframe at {at:.3}s: {e}"));
                continue;
            }
            // Drain at once: the decoder would otherwise hold the frame back for reordering
            // until later frames arrive. Draining never asks for more input, so anything but
            // a frame means none is coming.
            self.start_draining();
            match self.decoder.receive_frame(out) {
                Ok(()) => return Ok(true),
                Err(ff::Error::Eof) => {}
                Err(e) if is_eagain(&e) => {}
                Err(e) => self.damage(format_args!("skipping an undecodable keyframe: {e}")),
            }
            // Nothing came out of that keyframe: try the next one.
            self.decoder.flush();
            self.eof_sent = false;
        }
    }

    /// Seeks to the last keyframe at or before `t` (seconds, presentation time) and resets
    /// the decoder. `false` if the file cannot seek there (the caller decodes on instead).
    pub fn seek(&mut self, t: f64) -> bool {
        let ts = (t / self.time_base).floor() as i64;
        self.seek_within(t, i64::MIN, ts, ts)
    }

    /// Seeks to the keyframe whose index time is `key`, or the first after it: index times
    /// need not be presentation times (MP4's are decode times), so a seek back from `key`
    /// can land one keyframe early.
    fn seek_to_key(&mut self, key: f64) -> bool {
        let ts = (key / self.time_base).round() as i64;
        self.seek_within(key, ts, ts, i64::MAX)
    }

    /// `avformat_seek_file` to `ts` within [min, max] (stream time base), then resets the
    /// decoder; `t` only names the place in messages.
    fn seek_within(&mut self, t: f64, min: i64, ts: i64, max: i64) -> bool {
        if !self.has_timestamps {
            return false;
        }
        // SAFETY: `input` owns a live AVFormatContext, borrowed mutably here; the stream index
        // is one of its streams.
        let ret = unsafe {
            ffi::avformat_seek_file(
                self.input.as_mut_ptr(),
                self.stream_index as i32,
                min,
                ts,
                max,
                0,
            )
        };
        if ret < 0 {
            tracing::debug!("{}: seek to {t:.3}s failed ({ret})", self.path.display());
            return false;
        }
        self.decoder.flush();
        self.eof_sent = false;
        self.read_error = None;
        self.packets_without_frame = 0;
        self.last_key_pts = None;
        true
    }
}

/// One summary line for the damage beyond the warnings already shown.
pub(crate) fn report_damage(path: &Path, damage: &AtomicUsize) {
    let n = damage.load(Ordering::Relaxed);
    if n > DAMAGE_WARNINGS_SHOWN {
        tracing::warn!(
            "{}: {n} damaged packets or frames skipped or concealed in all",
            path.display()
        );
    }
}

struct PacketScan {
    packets: u64,
    /// End of the last timestamped packet (seconds), if any packet had a timestamp.
    last_end: Option<f64>,
}

fn scan_packets(input: &mut Input, stream_index: usize, time_base: f64) -> PacketScan {
    let mut scan = PacketScan {
        packets: 0,
        last_end: None,
    };
    let mut errors = 0;
    let mut packet = ff::Packet::empty();
    loop {
        match packet.read(input) {
            Ok(()) => {
                errors = 0;
                if packet.stream() != stream_index {
                    continue;
                }
                scan.packets += 1;
                if let Some(t) = packet.pts().or(packet.dts()) {
                    let end = (t + packet.duration().max(0)) as f64 * time_base;
                    scan.last_end = Some(scan.last_end.map_or(end, |e: f64| e.max(end)));
                }
            }
            Err(ff::Error::Eof) => break,
            Err(_) => {
                errors += 1;
                if errors > MAX_CONSECUTIVE_READ_ERRORS {
                    break;
                }
            }
        }
    }
    scan
}

/// Parses a Matroska `DURATION` tag, `HH:MM:SS.fraction`, to seconds.
fn parse_hms(text: &str) -> Option<f64> {
    let mut parts = text.trim().split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    let secs =
        h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?;
    (parts.next().is_none() && secs.is_finite() && secs > 0.0).then_some(secs)
}

fn pick_video_stream(input: &Input) -> Option<ff::format::stream::Stream<'_>> {
    let is_picture = |s: &ff::format::stream::Stream| {
        s.disposition()
            .contains(ff::format::stream::Disposition::ATTACHED_PIC)
    };
    match input.streams().best(ff::media::Type::Video) {
        Some(s) if !is_picture(&s) => Some(s),
        _ => input
            .streams()
            .find(|s| s.parameters().medium() == ff::media::Type::Video && !is_picture(s)),
    }
}

fn describe_streams(input: &Input) -> String {
    let kinds: Vec<String> = input
        .streams()
        .map(|s| {
            let p = s.parameters();
            let pic = s
                .disposition()
                .contains(ff::format::stream::Disposition::ATTACHED_PIC);
            format!(
                "{:?} {}{}",
                p.medium(),
                p.id().name(),
                if pic { " cover art" } else { "" }
            )
            .to_lowercase()
        })
        .collect();
    if kinds.is_empty() {
        "the file has no streams".into()
    } else {
        format!("streams: {}", kinds.join(", "))
    }
}

/// Converts decoded frames to RGB24 at the requested size (swscale, bilinear, honouring
/// the source's colour matrix and range) and then to display orientation.
pub(crate) struct Converter {
    resize: Resize,
    rotation: i32,
    scaler: Option<(ScalerKey, scaling::Context)>,
    rgb: AvFrame,
}

#[derive(PartialEq, Clone, Copy)]
struct ScalerKey {
    format: ff::format::Pixel,
    width: u32,
    height: u32,
    space: ff::color::Space,
    range: ff::color::Range,
}

impl Converter {
    pub fn new(resize: Resize, rotation: i32) -> Self {
        Converter {
            resize,
            rotation,
            scaler: None,
            rgb: AvFrame::empty(),
        }
    }

    /// Returns (width, height, tightly packed RGB24) after scaling and rotation.
    pub fn convert(
        &mut self,
        path: &Path,
        frame: &AvFrame,
    ) -> Result<(u32, u32, Vec<u8>), VideoError> {
        let key = ScalerKey {
            format: frame.format(),
            width: frame.width(),
            height: frame.height(),
            space: frame.color_space(),
            range: frame.color_range(),
        };
        if key.width == 0 || key.height == 0 || key.format == ff::format::Pixel::None {
            return Err(VideoError::NoFrames {
                path: path.to_path_buf(),
                reason: "the decoder returned an empty frame".into(),
            });
        }
        let (out_w, out_h) = self.resize.apply(key.width, key.height);
        if self.scaler.as_ref().is_none_or(|(k, _)| *k != key) {
            let mut ctx = scaling::Context::get(
                key.format,
                key.width,
                key.height,
                ff::format::Pixel::RGB24,
                out_w,
                out_h,
                scaling::Flags::BILINEAR,
            )
            .map_err(|e| VideoError::Codec {
                path: path.to_path_buf(),
                codec: format!("{:?}", key.format).to_lowercase(),
                reason: format!("cannot convert this pixel format to RGB: {e}"),
            })?;
            set_colorspace(&mut ctx, key.space, key.range);
            self.scaler = Some((key, ctx));
            self.rgb = AvFrame::empty();
        }
        let (_, scaler) = self.scaler.as_mut().expect("scaler was just set");
        scaler
            .run(frame, &mut self.rgb)
            .map_err(|e| VideoError::Codec {
                path: path.to_path_buf(),
                codec: format!("{:?}", key.format).to_lowercase(),
                reason: format!("conversion to RGB failed: {e}"),
            })?;
        let packed = pack_rows(&self.rgb, out_w as usize, out_h as usize);
        Ok(rotate(packed, out_w, out_h, self.rotation))
    }
}

/// The colour matrix and range of the source, as the ffmpeg CLI's scale filter uses them
/// (swscale alone would assume BT.601 limited range).
fn set_colorspace(ctx: &mut scaling::Context, space: ff::color::Space, range: ff::color::Range) {
    let space_id = match space {
        ff::color::Space::Unspecified | ff::color::Space::RGB | ff::color::Space::Reserved => {
            ffi::SWS_CS_DEFAULT
        }
        s => ffi::AVColorSpace::from(s) as i32,
    };
    let src_full = i32::from(range == ff::color::Range::JPEG);
    // SAFETY: `ctx` owns a live SwsContext, borrowed mutably; the out-parameters are locals
    // that live across the call, and the tables swscale hands back are its own, passed back
    // unchanged; `sws_getCoefficients` returns a static table.
    unsafe {
        let ptr = ctx.as_mut_ptr();
        let mut inv_table: *mut i32 = std::ptr::null_mut();
        let mut table: *mut i32 = std::ptr::null_mut();
        let (mut in_full, mut out_full, mut brightness, mut contrast, mut saturation) =
            (0, 0, 0, 0, 0);
        if ffi::sws_getColorspaceDetails(
            ptr,
            &mut inv_table,
            &mut in_full,
            &mut table,
            &mut out_full,
            &mut brightness,
            &mut contrast,
            &mut saturation,
        ) < 0
        {
            return; // RGB or gray input: nothing to set.
        }
        // Keep swscale's own range for formats whose range is implied (yuvj*).
        let src_full = if in_full != 0 { 1 } else { src_full };
        ffi::sws_setColorspaceDetails(
            ptr,
            ffi::sws_getCoefficients(space_id),
            src_full,
            table,
            out_full,
            brightness,
            contrast,
            saturation,
        );
    }
}

/// Copies `height` rows of `width * 3` bytes out of a frame whose rows may be padded.
fn pack_rows(frame: &AvFrame, width: usize, height: usize) -> Vec<u8> {
    let stride = frame.stride(0);
    let data = frame.data(0);
    let row = width * 3;
    let mut out = Vec::with_capacity(row * height);
    for y in 0..height {
        out.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    out
}

/// Rotates a packed RGB24 image clockwise by 0/90/180/270 degrees.
pub(crate) fn rotate(rgb: Vec<u8>, width: u32, height: u32, degrees: i32) -> (u32, u32, Vec<u8>) {
    let (w, h) = (width as usize, height as usize);
    let px = |x: usize, y: usize| (y * w + x) * 3;
    match degrees {
        90 | 270 => {
            let mut out = vec![0u8; rgb.len()];
            // Output is h wide and w high.
            for oy in 0..w {
                for ox in 0..h {
                    let (sx, sy) = if degrees == 90 {
                        (oy, h - 1 - ox)
                    } else {
                        (w - 1 - oy, ox)
                    };
                    let o = (oy * h + ox) * 3;
                    out[o..o + 3].copy_from_slice(&rgb[px(sx, sy)..px(sx, sy) + 3]);
                }
            }
            (height, width, out)
        }
        180 => {
            let mut out = rgb;
            let n = w * h;
            for i in 0..n / 2 {
                let j = n - 1 - i;
                for c in 0..3 {
                    out.swap(i * 3 + c, j * 3 + c);
                }
            }
            (width, height, out)
        }
        _ => (width, height, rgb),
    }
}

#[cfg(test)]
mod tests {
    use super::rotate;

    // 2x1 image: pixels A (left) and B (right).
    const IMG: [u8; 6] = [1, 1, 1, 2, 2, 2];

    #[test]
    fn rotate_clockwise_puts_left_on_top() {
        let (w, h, out) = rotate(IMG.to_vec(), 2, 1, 90);
        assert_eq!((w, h), (1, 2));
        assert_eq!(out, vec![1, 1, 1, 2, 2, 2]);
        let (w, h, out) = rotate(IMG.to_vec(), 2, 1, 270);
        assert_eq!((w, h), (1, 2));
        assert_eq!(out, vec![2, 2, 2, 1, 1, 1]);
        let (_, _, out) = rotate(IMG.to_vec(), 2, 1, 180);
        assert_eq!(out, vec![2, 2, 2, 1, 1, 1]);
    }
}
