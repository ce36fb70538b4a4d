//! The clips on the page and the annotation file they are saved to.
//!
//! The file is vidcap's own JSONL dataset format (see [`crate::dataset`]): one record a
//! line, `{"id", "video", "start", "end", "captions", "split"}`, the video path relative to
//! the file, so `vidcap extract` and `vidcap train` read it as it is. Every save rewrites the
//! whole file atomically. Records already in the file keep their line, byte for byte, until
//! they are saved again, and then keep their other fields (such as the synth generator's
//! `params`); records whose video is gone are kept as they are, never dropped.
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::dataset::{DatasetOptions, JsonlRecord, Split, load_dataset};
use crate::hash;
use crate::pipeline::batch::{collect_inputs, looks_like_video};

/// Share of new clips whose default split is train; val gets as much again as test.
const TRAIN_SHARE: f64 = 0.8;
const VAL_SHARE: f64 = 0.1;
/// At most this many captions per clip.
pub const MAX_CAPTIONS: usize = 20;
/// At most this many characters per caption.
pub const MAX_CAPTION_CHARS: usize = 1000;
/// The shortest window that can be saved, seconds.
pub const MIN_WINDOW_S: f64 = 0.1;
/// A start this close to 0, or an end this close to the video's end, means the whole way.
const EDGE_SLACK_S: f64 = 0.01;
/// How far past the probed duration an end may lie (players and containers disagree by a
/// frame or so).
const END_TOLERANCE_S: f64 = 0.1;
/// Missing videos named in the warning; the rest are counted.
const MISSING_NAMED: usize = 5;
/// Extensions of annotation files taken as a dataset to extend (not as a video).
const DATASET_EXTENSIONS: &[&str] = &["jsonl", "json", "csv", "txt"];
/// Fields of a record that the page edits; the others are kept as they are.
const EDITED_FIELDS: &[&str] = &[
    "id", "video", "start", "end", "captions", "caption", "split",
];

/// One clip on the page: a video, or a window of one, and what was saved for it.
#[derive(Debug, Clone)]
pub struct Clip {
    /// The dataset id: the record's, else the video path relative to the file.
    pub id: String,
    /// The video to open.
    pub path: PathBuf,
    /// `path` with every link resolved when the clip list was made: the only file this clip
    /// may serve, checked again at every request.
    pub canonical: PathBuf,
    /// The video as the record names it: relative to the annotation file's directory.
    pub video: String,
    pub captions: Vec<String>,
    /// The saved split; `None` until the clip is first saved.
    pub split: Option<Split>,
    /// Window in seconds; `None` = from the start / to the end.
    pub start: Option<f64>,
    pub end: Option<f64>,
    /// The record's other fields, kept when it is rewritten.
    extra: Map<String, Value>,
    /// The line as read from the annotation file, written back unchanged until a save.
    line: Option<String>,
}

impl Clip {
    /// Saved with at least one caption.
    pub fn is_captioned(&self) -> bool {
        !self.captions.is_empty()
    }

    /// The file name, for the list on the page.
    pub fn name(&self) -> String {
        Path::new(&self.video)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.video.clone())
    }
}

/// A line of the annotation file.
#[derive(Debug, Clone)]
enum Line {
    Clip(usize),
    /// A record whose video was not found: kept as it was.
    Kept(String),
}

/// The clips of a session and the file they are saved to.
#[derive(Debug)]
pub struct Annotations {
    out: PathBuf,
    /// Canonical directory of `out`: record paths are relative to it.
    base: PathBuf,
    /// In input order ("file order" on the page).
    pub clips: Vec<Clip>,
    lines: Vec<Line>,
    seed: u64,
}

/// A save as the page (or a script) posts it, before it is checked.
///
/// `start`/`end`: a number of seconds, `null` for the video's start/end, or absent to keep
/// the clip's window. `split`: absent for the clip's split (the suggested one if it was
/// never saved). `caption` is a shorthand for a one-element `captions`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveRequest {
    #[serde(default)]
    pub captions: Option<Vec<String>>,
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default)]
    pub split: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub start: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    pub end: Option<Option<f64>>,
}

/// A field that is present (`Some`), possibly `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

/// Why a save was refused: shown on the page as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl SaveRequest {
    /// Parses a request body; the message says what is wrong and where.
    pub fn parse(body: &[u8]) -> Result<Self, Refused> {
        let text = std::str::from_utf8(body)
            .map_err(|e| Refused(format!("the request body is not UTF-8 text ({e})")))?;
        if text.trim().is_empty() {
            return Err(Refused(
                "the request body is empty: expected a JSON object such as {\"captions\": [\"a dog runs\"]}".into(),
            ));
        }
        serde_json::from_str(text).map_err(|e| {
            Refused(format!(
                "the request body is not a valid save: {e} (expected a JSON object with captions, and optionally split, start and end)"
            ))
        })
    }
}

/// What a checked save changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub captions: Vec<String>,
    pub split: Split,
    pub start: Option<f64>,
    pub end: Option<f64>,
}

/// The record as written.
#[derive(Serialize)]
struct RecordOut<'a> {
    id: &'a str,
    video: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end: Option<f64>,
    captions: &'a [String],
    split: Split,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

impl Annotations {
    /// The clips of `inputs` (videos, directories, `@list.txt` files, datasets) and of the
    /// annotation file `out` if it exists. Datasets' captioned clips are added to the file
    /// at once, so it is the extended dataset from the start.
    pub fn open(inputs: &[String], out: &Path, seed: u64) -> Result<Self> {
        let out_dir = match out.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) => dir.to_path_buf(),
            None => PathBuf::from("."),
        };
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("{}: cannot create the directory", out_dir.display()))?;
        let base = std::fs::canonicalize(&out_dir)
            .with_context(|| format!("{}: cannot resolve the directory", out_dir.display()))?;
        let out_canonical = base.join(out.file_name().context("--out names no file")?);
        let mut ann = Annotations {
            out: out.to_path_buf(),
            base,
            clips: Vec::new(),
            lines: Vec::new(),
            seed,
        };
        let existing = ann.read_existing(&out_dir)?;
        let mut placed = vec![false; existing.len()];
        let mut clips: Vec<Clip> = Vec::new();
        let mut from_existing: Vec<Option<usize>> = Vec::new();
        let mut imported = 0usize;
        let mut ids: HashSet<String> = existing.iter().map(|c| c.id.clone()).collect();
        for arg in inputs {
            let path = Path::new(arg);
            if !arg.starts_with('@') && path.is_file() && is_dataset_file(path) {
                if std::fs::canonicalize(path).ok().as_deref() == Some(out_canonical.as_path()) {
                    // The annotation file itself (read above): its clips go here.
                    for (i, e) in existing.iter().enumerate() {
                        if !placed[i] {
                            placed[i] = true;
                            clips.push(e.clone());
                            from_existing.push(Some(i));
                        }
                    }
                    continue;
                }
                let dataset = load_dataset(path, &DatasetOptions::default())
                    .with_context(|| format!("{arg}: cannot read the dataset"))?;
                for c in dataset.clips {
                    let Some(canonical) = canonical_file(&c.video) else {
                        continue;
                    };
                    let same =
                        |e: &Clip| e.canonical == canonical && e.start == c.start && e.end == c.end;
                    if existing.iter().any(same) || clips.iter().any(same) {
                        continue;
                    }
                    if !ids.insert(c.id.clone()) {
                        tracing::warn!(
                            "{arg}: clip {:?} is already in {}: the dataset's copy is left out",
                            c.id,
                            out.display()
                        );
                        continue;
                    }
                    let captions = clean_captions(&c.captions);
                    imported += usize::from(!captions.is_empty());
                    clips.push(Clip {
                        id: c.id,
                        video: relative_path(&ann.base, &c.video)?,
                        path: c.video,
                        canonical,
                        captions,
                        split: Some(c.split),
                        start: c.start,
                        end: c.end,
                        extra: Map::new(),
                        line: None,
                    });
                    from_existing.push(None);
                }
                continue;
            }
            for (file, canonical) in video_files(arg)? {
                let mut known = false;
                for (i, e) in existing.iter().enumerate() {
                    if e.canonical == canonical {
                        known = true;
                        if !placed[i] {
                            placed[i] = true;
                            clips.push(e.clone());
                            from_existing.push(Some(i));
                        }
                    }
                }
                if known || clips.iter().any(|c| c.canonical == canonical) {
                    continue;
                }
                let video = relative_path(&ann.base, &file)?;
                let id = unique_id(&mut ids, &video);
                clips.push(Clip {
                    id,
                    video,
                    path: file,
                    canonical,
                    captions: Vec::new(),
                    split: None,
                    start: None,
                    end: None,
                    extra: Map::new(),
                    line: None,
                });
                from_existing.push(None);
            }
        }
        // Records of the file that no input named stay on the page, after the inputs.
        for (i, e) in existing.iter().enumerate() {
            if !placed[i] {
                clips.push(e.clone());
                from_existing.push(Some(i));
            }
        }
        // The file's lines point at the clips' new positions.
        let mut position = vec![usize::MAX; existing.len()];
        for (at, from) in from_existing.iter().enumerate() {
            if let Some(i) = from {
                position[*i] = at;
            }
        }
        for line in &mut ann.lines {
            if let Line::Clip(i) = line {
                *i = position[*i];
            }
        }
        for (at, from) in from_existing.iter().enumerate() {
            if from.is_none() && clips[at].is_captioned() {
                ann.lines.push(Line::Clip(at));
            }
        }
        ann.clips = clips;
        if ann.clips.is_empty() {
            bail!("no clips: name videos, directories, @list.txt files or a dataset");
        }
        if imported > 0 {
            ann.write()?;
            tracing::info!(
                "{}: {imported} captioned clip(s) of the input dataset(s) added",
                out.display()
            );
        }
        Ok(ann)
    }

    /// Reads the annotation file if it exists: its clips (in file order), and its lines.
    fn read_existing(&mut self, out_dir: &Path) -> Result<Vec<Clip>> {
        let text = match std::fs::read(&self.out) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|e| {
                let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                anyhow::anyhow!("{}: line {line}: not valid UTF-8", self.out.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(e).with_context(|| format!("{}: cannot read", self.out.display()));
            }
        };
        let mut clips: Vec<Clip> = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        let mut ids: HashSet<String> = HashSet::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let lineno = i + 1;
            let context = || format!("{}: not a vidcap annotation file", self.out.display());
            let record = JsonlRecord::parse(line, lineno).with_context(context)?;
            let mut extra: Map<String, Value> = serde_json::from_str(line)
                .with_context(|| format!("line {lineno}: not a JSON object"))
                .with_context(context)?;
            extra.retain(|k, _| !EDITED_FIELDS.contains(&k.as_str()));
            let id = record.clip_id();
            if !ids.insert(id.clone()) {
                bail!(
                    "{}: line {lineno}: clip id {id:?} appears twice",
                    self.out.display()
                );
            }
            let path = if record.video.is_absolute() {
                record.video.clone()
            } else {
                out_dir.join(&record.video)
            };
            let Some(canonical) = canonical_file(&path) else {
                missing.push(path.display().to_string());
                self.lines.push(Line::Kept(line.to_string()));
                continue;
            };
            self.lines.push(Line::Clip(clips.len()));
            clips.push(Clip {
                id,
                video: record.video.to_string_lossy().into_owned(),
                path,
                canonical,
                captions: clean_captions(&record.all_captions()),
                split: Some(record.split.unwrap_or(Split::Train)),
                start: record.start,
                end: record.end,
                extra,
                line: Some(line.to_string()),
            });
        }
        if !missing.is_empty() {
            tracing::warn!(
                "{}: {} record(s) name a video that is not there (kept in the file, not shown), e.g. {}",
                self.out.display(),
                missing.len(),
                missing[..missing.len().min(MISSING_NAMED)].join(", ")
            );
        }
        Ok(clips)
    }

    pub fn out(&self) -> &Path {
        &self.out
    }

    pub fn captioned(&self) -> usize {
        self.clips.iter().filter(|c| c.is_captioned()).count()
    }

    /// The split a clip gets unless the user picks another: its saved split; else train
    /// while no captioned clip is (a dataset needs training clips); else drawn from the
    /// seed and the clip id, 80 % train, 10 % val, 10 % test.
    pub fn suggested_split(&self, index: usize) -> Split {
        let clip = &self.clips[index];
        if let Some(split) = clip.split.filter(|_| clip.is_captioned()) {
            return split;
        }
        let any_train = self
            .clips
            .iter()
            .any(|c| c.is_captioned() && c.split == Some(Split::Train));
        if !any_train {
            return Split::Train;
        }
        seeded_split(self.seed, &clip.id)
    }

    /// Checks a save of clip `index` against the video's `duration` (seconds, when it could
    /// be probed; `probe_error` says why not).
    pub fn check(
        &self,
        index: usize,
        request: SaveRequest,
        duration: Option<f64>,
        probe_error: Option<&str>,
    ) -> Result<Update, Refused> {
        let clip = &self.clips[index];
        let mut given = request.captions.unwrap_or_default();
        given.extend(request.caption);
        if given.len() > MAX_CAPTIONS {
            return Err(Refused(format!(
                "{} captions: at most {MAX_CAPTIONS} per clip",
                given.len()
            )));
        }
        let mut captions = Vec::new();
        for (i, text) in given.iter().enumerate() {
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            if text.is_empty() {
                continue;
            }
            if text.chars().count() > MAX_CAPTION_CHARS {
                return Err(Refused(format!(
                    "caption {} is {} characters long: at most {MAX_CAPTION_CHARS}",
                    i + 1,
                    text.chars().count()
                )));
            }
            if let Some(c) = text.chars().find(|c| c.is_control()) {
                return Err(Refused(format!(
                    "caption {} contains the control character U+{:04X}",
                    i + 1,
                    c as u32
                )));
            }
            captions.push(text);
        }
        if captions.is_empty() {
            return Err(Refused(
                "no caption: write at least one (empty captions are not saved)".into(),
            ));
        }
        let split = match request.split.as_deref() {
            Some(text) => Split::from_str(text).map_err(|e| Refused(format!("split: {e}")))?,
            None => self.suggested_split(index),
        };
        let start = request.start.unwrap_or(clip.start);
        let end = request.end.unwrap_or(clip.end);
        for (name, t) in [("start", start), ("end", end)] {
            if let Some(t) = t
                && (!t.is_finite() || t < 0.0)
            {
                return Err(Refused(format!(
                    "{name} {t} is not a non-negative number of seconds"
                )));
            }
        }
        let (start, end) = if start.is_none() && end.is_none() {
            (None, None)
        } else {
            let Some(duration) = duration else {
                return Err(Refused(format!(
                    "{}: cannot check the window, the video cannot be read ({})",
                    clip.video,
                    probe_error.unwrap_or("unknown reason")
                )));
            };
            let s = start.unwrap_or(0.0);
            let e = end.unwrap_or(duration);
            if s >= duration {
                return Err(Refused(format!(
                    "start {s:.3} s is not before the end of the video ({duration:.3} s)"
                )));
            }
            if e > duration + END_TOLERANCE_S {
                return Err(Refused(format!(
                    "end {e:.3} s is past the end of the video ({duration:.3} s)"
                )));
            }
            if e - s < MIN_WINDOW_S {
                return Err(Refused(format!(
                    "the window {s:.3}–{e:.3} s is shorter than {MIN_WINDOW_S} s (the end must come after the start)"
                )));
            }
            (
                Some(s).filter(|&s| s > EDGE_SLACK_S),
                Some(e).filter(|&e| e < duration - EDGE_SLACK_S),
            )
        };
        Ok(Update {
            captions,
            split,
            start,
            end,
        })
    }

    /// Applies a checked save and rewrites the file; on a write error nothing changes.
    pub fn save(&mut self, index: usize, update: Update) -> Result<()> {
        let before = self.clips[index].clone();
        let lines_before = self.lines.len();
        {
            let clip = &mut self.clips[index];
            clip.captions = update.captions;
            clip.split = Some(update.split);
            clip.start = update.start;
            clip.end = update.end;
            clip.line = None;
        }
        if !self
            .lines
            .iter()
            .any(|l| matches!(l, Line::Clip(i) if *i == index))
        {
            self.lines.push(Line::Clip(index));
        }
        let written = self.write();
        if written.is_err() {
            self.clips[index] = before;
            self.lines.truncate(lines_before);
        }
        written
    }

    /// The whole file, atomically.
    fn write(&self) -> Result<()> {
        let mut text = String::new();
        for line in &self.lines {
            match line {
                Line::Kept(raw) => text.push_str(raw),
                Line::Clip(i) => text.push_str(&self.record_line(*i)?),
            }
            text.push('\n');
        }
        crate::atomic::write_atomic(&self.out, text.as_bytes())
    }

    /// Clip `index` as a line of the file.
    pub fn record_line(&self, index: usize) -> Result<String> {
        let clip = &self.clips[index];
        if let Some(line) = &clip.line {
            return Ok(line.clone());
        }
        Ok(serde_json::to_string(&RecordOut {
            id: &clip.id,
            video: &clip.video,
            start: clip.start,
            end: clip.end,
            captions: &clip.captions,
            split: clip.split.unwrap_or(Split::Train),
            extra: &clip.extra,
        })?)
    }

    /// The first clip after `index` in `order` (wrapping round) that has no caption yet.
    pub fn next_uncaptioned(&self, order: &[usize], index: Option<usize>) -> Option<usize> {
        let at = index
            .and_then(|i| order.iter().position(|&o| o == i))
            .map_or(0, |p| p + 1);
        (0..order.len())
            .map(|k| order[(at + k) % order.len()])
            .find(|&i| Some(i) != index && !self.clips[i].is_captioned())
    }
}

/// Trimmed, whitespace collapsed, empty ones left out.
fn clean_captions(captions: &[String]) -> Vec<String> {
    captions
        .iter()
        .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|c| !c.is_empty())
        .collect()
}

/// A dataset to extend rather than a video: an annotation file by its extension.
fn is_dataset_file(path: &Path) -> bool {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    ext.is_some_and(|e| DATASET_EXTENSIONS.contains(&e.as_str())) && !looks_like_video(path)
}

/// A regular file's canonical path.
fn canonical_file(path: &Path) -> Option<PathBuf> {
    let canonical = std::fs::canonicalize(path).ok()?;
    canonical.is_file().then_some(canonical)
}

/// The video files of one input and their canonical paths. Files of a directory must
/// resolve inside it (a link out of it is left out, with a warning); named files and the
/// lines of a list are taken wherever they point.
fn video_files(arg: &str) -> Result<Vec<(PathBuf, PathBuf)>> {
    let inputs = collect_inputs(std::slice::from_ref(&arg.to_string()))?;
    let dir = Path::new(arg);
    let root = (!arg.starts_with('@') && dir.is_dir())
        .then(|| std::fs::canonicalize(dir))
        .transpose()
        .with_context(|| format!("{arg}: cannot resolve the directory"))?;
    let mut files = Vec::new();
    for input in inputs {
        let canonical = std::fs::canonicalize(&input.path)
            .with_context(|| format!("{}: no such file", input.path.display()))?;
        if !canonical.is_file() {
            bail!("{}: not a file", input.path.display());
        }
        if let Some(root) = &root
            && !canonical.starts_with(root)
        {
            tracing::warn!(
                "{}: left out: a link to {}, outside {arg}",
                input.path.display(),
                canonical.display()
            );
            continue;
        }
        files.push((input.path, canonical));
    }
    Ok(files)
}

/// `file` relative to the directory `base` (canonical), with `/` separators; the file's
/// directory is resolved, its name is kept (a link stays a link).
fn relative_path(base: &Path, file: &Path) -> Result<String> {
    let name = file
        .file_name()
        .with_context(|| format!("{}: not a file name", file.display()))?;
    let parent = match file.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&parent)
        .with_context(|| format!("{}: cannot resolve the directory", parent.display()))?;
    let base_parts: Vec<_> = base.components().collect();
    let dir_parts: Vec<_> = dir.components().collect();
    let common = base_parts
        .iter()
        .zip(&dir_parts)
        .take_while(|(a, b)| a == b)
        .count();
    if common == 0 {
        return Ok(dir.join(name).to_string_lossy().into_owned());
    }
    let mut parts: Vec<String> = vec!["..".to_string(); base_parts.len() - common];
    parts.extend(
        dir_parts[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.push(name.to_string_lossy().into_owned());
    Ok(parts.join("/"))
}

/// `wanted`, or `wanted#2`, `wanted#3`… whichever is free.
fn unique_id(ids: &mut HashSet<String>, wanted: &str) -> String {
    let mut id = wanted.to_string();
    let mut n = 2;
    while !ids.insert(id.clone()) {
        id = format!("{wanted}#{n}");
        n += 1;
    }
    id
}

/// The default split of a new clip: from a hash of the seed and the id, so it does not
/// depend on the order clips are captioned in.
pub fn seeded_split(seed: u64, id: &str) -> Split {
    let basis = hash::FNV_OFFSET ^ seed.wrapping_mul(hash::GOLDEN_GAMMA);
    let h = hash::splitmix_finish(hash::fnv1a64_from(basis, id.as_bytes()));
    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
    if u < TRAIN_SHARE {
        Split::Train
    } else if u < TRAIN_SHARE + VAL_SHARE {
        Split::Val
    } else {
        Split::Test
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_and_descend() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("c")).unwrap();
        std::fs::write(root.join("c/v.mp4"), b"x").unwrap();
        std::fs::write(root.join("a/b/w.mp4"), b"x").unwrap();
        assert_eq!(
            relative_path(&root.join("a/b"), &root.join("c/v.mp4")).unwrap(),
            "../../c/v.mp4"
        );
        assert_eq!(
            relative_path(&root.join("a"), &root.join("a/b/w.mp4")).unwrap(),
            "b/w.mp4"
        );
    }

    #[test]
    fn seeded_splits_are_stable_and_near_the_shares() {
        let splits: Vec<Split> = (0..2000)
            .map(|i| seeded_split(7, &format!("clip{i}.mp4")))
            .collect();
        let train = splits.iter().filter(|&&s| s == Split::Train).count();
        let val = splits.iter().filter(|&&s| s == Split::Val).count();
        assert!((1500..1700).contains(&train), "{train}");
        assert!((140..260).contains(&val), "{val}");
        assert_eq!(seeded_split(7, "clip3.mp4"), splits[3]);
    }

    #[test]
    fn save_requests_are_checked() {
        assert!(SaveRequest::parse(b"").is_err());
        assert!(SaveRequest::parse(b"{\"captoins\": []}").is_err());
        assert!(SaveRequest::parse(b"[1]").is_err());
        let r = SaveRequest::parse(br#"{"captions": ["a"], "start": null, "end": 2.5}"#).unwrap();
        assert_eq!(r.start, Some(None));
        assert_eq!(r.end, Some(Some(2.5)));
        let r = SaveRequest::parse(br#"{"caption": "a"}"#).unwrap();
        assert_eq!(r.start, None);
    }
}
