//! `vidcap caption VIDEO...`: one caption per video, or per segment with start and end.
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use super::{EXIT_OK, EXIT_PARTIAL, Global, UsageError};
use crate::decoder::SearchOptions;
use crate::familiarity::DEFAULT_MIN_FAMILIARITY;
use crate::model_path;
use crate::output::sheet::{self, SheetLayout, Thumb};
use crate::output::{Format, UNFAMILIAR_MARK, VideoCaptions, any_unfamiliar, timestamp};
use crate::pipeline::batch::collect_inputs;
use crate::pipeline::caption::{
    CaptionOptions, Captioner, DEFAULT_BEAM, DEFAULT_DECODER, SegmentMode,
};
use crate::pipeline::run::{RunOptions, run as run_pipeline};

/// Model and search options shared by `caption` and `batch`.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Decoder: a model directory, or the name of an installed one (default: the bundled
    /// decoder, synth-decoder; README "Where models are found" gives the search order).
    #[arg(long, value_name = "DIR|NAME")]
    pub model: Option<String>,
    /// Encoder name or directory (default: the one the decoder was trained on, looked up
    /// beside the decoder first).
    #[arg(long, value_name = "NAME|DIR")]
    #[arg(long)]
    pub encoder: Option<String>,
    /// Beam width, in hypotheses kept per step (1 = greedy).
    #[arg(long, default_value_t = DEFAULT_BEAM, value_parser = super::at_least_one)]
    pub beam: usize,
    /// Longest caption, in tokens (default: the decoder's).
    #[arg(long, value_name = "TOKENS", value_parser = super::at_least_one)]
    pub max_len: Option<usize>,
    /// Never repeat an n-gram of this many words within a caption (0: off).
    #[arg(long, default_value_t = 5, value_name = "WORDS")]
    pub no_repeat_ngram: usize,
    /// Most times any content word (anything but a, the, of, … see FUNCTION_WORDS) may appear
    /// in a caption (0: no limit).
    #[arg(long, default_value_t = 2, value_name = "TIMES")]
    pub max_word_repeats: usize,
    /// Captions of spans whose familiarity (a fraction in [0, 1]: the share of the model's
    /// validation clips that look less like its training clips) is below this are marked
    /// unfamiliar.
    #[arg(long, default_value_t = DEFAULT_MIN_FAMILIARITY, value_name = "FRACTION", value_parser = super::fraction)]
    pub min_familiarity: f64,
    /// List the encoder's K most probable ImageNet classes (mean over the sampled frames)
    /// with every caption (0: none).
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub tags: usize,
    /// Frames sampled uniformly per captioned window, in frames.
    #[arg(long, default_value_t = 16, value_parser = super::at_least_one)]
    pub frames: usize,
    /// Sample the keyframe nearest to each target instead of the exact frame: several times
    /// faster on long videos; frames repeat where keyframes are sparser than the targets.
    #[arg(long)]
    pub keyframes: bool,
    /// `none` (one caption per video), `auto` (split at shot boundaries) or a window length
    /// in seconds (fixed windows).
    #[arg(long, default_value = "none", value_name = "none|auto|SECONDS", value_parser = parse_segments)]
    pub segments: Segments,
    /// Shortest segment for `--segments auto`, in seconds.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS", value_parser = super::positive_seconds)]
    pub min_segment: f64,
    /// Longest segment for `--segments auto`, in seconds.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS", value_parser = super::positive_seconds)]
    pub max_segment: f64,
    /// Files decoded at once, in files.
    #[arg(long, default_value_t = 2, value_name = "FILES", value_parser = super::at_least_one)]
    pub jobs: usize,
    /// Give up on a file whose frames take longer than this to decode, in seconds.
    #[arg(long, default_value_t = 300.0, value_name = "SECONDS", value_parser = super::positive_seconds)]
    pub timeout: f64,
}

/// `--segments`: one window per video, shot-bounded windows, or fixed windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Segments {
    None,
    Auto,
    Seconds(f64),
}

fn parse_segments(text: &str) -> Result<Segments, String> {
    match text {
        "none" => Ok(Segments::None),
        "auto" => Ok(Segments::Auto),
        seconds => match seconds.parse::<f64>() {
            Ok(s) if s > 0.0 && s.is_finite() => Ok(Segments::Seconds(s)),
            _ => Err(format!(
                "{seconds:?}: expected none, auto or a number of seconds above 0"
            )),
        },
    }
}

impl ModelArgs {
    pub fn load(&self) -> Result<(Captioner, CaptionOptions, RunOptions)> {
        let dir = model_path::locate(self.model.as_deref().unwrap_or(DEFAULT_DECODER), None)?.dir;
        let captioner = match &self.encoder {
            Some(name) => Captioner::from_dir_with_encoder(&dir, name)?,
            None => Captioner::from_dir(&dir)?,
        };
        let segments = match self.segments {
            Segments::None => SegmentMode::Whole,
            Segments::Auto => {
                if self.max_segment < self.min_segment {
                    return Err(UsageError(format!(
                        "--max-segment {} is shorter than --min-segment {}",
                        self.max_segment, self.min_segment
                    ))
                    .into());
                }
                SegmentMode::Auto {
                    min_s: self.min_segment,
                    max_s: self.max_segment,
                }
            }
            Segments::Seconds(s) => SegmentMode::Fixed(s),
        };
        let search = SearchOptions {
            beam: self.beam,
            no_repeat_ngram: self.no_repeat_ngram,
            ..SearchOptions::default()
        };
        let caption = CaptionOptions {
            frames: self.frames,
            keyframes: self.keyframes,
            search,
            max_len: self.max_len,
            max_word_repeats: self.max_word_repeats,
            segments,
            min_familiarity: self.min_familiarity,
            tags: self.tags,
        };
        let run = RunOptions {
            jobs: self.jobs.max(1),
            timeout: Duration::from_secs_f64(self.timeout),
        };
        Ok((captioner, caption, run))
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Video files (or directories, or @list.txt).
    #[arg(required = true)]
    pub videos: Vec<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Shorthand for --format json.
    #[arg(long)]
    pub json: bool,
    /// Write one file per video (VIDEO_STEM.<format>) into this directory instead of stdout;
    /// required for srt/vtt with several videos.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Contact sheet PNG: the sampled frames with timestamps and the caption(s) beneath
    /// (a directory, one VIDEO_STEM.png each, when several videos are captioned).
    #[arg(long, value_name = "FILE.png|DIR")]
    pub sheet: Option<PathBuf>,
}

pub fn run(args: Args, _global: &Global) -> Result<u8> {
    let format = if args.json { Format::Json } else { args.format };
    let inputs = collect_inputs(&args.videos)?;
    ensure!(!inputs.is_empty(), "no video found in the inputs");
    let many = inputs.len() > 1;
    if format.is_subtitle() && many && args.output_dir.is_none() {
        return Err(UsageError(format!(
            "{} holds one video's timeline: pass --output-dir DIR to write one file per video",
            format.extension()
        ))
        .into());
    }
    if let Some(sheet) = args.sheet.as_ref().filter(|s| many && !s.is_dir())
        && (sheet.extension().is_some() || sheet.exists())
    {
        return Err(UsageError(format!(
            "--sheet {} names one file, but {} videos are captioned: give a directory (one VIDEO_STEM.png each)",
            sheet.display(),
            inputs.len()
        ))
        .into());
    }
    for dir in args
        .output_dir
        .iter()
        .chain(args.sheet.iter().filter(|_| many))
    {
        fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the directory", dir.display()))?;
    }
    let (captioner, caption, run_opts) = args.model.load()?;
    let font = match &args.sheet {
        Some(_) => Some(sheet::load_font()?),
        None => None,
    };
    let order: Vec<String> = inputs.iter().map(|i| i.display.clone()).collect();
    let mut results: Vec<VideoCaptions> = Vec::new();
    let summary = run_pipeline(inputs, &captioner, &caption, &run_opts, &mut |outcome| {
        if let (Some(target), Some(font), Some(windows)) = (&args.sheet, &font, outcome.windows) {
            let path = if many {
                target.join(format!("{}.png", stem(&outcome.input.path)))
            } else {
                target.clone()
            };
            let thumbs: Vec<Thumb> = windows
                .iter()
                .flat_map(|w| &w.frames)
                .map(Thumb::from)
                .collect();
            let lines: Vec<String> = outcome
                .result
                .segments
                .iter()
                .map(|s| {
                    format!(
                        "[{} --> {}] {}",
                        timestamp(s.start, '.', false),
                        timestamp(s.end, '.', false),
                        s.caption
                    )
                })
                .collect();
            let image = sheet::render(&thumbs, &lines, &SheetLayout::default(), font)?;
            sheet::save(&image, &path)?;
        }
        if let Some(dir) = &args.output_dir {
            let path = dir.join(format!(
                "{}.{}",
                stem(&outcome.input.path),
                format.extension()
            ));
            let mut bytes = Vec::new();
            format.write(&mut bytes, std::slice::from_ref(&outcome.result))?;
            crate::atomic::write_atomic(&path, &bytes)?;
        }
        if many && let Some(error) = &outcome.result.error {
            tracing::error!("{error}");
        }
        results.push(outcome.result);
        Ok(())
    })?;
    if !many && let Some(error) = results.first().and_then(|r| r.error.clone()) {
        bail!("{error}");
    }
    if matches!(format, Format::Text | Format::Srt | Format::Vtt) && any_unfamiliar(&results) {
        tracing::warn!(
            "{UNFAMILIAR_MARK} marks a caption of footage unlike the clips the decoder was trained on (familiarity below --min-familiarity {}): it is probably wrong; --tags K lists what the encoder sees",
            caption.min_familiarity
        );
    }
    if args.output_dir.is_none() {
        // Results come in completion order; print them in input order.
        results.sort_by_key(|r| order.iter().position(|d| *d == r.video));
        let mut stdout = std::io::stdout().lock();
        format.write(&mut stdout, &results)?;
        stdout.flush()?;
    }
    Ok(if summary.failed > 0 {
        EXIT_PARTIAL
    } else {
        EXIT_OK
    })
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into())
}
