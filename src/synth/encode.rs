//! H.264 MP4 writer on the FFmpeg libraries (libx264 through ffmpeg-next), in-process so a
//! corpus of thousands of clips spawns no processes. Files appear atomically: frames go to a
//! temp file in the same directory, renamed after the trailer is written.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::{Dictionary, Packet, Rational, codec, encoder, format, frame};
use ffmpeg_next as ffmpeg;
use image::RgbImage;

pub struct Mp4Writer {
    path: PathBuf,
    tmp: PathBuf,
    output: format::context::Output,
    encoder: encoder::Video,
    scaler: scaling::Context,
    rgb: frame::Video,
    yuv: frame::Video,
    time_base: Rational,
    stream_time_base: Rational,
    next_pts: i64,
    finished: bool,
}

impl Mp4Writer {
    /// Opens `path` (written on `finish`) for `width`x`height` frames at `fps`.
    pub fn create(path: &Path, width: u32, height: u32, fps: u32) -> Result<Self> {
        ffmpeg::init().context("cannot initialise FFmpeg")?;
        if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            bail!(
                "{}: yuv420p needs even sizes, got {width}x{height}",
                path.display()
            );
        }
        let name = path
            .file_name()
            .with_context(|| format!("{}: not a file path", path.display()))?;
        let tmp = path.with_file_name(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let mut output = format::output_as(&tmp, "mp4")
            .with_context(|| format!("{}: cannot create", tmp.display()))?;
        let codec = encoder::find_by_name("libx264")
            .or_else(|| encoder::find(codec::Id::H264))
            .context("FFmpeg has no H.264 encoder (install libavcodec with libx264)")?;
        let global_header = output
            .format()
            .flags()
            .contains(format::Flags::GLOBAL_HEADER);
        let time_base = Rational(1, fps as i32);
        let mut ctx = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()?;
        ctx.set_width(width);
        ctx.set_height(height);
        ctx.set_format(Pixel::YUV420P);
        ctx.set_time_base(time_base);
        ctx.set_frame_rate(Some(Rational(fps as i32, 1)));
        // One keyframe a second keeps seeking cheap for the frame sampler.
        ctx.set_gop(fps);
        // Closed GOPs: every keyframe an IDR frame. libx264 through the library API otherwise
        // writes open GOPs, whose non-IDR keyframes browsers cannot start decoding at after a
        // seek (the FFmpeg CLI closes them by default).
        let mut flags = codec::Flags::CLOSED_GOP;
        if global_header {
            flags |= codec::Flags::GLOBAL_HEADER;
        }
        ctx.set_flags(flags);
        let mut options = Dictionary::new();
        options.set("preset", "veryfast");
        options.set("crf", "23");
        // Clips are encoded in parallel by rayon; one x264 thread each also makes the
        // bytes independent of the machine's core count.
        options.set("threads", "1");
        if let Some(cpu) = x264_cpu_cap() {
            options.set("x264-params", &format!("asm={cpu}"));
        }
        let encoder = ctx
            .open_with(options)
            .with_context(|| format!("{}: cannot open the H.264 encoder", path.display()))?;
        {
            let mut stream = output.add_stream(codec)?;
            stream.set_parameters(&encoder);
            stream.set_time_base(time_base);
            stream.set_avg_frame_rate(Rational(fps as i32, 1));
        }
        output
            .write_header()
            .with_context(|| format!("{}: cannot write the MP4 header", tmp.display()))?;
        let stream_time_base = output.stream(0).context("stream 0")?.time_base();
        let scaler = scaling::Context::get(
            Pixel::RGB24,
            width,
            height,
            Pixel::YUV420P,
            width,
            height,
            scaling::Flags::BILINEAR | scaling::Flags::ACCURATE_RND | scaling::Flags::BITEXACT,
        )?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            output,
            encoder,
            scaler,
            rgb: zeroed_frame(Pixel::RGB24, width, height),
            yuv: zeroed_frame(Pixel::YUV420P, width, height),
            time_base,
            stream_time_base,
            next_pts: 0,
            finished: false,
        })
    }

    /// Appends one frame; its size must match the writer's.
    pub fn push(&mut self, image: &RgbImage) -> Result<()> {
        let (w, h) = (self.rgb.width(), self.rgb.height());
        if image.dimensions() != (w, h) {
            bail!(
                "frame is {}x{}, the video is {w}x{h}",
                image.width(),
                image.height()
            );
        }
        let stride = self.rgb.stride(0);
        let row = w as usize * 3;
        let data = self.rgb.data_mut(0);
        for (y, src) in image.as_raw().chunks_exact(row).enumerate() {
            data[y * stride..y * stride + row].copy_from_slice(src);
        }
        self.scaler.run(&self.rgb, &mut self.yuv)?;
        self.yuv.set_pts(Some(self.next_pts));
        self.next_pts += 1;
        self.encoder.send_frame(&self.yuv)?;
        self.drain()
    }

    fn drain(&mut self) -> Result<()> {
        let mut packet = Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            packet.rescale_ts(self.time_base, self.stream_time_base);
            packet
                .write_interleaved(&mut self.output)
                .with_context(|| format!("{}: cannot write a packet", self.tmp.display()))?;
        }
        Ok(())
    }

    /// Flushes the encoder, writes the trailer and moves the file into place.
    pub fn finish(mut self) -> Result<()> {
        self.encoder.send_eof()?;
        self.drain()?;
        self.output
            .write_trailer()
            .with_context(|| format!("{}: cannot write the MP4 trailer", self.tmp.display()))?;
        self.finished = true;
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("{}: cannot rename into place", self.path.display()))
    }
}

/// A frame whose row padding is zero rather than whatever malloc returned.
fn zeroed_frame(format: Pixel, width: u32, height: u32) -> frame::Video {
    let mut f = frame::Video::new(format, width, height);
    for plane in 0..f.planes() {
        f.data_mut(plane).fill(0);
    }
    f
}

/// libx264 (core 164) on an AVX-512 CPU reads uninitialised heap memory: one clip encoded to
/// different bytes depending on what its thread had allocated before (reproduced, and made
/// to vanish with MALLOC_PERTURB_). Capping x264 at AVX2 there makes the bytes a function of
/// the frames alone; other CPUs keep x264's own detection.
fn x264_cpu_cap() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("bmi2")
    {
        return Some("SSE2Fast,SSSE3,SSE4.2,AVX2");
    }
    None
}

impl Drop for Mp4Writer {
    fn drop(&mut self) {
        if !self.finished {
            // An abandoned clip leaves nothing behind.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
