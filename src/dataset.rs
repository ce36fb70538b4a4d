//! Captioned-clip datasets: annotation files in several published formats → [`Clip`]s.
//!
//! Formats (auto-detected by file name, then by content; [`DatasetOptions::format`]
//! overrides):
//!
//! * own JSONL (`annotations.jsonl`): one object per line, `{"video": "path relative to the
//!   file", "start": 0.0, "end": 4.0, "captions": ["…"], "split": "train|val|test"}`;
//!   optional `"id"`, `"caption"` (a single string) instead of `"captions"`; `split`
//!   defaults to `train`.
//! * MSR-VTT (`videodatainfo.json`, `train_val_videodatainfo.json`, `test_videodatainfo.json`):
//!   `videos[]` with `video_id`, `start time`, `end time`, `split` (`validate` → val), `url`;
//!   `sentences[]` with `video_id`, `caption`.
//! * MSVD `AllVideoDescriptions.txt`: `#` header lines, then `VIDEOID_START_END caption`.
//! * MSVD csv (`MSR Video Description Corpus.csv`): `VideoID,Start,End,WorkerID,Source,
//!   AnnotationTime,Language,Description`; English rows only.
//! * VATEX json: a list of `{"videoID": "YOUTUBEID_000010_000020", "enCap": ["…"]}`; the
//!   split comes from the file name (`vatex_training…`, `vatex_validation…`, `…test…`).
//!
//! Time windows: the published MSR-VTT, MSVD and VATEX videos are usually distributed
//! already cut to the clip (`video123.mp4`, `ID_5_15.avi`, `ID_000010_000020.mp4`); such a
//! file gets no window. When only the full source video is on disk (`ID.mp4`, the MSR-VTT
//! `url`'s YouTube id), the clip gets the annotated window inside it.
//!
//! MSVD has no official split file: we use the standard 1200 / 100 / 670 split
//! (Venugopalan et al. 2015) over the video ids sorted bytewise; a dataset of another size
//! is split in the same proportions (rounded), so a subset keeps the convention's shape.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::video::VIDEO_EXTENSIONS;

/// Missing videos named in the warning; the rest are only counted.
const MISSING_NAMED: usize = 5;
/// Sub-directories of the annotation file's directory searched for videos by default
/// (ours, then the names the MSVD and MSR-VTT archives unpack to).
const DEFAULT_VIDEO_SUBDIRS: [&str; 4] = ["videos", "YouTubeClips", "TrainValVideo", "TestVideo"];

/// One captioned clip: a video, an optional time window inside it, its reference captions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clip {
    /// Unique within the dataset (the format's own id where it has one).
    pub id: String,
    /// The video file found on disk (relative paths are relative to the working directory,
    /// i.e. already joined with the annotation file's directory).
    pub video: PathBuf,
    /// Window start in seconds; `None` = from the beginning.
    pub start: Option<f64>,
    /// Window end in seconds; `None` = to the end.
    pub end: Option<f64>,
    pub captions: Vec<String>,
    pub split: Split,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    #[serde(alias = "validate", alias = "validation")]
    Val,
    Test,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Split {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "train" | "training" => Ok(Split::Train),
            "val" | "validate" | "validation" => Ok(Split::Val),
            "test" | "testing" => Ok(Split::Test),
            other => bail!("unknown split {other:?} (expected train, val or test)"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetFormat {
    Jsonl,
    MsrVtt,
    MsvdTxt,
    MsvdCsv,
    Vatex,
}

impl DatasetFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetFormat::Jsonl => "jsonl",
            DatasetFormat::MsrVtt => "msr-vtt",
            DatasetFormat::MsvdTxt => "msvd-txt",
            DatasetFormat::MsvdCsv => "msvd-csv",
            DatasetFormat::Vatex => "vatex",
        }
    }
}

impl fmt::Display for DatasetFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetFormat {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "jsonl" => DatasetFormat::Jsonl,
            "msr-vtt" | "msrvtt" => DatasetFormat::MsrVtt,
            "msvd-txt" | "msvd" => DatasetFormat::MsvdTxt,
            "msvd-csv" => DatasetFormat::MsvdCsv,
            "vatex" => DatasetFormat::Vatex,
            other => bail!(
                "unknown dataset format {other:?} (expected jsonl, msr-vtt, msvd-txt, msvd-csv or vatex)"
            ),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct DatasetOptions {
    /// Force a format instead of detecting it.
    pub format: Option<DatasetFormat>,
    /// Where the videos are; default: the annotation file's directory and its
    /// `videos/` (and MSVD/MSR-VTT archive) sub-directories.
    pub videos: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    /// Clips whose video was found, in annotation order.
    pub clips: Vec<Clip>,
    /// Annotated videos not found on disk (the first path looked at for each).
    pub missing: Vec<PathBuf>,
    pub format: DatasetFormat,
    /// Captions left out because they were empty or only whitespace.
    pub empty_captions: usize,
}

impl Dataset {
    pub fn split(&self, split: Split) -> impl Iterator<Item = &Clip> {
        self.clips.iter().filter(move |c| c.split == split)
    }
}

/// Reads a dataset: `path` is an annotation file, or a directory holding one
/// (`annotations.jsonl`, which wins over anything beside it; else `*.jsonl`,
/// `*videodatainfo*.json`, `AllVideoDescriptions.txt`, `*.csv`, `vatex*.json`; several files
/// of one format, such as MSR-VTT's train_val and test files, are read together). Clips whose video is missing are left out, counted and the first few
/// named in a warning; it is an error only when no video at all is found.
pub fn load_dataset(path: &Path, opts: &DatasetOptions) -> anyhow::Result<Dataset> {
    let (files, format) = annotation_files(path, opts.format)?;
    let base = files[0].parent().map(Path::to_path_buf).unwrap_or_default();
    let search = VideoSearch::new(&base, opts.videos.as_deref())?;
    let mut entries = Vec::new();
    for file in &files {
        let text = read_utf8(file)?;
        let parsed = match format {
            DatasetFormat::Jsonl => parse_jsonl(&text),
            DatasetFormat::MsrVtt => parse_msrvtt(&text),
            DatasetFormat::MsvdTxt => parse_msvd_txt(&text),
            DatasetFormat::MsvdCsv => parse_msvd_csv(&text),
            DatasetFormat::Vatex => parse_vatex(&text, file),
        }
        .with_context(|| format!("{}: malformed {format} annotations", file.display()))?;
        entries.extend(parsed.into_iter().map(|mut e| {
            e.file = file.clone();
            e
        }));
    }
    let empty_captions = drop_empty_captions(&mut entries);
    if matches!(format, DatasetFormat::MsvdTxt | DatasetFormat::MsvdCsv) {
        assign_msvd_splits(&mut entries);
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some(first) = seen.insert(e.id.clone(), i) {
            let first = &entries[first];
            bail!(
                "clip id {:?} appears twice: {}: {} and {}: {}",
                e.id,
                first.file.display(),
                first.origin,
                e.file.display(),
                e.origin
            );
        }
    }

    let mut clips = Vec::with_capacity(entries.len());
    let mut missing = Vec::new();
    for e in entries {
        match search.resolve(&e.video) {
            Some((video, window)) => clips.push(Clip {
                id: e.id,
                video,
                start: if window { e.start } else { None },
                end: if window { e.end } else { None },
                captions: e.captions,
                split: e.split,
            }),
            None => missing.push(search.expected(&e.video)),
        }
    }
    let total = clips.len() + missing.len();
    if total == 0 {
        bail!("{}: no clips annotated", path.display());
    }
    if clips.is_empty() {
        bail!(
            "{}: none of the {total} annotated videos was found (looked in {}); use --videos DIR",
            path.display(),
            search.describe()
        );
    }
    if !missing.is_empty() {
        let named: Vec<String> = missing
            .iter()
            .take(MISSING_NAMED)
            .map(|p| p.display().to_string())
            .collect();
        tracing::warn!(
            "{}: {} of {total} annotated videos not found, e.g. {}",
            path.display(),
            missing.len(),
            named.join(", ")
        );
    }
    Ok(Dataset {
        clips,
        missing,
        format,
        empty_captions,
    })
}

/// The folder an annotation file lives in (a dataset folder is its own).
pub fn dataset_dir(dataset: &Path) -> PathBuf {
    if dataset.is_dir() {
        dataset.to_path_buf()
    } else {
        // A bare file name's parent is "", which cannot be made absolute: that is ".".
        dataset
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }
}

/// An annotation file's text, or an error naming the line of its first invalid UTF-8 byte.
fn read_utf8(file: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(file)
        .with_context(|| format!("cannot read annotation file {}", file.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
        let column = 1 + at - bytes[..at].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        anyhow::anyhow!(
            "{}: line {line}, column {column}: not valid UTF-8 (byte 0x{:02x}); save the file as UTF-8",
            file.display(),
            bytes[at]
        )
    })
}

/// Removes empty and whitespace-only captions, warning with the file and line of each (the
/// first few), and returns how many there were.
fn drop_empty_captions(entries: &mut [Entry]) -> usize {
    let mut dropped = 0;
    for e in entries.iter_mut() {
        let before = e.captions.len();
        e.captions.retain(|c| !c.trim().is_empty());
        let n = before - e.captions.len();
        if n > 0 && dropped < MISSING_NAMED {
            tracing::warn!(
                "{}: {}: clip {:?}: {n} empty caption(s) skipped",
                e.file.display(),
                e.origin,
                e.id
            );
        }
        dropped += n;
    }
    if dropped > MISSING_NAMED {
        tracing::warn!("{dropped} empty captions skipped in all");
    }
    dropped
}

/// How a clip names its video before it is looked up on disk.
#[derive(Debug, Clone)]
enum VideoRef {
    /// A path (own format): taken as is, relative to the annotation file.
    Path(PathBuf),
    /// Published datasets: the pre-cut clip's file stem, else the full source video's stem.
    Ids {
        clip: String,
        source: Option<String>,
    },
}

/// A clip as parsed, before its video is looked up.
#[derive(Debug)]
struct Entry {
    id: String,
    video: VideoRef,
    start: Option<f64>,
    end: Option<f64>,
    captions: Vec<String>,
    split: Split,
    /// Where it was read, for error messages ("line 7").
    origin: String,
    /// The annotation file it was read from.
    file: PathBuf,
}

fn annotation_files(
    path: &Path,
    forced: Option<DatasetFormat>,
) -> anyhow::Result<(Vec<PathBuf>, DatasetFormat)> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot open dataset {}", path.display()))?;
    if meta.is_file() {
        let format = match forced {
            Some(f) => f,
            None => detect_format(path)?,
        };
        return Ok((vec![path.to_path_buf()], format));
    }
    // The own format's file name wins: other .jsonl files beside it (e.g. the synth
    // generator's compositional.jsonl) are separate test sets, named explicitly.
    let own = path.join("annotations.jsonl");
    if own.is_file() && forced.is_none_or(|f| f == DatasetFormat::Jsonl) {
        return Ok((vec![own], DatasetFormat::Jsonl));
    }
    let mut by_format: BTreeMap<&'static str, (DatasetFormat, Vec<PathBuf>)> = BTreeMap::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot list dataset directory {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    for file in names {
        let Some(format) = detect_by_name(&file).or_else(|| {
            // A json file of unknown name is accepted only when its content says VATEX or
            // MSR-VTT; anything else in the directory is not ours.
            let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
            (ext.eq_ignore_ascii_case("json"))
                .then(|| detect_json_content(&file).ok())
                .flatten()
        }) else {
            continue;
        };
        if forced.is_some_and(|f| f != format) {
            continue;
        }
        by_format
            .entry(format.as_str())
            .or_insert((format, Vec::new()))
            .1
            .push(file);
    }
    match by_format.len() {
        0 => bail!(
            "{}: no annotation file found (expected annotations.jsonl, videodatainfo.json, \
             AllVideoDescriptions.txt, an MSVD .csv or a VATEX .json)",
            path.display()
        ),
        1 => Ok(by_format.into_values().next().map(|(f, v)| (v, f)).unwrap()),
        _ => {
            let found: Vec<String> = by_format
                .values()
                .flat_map(|(f, v)| v.iter().map(move |p| format!("{} ({f})", p.display())))
                .collect();
            bail!(
                "{}: annotations in several formats ({}); name the file or pass --format",
                path.display(),
                found.join(", ")
            )
        }
    }
}

fn detect_format(file: &Path) -> anyhow::Result<DatasetFormat> {
    if let Some(f) = detect_by_name(file) {
        return Ok(f);
    }
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("json") {
        return detect_json_content(file);
    }
    bail!(
        "{}: cannot tell the annotation format from the name (use --format jsonl|msr-vtt|msvd-txt|msvd-csv|vatex)",
        file.display()
    )
}

fn detect_by_name(file: &Path) -> Option<DatasetFormat> {
    let name = file.file_name()?.to_str()?.to_ascii_lowercase();
    if name.ends_with(".jsonl") {
        Some(DatasetFormat::Jsonl)
    } else if name.ends_with(".json") && name.contains("videodatainfo") {
        Some(DatasetFormat::MsrVtt)
    } else if name.ends_with(".json") && name.contains("vatex") {
        Some(DatasetFormat::Vatex)
    } else if name == "allvideodescriptions.txt" {
        Some(DatasetFormat::MsvdTxt)
    } else if name.ends_with(".csv") {
        Some(DatasetFormat::MsvdCsv)
    } else {
        None
    }
}

fn detect_json_content(file: &Path) -> anyhow::Result<DatasetFormat> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read annotation file {}", file.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", file.display()))?;
    if value.get("videos").is_some() && value.get("sentences").is_some() {
        return Ok(DatasetFormat::MsrVtt);
    }
    if let Some(first) = value.as_array().and_then(|a| a.first())
        && first.get("videoID").is_some()
    {
        return Ok(DatasetFormat::Vatex);
    }
    bail!(
        "{}: JSON that is neither MSR-VTT (videos + sentences) nor VATEX (a list of videoID/enCap)",
        file.display()
    )
}

// ---------------------------------------------------------------------------------------
// Readers: each turns one file's text into entries; errors name the line or JSON position.

/// One record of vidcap's own JSONL format as read. Other fields (e.g. the synth
/// generator's `params`) are ignored here; `vidcap annotate` keeps them when it rewrites a
/// record.
#[derive(Debug, Clone, Deserialize)]
pub struct JsonlRecord {
    #[serde(default)]
    pub id: Option<String>,
    pub video: PathBuf,
    #[serde(default)]
    pub start: Option<f64>,
    #[serde(default)]
    pub end: Option<f64>,
    #[serde(default)]
    pub captions: Option<Vec<String>>,
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default)]
    pub split: Option<Split>,
}

impl JsonlRecord {
    /// One line of a JSONL annotation file (`lineno` 1-based, for the messages), its window
    /// checked.
    pub fn parse(line: &str, lineno: usize) -> anyhow::Result<Self> {
        let r: JsonlRecord = serde_json::from_str(line).map_err(|e| {
            // serde counts lines within this one line; report the file's line instead.
            let text = e.to_string();
            let reason = text
                .rsplit_once(" at line ")
                .map_or(text.as_str(), |(r, _)| r);
            anyhow::anyhow!(
                "line {lineno}, column {}: not a valid annotation record: {reason}",
                e.column()
            )
        })?;
        check_window(r.start, r.end).with_context(|| format!("line {lineno}"))?;
        Ok(r)
    }

    /// The clip id: `"id"` when given, else the video path, with the window when there is
    /// one (`video.mp4@2-6`).
    pub fn clip_id(&self) -> String {
        self.id.clone().unwrap_or_else(|| {
            let video = self.video.to_string_lossy();
            match (self.start, self.end) {
                (None, None) => video.into_owned(),
                (start, end) => format!(
                    "{video}@{}-{}",
                    start.map_or(String::new(), |s| s.to_string()),
                    end.map_or(String::new(), |s| s.to_string())
                ),
            }
        })
    }

    /// `"captions"` followed by `"caption"`.
    pub fn all_captions(&self) -> Vec<String> {
        let mut captions = self.captions.clone().unwrap_or_default();
        captions.extend(self.caption.clone());
        captions
    }
}

fn parse_jsonl(text: &str) -> anyhow::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let r = JsonlRecord::parse(line, lineno)?;
        out.push(Entry {
            id: r.clip_id(),
            captions: r.all_captions(),
            start: r.start,
            end: r.end,
            split: r.split.unwrap_or(Split::Train),
            video: VideoRef::Path(r.video),
            origin: format!("line {lineno}"),
            file: PathBuf::new(),
        });
    }
    Ok(out)
}

fn check_window(
    start: Option<f64>,
    end: Option<f64>,
) -> anyhow::Result<(Option<f64>, Option<f64>)> {
    for t in [start, end].into_iter().flatten() {
        if !t.is_finite() || t < 0.0 {
            bail!("window time {t} is not a non-negative number of seconds");
        }
    }
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        bail!("window end {e} is not after its start {s}");
    }
    Ok((start, end))
}

#[derive(Deserialize)]
struct MsrVttFile {
    videos: Vec<MsrVttVideo>,
    sentences: Vec<MsrVttSentence>,
}

#[derive(Deserialize)]
struct MsrVttVideo {
    video_id: String,
    /// Absent in some redistributions: the clip is then the whole video.
    #[serde(rename = "start time", default)]
    start: Option<f64>,
    #[serde(rename = "end time", default)]
    end: Option<f64>,
    split: Split,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
struct MsrVttSentence {
    video_id: String,
    caption: String,
}

fn parse_msrvtt(text: &str) -> anyhow::Result<Vec<Entry>> {
    let file: MsrVttFile = serde_json::from_str(text).context("not a valid MSR-VTT file")?;
    let mut captions: HashMap<&str, Vec<String>> = HashMap::new();
    for s in &file.sentences {
        captions
            .entry(s.video_id.as_str())
            .or_default()
            .push(s.caption.clone());
    }
    let known: HashSet<&str> = file.videos.iter().map(|v| v.video_id.as_str()).collect();
    if let Some((i, s)) = file
        .sentences
        .iter()
        .enumerate()
        .find(|(_, s)| !known.contains(s.video_id.as_str()))
    {
        bail!(
            "sentences[{i}] names video_id {:?}, which is not in videos",
            s.video_id
        );
    }
    file.videos
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let (start, end) = check_window(v.start, v.end)
                .with_context(|| format!("videos[{i}] ({})", v.video_id))?;
            Ok(Entry {
                id: v.video_id.clone(),
                video: VideoRef::Ids {
                    clip: v.video_id.clone(),
                    source: v.url.as_deref().and_then(youtube_id),
                },
                start,
                end,
                captions: captions.remove(v.video_id.as_str()).unwrap_or_default(),
                split: v.split,
                origin: format!("videos[{i}]"),
                file: PathBuf::new(),
            })
        })
        .collect()
}

/// The `v=` parameter of a YouTube watch URL.
fn youtube_id(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("v="))
        .filter(|id| !id.is_empty())
        .map(str::to_string)
}

/// `YOUTUBEID_START_END` (the id itself may contain `_`) → (youtube id, start, end).
fn split_clip_id(clip: &str) -> Option<(&str, f64, f64)> {
    let mut parts = clip.rsplitn(3, '_');
    let end = parts.next()?.parse::<f64>().ok()?;
    let start = parts.next()?.parse::<f64>().ok()?;
    let source = parts.next().filter(|s| !s.is_empty())?;
    Some((source, start, end))
}

/// Accumulates MSVD captions per clip id, in first-appearance order.
#[derive(Default)]
struct MsvdClips {
    order: Vec<Entry>,
    index: HashMap<String, usize>,
}

impl MsvdClips {
    fn add(&mut self, clip: &str, caption: String, origin: String) -> anyhow::Result<()> {
        if let Some(&i) = self.index.get(clip) {
            self.order[i].captions.push(caption);
            return Ok(());
        }
        let (source, start, end) = split_clip_id(clip)
            .with_context(|| format!("{origin}: clip id {clip:?} is not VIDEOID_START_END"))?;
        let (start, end) =
            check_window(Some(start), Some(end)).with_context(|| format!("{origin}: {clip:?}"))?;
        self.index.insert(clip.to_string(), self.order.len());
        self.order.push(Entry {
            id: clip.to_string(),
            video: VideoRef::Ids {
                clip: clip.to_string(),
                source: Some(source.to_string()),
            },
            start,
            end,
            captions: vec![caption],
            split: Split::Train, // assigned once all clips are known
            origin,
            file: PathBuf::new(),
        });
        Ok(())
    }
}

fn parse_msvd_txt(text: &str) -> anyhow::Result<Vec<Entry>> {
    let mut clips = MsvdClips::default();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        // An empty caption is kept here and dropped, counted, with the others.
        let (clip, caption) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        clips.add(clip, caption.trim().to_string(), format!("line {lineno}"))?;
    }
    Ok(clips.order)
}

const MSVD_CSV_HEADER: [&str; 8] = [
    "VideoID",
    "Start",
    "End",
    "WorkerID",
    "Source",
    "AnnotationTime",
    "Language",
    "Description",
];

fn parse_msvd_csv(text: &str) -> anyhow::Result<Vec<Entry>> {
    let mut records = csv_records(text.strip_prefix('\u{feff}').unwrap_or(text));
    let (header_line, header) = match records.next() {
        Some(r) => r?,
        None => bail!(
            "empty file (expected the header {})",
            MSVD_CSV_HEADER.join(",")
        ),
    };
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .with_context(|| format!("line {header_line}: header has no {name:?} column"))
    };
    let (c_id, c_start, c_end, c_lang, c_desc) = (
        column("VideoID")?,
        column("Start")?,
        column("End")?,
        column("Language")?,
        column("Description")?,
    );
    let width = header.len();
    let mut clips = MsvdClips::default();
    for record in records {
        let (lineno, fields) = record?;
        if fields.len() == 1 && fields[0].trim().is_empty() {
            continue;
        }
        if fields.len() != width {
            bail!(
                "line {lineno}: {} fields, the header has {width}",
                fields.len()
            );
        }
        if !fields[c_lang].trim().eq_ignore_ascii_case("english") {
            continue;
        }
        let caption = fields[c_desc].trim();
        if caption.is_empty() {
            continue; // a few English rows of the published file have no description
        }
        let (start, end) = (fields[c_start].trim(), fields[c_end].trim());
        for (name, v) in [("Start", start), ("End", end)] {
            if v.parse::<u64>().is_err() {
                bail!("line {lineno}: {name} {v:?} is not a whole number of seconds");
            }
        }
        let clip = format!("{}_{start}_{end}", fields[c_id].trim());
        clips.add(&clip, caption.to_string(), format!("line {lineno}"))?;
    }
    Ok(clips.order)
}

/// RFC 4180 records (quoted fields may hold commas, doubled quotes and newlines), each with
/// the line it starts on. Hand-written: the csv crate is not in the dependency tree, and
/// this is all the MSVD file needs.
fn csv_records(text: &str) -> impl Iterator<Item = anyhow::Result<(usize, Vec<String>)>> + '_ {
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    std::iter::from_fn(move || {
        chars.peek()?;
        let start_line = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut at_field_start = true;
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    return Some(Err(anyhow::anyhow!(
                        "line {start_line}: quoted field not closed before the end of the file"
                    )));
                }
                fields.push(field);
                return Some(Ok((start_line, fields)));
            };
            match c {
                '"' if quoted => {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        quoted = false;
                    }
                }
                '"' if at_field_start => quoted = true,
                ',' if !quoted => {
                    fields.push(std::mem::take(&mut field));
                    at_field_start = true;
                    continue;
                }
                '\r' if !quoted && chars.peek() == Some(&'\n') => {}
                '\n' if !quoted => {
                    line += 1;
                    fields.push(field);
                    return Some(Ok((start_line, fields)));
                }
                c => {
                    if c == '\n' {
                        line += 1;
                    }
                    field.push(c);
                }
            }
            at_field_start = false;
        }
    })
}

#[derive(Deserialize)]
struct VatexRecord {
    #[serde(rename = "videoID")]
    video_id: String,
    #[serde(rename = "enCap", default)]
    en_cap: Vec<String>,
}

fn parse_vatex(text: &str, file: &Path) -> anyhow::Result<Vec<Entry>> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let split = if name.contains("train") {
        Split::Train
    } else if name.contains("val") {
        Split::Val
    } else if name.contains("test") {
        Split::Test
    } else {
        bail!("cannot tell the VATEX split from the file name (expected train, val or test in it)");
    };
    let records: Vec<VatexRecord> = serde_json::from_str(text).context("not a valid VATEX file")?;
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let origin = format!("item {i}");
            let (source, start, end) = split_clip_id(&r.video_id).with_context(|| {
                format!(
                    "{origin}: videoID {:?} is not YOUTUBEID_START_END",
                    r.video_id
                )
            })?;
            let (start, end) = check_window(Some(start), Some(end))
                .with_context(|| format!("{origin}: {:?}", r.video_id))?;
            Ok(Entry {
                id: r.video_id.clone(),
                video: VideoRef::Ids {
                    clip: r.video_id.clone(),
                    source: Some(source.to_string()),
                },
                start,
                end,
                captions: r.en_cap,
                split,
                origin,
                file: PathBuf::new(),
            })
        })
        .collect()
}

/// The standard MSVD split: 1200 train / 100 val / 670 test of 1970 videos, over the
/// source video ids sorted bytewise (a YouTube video with several annotated clips stays in
/// one split); other sizes in the same proportions.
fn assign_msvd_splits(entries: &mut [Entry]) {
    let source = |e: &Entry| match &e.video {
        VideoRef::Ids {
            source: Some(s), ..
        } => s.clone(),
        _ => e.id.clone(),
    };
    let mut ids: Vec<String> = entries.iter().map(source).collect();
    ids.sort();
    ids.dedup();
    let n = ids.len();
    let n_train = (n * 1200 + 985) / 1970;
    let n_val = (n * 100 + 985) / 1970;
    let rank: HashMap<String, usize> = ids.into_iter().enumerate().map(|(i, s)| (s, i)).collect();
    for e in entries.iter_mut() {
        let r = rank[&source(e)];
        e.split = if r < n_train {
            Split::Train
        } else if r < n_train + n_val {
            Split::Val
        } else {
            Split::Test
        };
    }
}

// ---------------------------------------------------------------------------------------
// Finding the videos on disk.

struct VideoSearch {
    base: PathBuf,
    /// Directories searched for id-named videos, in order.
    dirs: Vec<PathBuf>,
    /// File stem → path, per directory, listed once (MSR-VTT has 10 000 videos: one
    /// directory read beats 40 000 stat calls).
    listings: Vec<HashMap<String, PathBuf>>,
}

impl VideoSearch {
    fn new(base: &Path, videos: Option<&Path>) -> anyhow::Result<Self> {
        let dirs: Vec<PathBuf> = match videos {
            Some(dir) => {
                if !dir.is_dir() {
                    bail!("video directory {} does not exist", dir.display());
                }
                vec![dir.to_path_buf()]
            }
            None => std::iter::once(base.to_path_buf())
                .chain(DEFAULT_VIDEO_SUBDIRS.iter().map(|d| base.join(d)))
                .filter(|d| d.is_dir() || d.as_os_str().is_empty())
                .collect(),
        };
        let listings = dirs.iter().map(|d| list_videos(d)).collect();
        Ok(Self {
            base: base.to_path_buf(),
            dirs,
            listings,
        })
    }

    /// The video on disk and whether the annotated window applies to it (false for a
    /// pre-cut clip file).
    fn resolve(&self, video: &VideoRef) -> Option<(PathBuf, bool)> {
        match video {
            VideoRef::Path(p) => {
                let mut candidates = vec![self.base.join(p)];
                if p.is_relative() {
                    candidates.extend(self.dirs.iter().map(|d| d.join(p)));
                    if let Some(name) = p.file_name() {
                        candidates.extend(self.dirs.iter().map(|d| d.join(name)));
                    }
                }
                candidates
                    .into_iter()
                    .find(|c| c.is_file())
                    .map(|c| (c, true))
            }
            VideoRef::Ids { clip, source } => {
                let find = |stem: &str| self.listings.iter().find_map(|l| l.get(stem).cloned());
                find(clip)
                    .map(|p| (p, false))
                    .or_else(|| source.as_deref().and_then(find).map(|p| (p, true)))
            }
        }
    }

    /// The path reported for a missing video.
    fn expected(&self, video: &VideoRef) -> PathBuf {
        let dir = self.dirs.first().unwrap_or(&self.base);
        match video {
            VideoRef::Path(p) => self.base.join(p),
            VideoRef::Ids { clip, .. } => dir.join(format!("{clip}.{}", VIDEO_EXTENSIONS[0])),
        }
    }

    fn describe(&self) -> String {
        let dirs: Vec<String> = self
            .dirs
            .iter()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    ".".to_string()
                } else {
                    d.display().to_string()
                }
            })
            .collect();
        dirs.join(", ")
    }
}

/// Video files directly in `dir`, by stem; for a stem with several extensions the first of
/// [`VIDEO_EXTENSIONS`] wins.
fn list_videos(dir: &Path) -> HashMap<String, PathBuf> {
    let read_dir = if dir.as_os_str().is_empty() {
        std::fs::read_dir(".")
    } else {
        std::fs::read_dir(dir)
    };
    let mut best: HashMap<String, (usize, PathBuf)> = HashMap::new();
    for entry in read_dir.into_iter().flatten().flatten() {
        let path = entry.path();
        let (Some(stem), Some(ext)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|e| e.to_str()),
        ) else {
            continue;
        };
        let Some(rank) = VIDEO_EXTENSIONS
            .iter()
            .position(|v| v.eq_ignore_ascii_case(ext))
        else {
            continue;
        };
        if !path.is_file() {
            continue;
        }
        let path = dir.join(entry.file_name());
        match best.get(stem) {
            Some((r, _)) if *r <= rank => {}
            _ => {
                best.insert(stem.to_string(), (rank, path));
            }
        }
    }
    best.into_iter().map(|(k, (_, p))| (k, p)).collect()
}

// ---------------------------------------------------------------------------------------
// Merging JSONL annotation files (`vidcap merge`).

/// One annotation file to merge and what changes on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeSource {
    /// vidcap's own JSONL annotation file.
    pub file: PathBuf,
    /// Every clip goes to this split (`None`: each keeps its own).
    pub split: Option<Split>,
    /// Put before every clip id, so ids of different sources cannot collide.
    pub prefix: String,
}

/// What a merge wrote: clips per split, in split order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MergeSummary {
    pub clips: usize,
    pub splits: BTreeMap<String, usize>,
}

/// Merges JSONL annotation files into `out` (atomically): every record keeps its fields
/// (generator parameters included), its video path made absolute (relative paths are read
/// from the annotation file's folder, so the merged file works from anywhere), its id
/// prefixed and its split set as the source says. Beside `out`, `corpus.json` records the
/// sources (their hash, and the `corpus.json` that came with each) and the split counts,
/// which `vidcap train` copies into its report (unless `out` is in a source's folder, whose
/// own corpus.json stays). An error names the file and line of a bad
/// record, or the id that occurs twice.
pub fn merge_jsonl(sources: &[MergeSource], out: &Path) -> anyhow::Result<MergeSummary> {
    use sha2::{Digest, Sha256};
    let mut lines = String::new();
    let mut summary = MergeSummary::default();
    let mut ids = HashSet::new();
    let mut described = Vec::new();
    let mut folders = Vec::new();
    for source in sources {
        let text = read_utf8(&source.file)?;
        let folder = std::path::absolute(dataset_dir(&source.file)).with_context(|| {
            format!("{}: cannot make its folder absolute", source.file.display())
        })?;
        folders.push(folder.clone());
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let at = || format!("{}: line {}", source.file.display(), i + 1);
            let record = JsonlRecord::parse(line, i + 1)
                .with_context(|| source.file.display().to_string())?;
            let mut value: serde_json::Value = serde_json::from_str(line).with_context(at)?;
            let object = value
                .as_object_mut()
                .with_context(|| format!("{}: not a JSON object", at()))?;
            let id = format!("{}{}", source.prefix, record.clip_id());
            if !ids.insert(id.clone()) {
                bail!("{}: clip id {id} occurs twice in the merged files", at());
            }
            let split = source.split.or(record.split);
            object.insert("id".into(), id.into());
            let video = folder.join(&record.video);
            object.insert("video".into(), video.to_string_lossy().into_owned().into());
            if let Some(split) = split {
                object.insert("split".into(), split.as_str().into());
            }
            let split_name = split.map_or("unassigned", Split::as_str);
            *summary.splits.entry(split_name.to_string()).or_default() += 1;
            summary.clips += 1;
            lines.push_str(&serde_json::to_string(&value)?);
            lines.push('\n');
        }
        let corpus = folder.join("corpus.json");
        let corpus: serde_json::Value = std::fs::read(&corpus)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(serde_json::Value::Null);
        described.push(serde_json::json!({
            "annotations": std::path::absolute(&source.file)?,
            "annotations_sha256": format!("{:x}", Sha256::digest(text.as_bytes())),
            "split": source.split.map_or("as given", Split::as_str),
            "id_prefix": source.prefix,
            "corpus": corpus,
        }));
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    crate::atomic::write_atomic(out, lines.as_bytes())?;
    // The generator and seeds of the sources, where they came from `vidcap synth`.
    let generator = described
        .iter()
        .find_map(|d| d["corpus"]["generator"].as_str().map(str::to_string));
    let seeds: Vec<&serde_json::Value> = described
        .iter()
        .filter_map(|d| d["corpus"].get("seed"))
        .collect();
    let corpus = serde_json::json!({
        "generator": generator,
        "seed": seeds,
        "sources": described,
        "splits": summary.splits,
    });
    let out_folder = std::path::absolute(out)?
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    // A source's own corpus.json (when merging into its folder) is left as it is.
    if !folders.contains(&out_folder) {
        let text = serde_json::to_string_pretty(&corpus)?;
        crate::atomic::write_atomic(&out_folder.join("corpus.json"), text.as_bytes())?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_file_name_lives_in_the_current_folder() {
        // `vidcap merge all.jsonl annotations.jsonl` made "" absolute and failed.
        assert_eq!(
            dataset_dir(Path::new("annotations.jsonl")),
            PathBuf::from(".")
        );
        assert_eq!(dataset_dir(Path::new("d/a.jsonl")), PathBuf::from("d"));
    }

    #[test]
    fn clip_ids_split_from_the_right() {
        assert_eq!(split_clip_id("-_a_b_5_15"), Some(("-_a_b", 5.0, 15.0)));
        assert_eq!(
            split_clip_id("abc_000010_000020"),
            Some(("abc", 10.0, 20.0))
        );
        assert_eq!(split_clip_id("abc_10"), None);
        assert_eq!(split_clip_id("_1_2"), None);
    }

    #[test]
    fn csv_handles_quotes_commas_and_newlines() {
        let text = "a,b,c\n1,\"x, \"\"y\"\"\",3\r\n4,\"multi\nline\",6";
        let rows: Vec<_> = csv_records(text).map(Result::unwrap).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[1],
            (2, vec!["1".into(), "x, \"y\"".into(), "3".into()])
        );
        assert_eq!(
            rows[2],
            (3, vec!["4".into(), "multi\nline".into(), "6".into()])
        );
        assert!(csv_records("a,\"open\n").next().unwrap().is_err());
    }

    #[test]
    fn youtube_ids_come_from_the_v_parameter() {
        assert_eq!(
            youtube_id("https://example.com/watch?feature=x&v=9lZi22qLlEo").as_deref(),
            Some("9lZi22qLlEo")
        );
        assert_eq!(youtube_id("no-query"), None);
    }
}
