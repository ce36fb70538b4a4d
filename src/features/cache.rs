//! The feature cache: one safetensors file per clip, so training never decodes video.
//!
//! Each file holds `features` `[T, R, D]` f32 (T sampled frames, R regions: 1 for the
//! global pool, more for a spatial grid) and `timestamps` `[T]` f64 seconds, and its
//! `__metadata__` records everything the features depend on: the encoder and its weights'
//! sha256, the sampling spec and window, and the source video's absolute path, size and
//! mtime. [`FeatureCache::get`] returns an entry only when all of them still match, so a
//! stale entry is never reused. File names are a hash of (absolute video path, window),
//! which keeps ids with slashes safe and needs no index.
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use candle_core::{DType, Device, Tensor};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use sha2::{Digest, Sha256};

use super::ClipFeatures;
use super::{GRID_REGIONS, MOTION_FEATURES};
use crate::dataset::{Clip, Dataset, Split};
use crate::stamp::FileStamp;

/// Bumped whenever the file layout or the meaning of a metadata key changes.
pub const CACHE_FORMAT_VERSION: &str = "1";
const FEATURES: &str = "features";
const TIMESTAMPS: &str = "timestamps";
/// Clips named when some are not cached; the rest are only counted.
const UNCACHED_NAMED: usize = 5;

/// What the features of a clip depend on besides the video itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    /// Encoder registry name, e.g. `efficientnet-lite0`.
    pub encoder: String,
    /// sha256 of the encoder's weights (from its model directory's provenance).
    pub encoder_sha256: String,
    /// Frame sampling, e.g. `uniform:16`.
    pub sampling: String,
    /// Regions per frame (1 = global average pool).
    pub regions: usize,
    /// Whether every item ends with its frame's motion descriptor ([`MOTION_FEATURES`]).
    pub motion: bool,
}

impl CacheKey {
    /// The one constructor of a key, shared by `vidcap extract` (which writes entries) and
    /// `vidcap train`/`eval` (which read them), so both sides always agree on the strings.
    /// `frames` uniformly sampled frames; `grid`: R = [`GRID_REGIONS`], else R = 1;
    /// `motion`: items carry the motion descriptor.
    pub fn new(
        encoder: &str,
        encoder_sha256: &str,
        frames: usize,
        grid: bool,
        motion: bool,
    ) -> Self {
        Self {
            encoder: encoder.to_string(),
            encoder_sha256: encoder_sha256.to_string(),
            sampling: format!("uniform:{frames}"),
            regions: if grid { GRID_REGIONS } else { 1 },
            motion,
        }
    }
}

/// One clip's cached features.
#[derive(Debug, Clone)]
pub struct CachedFeatures {
    /// `[T, R, D]` f32 on the CPU.
    pub features: Tensor,
    /// `[T]` seconds of each sampled frame in the source video.
    pub timestamps: Vec<f64>,
}

/// Why [`FeatureCache::lookup`] found nothing usable.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheMiss {
    /// No file for this clip.
    Absent,
    /// The clip's video cannot be read (so nothing can be validated).
    VideoUnreadable(String),
    /// A file exists but was made from another video state, encoder or sampling.
    Stale(String),
    /// A file exists but is not a valid cache entry (truncated, foreign, corrupt).
    Corrupt(String),
}

impl std::fmt::Display for CacheMiss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheMiss::Absent => f.write_str("not cached"),
            CacheMiss::VideoUnreadable(why) => write!(f, "video unreadable: {why}"),
            CacheMiss::Stale(why) => write!(f, "stale: {why}"),
            CacheMiss::Corrupt(why) => write!(f, "corrupt cache file: {why}"),
        }
    }
}

/// A directory of per-clip feature files.
#[derive(Debug, Clone)]
pub struct FeatureCache {
    dir: PathBuf,
}

/// The facts about a video that decide whether its cached features are still valid.
struct VideoStamp {
    path: PathBuf,
    file: FileStamp,
}

impl VideoStamp {
    fn of(video: &Path) -> anyhow::Result<Self> {
        let path = std::path::absolute(video)
            .with_context(|| format!("cannot resolve {}", video.display()))?;
        let file =
            FileStamp::of(&path).with_context(|| format!("cannot stat {}", path.display()))?;
        Ok(Self { path, file })
    }
}

impl FeatureCache {
    /// Opens (creating if needed) a cache directory.
    pub fn open(dir: impl AsRef<Path>) -> anyhow::Result<Self> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create feature cache {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds (or would hold) a clip's features: sha256 of the absolute
    /// video path and the window.
    pub fn path_for(&self, clip: &Clip) -> PathBuf {
        self.dir
            .join(format!("{}.safetensors", entry_stem(clip, 0)))
    }

    /// The file of a clip's jittered sampling `k` (`k` ≥ 1; 0 is [`path_for`](Self::path_for)).
    pub fn path_for_sampling(&self, clip: &Clip, k: usize) -> PathBuf {
        self.dir
            .join(format!("{}.safetensors", entry_stem(clip, k)))
    }

    /// Where extract records that a clip cannot be sampled (its window starts after the
    /// video ends), so train skips it instead of asking for it to be extracted.
    fn skip_marker(&self, clip: &Clip) -> PathBuf {
        self.dir
            .join(format!("{}.skipped.json", entry_stem(clip, 0)))
    }

    /// Records why `clip` cannot be extracted from its video as it is now.
    pub fn mark_skipped(&self, clip: &Clip, reason: &str) -> anyhow::Result<()> {
        let stamp = VideoStamp::of(&clip.video)?;
        let mut meta: HashMap<String, String> = [
            ("video_path", stamp.path.to_string_lossy().into_owned()),
            ("video_size", stamp.file.size.to_string()),
            ("video_mtime_ns", stamp.file.mtime_ns.to_string()),
            ("window_start", window_string(clip.start)),
            ("window_end", window_string(clip.end)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        meta.insert("reason".into(), reason.to_string());
        crate::atomic::write_atomic(&self.skip_marker(clip), &serde_json::to_vec(&meta)?)
    }

    /// Why extract skipped `clip`, if it did and its video has not changed since.
    pub fn skipped(&self, clip: &Clip) -> Option<String> {
        let bytes = fs::read(self.skip_marker(clip)).ok()?;
        let meta: HashMap<String, String> = serde_json::from_slice(&bytes).ok()?;
        let stamp = VideoStamp::of(&clip.video).ok()?;
        let same = meta.get("video_path")? == &stamp.path.to_string_lossy()
            && meta.get("video_size")? == &stamp.file.size.to_string()
            && meta.get("video_mtime_ns")? == &stamp.file.mtime_ns.to_string()
            && meta.get("window_start")? == &window_string(clip.start)
            && meta.get("window_end")? == &window_string(clip.end);
        same.then(|| meta.get("reason").cloned().unwrap_or_default())
    }

    /// Forgets a skip record (the clip was extracted after all).
    pub fn clear_skipped(&self, clip: &Clip) {
        let _ = fs::remove_file(self.skip_marker(clip));
    }

    /// The valid entries of `clip` for `key`: the uniform sampling first, then every
    /// jittered sampling `1, 2, …` stored for it (whatever seed made them), each checked by
    /// its header.
    pub fn entries(&self, clip: &Clip, key: &CacheKey) -> Result<Vec<PathBuf>, CacheMiss> {
        self.check(clip, key)?;
        let mut files = vec![self.path_for(clip)];
        for k in 1.. {
            let path = self.path_for_sampling(clip, k);
            let Ok(mut file) = fs::File::open(&path) else {
                break;
            };
            let Ok((meta, _)) = read_header(&mut file) else {
                break;
            };
            let prefix = format!("{}{JITTER_MARK}{k}:", key.sampling);
            match meta.get("sampling") {
                Some(sampling) if sampling.starts_with(&prefix) => {
                    let jittered = CacheKey {
                        sampling: sampling.clone(),
                        ..key.clone()
                    };
                    if self.check_at(&path, clip, &jittered).is_err() {
                        break;
                    }
                    files.push(path);
                }
                _ => break,
            }
        }
        Ok(files)
    }

    /// The clip's features if a valid entry exists for this key; otherwise `None`, with
    /// the reason logged (at debug for absent or stale, as a warning for a corrupt file).
    pub fn get(&self, clip: &Clip, key: &CacheKey) -> Option<CachedFeatures> {
        match self.lookup(clip, key) {
            Ok(hit) => Some(hit),
            Err(miss) => {
                let path = self.path_for(clip);
                match &miss {
                    CacheMiss::Corrupt(_) => {
                        tracing::warn!("{}: clip {}: {miss}", path.display(), clip.id)
                    }
                    _ => tracing::debug!("{}: clip {}: {miss}", path.display(), clip.id),
                }
                None
            }
        }
    }

    /// Like [`get`](Self::get), but says why an entry is not usable.
    pub fn lookup(&self, clip: &Clip, key: &CacheKey) -> Result<CachedFeatures, CacheMiss> {
        // The header alone rejects stale entries without reading the tensors.
        self.check(clip, key)?;
        let bytes = fs::read(self.path_for(clip))
            .map_err(|e| CacheMiss::Corrupt(format!("cannot read: {e}")))?;
        let tensors =
            SafeTensors::deserialize(&bytes).map_err(|e| CacheMiss::Corrupt(e.to_string()))?;
        let (_, header) =
            SafeTensors::read_metadata(&bytes).map_err(|e| CacheMiss::Corrupt(e.to_string()))?;
        let meta = header
            .metadata()
            .as_ref()
            .ok_or_else(|| CacheMiss::Corrupt("no metadata".into()))?;
        // Again on the bytes actually read: another process may have replaced the file.
        let stamp = VideoStamp::of(&clip.video)
            .map_err(|e| CacheMiss::VideoUnreadable(format!("{e:#}")))?;
        verify_metadata(meta, &entry_metadata(clip, key, &stamp))?;
        read_features(&tensors, key.regions).map_err(|e| CacheMiss::Corrupt(format!("{e:#}")))
    }

    /// Whether the clip has a valid entry for this key, reading only the file's header
    /// (metadata, and the length the header implies, so a truncated file is caught).
    pub fn check(&self, clip: &Clip, key: &CacheKey) -> Result<(), CacheMiss> {
        self.check_at(&self.path_for(clip), clip, key)
    }

    /// [`check`](Self::check) of sampling `k`'s entry (`key` from [`CacheKey::jittered`]
    /// for `k` ≥ 1).
    pub fn check_sampling(&self, clip: &Clip, key: &CacheKey, k: usize) -> Result<(), CacheMiss> {
        self.check_at(&self.path_for_sampling(clip, k), clip, key)
    }

    fn check_at(&self, path: &Path, clip: &Clip, key: &CacheKey) -> Result<(), CacheMiss> {
        let mut file = match fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(CacheMiss::Absent),
            Err(e) => return Err(CacheMiss::Corrupt(format!("cannot read: {e}"))),
        };
        let (meta, expected_len) = read_header(&mut file).map_err(CacheMiss::Corrupt)?;
        let actual_len = file
            .metadata()
            .map_err(|e| CacheMiss::Corrupt(format!("cannot stat: {e}")))?
            .len();
        if actual_len != expected_len {
            return Err(CacheMiss::Corrupt(format!(
                "{actual_len} bytes, the header describes {expected_len} (truncated?)"
            )));
        }
        let stamp = VideoStamp::of(&clip.video)
            .map_err(|e| CacheMiss::VideoUnreadable(format!("{e:#}")))?;
        verify_metadata(&meta, &entry_metadata(clip, key, &stamp))
    }

    /// Stores a clip's features (`[T, R, D]`, or `[T, D]` taken as R = 1) and frame
    /// timestamps atomically: a temp file in the cache directory, then a rename, so
    /// readers and concurrent writers never see half a file.
    pub fn put(
        &self,
        clip: &Clip,
        key: &CacheKey,
        features: &Tensor,
        timestamps: &[f64],
    ) -> anyhow::Result<PathBuf> {
        self.put_sampling(clip, key, 0, features, timestamps)
    }

    /// Like [`put`](Self::put) for sampling `k` (0: the uniform one; `k` ≥ 1: a jittered
    /// one, whose `key.sampling` comes from [`CacheKey::jittered`]).
    pub fn put_sampling(
        &self,
        clip: &Clip,
        key: &CacheKey,
        k: usize,
        features: &Tensor,
        timestamps: &[f64],
    ) -> anyhow::Result<PathBuf> {
        let features = match features.rank() {
            2 => features.unsqueeze(1)?,
            3 => features.clone(),
            r => bail!("clip {}: features must be [T, R, D], got rank {r}", clip.id),
        };
        let (t, r, d) = features.dims3()?;
        if t != timestamps.len() {
            bail!(
                "clip {}: {t} feature rows but {} timestamps",
                clip.id,
                timestamps.len()
            );
        }
        if r != key.regions {
            bail!(
                "clip {}: features have {r} regions, the cache key says {}",
                clip.id,
                key.regions
            );
        }
        let values: Vec<f32> = features
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?
            .flatten_all()?
            .to_vec1()?;
        let feature_bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let time_bytes: Vec<u8> = timestamps.iter().flat_map(|v| v.to_le_bytes()).collect();
        let stamp = VideoStamp::of(&clip.video)?;
        let views = [
            (
                FEATURES,
                TensorView::new(Dtype::F32, vec![t, r, d], &feature_bytes)?,
            ),
            (
                TIMESTAMPS,
                TensorView::new(Dtype::F64, vec![t], &time_bytes)?,
            ),
        ];
        let bytes = safetensors::serialize(views, Some(entry_metadata(clip, key, &stamp)))?;
        let path = self.path_for_sampling(clip, k);
        crate::atomic::write_atomic(&path, &bytes)
            .with_context(|| format!("clip {}: cannot write {}", clip.id, path.display()))?;
        Ok(path)
    }
}

/// Separates the uniform sampling from a jittered one's index in `sampling` metadata.
const JITTER_MARK: &str = "+jitter:";

impl CacheKey {
    /// The key of jittered sampling `k` (≥ 1) drawn with `seed`.
    pub fn jittered(&self, k: usize, seed: u64) -> CacheKey {
        CacheKey {
            sampling: format!("{}{JITTER_MARK}{k}:seed:{seed}", self.sampling),
            ..self.clone()
        }
    }
}

/// File stem of a clip's entry: sha256 of the absolute video path, the window and (for a
/// jittered sampling) its index.
fn entry_stem(clip: &Clip, sampling: usize) -> String {
    let video = std::path::absolute(&clip.video).unwrap_or_else(|_| clip.video.clone());
    let mut h = Sha256::new();
    h.update(video.as_os_str().as_encoded_bytes());
    h.update([0u8]);
    h.update(window_string(clip.start).as_bytes());
    h.update([0u8]);
    h.update(window_string(clip.end).as_bytes());
    if sampling > 0 {
        h.update([0u8]);
        h.update(format!("jitter:{sampling}").as_bytes());
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The features of a cache file already checked by [`FeatureCache::entries`], cut to the
/// first `regions` items of every frame (region 0 is the global pool in both layouts).
pub fn read_clip_features(path: &Path, regions: usize) -> anyhow::Result<ClipFeatures> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let tensors = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let f = tensors
        .tensor(FEATURES)
        .with_context(|| format!("{}: no features tensor", path.display()))?;
    let &[t, r, d] = f.shape() else {
        bail!("{}: features have shape {:?}", path.display(), f.shape());
    };
    if f.dtype() != Dtype::F32 || regions > r || regions == 0 {
        bail!(
            "{}: features are {:?} {:?}, need f32 with at least {regions} regions",
            path.display(),
            f.dtype(),
            f.shape()
        );
    }
    let data = f.data();
    let mut features = Vec::with_capacity(t * regions * d);
    for frame in 0..t {
        let start = frame * r * d * 4;
        let row = &data[start..start + regions * d * 4];
        features.extend(
            row.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    Ok(ClipFeatures {
        features,
        frames: t,
        regions,
        dim: d,
    })
}

/// A split's clips whose entries are valid, read one clip at a time while training.
pub struct CachedExamples {
    pub clips: Vec<Clip>,
    /// Per clip its entry files: the uniform sampling, then jittered ones.
    pub files: Vec<Vec<PathBuf>>,
    pub regions: usize,
}

impl CachedExamples {
    /// Every clip's features in memory (evaluation sets).
    pub fn load_all(&self) -> anyhow::Result<Vec<ClipFeatures>> {
        use rayon::prelude::*;
        self.files
            .par_iter()
            .map(|f| read_clip_features(&f[0], self.regions))
            .collect()
    }
}

/// The metadata an entry for this clip, key and video state must carry.
fn entry_metadata(clip: &Clip, key: &CacheKey, stamp: &VideoStamp) -> HashMap<String, String> {
    [
        ("cache_format", CACHE_FORMAT_VERSION.to_string()),
        ("vidcap_version", env!("CARGO_PKG_VERSION").to_string()),
        ("clip_id", clip.id.clone()),
        ("video_path", stamp.path.to_string_lossy().into_owned()),
        ("video_size", stamp.file.size.to_string()),
        ("video_mtime_ns", stamp.file.mtime_ns.to_string()),
        ("window_start", window_string(clip.start)),
        ("window_end", window_string(clip.end)),
        ("encoder", key.encoder.clone()),
        ("encoder_sha256", key.encoder_sha256.clone()),
        ("sampling", key.sampling.clone()),
        ("regions", key.regions.to_string()),
        (
            "motion",
            if key.motion {
                MOTION_FEATURES
            } else {
                NO_MOTION
            }
            .to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The `motion` metadata of entries without motion descriptors (and of entries written
/// before they existed, which have no `motion` key).
const NO_MOTION: &str = "none";

/// Compares an entry's metadata with what it must be now, in an order that makes the
/// reason name the most telling change.
fn verify_metadata(
    have: &HashMap<String, String>,
    want: &HashMap<String, String>,
) -> Result<(), CacheMiss> {
    for name in [
        "cache_format",
        "video_path",
        "video_size",
        "video_mtime_ns",
        "window_start",
        "window_end",
        "encoder",
        "encoder_sha256",
        "sampling",
        "regions",
        "motion",
    ] {
        let have_value = match have.get(name) {
            Some(value) => Some(value.as_str()),
            None if name == "motion" => Some(NO_MOTION),
            None => None,
        };
        match have_value {
            Some(h) if h == want[name] => {}
            Some(h) => {
                return Err(CacheMiss::Stale(format!(
                    "{name} is {h:?}, now {:?}",
                    want[name]
                )));
            }
            None => return Err(CacheMiss::Corrupt(format!("metadata has no {name}"))),
        }
    }
    Ok(())
}

/// A safetensors file's `__metadata__` and the file length its header implies.
fn read_header(file: &mut fs::File) -> Result<(HashMap<String, String>, u64), String> {
    // Our headers are a few hundred bytes; anything huge is not one of ours.
    const MAX_HEADER: u64 = 1 << 20;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|e| format!("cannot read the header length: {e}"))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER {
        return Err(format!("header length {n} is not plausible"));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header)
        .map_err(|e| format!("header cut short: {e}"))?;
    let header: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| format!("header is not valid JSON: {e}"))?;
    let mut meta = HashMap::new();
    let mut data_end = 0u64;
    for (name, value) in &header {
        if name == "__metadata__" {
            meta = serde_json::from_value(value.clone())
                .map_err(|e| format!("metadata is not a string map: {e}"))?;
        } else {
            let end = value
                .pointer("/data_offsets/1")
                .and_then(|v| v.as_u64())
                .ok_or_else(|| format!("tensor {name} has no data_offsets"))?;
            data_end = data_end.max(end);
        }
    }
    Ok((meta, 8 + n + data_end))
}

/// Shortest exact decimal of a window bound ("" = open), as it goes into names and metadata.
fn window_string(t: Option<f64>) -> String {
    t.map_or(String::new(), |t| format!("{t:?}"))
}

fn read_features(tensors: &SafeTensors<'_>, regions: usize) -> anyhow::Result<CachedFeatures> {
    let f = tensors.tensor(FEATURES).context("no features tensor")?;
    let ts = tensors.tensor(TIMESTAMPS).context("no timestamps tensor")?;
    let &[t, r, d] = f.shape() else {
        bail!("features have shape {:?}, expected [T, R, D]", f.shape());
    };
    if f.dtype() != Dtype::F32 || r != regions {
        bail!(
            "features are {:?} {:?}, expected f32 with {regions} regions",
            f.dtype(),
            f.shape()
        );
    }
    if ts.shape() != [t] {
        bail!("timestamps have shape {:?}, expected [{t}]", ts.shape());
    }
    let timestamps: Vec<f64> = match ts.dtype() {
        Dtype::F64 => ts
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::F32 => ts
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        other => bail!("timestamps are {other:?}, expected f64 or f32"),
    };
    let features = Tensor::from_raw_buffer(f.data(), DType::F32, &[t, r, d], &Device::Cpu)?;
    Ok(CachedFeatures {
        features,
        timestamps,
    })
}

/// The cached features of every clip of `split`, in dataset order. Clips without a valid
/// entry are left out, counted and the first few named in a warning; it is an error when
/// the split has no clip at all or none is cached (run `vidcap extract` first).
pub fn load_split_features(
    ds: &Dataset,
    cache: &FeatureCache,
    key: &CacheKey,
    split: Split,
) -> anyhow::Result<Vec<(Clip, CachedFeatures)>> {
    let mut found = Vec::new();
    let mut uncached: Vec<(String, CacheMiss)> = Vec::new();
    let mut total = 0usize;
    for clip in ds.split(split) {
        total += 1;
        match cache.lookup(clip, key) {
            Ok(features) => found.push((clip.clone(), features)),
            Err(miss) => {
                if let CacheMiss::Corrupt(_) = miss {
                    tracing::warn!(
                        "{}: clip {}: {miss}",
                        cache.path_for(clip).display(),
                        clip.id
                    );
                }
                uncached.push((clip.id.clone(), miss))
            }
        }
    }
    if total == 0 {
        bail!("the dataset has no {split} clips");
    }
    let named: Vec<String> = uncached
        .iter()
        .take(UNCACHED_NAMED)
        .map(|(id, why)| format!("{id} ({why})"))
        .collect();
    if found.is_empty() {
        bail!(
            "none of the {total} {split} clips has features in {} for encoder {} / {} (e.g. {}); run `vidcap extract` first",
            cache.dir().display(),
            key.encoder,
            key.sampling,
            named.join(", ")
        );
    }
    if !uncached.is_empty() {
        tracing::warn!(
            "{} of {total} {split} clips have no valid features in {} and are skipped, e.g. {}",
            uncached.len(),
            cache.dir().display(),
            named.join(", ")
        );
    }
    Ok(found)
}

/// The sha256 that identifies an encoder model directory's weights in a [`CacheKey`]: its
/// config's `provenance.sha256` (the imported checkpoint's hash) when present, else the
/// hash of `model.safetensors` itself.
pub fn encoder_weights_sha256(model_dir: &Path) -> anyhow::Result<String> {
    let config_path = model_dir.join("config.json");
    let text = fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read encoder config {}", config_path.display()))?;
    let config: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: invalid JSON", config_path.display()))?;
    if let Some(sha) = config
        .pointer("/provenance/sha256")
        .and_then(|v| v.as_str())
    {
        return Ok(sha.to_string());
    }
    let weights = model_dir.join("model.safetensors");
    let mut file = fs::File::open(&weights)
        .with_context(|| format!("cannot read encoder weights {}", weights.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("cannot read encoder weights {}", weights.display()))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A split's clips sorted by whether the cache holds valid entries for them.
#[derive(Debug, Default)]
pub struct SplitEntries {
    /// Clips with entries (uniform sampling first, then jittered ones), in dataset order.
    pub found: Vec<(Clip, Vec<PathBuf>)>,
    /// (clip id, why) of clips extract skipped (window after the end of the video).
    pub skipped: Vec<(String, String)>,
    /// (clip id, why not) for the others, in dataset order.
    pub uncached: Vec<(String, CacheMiss)>,
}

/// Checks every clip of `split` by its entries' headers (in parallel: a corpus has
/// thousands of small files); nothing is read beyond the headers. Unlike
/// [`load_split_features`] nothing is dropped silently; the caller decides whether an
/// uncached clip is fatal.
pub fn split_entries(
    ds: &Dataset,
    cache: &FeatureCache,
    key: &CacheKey,
    split: Split,
) -> SplitEntries {
    use rayon::prelude::*;
    let clips: Vec<&Clip> = ds.split(split).collect();
    let results: Vec<_> = clips
        .par_iter()
        .map(|clip| match cache.entries(clip, key) {
            Err(CacheMiss::Absent) => match cache.skipped(clip) {
                Some(why) => Err(Ok(why)),
                None => Err(Err(CacheMiss::Absent)),
            },
            Err(miss) => Err(Err(miss)),
            Ok(files) => Ok(files),
        })
        .collect();
    let mut out = SplitEntries::default();
    for (clip, result) in clips.into_iter().zip(results) {
        match result {
            Ok(files) => out.found.push((clip.clone(), files)),
            Err(Ok(why)) => out.skipped.push((clip.id.clone(), why)),
            Err(Err(miss)) => out.uncached.push((clip.id.clone(), miss)),
        }
    }
    out
}

/// "3 clips, e.g. a (not cached), b (stale: …)" for error messages.
pub fn describe_uncached(uncached: &[(String, CacheMiss)]) -> String {
    let named: Vec<String> = uncached
        .iter()
        .take(UNCACHED_NAMED)
        .map(|(id, why)| format!("{id} ({why})"))
        .collect();
    format!("{} clip(s), e.g. {}", uncached.len(), named.join(", "))
}
