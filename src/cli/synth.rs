//! `vidcap synth`: render a captioned synthetic clip corpus.
use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::synth::{self, AssetSet, CorpusConfig, Geometry};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output directory (videos/, annotations.jsonl, compositional.jsonl, corpus.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Clips in annotations.jsonl (split 80/10/10 into train/val/test).
    #[arg(long)]
    pub clips: usize,
    /// Clips in compositional.jsonl (default: a tenth of --clips).
    #[arg(long)]
    pub compositional: Option<usize>,
    /// Asset directory holding catalogue.tsv (default: the cache directory that
    /// scripts/assets_synth.sh fills, else the built-in procedural set).
    #[arg(long, conflicts_with = "procedural")]
    pub assets: Option<PathBuf>,
    /// Use the built-in procedural shapes and backgrounds even if real assets are cached.
    #[arg(long)]
    pub procedural: bool,
    /// Frame width, in pixels.
    #[arg(long, default_value_t = 320)]
    pub width: u32,
    /// Frame height, in pixels.
    #[arg(long, default_value_t = 240)]
    pub height: u32,
    /// Frame rate of the rendered clips, in frames per second.
    #[arg(long, default_value_t = 25)]
    pub fps: u32,
    /// Clip length in seconds.
    #[arg(long, default_value_t = 4.0)]
    pub seconds: f32,
    /// Print the corpus report as one JSON document.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, global: &super::Global) -> Result<u8> {
    if args.width < 64
        || args.height < 48
        || !args.width.is_multiple_of(2)
        || !args.height.is_multiple_of(2)
    {
        bail!("--width/--height must be even and at least 64x48");
    }
    let frames = (args.seconds * args.fps as f32).round() as u32;
    if args.fps == 0 || frames < 2 {
        bail!("--fps and --seconds must give at least 2 frames");
    }
    let assets = if args.procedural {
        AssetSet::procedural()
    } else {
        AssetSet::resolve(args.assets.as_deref())?
    };
    let summary = assets.summary();
    tracing::info!(
        "assets: {:?} ({} sprites in {} categories, {} backgrounds)",
        summary.source,
        summary.sprites,
        summary.categories,
        summary.backgrounds
    );
    if global.verbose == 0 {
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    }
    let config = CorpusConfig {
        clips: args.clips,
        compositional_clips: args.compositional.unwrap_or(args.clips / 10),
        seed: global.seed,
        geometry: Geometry {
            width: args.width,
            height: args.height,
            fps: args.fps,
            frames,
        },
    };
    let report = synth::generate_corpus(&args.out, &assets, &config)?;
    for failure in &report.failures {
        eprintln!("vidcap: error: {failure}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let source = match (&report.assets.source, &report.assets.location) {
            (synth::AssetSource::Catalogue, Some(dir)) => format!("catalogue {}", dir.display()),
            _ => "procedural (built-in)".to_string(),
        };
        println!(
            "{}: {} train, {} val, {} test, {} compositional clips ({}x{}, {} fps, {:.1} s) in {:.1} s",
            args.out.display(),
            report.train,
            report.val,
            report.test,
            report.compositional,
            config.geometry.width,
            config.geometry.height,
            config.geometry.fps,
            config.geometry.seconds(),
            report.seconds
        );
        println!(
            "assets: {source}: {} sprites in {} categories, {} backgrounds",
            report.assets.sprites, report.assets.categories, report.assets.backgrounds
        );
    }
    Ok(if report.failures.is_empty() {
        super::EXIT_OK
    } else {
        super::EXIT_PARTIAL
    })
}
