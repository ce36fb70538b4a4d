//! Command-line layer: clap structs, defaults, output writers. The engine below takes plain
//! values; this layer turns them into results on stdout and diagnostics on stderr.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod annotate;
mod batch;
mod caption;
mod classify;
mod embed;
mod eval;
mod extract;
mod familiarity;
mod frames;
mod generate;
mod merge;
mod models;
mod probe;
mod progress;
mod report;
mod score;
mod synth;
mod train;

/// Exit codes of the command-line contract.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FATAL: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_PARTIAL: u8 = 3;

/// A mistake in how the command was called that only shows after parsing (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Value parser: a whole number of at least 1 (0 is a usage error, not an empty run).
pub(crate) fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?} is not a whole number of at least 1")),
    }
}

/// Value parser: a finite number of seconds above 0.
pub(crate) fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{text:?} is not a number of seconds above 0")),
    }
}

/// Value parser: a fraction in [0, 1].
pub(crate) fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a number between 0 and 1")),
    }
}

/// Value parser: `I/N`, shard I (0-based) of N.
pub(crate) fn shard(text: &str) -> Result<crate::pipeline::batch::Shard, String> {
    crate::pipeline::batch::Shard::parse(text).map_err(|e| format!("{e:#}"))
}

#[derive(Parser, Debug)]
#[command(
    name = "vidcap",
    version,
    about = "Caption video: FFmpeg frames → CNN encoder → GRU decoder with temporal attention"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand understands, listed under their own heading in every `--help`.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Only errors on stderr (no progress, no warnings).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More detail on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Size of the CPU thread pool, in threads (default: all cores).
    #[arg(long, global = true, value_name = "N", value_parser = at_least_one)]
    pub threads: Option<usize>,
    /// Seed for everything random, so runs repeat.
    #[arg(long, global = true, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Duration, size (after rotation), fps, codec, frame count and rotation of a video.
    Probe(probe::Args),
    /// Sample frames of a video to PNG files plus frames.json.
    Frames(frames::Args),
    /// Caption videos: one caption per video, or per segment with start and end.
    Caption(caption::Args),
    /// Caption a library of footage into a resumable JSONL results file.
    Batch(batch::Args),
    /// Model directories: list, fetch from the hub, import a PyTorch checkpoint.
    Models(models::Args),
    /// Render a captioned synthetic clip corpus (videos + annotations.jsonl).
    Synth(synth::Args),
    /// ImageNet top-K classes of the encoder for an image (or a preprocessed .npy tensor).
    Classify(classify::Args),
    /// Encoder features [T, D] of an image or a preprocessed .npy tensor, written as .npy.
    Embed(embed::Args),
    /// BLEU-1..4, ROUGE-L, CIDEr-D (and METEOR with Java) of captions against references.
    Score(score::Args),
    /// Train the caption decoder (BPTT) on a dataset's cached features.
    Train(train::Args),
    /// Caption a dataset split from cached features and score it.
    Eval(eval::Args),
    /// Encoder features of every clip of a dataset, cached for training (resumable).
    Extract(extract::Args),
    /// A model's summary of its training clips: fit it, or score a split against it.
    Familiarity(familiarity::Args),
    /// Merge JSONL annotation files into one (absolute video paths, id prefixes, splits).
    Merge(merge::Args),
    /// Add scores and notes to a model's training_report.json (used by training recipes).
    Report(report::Args),
    /// Caption your own clips in a local web page, with the model's suggestions, into a
    /// JSONL dataset that `extract` and `train` read.
    Annotate(annotate::Args),
    /// Man pages and shell completions (used by `make install`).
    #[command(hide = true)]
    Generate(generate::Args),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if err.use_stderr() => {
            // clap's "error: …", in vidcap's message style.
            eprint!("vidcap: {}", err.render());
            return ExitCode::from(EXIT_USAGE);
        }
        Err(help_or_version) => {
            let _ = help_or_version.print();
            return ExitCode::from(EXIT_OK);
        }
    };
    init_logging(&cli.global);
    if let Some(n) = cli.global.threads {
        // Build the global pool once; a second build fails harmlessly.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global();
    }
    let result = match cli.command {
        Command::Probe(args) => probe::run(args, &cli.global),
        Command::Frames(args) => frames::run(args, &cli.global),
        Command::Caption(args) => caption::run(args, &cli.global),
        Command::Batch(args) => batch::run(args, &cli.global),
        Command::Models(args) => models::run(args, &cli.global),
        Command::Synth(args) => synth::run(args, &cli.global),
        Command::Classify(args) => classify::run(args, &cli.global),
        Command::Embed(args) => embed::run(args, &cli.global),
        Command::Score(args) => score::run(args, &cli.global),
        Command::Merge(args) => merge::run(args, &cli.global),
        Command::Report(args) => report::run(args, &cli.global),
        Command::Train(args) => train::run(args, &cli.global),
        Command::Eval(args) => eval::run(args, &cli.global),
        Command::Extract(args) => extract::run(args, &cli.global),
        Command::Familiarity(args) => familiarity::run(args, &cli.global),
        Command::Annotate(args) => annotate::run(args, &cli.global),
        Command::Generate(args) => generate::run(args, &cli.global),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            progress::clear();
            progress::print_error(&format!("{err:#}"));
            if err.downcast_ref::<UsageError>().is_some() {
                eprintln!("\nFor more information, try '--help'.");
                return ExitCode::from(EXIT_USAGE);
            }
            ExitCode::from(EXIT_FATAL)
        }
    }
}

fn init_logging(global: &Global) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIDCAP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("vidcap={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress::AboveBars)
        .with_ansi(false)
        .event_format(progress::MessageStyle)
        .try_init();
}
