//! The feature cache: round trip, staleness on every input it depends on, concurrent
//! writers, corrupt files, and the training-side reader.
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use candle_core::{Device, Tensor};
use rayon::prelude::*;
use vidcap::dataset::{Clip, Dataset, DatasetFormat, Split};
use vidcap::features::cache::{CacheKey, CacheMiss, FeatureCache, load_split_features};

fn key() -> CacheKey {
    CacheKey {
        encoder: "efficientnet-lite0".into(),
        encoder_sha256: "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db".into(),
        sampling: "uniform:4".into(),
        regions: 2,
        motion: false,
    }
}

fn video(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, vec![7u8; 1000]).unwrap();
    p
}

fn clip(id: &str, video: &Path, window: Option<(f64, f64)>, split: Split) -> Clip {
    Clip {
        id: id.into(),
        video: video.to_path_buf(),
        start: window.map(|w| w.0),
        end: window.map(|w| w.1),
        captions: vec!["a caption".into()],
        split,
    }
}

/// Features whose values identify the clip, so a mix-up between entries shows.
fn features(seed: f32) -> (Tensor, Vec<f64>) {
    let (t, r, d) = (4, 2, 8);
    let values: Vec<f32> = (0..t * r * d)
        .map(|i| seed + i as f32 * 0.25 - 3.0)
        .collect();
    let tensor = Tensor::from_vec(values, (t, r, d), &Device::Cpu).unwrap();
    let stamps = (0..t).map(|i| seed as f64 + i as f64 / 3.0).collect();
    (tensor, stamps)
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn stale_reason(cache: &FeatureCache, clip: &Clip, key: &CacheKey) -> String {
    match cache.lookup(clip, key) {
        Err(CacheMiss::Stale(why)) => why,
        Err(other) => panic!("expected stale, got {other}"),
        Ok(_) => panic!("expected stale, got a hit"),
    }
}

#[test]
fn round_trip_keeps_values_shape_and_timestamps() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = FeatureCache::open(tmp.path().join("cache/nested")).unwrap();
    let v = video(tmp.path(), "a.mp4");
    // An id with slashes and a window: the file name is a hash, so both are safe.
    let c = clip(
        "../weird/id/with/slashes",
        &v,
        Some((1.5, 4.25)),
        Split::Train,
    );
    assert!(cache.get(&c, &key()).is_none());
    assert_eq!(cache.lookup(&c, &key()).unwrap_err(), CacheMiss::Absent);
    let (f, ts) = features(1.0);
    let path = cache.put(&c, &key(), &f, &ts).unwrap();
    assert_eq!(path.parent().unwrap(), cache.dir());
    let got = cache.get(&c, &key()).expect("hit");
    assert_eq!(got.features.dims(), &[4, 2, 8]);
    assert_eq!(values(&got.features), values(&f));
    assert_eq!(got.timestamps, ts);
    // The file is plain safetensors with the documented metadata.
    let bytes = fs::read(&path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().as_ref().unwrap();
    assert_eq!(meta["encoder"], "efficientnet-lite0");
    assert_eq!(meta["sampling"], "uniform:4");
    assert_eq!(meta["regions"], "2");
    assert_eq!(meta["video_size"], "1000");
    assert_eq!(meta["window_start"], "1.5");
    assert_eq!(
        Path::new(&meta["video_path"]),
        std::path::absolute(&v).unwrap()
    );
    // Another window of the same video is another entry.
    let other = clip("x", &v, Some((0.0, 1.5)), Split::Train);
    assert_eq!(cache.lookup(&other, &key()).unwrap_err(), CacheMiss::Absent);
    // A [T, D] tensor is stored as one region.
    let flat_key = CacheKey {
        regions: 1,
        ..key()
    };
    let flat = Tensor::ones((3, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
    cache
        .put(&other, &flat_key, &flat, &[0.0, 1.0, 2.0])
        .unwrap();
    assert_eq!(
        cache.get(&other, &flat_key).unwrap().features.dims(),
        &[3, 1, 5]
    );
}

#[test]
fn put_rejects_inconsistent_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = FeatureCache::open(tmp.path()).unwrap();
    let c = clip("c", &video(tmp.path(), "c.mp4"), None, Split::Train);
    let (f, ts) = features(0.0);
    let err = cache.put(&c, &key(), &f, &ts[..3]).unwrap_err().to_string();
    assert!(err.contains("timestamps"), "{err}");
    let err = cache
        .put(
            &c,
            &CacheKey {
                regions: 3,
                ..key()
            },
            &f,
            &ts,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("regions"), "{err}");
    let missing = clip("m", &tmp.path().join("gone.mp4"), None, Split::Train);
    let err = format!("{:#}", cache.put(&missing, &key(), &f, &ts).unwrap_err());
    assert!(err.contains("gone.mp4"), "{err}");
}

#[test]
fn touching_or_resizing_the_video_makes_the_entry_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = FeatureCache::open(tmp.path().join("cache")).unwrap();
    let v = video(tmp.path(), "v.mp4");
    let c = clip("v", &v, None, Split::Train);
    let (f, ts) = features(2.0);
    cache.put(&c, &key(), &f, &ts).unwrap();
    assert!(cache.get(&c, &key()).is_some());

    let original = fs::metadata(&v).unwrap().modified().unwrap();
    let touched = original + Duration::from_secs(5);
    File::options()
        .write(true)
        .open(&v)
        .unwrap()
        .set_modified(touched)
        .unwrap();
    assert!(cache.get(&c, &key()).is_none());
    assert!(stale_reason(&cache, &c, &key()).contains("video_mtime_ns"));

    // Same mtime as when cached, but another size: still stale.
    let mut file = OpenOptions::new().append(true).open(&v).unwrap();
    file.write_all(b"more").unwrap();
    file.set_modified(original).unwrap();
    drop(file);
    assert_eq!(fs::metadata(&v).unwrap().modified().unwrap(), original);
    assert!(stale_reason(&cache, &c, &key()).contains("video_size"));

    // Re-extracting makes it valid again.
    cache.put(&c, &key(), &f, &ts).unwrap();
    assert!(cache.get(&c, &key()).is_some());
    // A video that vanished cannot be validated.
    fs::remove_file(&v).unwrap();
    assert!(matches!(
        cache.lookup(&c, &key()),
        Err(CacheMiss::VideoUnreadable(_))
    ));
}

#[test]
fn another_encoder_weights_sampling_regions_or_motion_is_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = FeatureCache::open(tmp.path()).unwrap();
    let c = clip(
        "v",
        &video(tmp.path(), "v.mp4"),
        Some((0.0, 2.0)),
        Split::Train,
    );
    let (f, ts) = features(3.0);
    cache.put(&c, &key(), &f, &ts).unwrap();
    for (changed, field) in [
        (
            CacheKey {
                encoder: "resnet18".into(),
                ..key()
            },
            "encoder",
        ),
        (
            CacheKey {
                encoder_sha256: "0".repeat(64),
                ..key()
            },
            "encoder_sha256",
        ),
        (
            CacheKey {
                sampling: "uniform:16".into(),
                ..key()
            },
            "sampling",
        ),
        (
            CacheKey {
                regions: 1,
                ..key()
            },
            "regions",
        ),
        (
            CacheKey {
                motion: true,
                ..key()
            },
            "motion",
        ),
    ] {
        assert!(cache.get(&c, &changed).is_none(), "{field}");
        assert!(
            matches!(cache.check(&c, &changed), Err(CacheMiss::Stale(_))),
            "{field}"
        );
        let why = stale_reason(&cache, &c, &changed);
        assert!(why.starts_with(&format!("{field} is")), "{why}");
    }
    assert!(cache.get(&c, &key()).is_some());
}

#[test]
fn concurrent_puts_from_rayon_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = FeatureCache::open(tmp.path().join("cache")).unwrap();
    let videos: Vec<PathBuf> = (0..8)
        .map(|i| video(tmp.path(), &format!("v{i}.mp4")))
        .collect();
    let clips: Vec<Clip> = (0..64)
        .map(|i| {
            let w = (i / 8) as f64;
            clip(
                &format!("c{i}"),
                &videos[i % 8],
                Some((w, w + 1.0)),
                Split::Train,
            )
        })
        .collect();
    // Every clip written by several threads at once, plus distinct clips in parallel.
    (0..256usize).into_par_iter().for_each(|n| {
        let i = n % 64;
        let (f, ts) = features(i as f32);
        cache.put(&clips[i], &key(), &f, &ts).unwrap();
    });
    for (i, c) in clips.iter().enumerate() {
        let got = cache
            .get(c, &key())
            .unwrap_or_else(|| panic!("clip {i} missing"));
        let (f, ts) = features(i as f32);
        assert_eq!(values(&got.features), values(&f), "clip {i}");
        assert_eq!(got.timestamps, ts);
    }
    let names: Vec<String> = fs::read_dir(cache.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.len(),
        64,
        "one file per clip, no temp files left: {names:?}"
    );
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".safetensors") && !n.starts_with('.'))
    );
}

#[test]
fn truncated_or_garbage_files_are_misses_not_crashes() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = FeatureCache::open(tmp.path()).unwrap();
    let c = clip("v", &video(tmp.path(), "v.mp4"), None, Split::Train);
    let (f, ts) = features(4.0);
    let path = cache.put(&c, &key(), &f, &ts).unwrap();
    let full = fs::read(&path).unwrap();
    for cut in [0, 5, 8, 40, full.len() / 2, full.len() - 1] {
        fs::write(&path, &full[..cut]).unwrap();
        assert!(cache.get(&c, &key()).is_none(), "cut at {cut}");
        assert!(
            matches!(cache.lookup(&c, &key()), Err(CacheMiss::Corrupt(_))),
            "cut at {cut}"
        );
    }
    fs::write(&path, b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage").unwrap();
    assert!(matches!(
        cache.lookup(&c, &key()),
        Err(CacheMiss::Corrupt(_))
    ));
    // A valid safetensors file without our metadata (someone else's) is also corrupt.
    let foreign = safetensors::serialize(
        [(
            "features",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &[0u8; 4])
                .unwrap(),
        )],
        None,
    )
    .unwrap();
    fs::write(&path, foreign).unwrap();
    assert!(matches!(
        cache.lookup(&c, &key()),
        Err(CacheMiss::Corrupt(_))
    ));
    cache.put(&c, &key(), &f, &ts).unwrap();
    assert!(cache.get(&c, &key()).is_some());
    assert_eq!(cache.check(&c, &key()), Ok(()));
}

#[test]
fn split_features_come_only_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = FeatureCache::open(tmp.path().join("cache")).unwrap();
    let clips: Vec<Clip> = (0..5)
        .map(|i| {
            let split = if i < 3 { Split::Train } else { Split::Val };
            clip(
                &format!("c{i}"),
                &video(tmp.path(), &format!("v{i}.mp4")),
                None,
                split,
            )
        })
        .collect();
    let ds = Dataset {
        clips: clips.clone(),
        missing: vec![],
        format: DatasetFormat::Jsonl,
        empty_captions: 0,
    };
    let err = format!(
        "{:#}",
        load_split_features(&ds, &cache, &key(), Split::Train).unwrap_err()
    );
    assert!(
        err.contains("none of the 3 train clips") && err.contains("vidcap extract"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        load_split_features(&ds, &cache, &key(), Split::Test).unwrap_err()
    );
    assert!(err.contains("no test clips"), "{err}");

    for i in [0, 2, 3] {
        let (f, ts) = features(i as f32);
        cache.put(&clips[i], &key(), &f, &ts).unwrap();
    }
    let train = load_split_features(&ds, &cache, &key(), Split::Train).unwrap();
    let ids: Vec<&str> = train.iter().map(|(c, _)| c.id.as_str()).collect();
    assert_eq!(ids, ["c0", "c2"], "c1 is not cached and is skipped");
    assert_eq!(values(&train[1].1.features), values(&features(2.0).0));
    let val = load_split_features(&ds, &cache, &key(), Split::Val).unwrap();
    assert_eq!(val.len(), 1);
    // Features of another sampling are not used for training.
    let other = CacheKey {
        sampling: "uniform:16".into(),
        ..key()
    };
    assert!(load_split_features(&ds, &cache, &other, Split::Train).is_err());
}
