//! Synthetic captioned-clip corpus: sprites moving over real (or procedural) backgrounds,
//! rendered to H.264 MP4, with captions derived exactly from the generator's parameters.
//!
//! Layout of a corpus directory:
//! - `videos/clip_NNNNNN.mp4`, `videos/comp_NNNNNN.mp4`
//! - `annotations.jsonl`: the DESIGN annotation format (`video`, `start`, `end`,
//!   `captions`, `split` = train|val|test) plus `id` and `params` (the [`ClipParams`]).
//! - `compositional.jsonl`: the compositional test clips, same format, `split` = "test" and
//!   `"compositional": true`; each shows at least one (object, scene) or (object, motion)
//!   pair that no clip of annotations.jsonl shows. Kept apart so `--split test` of
//!   annotations.jsonl stays in-distribution.
//! - `corpus.json`: generator version, seed, geometry, assets used, held-out rule, counts.
//!
//! Every clip is a pure function of (seed, stream, index) and the asset set, so the corpus
//! is the same whatever the thread count.
pub mod assets;
pub mod caption;
pub mod encode;
pub mod render;
pub mod scene;

use std::path::Path;

use anyhow::{Context, Result};
use image::RgbImage;
use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use assets::{AssetSet, AssetSource, AssetSummary};
pub use render::ClipRenderer;
pub use scene::{ClipParams, Geometry, Motion, Speed, Story};

/// Bumped whenever the same seed would give a different corpus.
pub const GENERATOR_VERSION: &str = "vidcap-synth 1";
/// Reference captions per clip.
pub const CAPTIONS_PER_CLIP: usize = 5;

const STREAM_REGULAR: u64 = 0;
const STREAM_COMPOSITIONAL: u64 = 1;
const STREAM_CAPTIONS: u64 = 2;
const STREAM_SPLIT: u64 = 3;

#[derive(Debug, Clone)]
pub struct CorpusConfig {
    /// Clips of annotations.jsonl (train, val and test).
    pub clips: usize,
    /// Clips of compositional.jsonl.
    pub compositional_clips: usize,
    pub seed: u64,
    pub geometry: Geometry,
}

/// One line of annotations.jsonl / compositional.jsonl.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Annotation {
    pub video: String,
    pub start: f32,
    pub end: f32,
    pub captions: Vec<String>,
    pub split: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compositional: bool,
    pub id: String,
    pub params: ClipParams,
}

#[derive(Debug, Clone, Serialize)]
pub struct CorpusReport {
    pub generator: &'static str,
    pub seed: u64,
    pub geometry: Geometry,
    pub assets: AssetSummary,
    pub held_out: &'static str,
    pub train: usize,
    pub val: usize,
    pub test: usize,
    pub compositional: usize,
    /// Clips that failed, with the reason (they are left out of the annotations).
    pub failures: Vec<String>,
    pub seconds: f64,
}

/// Which split clip `index` of the regular stream belongs to: 80% train, 10% val, 10% test.
pub fn split_of(seed: u64, index: usize) -> &'static str {
    let u: f64 = scene::clip_rng(seed, STREAM_SPLIT, index as u64).random();
    match u {
        u if u < 0.8 => "train",
        u if u < 0.9 => "val",
        _ => "test",
    }
}

/// The parameters and captions of one clip (no rendering).
pub fn plan_clip(
    assets: &AssetSet,
    config: &CorpusConfig,
    compositional: bool,
    index: usize,
) -> Result<(ClipParams, Vec<String>)> {
    let stream = if compositional {
        STREAM_COMPOSITIONAL
    } else {
        STREAM_REGULAR
    };
    let mut rng = scene::clip_rng(config.seed, stream, index as u64);
    let params = ClipParams::sample(&mut rng, assets, config.geometry, compositional)?;
    let prep = &assets
        .background(&params.background)
        .expect("sampled from this set")
        .prep;
    let mut caption_rng =
        scene::clip_rng(config.seed, STREAM_CAPTIONS ^ (stream << 8), index as u64);
    let captions = caption::captions(&mut caption_rng, &params, prep, CAPTIONS_PER_CLIP);
    Ok((params, captions))
}

/// Renders every frame of a clip and encodes it to `path`.
pub fn write_clip(assets: &AssetSet, params: &ClipParams, path: &Path) -> Result<()> {
    let renderer = ClipRenderer::new(params, assets)?;
    let g = params.geometry;
    let mut writer = encode::Mp4Writer::create(path, g.width, g.height, g.fps)?;
    let mut frame = RgbImage::new(g.width, g.height);
    for i in 0..g.frames {
        renderer.render(i, &mut frame);
        writer.push(&frame)?;
    }
    writer.finish()
}

/// Writes a whole corpus into `out` (rayon over clips, in the current pool).
pub fn generate_corpus(
    out: &Path,
    assets: &AssetSet,
    config: &CorpusConfig,
) -> Result<CorpusReport> {
    let started = std::time::Instant::now();
    let videos = out.join("videos");
    std::fs::create_dir_all(&videos)
        .with_context(|| format!("{}: cannot create directory", videos.display()))?;
    let jobs: Vec<(bool, usize)> = (0..config.clips)
        .map(|i| (false, i))
        .chain((0..config.compositional_clips).map(|i| (true, i)))
        .collect();
    let results: Vec<Result<Annotation, String>> = jobs
        .par_iter()
        .map(|&(compositional, index)| {
            let id = format!("{}_{index:06}", if compositional { "comp" } else { "clip" });
            let video = format!("videos/{id}.mp4");
            let run = || -> Result<Annotation> {
                let (params, captions) = plan_clip(assets, config, compositional, index)?;
                write_clip(assets, &params, &out.join(&video))?;
                Ok(Annotation {
                    video: video.clone(),
                    start: 0.0,
                    end: config.geometry.seconds(),
                    captions,
                    split: if compositional {
                        "test".to_string()
                    } else {
                        split_of(config.seed, index).to_string()
                    },
                    compositional,
                    id: id.clone(),
                    params,
                })
            };
            let result = run().map_err(|e| format!("{}: {e:#}", out.join(&video).display()));
            // Failures are returned in the report and printed once, by the caller.
            if result.is_ok() && index % 250 == 0 {
                tracing::info!("{id} done");
            }
            result
        })
        .collect();
    let mut regular = Vec::new();
    let mut comp = Vec::new();
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(a) if a.compositional => comp.push(a),
            Ok(a) => regular.push(a),
            Err(e) => failures.push(e),
        }
    }
    write_jsonl(&out.join("annotations.jsonl"), &regular)?;
    write_jsonl(&out.join("compositional.jsonl"), &comp)?;
    let count = |s: &str| regular.iter().filter(|a| a.split == s).count();
    let report = CorpusReport {
        generator: GENERATOR_VERSION,
        seed: config.seed,
        geometry: config.geometry,
        assets: assets.summary(),
        held_out: "compositional.jsonl shows (object, scene) or (object, motion) pairs that \
                   annotations.jsonl never shows; the pairs are fixed by their names (scene::held_out_*)",
        train: count("train"),
        val: count("val"),
        test: count("test"),
        compositional: comp.len(),
        failures,
        seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_vec_pretty(&report)?;
    crate::atomic::write_atomic(&out.join("corpus.json"), &json)?;
    Ok(report)
}

fn write_jsonl(path: &Path, lines: &[Annotation]) -> Result<()> {
    let mut buf = Vec::new();
    for a in lines {
        serde_json::to_writer(&mut buf, a)?;
        buf.push(b'\n');
    }
    crate::atomic::write_atomic(path, &buf)
}

/// Reads annotations.jsonl or compositional.jsonl back (for tests and tools).
pub fn read_annotations(path: &Path) -> Result<Vec<Annotation>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: bad line", path.display(), i + 1))
        })
        .collect()
}
