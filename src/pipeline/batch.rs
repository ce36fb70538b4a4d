//! Batch bookkeeping: which files to process, which shard of them is ours, which are
//! already done, and an append-only results file that survives a crash.
use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::VideoCaptions;
use crate::stamp::FileStamp;
use crate::video::VIDEO_EXTENSIONS;

/// One input of a batch: the path as the user named it (what results report) and the path
/// to open.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Input {
    pub display: String,
    pub path: PathBuf,
}

/// Expand command-line inputs: files as given, directories recursively (video files by
/// extension, others by sniffing their first bytes), `@list.txt` one path per line
/// (relative paths relative to the list; blank lines and `#` comments skipped).
/// Duplicates are dropped; directory contents come in sorted order.
pub fn collect_inputs(args: &[String]) -> Result<Vec<Input>> {
    Ok(collect_inputs_counted(args)?.0)
}

/// [`collect_inputs`], and how many files in the directories were not videos (ignored).
pub fn collect_inputs_counted(args: &[String]) -> Result<(Vec<Input>, usize)> {
    let mut inputs = Vec::new();
    let mut not_video = 0;
    for arg in args {
        if let Some(list) = arg.strip_prefix('@') {
            let list = Path::new(list);
            let text = fs::read_to_string(list)
                .with_context(|| format!("{}: cannot read the input list", list.display()))?;
            let base = list.parent().unwrap_or(Path::new(""));
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let path = base.join(line);
                let display = path.to_string_lossy().into_owned();
                push_path(&mut inputs, &mut not_video, display, path)?;
            }
        } else {
            push_path(&mut inputs, &mut not_video, arg.clone(), PathBuf::from(arg))?;
        }
    }
    let mut seen = BTreeSet::new();
    inputs.retain(|i| seen.insert(fs::canonicalize(&i.path).unwrap_or_else(|_| i.path.clone())));
    Ok((inputs, not_video))
}

fn push_path(
    inputs: &mut Vec<Input>,
    not_video: &mut usize,
    display: String,
    path: PathBuf,
) -> Result<()> {
    if path.is_dir() {
        let mut found = Vec::new();
        walk_dir(&path, &mut found, not_video)
            .with_context(|| format!("{}: cannot list the directory", path.display()))?;
        found.sort();
        inputs.extend(found.into_iter().map(|p| Input {
            display: p.to_string_lossy().into_owned(),
            path: p,
        }));
    } else {
        // A missing or unreadable file is kept: it becomes an error record, not a silent skip.
        inputs.push(Input { display, path });
    }
    Ok(())
}

fn walk_dir(dir: &Path, found: &mut Vec<PathBuf>, not_video: &mut usize) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk_dir(&path, found, not_video)?;
        } else if kind.is_file() || kind.is_symlink() {
            if looks_like_video(&path) {
                found.push(path);
            } else {
                *not_video += 1;
            }
        }
    }
    Ok(())
}

/// By extension, else by the container's magic bytes (MP4/MOV, Matroska/WebM, AVI, FLV,
/// Ogg, MPEG-PS, MPEG-TS).
pub fn looks_like_video(path: &Path) -> bool {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    if ext
        .as_deref()
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e))
    {
        return true;
    }
    let mut head = [0u8; 192];
    let n = match File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut head)) {
        Ok(n) => n,
        Err(_) => return false,
    };
    let head = &head[..n];
    let starts = |magic: &[u8]| head.starts_with(magic);
    (n >= 12 && &head[4..8] == b"ftyp")
        || starts(&[0x1a, 0x45, 0xdf, 0xa3])
        || (starts(b"RIFF") && n >= 12 && &head[8..12] == b"AVI ")
        || starts(b"FLV")
        || starts(b"OggS")
        || starts(&[0, 0, 1, 0xba])
        || (n >= 189 && head[0] == 0x47 && head[188] == 0x47)
}

/// This machine's part of the work: inputs whose path hash falls in `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// `I/N` with 0 <= I < N.
    pub fn parse(text: &str) -> Result<Self> {
        let (i, n) = text
            .split_once('/')
            .with_context(|| format!("--shard {text:?}: expected I/N, e.g. 0/4"))?;
        let index: u64 = i
            .trim()
            .parse()
            .with_context(|| format!("--shard {text:?}: bad index"))?;
        let count: u64 = n
            .trim()
            .parse()
            .with_context(|| format!("--shard {text:?}: bad count"))?;
        Self::new(index, count).with_context(|| format!("--shard {text:?}"))
    }

    fn new(index: u64, count: u64) -> Result<Self> {
        if count == 0 || index >= count {
            bail!("shard index {index} is not in 0..{count}");
        }
        Ok(Self { index, count })
    }

    /// The shard a cluster scheduler assigned, when no `--shard` was given: a Slurm job
    /// array (`SLURM_ARRAY_TASK_ID` relative to `SLURM_ARRAY_TASK_MIN`, of
    /// `SLURM_ARRAY_TASK_COUNT`) or a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX` of
    /// `VIDCAP_SHARD_COUNT`, which the manifest sets to its `completions`).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let num = |name: &str| -> Result<Option<u64>> {
            env(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .with_context(|| format!("{name}={v:?} is not a number"))
                })
                .transpose()
        };
        if let (Some(id), Some(count)) =
            (num("SLURM_ARRAY_TASK_ID")?, num("SLURM_ARRAY_TASK_COUNT")?)
        {
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let index = id
                .checked_sub(min)
                .context("SLURM_ARRAY_TASK_ID is below SLURM_ARRAY_TASK_MIN")?;
            return Self::new(index, count)
                .context("from SLURM_ARRAY_TASK_*")
                .map(Some);
        }
        if let Some(index) = num("JOB_COMPLETION_INDEX")? {
            let count = num("VIDCAP_SHARD_COUNT")?.context(
                "JOB_COMPLETION_INDEX is set but VIDCAP_SHARD_COUNT (the Job's completions) is not",
            )?;
            return Self::new(index, count)
                .context("from JOB_COMPLETION_INDEX")
                .map(Some);
        }
        Ok(None)
    }

    /// Stable across machines and runs: FNV-1a of the path as the user named it, so every
    /// shard agrees without a coordinator and adding files never moves the others.
    pub fn contains(&self, input: &Input) -> bool {
        self.contains_name(&input.display)
    }

    /// Whether `name` (a path as named, or a dataset's clip id) falls in this shard.
    pub fn contains_name(&self, name: &str) -> bool {
        crate::hash::fnv1a64(name.as_bytes()) % self.count == self.index
    }
}

/// One line of the results file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultLine {
    #[serde(flatten)]
    pub result: VideoCaptions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<FileStamp>,
}

/// The results file: JSON lines appended one whole line per write and synced, so a crash
/// loses at most the line being written, which `--resume` then cuts off and redoes. An input
/// done again (changed source, `--retry-failed`) appends its new line; [`ResultsLog::finish`]
/// then rewrites the file atomically with the new line in the old one's place, so every
/// input has one line.
pub struct ResultsLog {
    file: File,
    path: PathBuf,
    done: HashMap<String, Recorded>,
    /// An input has more than one line (redone here, or left so by an interrupted run).
    superseded: bool,
}

/// What the results file says about one input.
#[derive(Debug, Clone, Copy)]
struct Recorded {
    source: Option<FileStamp>,
    failed: bool,
}

/// The state of a results file after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSummary {
    /// Inputs with a result line.
    pub inputs: usize,
    /// Of those, inputs whose (latest) result is an error, from this run or an earlier one.
    pub failed: usize,
}

impl ResultsLog {
    /// A new results file; an existing one is an error unless `resume` (continue it) or
    /// `overwrite`.
    pub fn open(path: &Path, resume: bool, overwrite: bool) -> Result<Self> {
        let exists = path.exists();
        if exists && !resume && !overwrite {
            bail!(
                "{}: results file exists; pass --resume to continue it or --overwrite to start again",
                path.display()
            );
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(!resume)
            .open(path)
            .with_context(|| format!("{}: cannot open the results file", path.display()))?;
        let mut log = Self {
            file: file.try_clone()?,
            path: path.to_path_buf(),
            done: HashMap::new(),
            superseded: false,
        };
        if resume && exists {
            let keep = read_complete_lines(&mut file, path, &mut |line, _| log.record(&line))?;
            file.set_len(keep)
                .with_context(|| format!("{}: cannot cut off a partial line", path.display()))?;
        }
        log.file.seek(SeekFrom::End(0))?;
        Ok(log)
    }

    fn record(&mut self, line: &ResultLine) {
        let recorded = Recorded {
            source: line.source,
            failed: line.result.error.is_some(),
        };
        self.superseded |= self
            .done
            .insert(line.result.video.clone(), recorded)
            .is_some();
    }

    /// Whether `input` already has a result for its current contents (failed ones count
    /// unless `retry_failed`).
    pub fn is_done(&self, input: &Input, retry_failed: bool) -> bool {
        match self.done.get(&input.display) {
            Some(r) => r.source == FileStamp::of(&input.path).ok() && !(retry_failed && r.failed),
            None => false,
        }
    }

    pub fn append(&mut self, input: &Input, result: VideoCaptions) -> Result<()> {
        let line = ResultLine {
            result,
            source: FileStamp::of(&input.path).ok(),
        };
        let mut bytes = serde_json::to_vec(&line)?;
        bytes.push(b'\n');
        // One write of the whole line, then fsync: a reader never sees half a record
        // except after a crash mid-write, and that line is cut off by the next --resume.
        self.file
            .write_all(&bytes)
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("{}: cannot append a result", self.path.display()))?;
        self.record(&line);
        Ok(())
    }

    /// Ends the run: one line per input (a redone input's latest line in place of its
    /// first, written to a temporary file and renamed over the results), and the counts.
    pub fn finish(mut self) -> Result<LogSummary> {
        if self.superseded {
            let mut lines: Vec<(String, Vec<u8>)> = Vec::new();
            let mut position: HashMap<String, usize> = HashMap::new();
            self.file.seek(SeekFrom::Start(0))?;
            read_complete_lines(&mut self.file, &self.path, &mut |line, bytes| {
                let video = line.result.video;
                let bytes = bytes.to_vec();
                match position.get(&video) {
                    Some(&at) => lines[at].1 = bytes,
                    None => {
                        position.insert(video.clone(), lines.len());
                        lines.push((video, bytes));
                    }
                }
            })?;
            let text: Vec<u8> = lines.into_iter().flat_map(|(_, bytes)| bytes).collect();
            crate::atomic::write_atomic(&self.path, &text)?;
        }
        Ok(LogSummary {
            inputs: self.done.len(),
            failed: self.done.values().filter(|r| r.failed).count(),
        })
    }
}

/// Reads every complete, parseable line; returns the byte length to keep. A last line
/// without its newline (a crash mid-write) is dropped; a malformed complete line is an
/// error, since that file was not written by us.
fn read_complete_lines(
    file: &mut File,
    path: &Path,
    each: &mut dyn FnMut(ResultLine, &[u8]),
) -> Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(&mut *file);
    let mut keep = 0u64;
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        let record: ResultLine = serde_json::from_slice(&line)
            .with_context(|| format!("{}: line {number} is not a vidcap result", path.display()))?;
        each(record, &line);
        keep += n as u64;
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str) -> Input {
        Input {
            display: name.to_string(),
            path: PathBuf::from(name),
        }
    }

    #[test]
    fn shards_partition_the_inputs() {
        let inputs: Vec<Input> = (0..1000)
            .map(|i| input(&format!("lib/clip_{i}.mp4")))
            .collect();
        let count = 7;
        let mut sizes = vec![0usize; count];
        for i in &inputs {
            let owners: Vec<u64> = (0..count as u64)
                .filter(|&k| {
                    Shard {
                        index: k,
                        count: count as u64,
                    }
                    .contains(i)
                })
                .collect();
            assert_eq!(owners.len(), 1, "{} owned by {owners:?}", i.display);
            sizes[owners[0] as usize] += 1;
        }
        // Balanced within a few standard deviations of 1000/7.
        assert!(sizes.iter().all(|&s| (100..190).contains(&s)), "{sizes:?}");
    }

    #[test]
    fn shard_parsing_and_scheduler_env() {
        assert_eq!(Shard::parse("2/5").unwrap(), Shard { index: 2, count: 5 });
        assert!(Shard::parse("5/5").is_err());
        assert!(Shard::parse("1").is_err());
        let slurm = |k: &str| match k {
            "SLURM_ARRAY_TASK_ID" => Some("4".into()),
            "SLURM_ARRAY_TASK_MIN" => Some("1".into()),
            "SLURM_ARRAY_TASK_COUNT" => Some("4".into()),
            _ => None,
        };
        assert_eq!(
            Shard::from_env(&slurm).unwrap(),
            Some(Shard { index: 3, count: 4 })
        );
        let k8s = |k: &str| match k {
            "JOB_COMPLETION_INDEX" => Some("0".into()),
            "VIDCAP_SHARD_COUNT" => Some("3".into()),
            _ => None,
        };
        assert_eq!(
            Shard::from_env(&k8s).unwrap(),
            Some(Shard { index: 0, count: 3 })
        );
        let k8s_without_count = |k: &str| (k == "JOB_COMPLETION_INDEX").then(|| "1".to_string());
        assert!(Shard::from_env(&k8s_without_count).is_err());
        assert_eq!(Shard::from_env(&|_| None).unwrap(), None);
    }

    #[test]
    fn resume_cuts_a_partial_line_and_skips_done_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join("a.mp4");
        fs::write(&video, b"not really a video").unwrap();
        let a = Input {
            display: video.to_string_lossy().into_owned(),
            path: video.clone(),
        };
        let b = input("missing.mp4");
        let results = dir.path().join("results.jsonl");
        {
            let mut log = ResultsLog::open(&results, false, false).unwrap();
            log.append(&a, VideoCaptions::failed(&a.display, "boom"))
                .unwrap();
        }
        // A crash in the middle of the next line.
        let mut f = OpenOptions::new().append(true).open(&results).unwrap();
        f.write_all(br#"{"video":"missing.mp4","capt"#).unwrap();
        drop(f);
        assert!(
            ResultsLog::open(&results, false, false).is_err(),
            "must not clobber without --resume"
        );
        let log = ResultsLog::open(&results, true, false).unwrap();
        assert!(log.is_done(&a, false));
        assert!(
            !log.is_done(&a, true),
            "failed inputs are redone with retry_failed"
        );
        assert!(!log.is_done(&b, false));
        let text = fs::read_to_string(&results).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.ends_with('\n'));
        // A changed source is redone.
        fs::write(&video, b"a different, longer file").unwrap();
        assert!(!log.is_done(&a, false));
    }

    #[test]
    fn a_redone_input_replaces_its_line_and_earlier_failures_still_count() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| {
            let path = dir.path().join(name);
            fs::write(&path, name.as_bytes()).unwrap();
            Input {
                display: path.to_string_lossy().into_owned(),
                path,
            }
        };
        let (a, b) = (file("a.mp4"), file("b.mp4"));
        let captioned = |input: &Input| VideoCaptions {
            caption: Some("a caption".into()),
            error: None,
            ..VideoCaptions::failed(&input.display, "")
        };
        let results = dir.path().join("results.jsonl");
        let mut log = ResultsLog::open(&results, false, false).unwrap();
        log.append(&a, VideoCaptions::failed(&a.display, "boom"))
            .unwrap();
        log.append(&b, captioned(&b)).unwrap();
        let first = LogSummary {
            inputs: 2,
            failed: 1,
        };
        assert_eq!(log.finish().unwrap(), first);

        // Resumed without --retry-failed: nothing is redone, the failure is still there.
        let log = ResultsLog::open(&results, true, false).unwrap();
        assert!(log.is_done(&a, false) && log.is_done(&b, false));
        assert_eq!(log.finish().unwrap(), first);

        // Retried: a's new line takes the place of its old one.
        let mut log = ResultsLog::open(&results, true, false).unwrap();
        assert!(!log.is_done(&a, true));
        log.append(&a, captioned(&a)).unwrap();
        assert_eq!(
            log.finish().unwrap(),
            LogSummary {
                inputs: 2,
                failed: 0
            }
        );
        let lines: Vec<ResultLine> = fs::read_to_string(&results)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let videos: Vec<&str> = lines.iter().map(|l| l.result.video.as_str()).collect();
        assert_eq!(videos, [a.display.as_str(), b.display.as_str()]);
        assert!(lines[0].result.error.is_none());

        // A changed source is redone the same way.
        fs::write(&b.path, b"b, re-encoded").unwrap();
        let mut log = ResultsLog::open(&results, true, false).unwrap();
        assert!(!log.is_done(&b, false));
        log.append(&b, VideoCaptions::failed(&b.display, "now broken"))
            .unwrap();
        assert_eq!(log.finish().unwrap().failed, 1);
        let text = fs::read_to_string(&results).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().nth(1).unwrap().contains("now broken"));
    }

    #[test]
    fn directories_are_walked_sorted_with_sniffing() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("b.MP4"), b"x").unwrap();
        fs::write(dir.path().join("a.mkv"), b"x").unwrap();
        fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
        fs::write(dir.path().join(".hidden.mp4"), b"x").unwrap();
        let mut mp4_without_extension = vec![0, 0, 0, 0x18];
        mp4_without_extension.extend_from_slice(b"ftypisom0000");
        fs::write(dir.path().join("clip"), &mp4_without_extension).unwrap();
        let listed = dir.path().join("list.txt");
        fs::write(&listed, "# inputs\nsub/b.MP4\n\na.mkv\n").unwrap();
        let (found, not_video) =
            collect_inputs_counted(&[dir.path().to_string_lossy().into_owned()]).unwrap();
        assert_eq!(
            not_video, 2,
            "notes.txt and list.txt are counted, hidden files are not"
        );
        let names: Vec<_> = found
            .iter()
            .map(|i| i.path.strip_prefix(dir.path()).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            names,
            [
                PathBuf::from("a.mkv"),
                PathBuf::from("clip"),
                PathBuf::from("sub/b.MP4")
            ]
        );
        // The list names files already found: no duplicates.
        let both = collect_inputs(&[
            dir.path().to_string_lossy().into_owned(),
            format!("@{}", listed.display()),
        ])
        .unwrap();
        assert_eq!(both.len(), 3);
    }
}
