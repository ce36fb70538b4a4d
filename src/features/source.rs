//! Cached features of a dataset's splits: the dataset, the cache folder and the key that
//! `vidcap extract` wrote the entries under, resolved once for `train`, `eval` and
//! `familiarity fit`.
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::ClipFeatures;
use super::assemble::ItemLayout;
use super::cache::{
    CacheKey, CachedExamples, FeatureCache, describe_uncached, encoder_weights_sha256,
    split_entries,
};
use crate::dataset::{
    Clip, Dataset, DatasetFormat, DatasetOptions, Split, dataset_dir, load_dataset,
};
use crate::encoder::{encoder_dir, load_encoder};

/// What the cached features were extracted with (the flags `vidcap extract` took), so the
/// key built here is the one extract wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSpec {
    /// Feature cache folder (default: features/ next to the annotations).
    pub cache: Option<PathBuf>,
    /// Encoder registry name or model directory.
    pub encoder: String,
    /// Frames sampled uniformly per clip.
    pub frames: usize,
    pub layout: ItemLayout,
    /// Folder of the videos (default: next to the annotations, or its videos/).
    pub videos: Option<PathBuf>,
    /// Annotation format, when the file name does not tell.
    pub format: Option<DatasetFormat>,
}

/// A split's examples, all cached, or an error naming how many are not and how to fix it.
pub struct LoadedSplit {
    pub clips: Vec<Clip>,
    pub features: Vec<ClipFeatures>,
}

/// Resolves the dataset, cache and key shared by train and eval.
pub struct FeatureSource {
    pub dataset: Dataset,
    pub cache: FeatureCache,
    pub key: CacheKey,
    dataset_path: PathBuf,
    spec: FeatureSpec,
}

impl FeatureSource {
    /// Loads the dataset and opens its cache under the key `vidcap extract` wrote with these
    /// settings; a missing cache is an error that gives the extract command filling it.
    pub fn open(dataset_path: &Path, spec: &FeatureSpec) -> anyhow::Result<Self> {
        let opts = DatasetOptions {
            format: spec.format,
            videos: spec.videos.clone(),
        };
        let dataset = load_dataset(dataset_path, &opts)?;
        let cache_dir = match &spec.cache {
            Some(dir) => dir.clone(),
            None => dataset_dir(dataset_path).join("features"),
        };
        if !cache_dir.is_dir() {
            bail!(
                "feature cache {} does not exist; fill it with `{}`",
                cache_dir.display(),
                extract_command(dataset_path, &cache_dir, spec)
            );
        }
        let cache = FeatureCache::open(&cache_dir)?;
        // Only a directory needs loading to learn the encoder's name; a registry name is it.
        let model_dir = encoder_dir(&spec.encoder)?;
        let name = if Path::new(&spec.encoder).is_dir() {
            load_encoder(&spec.encoder)?.name().to_string()
        } else {
            spec.encoder.clone()
        };
        let sha = encoder_weights_sha256(&model_dir).with_context(|| {
            format!(
                "the cache key needs the weights' hash of encoder {}",
                spec.encoder
            )
        })?;
        let key = CacheKey::new(
            &name,
            &sha,
            spec.frames,
            spec.layout.grid,
            spec.layout.motion,
        );
        Ok(Self {
            dataset,
            cache,
            key,
            dataset_path: dataset_path.to_path_buf(),
            spec: spec.clone(),
        })
    }

    /// Every clip of `split` with its cache entries, features read later one clip at a
    /// time; clips extract skipped (window after the end of the video) are left out and
    /// counted; an error when any other clip has no valid entry.
    pub fn entries(&self, split: Split, regions: usize) -> anyhow::Result<(CachedExamples, usize)> {
        if regions != 1 && regions != self.key.regions {
            bail!(
                "the decoder needs {regions} regions per frame but the cache holds {} (extracted {})",
                self.key.regions,
                if self.spec.layout.grid {
                    "with the grid"
                } else {
                    "with --no-grid"
                }
            );
        }
        let found = split_entries(&self.dataset, &self.cache, &self.key, split);
        if !found.uncached.is_empty() {
            bail!(
                "{} of the {} {split} clips of {} have no valid features in {} (encoder {}, {}, {} regions): {}; run `{}`",
                found.uncached.len(),
                found.uncached.len() + found.found.len(),
                self.dataset_path.display(),
                self.cache.dir().display(),
                self.key.encoder,
                self.key.sampling,
                self.key.regions,
                describe_uncached(&found.uncached),
                extract_command(&self.dataset_path, self.cache.dir(), &self.spec)
            );
        }
        if let Some((id, why)) = found.skipped.first() {
            tracing::warn!(
                "{}: {} {split} clip(s) skipped, as extract found them unusable, e.g. {id}: {why}",
                self.dataset_path.display(),
                found.skipped.len()
            );
        }
        let (clips, files) = found.found.into_iter().unzip();
        Ok((
            CachedExamples {
                clips,
                files,
                regions,
            },
            found.skipped.len(),
        ))
    }

    /// Every usable clip of `split` with its features in memory (evaluation).
    pub fn load(&self, split: Split, regions: usize) -> anyhow::Result<LoadedSplit> {
        let (examples, _) = self.entries(split, regions)?;
        let features = examples.load_all()?;
        Ok(LoadedSplit {
            clips: examples.clips,
            features,
        })
    }
}

/// The `vidcap extract` command that fills `cache` with the features these flags read.
fn extract_command(dataset: &Path, cache: &Path, spec: &FeatureSpec) -> String {
    let mut cmd = format!(
        "vidcap extract {} --out {} --encoder {} --frames {}",
        dataset.display(),
        cache.display(),
        spec.encoder,
        spec.frames
    );
    if !spec.layout.grid {
        cmd.push_str(" --no-grid");
    }
    if !spec.layout.motion {
        cmd.push_str(" --no-motion");
    }
    if let Some(v) = &spec.videos {
        cmd.push_str(&format!(" --videos {}", v.display()));
    }
    if let Some(f) = spec.format {
        cmd.push_str(&format!(" --format {f}"));
    }
    cmd
}
