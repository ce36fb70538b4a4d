//! Result writers: every output format is a small writer behind one interface, chosen by
//! name; the subtitle formats share one timestamp formatter.
pub mod sheet;

use std::io::{self, Write};

pub use crate::pipeline::{Segment, Tag, VideoCaptions};

/// Put before captions of unfamiliar footage in text and subtitles.
pub const UNFAMILIAR_MARK: &str = "[unfamiliar]";

/// The caption as printed: marked when its footage is unfamiliar.
fn marked(caption: &str, familiar: Option<bool>) -> String {
    match familiar {
        Some(false) => format!("{UNFAMILIAR_MARK} {caption}"),
        _ => caption.to_string(),
    }
}

fn tag_list(tags: &[Tag]) -> String {
    tags.iter()
        .map(|t| format!("{} {:.3}", t.label, t.score))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether any caption of `results` carries the unfamiliar mark.
pub fn any_unfamiliar(results: &[VideoCaptions]) -> bool {
    results
        .iter()
        .flat_map(|r| &r.segments)
        .any(|s| s.familiar == Some(false))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Jsonl,
    Srt,
    Vtt,
}

impl Format {
    /// Subtitle formats describe one video's timeline, so a file holds one video.
    pub fn is_subtitle(self) -> bool {
        matches!(self, Format::Srt | Format::Vtt)
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Text => "txt",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
        }
    }

    /// Write `results` in this format.
    pub fn write(self, out: &mut dyn Write, results: &[VideoCaptions]) -> io::Result<()> {
        match self {
            Format::Text => write_text(out, results),
            Format::Json => {
                serde_json::to_writer_pretty(&mut *out, results)?;
                writeln!(out)
            }
            Format::Jsonl => results.iter().try_for_each(|r| write_jsonl_line(out, r)),
            Format::Srt => results
                .iter()
                .try_for_each(|r| write_subtitles(out, r, Subtitle::Srt)),
            Format::Vtt => results
                .iter()
                .try_for_each(|r| write_subtitles(out, r, Subtitle::Vtt)),
        }
    }
}

/// One JSON document on one line (the batch results format).
pub fn write_jsonl_line(out: &mut dyn Write, result: &VideoCaptions) -> io::Result<()> {
    serde_json::to_writer(&mut *out, result)?;
    writeln!(out)
}

/// The caption alone for one video; `path: caption` lines for several; segments indented
/// beneath with their time span. Unfamiliar captions carry [`UNFAMILIAR_MARK`]; with
/// `--tags` an indented `tags:` line follows each caption. Failed videos are left out: text
/// output holds captions only, and the caller reports failures on stderr.
fn write_text(out: &mut dyn Write, results: &[VideoCaptions]) -> io::Result<()> {
    let many = results.len() > 1;
    for r in results {
        let prefix = if many {
            format!("{}: ", r.video)
        } else {
            String::new()
        };
        let tags = |out: &mut dyn Write, tags: &Option<Vec<Tag>>, indent: &str| match tags {
            Some(tags) => writeln!(out, "{indent}tags: {}", tag_list(tags)),
            None => Ok(()),
        };
        match (&r.error, r.segments.len()) {
            (Some(_), _) => {}
            (None, 0 | 1) => {
                let caption = marked(r.caption.as_deref().unwrap_or(""), r.familiar);
                writeln!(out, "{prefix}{caption}")?;
                tags(out, &r.tags, "  ")?;
            }
            (None, _) => {
                if many {
                    writeln!(out, "{}:", r.video)?;
                }
                let indent = if many { "  " } else { "" };
                for s in &r.segments {
                    let span = format!(
                        "[{} --> {}]",
                        timestamp(s.start, '.', false),
                        timestamp(s.end, '.', false)
                    );
                    writeln!(out, "{indent}{span} {}", marked(&s.caption, s.familiar))?;
                    tags(out, &s.tags, &format!("{indent}  "))?;
                }
            }
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Subtitle {
    Srt,
    Vtt,
}

/// SRT has no comments, so an unfamiliar cue says so in its text; WebVTT also gets a NOTE
/// block before it with the familiarity (and the tags, when listed).
fn write_subtitles(out: &mut dyn Write, result: &VideoCaptions, kind: Subtitle) -> io::Result<()> {
    if let Subtitle::Vtt = kind {
        writeln!(out, "WEBVTT\n")?;
    }
    for (i, s) in result.segments.iter().enumerate() {
        let text = cue_text(&marked(&s.caption, s.familiar));
        match kind {
            Subtitle::Srt => writeln!(
                out,
                "{}\n{} --> {}\n{text}\n",
                i + 1,
                timestamp(s.start, ',', true),
                timestamp(s.end, ',', true),
            )?,
            Subtitle::Vtt => {
                let mut note = Vec::new();
                if let (Some(f), Some(familiar)) = (s.familiarity, s.familiar) {
                    note.push(format!(
                        "familiarity {f:.3}: {}",
                        if familiar {
                            "footage like the decoder's training clips"
                        } else {
                            "unfamiliar footage, unlike the decoder's training clips; the caption is probably wrong"
                        }
                    ));
                }
                if let Some(tags) = &s.tags {
                    note.push(format!("tags: {}", tag_list(tags)));
                }
                if !note.is_empty() {
                    writeln!(out, "NOTE {}\n", cue_text(&note.join(" / ")))?;
                }
                writeln!(
                    out,
                    "{} --> {}\n{text}\n",
                    timestamp(s.start, '.', true),
                    timestamp(s.end, '.', true),
                )?
            }
        }
    }
    Ok(())
}

/// A cue ends at the first blank line and "-->" starts a timing line, so neither may
/// appear inside the text.
fn cue_text(caption: &str) -> String {
    let one_line = caption.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.replace("-->", "->")
}

/// `HH:MM:SS<marker>mmm` (hours omitted when zero unless `always_hours`), rounded to the
/// millisecond; negative times clamp to zero.
pub fn timestamp(seconds: f64, decimal_marker: char, always_hours: bool) -> String {
    let total_ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let (hours, rest) = (total_ms / 3_600_000, total_ms % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (secs, ms) = (rest / 1000, rest % 1000);
    if always_hours || hours > 0 {
        format!("{hours:02}:{minutes:02}:{secs:02}{decimal_marker}{ms:03}")
    } else {
        format!("{minutes:02}:{secs:02}{decimal_marker}{ms:03}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_and_carry() {
        assert_eq!(timestamp(0.0, ',', true), "00:00:00,000");
        assert_eq!(timestamp(59.9996, ',', true), "00:01:00,000");
        assert_eq!(timestamp(3661.25, '.', false), "01:01:01.250");
        assert_eq!(timestamp(61.5, '.', false), "01:01.500");
        assert_eq!(timestamp(-3.0, '.', true), "00:00:00.000");
    }

    #[test]
    fn cue_text_cannot_break_a_cue() {
        assert_eq!(cue_text("a dog\n\nruns --> left"), "a dog runs -> left");
    }
}
