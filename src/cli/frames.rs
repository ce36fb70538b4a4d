//! `vidcap frames VIDEO (--count N | --fps F | --every) --out DIR`: sampled frames as PNG
//! files plus frames.json (index, pts seconds, file, size).
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::video::{self, Frame, Resize, SampleSpec, Sampling, VideoError};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("sampling").required(true).args(["count", "fps", "every"])))]
pub struct Args {
    /// Video file.
    pub video: PathBuf,
    /// N frames uniformly spread over the clip (centres of N equal segments).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Frames at a fixed rate (frames per second).
    #[arg(long)]
    pub fps: Option<f64>,
    /// Every frame.
    #[arg(long)]
    pub every: bool,
    /// Window start, seconds.
    #[arg(long)]
    pub start: Option<f64>,
    /// Window end, seconds (default: the end of the video).
    #[arg(long)]
    pub end: Option<f64>,
    /// Scale so the shorter side has this many pixels (the encoder's input).
    #[arg(long, default_value_t = 256, conflicts_with = "native")]
    pub short_side: u32,
    /// Keep the video's own size.
    #[arg(long)]
    pub native: bool,
    /// The keyframe nearest to each target instead of the exact frame: one keyframe
    /// decoded per frame, so much faster; frames repeat where keyframes are sparser than
    /// the targets.
    #[arg(long, conflicts_with = "every")]
    pub keyframes: bool,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Serialize)]
struct FrameEntry {
    index: usize,
    pts: f64,
    file: String,
    width: u32,
    height: u32,
}

#[derive(Serialize)]
struct FramesJson<'a> {
    video: &'a Path,
    info: &'a video::VideoInfo,
    frames: Vec<FrameEntry>,
}

pub fn run(args: Args, global: &super::Global) -> anyhow::Result<u8> {
    video::set_ffmpeg_verbosity(if global.quiet { 0 } else { global.verbose });
    let sampling = match (args.count, args.fps) {
        (Some(count), _) => Sampling::Uniform {
            count: count as usize,
        },
        (None, Some(fps)) => Sampling::Fps { fps },
        (None, None) => Sampling::Every,
    };
    let spec = SampleSpec {
        sampling,
        start: args.start,
        end: args.end,
        resize: if args.native {
            Resize::Native
        } else {
            Resize::ShortSide(args.short_side)
        },
        keyframes: args.keyframes,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create the output directory", args.out.display()))?;
    let mut entries = Vec::new();
    let info = video::for_each_frame(&args.video, &spec, |frame| {
        let name = format!("frame_{:06}.png", frame.index);
        write_png(&args.out.join(&name), &frame).map_err(|e| VideoError::Consumer {
            path: args.out.join(&name),
            reason: format!("cannot write the frame: {e:#}"),
        })?;
        entries.push(FrameEntry {
            index: frame.index,
            pts: frame.pts,
            file: name,
            width: frame.width,
            height: frame.height,
        });
        Ok(())
    })?;
    let count = entries.len();
    let doc = FramesJson {
        video: &args.video,
        info: &info,
        frames: entries,
    };
    let json_path = args.out.join("frames.json");
    crate::atomic::write_atomic_with(&json_path, |w| {
        serde_json::to_writer_pretty(&mut *w, &doc)?;
        writeln!(w)?;
        Ok(())
    })?;
    tracing::info!("{count} frames written to {}", args.out.display());
    println!("{}", json_path.display());
    Ok(super::EXIT_OK)
}

fn write_png(path: &Path, frame: &Frame) -> anyhow::Result<()> {
    let rgb = image::ExtendedColorType::Rgb8;
    crate::atomic::write_png(path, &frame.rgb, frame.width, frame.height, rgb)
}
