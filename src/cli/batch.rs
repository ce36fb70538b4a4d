//! `vidcap batch INPUT... --out RESULTS.jsonl`: caption a library of footage, one JSON line
//! per video, resumable, and split across machines by shard.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, ensure};

use super::caption::ModelArgs;
use super::{EXIT_OK, EXIT_PARTIAL, Global};
use crate::pipeline::batch::{ResultsLog, Shard, collect_inputs_counted};
use crate::pipeline::run::run as run_pipeline;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Video files, directories (searched recursively) or @list.txt files.
    #[arg(required = true)]
    pub inputs: Vec<String>,
    /// Results file (JSON lines, appended as each video finishes).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue an interrupted run: skip inputs whose result is already in --out.
    #[arg(long)]
    pub resume: bool,
    /// With --resume, redo inputs whose earlier result was an error.
    #[arg(long)]
    pub retry_failed: bool,
    /// Replace an existing results file.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Take only shard I of N (0-based). Default: from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT,
    /// or JOB_COMPLETION_INDEX/VIDCAP_SHARD_COUNT, else everything.
    #[arg(long, value_name = "I/N", value_parser = super::shard)]
    pub shard: Option<Shard>,
    #[command(flatten)]
    pub model: ModelArgs,
}

pub fn run(args: Args, global: &Global) -> Result<u8> {
    let shard = match args.shard {
        Some(shard) => Some(shard),
        None => Shard::from_env(&|name| std::env::var(name).ok())?,
    };
    let (mut inputs, not_video) = collect_inputs_counted(&args.inputs)?;
    let found = inputs.len();
    if let Some(shard) = shard {
        inputs.retain(|i| shard.contains(i));
        tracing::info!(
            "shard {}/{}: {} of {found} inputs",
            shard.index,
            shard.count,
            inputs.len()
        );
    }
    let mut log = ResultsLog::open(&args.out, args.resume, args.overwrite)?;
    inputs.retain(|i| !log.is_done(i, args.retry_failed));
    let skipped = found - inputs.len();
    ensure!(found > 0, "no video found in the inputs");
    let (captioner, caption, run_opts) = args.model.load()?;

    let bar = super::progress::bar(
        inputs.len() as u64,
        !global.quiet,
        "{elapsed_precise} [{wide_bar}] {pos}/{len} videos, ETA {eta} {msg}",
    );
    bar.enable_steady_tick(Duration::from_millis(250));
    let mut failed = 0usize;
    let summary = run_pipeline(inputs, &captioner, &caption, &run_opts, &mut |outcome| {
        if let Some(error) = &outcome.result.error {
            tracing::error!("{error}");
            failed += 1;
            bar.set_message(format!("({failed} failed)"));
        }
        log.append(outcome.input, outcome.result)?;
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();
    let recorded = log.finish()?;
    // Failures recorded by an earlier run and not redone still count: the file holds them.
    let failed_before = recorded.failed.saturating_sub(summary.failed);
    if !global.quiet {
        let mut line = format!(
            "{}: {} captioned, {} failed",
            args.out.display(),
            summary.captioned,
            summary.failed
        );
        if failed_before > 0 {
            line.push_str(&format!(
                ", {failed_before} failed in an earlier run (--retry-failed redoes them)"
            ));
        }
        line.push_str(&format!(
            ", {skipped} skipped (done before or in other shards)"
        ));
        if not_video > 0 {
            line.push_str(&format!(", {not_video} non-video files ignored"));
        }
        eprintln!("{line}");
    }
    Ok(if recorded.failed > 0 {
        EXIT_PARTIAL
    } else {
        EXIT_OK
    })
}
