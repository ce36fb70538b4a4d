//! `vidcap probe VIDEO [--json]`: the properties of a video's best video stream.
use std::path::PathBuf;

use crate::video;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Video file.
    pub video: PathBuf,
    /// Print one JSON document instead of `key: value` lines.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, global: &super::Global) -> anyhow::Result<u8> {
    video::set_ffmpeg_verbosity(if global.quiet { 0 } else { global.verbose });
    let info = video::probe(&args.video)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!("path: {}", info.path.display());
        println!("duration_s: {:.3}", info.duration_s);
        println!("width: {}", info.width);
        println!("height: {}", info.height);
        println!("fps: {:.3}", info.fps);
        println!("codec: {}", info.codec);
        println!("frame_count_estimate: {}", info.frame_count_estimate);
        println!("rotation: {}", info.rotation);
        println!("pixel_format: {}", info.pixel_format);
    }
    Ok(super::EXIT_OK)
}
