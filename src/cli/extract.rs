//! `vidcap extract DATASET --out CACHE`: encoder features of every clip, cached, so
//! training never decodes video. Resumable: valid entries are skipped.
use std::path::PathBuf;

use anyhow::bail;
use serde_json::json;

use super::{EXIT_OK, EXIT_PARTIAL, Global};
use crate::dataset::{DatasetFormat, DatasetOptions, Split, load_dataset};
use crate::encoder::{encoder_dir, load_encoder};
use crate::features::cache::FeatureCache;
use crate::features::extract::{
    ClipOutcome, ExtractSpec, RunOptions, encoder_weights_sha256, extract_dataset,
};
use crate::pipeline::batch::Shard;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Annotation file or directory (own JSONL, MSR-VTT, MSVD txt/csv, VATEX json).
    pub dataset: PathBuf,
    /// Cache directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Frames sampled uniformly from each clip.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub frames: u64,
    /// Encoder name or model directory.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub encoder: String,
    /// Clips processed at the same time (default: the thread count).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: Option<u64>,
    /// Directory holding the videos (default: next to the annotations, or its videos/).
    #[arg(long)]
    pub videos: Option<PathBuf>,
    /// Annotation format, when the file name does not tell.
    #[arg(long)]
    pub format: Option<DatasetFormat>,
    /// Only clips of this split (train, val, test).
    #[arg(long)]
    pub split: Option<Split>,
    /// Store only the global pool (R = 1), not the 2×2 grid as well (R = 5).
    #[arg(long)]
    pub no_grid: bool,
    /// Leave out the per-frame motion descriptor (camera and block motion) that is
    /// otherwise appended to every item.
    #[arg(long)]
    pub no_motion: bool,
    /// Samplings cached per clip: the uniform one plus K-1 temporally jittered ones (one
    /// frame drawn inside each of the 1/frames slots, seeded by --seed); training draws one
    /// per clip per epoch.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub samplings: u64,
    /// Take only shard I of N (0-based, by a hash of the clip id), so N machines fill one
    /// shared cache. Default: from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, or
    /// JOB_COMPLETION_INDEX/VIDCAP_SHARD_COUNT, else every clip.
    #[arg(long, value_parser = super::shard)]
    pub shard: Option<Shard>,
    /// Re-extract clips whose entry is still valid.
    #[arg(long)]
    pub force: bool,
    /// Print the summary as one JSON document.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<u8> {
    crate::video::set_ffmpeg_verbosity(if global.quiet { 0 } else { global.verbose });
    let opts = DatasetOptions {
        format: args.format,
        videos: args.videos.clone(),
    };
    let dataset = load_dataset(&args.dataset, &opts)?;
    let shard = match args.shard {
        Some(shard) => Some(shard),
        None => Shard::from_env(&|name| std::env::var(name).ok())?,
    };
    let mut clips: Vec<_> = dataset
        .clips
        .iter()
        .filter(|c| args.split.is_none_or(|s| c.split == s))
        .cloned()
        .collect();
    if let Some(shard) = shard {
        let all = clips.len();
        clips.retain(|c| shard.contains_name(&c.id));
        tracing::info!(
            "shard {}/{}: {} of {all} clips",
            shard.index,
            shard.count,
            clips.len()
        );
        if clips.is_empty() {
            println!(
                "shard {}/{}: no clips of the {all} fall in this shard",
                shard.index, shard.count
            );
            return Ok(EXIT_OK);
        }
    }
    if clips.is_empty() {
        bail!(
            "{}: no {} clips with a video",
            args.dataset.display(),
            args.split.map_or("".into(), |s| s.to_string())
        );
    }
    let encoder = load_encoder(&args.encoder)?;
    let model_dir = encoder_dir(&args.encoder)?;
    let spec = ExtractSpec {
        frames: args.frames as usize,
        grid: !args.no_grid,
        motion: !args.no_motion,
    };
    let key = spec.key(encoder.as_ref(), &encoder_weights_sha256(&model_dir)?);
    let cache = FeatureCache::open(&args.out)?;
    let jobs = args
        .jobs
        .map_or_else(rayon::current_num_threads, |j| j as usize);
    tracing::info!(
        "{} clips ({}), encoder {} ({}), {}, {} regions{}, {jobs} jobs → {}",
        clips.len(),
        dataset.format,
        key.encoder,
        &key.encoder_sha256[..key.encoder_sha256.len().min(12)],
        key.sampling,
        key.regions,
        if key.motion { " + motion" } else { "" },
        cache.dir().display()
    );

    let bar = super::progress::bar(
        clips.len() as u64,
        !global.quiet,
        "{bar:40} {pos}/{len} clips {elapsed} (eta {eta}) {msg}",
    );
    let report = extract_dataset(
        &clips,
        &cache,
        encoder.as_ref(),
        &spec,
        &key,
        RunOptions {
            jobs,
            force: args.force,
            samplings: args.samplings as usize,
            seed: global.seed,
        },
        &|clip, outcome| {
            match outcome {
                ClipOutcome::Failed(why) => tracing::error!("clip {}: {why}", clip.id),
                ClipOutcome::Skipped(why) => tracing::warn!("clip {} skipped: {why}", clip.id),
                _ => {}
            }
            bar.inc(1);
        },
    )?;
    bar.finish_and_clear();

    if args.json {
        let failed: Vec<_> = report
            .failed
            .iter()
            .map(|(id, video, error)| json!({"clip": id, "video": video, "error": error}))
            .collect();
        let doc = json!({
            "cache": cache.dir(),
            "format": dataset.format.as_str(),
            "encoder": key.encoder,
            "encoder_sha256": key.encoder_sha256,
            "sampling": key.sampling,
            "regions": key.regions,
            "motion": key.motion,
            "clips": clips.len(),
            "extracted": report.extracted,
            "up_to_date": report.up_to_date,
            "failed": failed,
            "skipped": report
                .skipped
                .iter()
                .map(|(id, video, why)| json!({"clip": id, "video": video, "reason": why}))
                .collect::<Vec<_>>(),
            "samplings": args.samplings,
            "shard": shard.map(|s| format!("{}/{}", s.index, s.count)),
            "missing_videos": dataset.missing,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "{} clips: {} extracted, {} up to date, {} skipped, {} failed; missing videos: {}; cache {}",
            clips.len(),
            report.extracted,
            report.up_to_date,
            report.skipped.len(),
            report.failed.len(),
            dataset.missing.len(),
            cache.dir().display()
        );
    }
    if report.extracted + report.up_to_date == 0 && report.skipped.is_empty() {
        bail!(
            "no clip could be extracted ({} failed)",
            report.failed.len()
        );
    }
    Ok(if report.failed.is_empty() && dataset.missing.is_empty() {
        EXIT_OK
    } else {
        EXIT_PARTIAL
    })
}
