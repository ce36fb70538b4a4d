//! `extract_dataset` with a small stand-in encoder (quadrant mean colours, so features are
//! cheap and still depend on the frames) over short videos made by the ffmpeg CLI:
//! filling, resuming, re-extracting only what changed, and isolating broken videos.
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use candle_core::{Device, Tensor};
use vidcap::dataset::{DatasetOptions, Split, load_dataset};
use vidcap::encoder::{EncoderOutput, FrameEncoder};
use vidcap::features::cache::{FeatureCache, load_split_features};
use vidcap::features::extract::{ClipOutcome, ExtractSpec, RunOptions, extract_dataset};

/// Mean colour of each image quadrant: preprocess gives `[3, 2, 2]`, features are the
/// global mean `[N, 3]`, the grid the quadrants `[N, 4, 3]` row-major.
struct QuadrantMeans;

impl FrameEncoder for QuadrantMeans {
    fn name(&self) -> &str {
        "quadrant-means"
    }
    fn feature_dim(&self) -> usize {
        3
    }
    fn input_size(&self) -> usize {
        2
    }
    fn resize_shorter(&self) -> u32 {
        32
    }
    fn preprocess(&self, rgb: &[u8], width: u32, height: u32) -> anyhow::Result<Tensor> {
        let (w, h) = (width as usize, height as usize);
        anyhow::ensure!(rgb.len() == w * h * 3, "bad frame size");
        let mut sums = [0f64; 12];
        let mut counts = [0f64; 4];
        for y in 0..h {
            for x in 0..w {
                let q = (y * 2 / h) * 2 + x * 2 / w;
                counts[q] += 1.0;
                for c in 0..3 {
                    sums[c * 4 + q] += rgb[(y * w + x) * 3 + c] as f64;
                }
            }
        }
        let chw: Vec<f32> = (0..12)
            .map(|i| (sums[i] / counts[i % 4] / 255.0) as f32)
            .collect();
        Ok(Tensor::from_vec(chw, (3, 2, 2), &Device::Cpu)?)
    }
    fn forward(&self, batch: &Tensor) -> anyhow::Result<EncoderOutput> {
        let n = batch.dim(0)?;
        let grid = batch.reshape((n, 3, 4))?.transpose(1, 2)?.contiguous()?;
        Ok(EncoderOutput {
            features: grid.mean(1)?,
            logits: None,
            grid: Some(grid),
        })
    }
    fn labels(&self) -> Option<&[String]> {
        None
    }
}

fn make_video(path: &Path, hue: u32, seconds: u32) {
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=duration={seconds}:size=96x64:rate=25"))
        .args(["-vf", &format!("hue=h={hue}"), "-c:v", "mpeg4", "-q:v", "5"])
        .arg(path)
        .status()
        .expect("ffmpeg CLI");
    assert!(status.success());
}

#[test]
fn extract_fills_resumes_and_reextracts_only_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let videos = tmp.path().join("videos");
    fs::create_dir(&videos).unwrap();
    for (i, hue) in [0, 120, 240].iter().enumerate() {
        make_video(&videos.join(format!("c{i}.mp4")), *hue, 3);
    }
    fs::write(videos.join("broken.mp4"), b"this is not a video").unwrap();
    fs::write(
        tmp.path().join("annotations.jsonl"),
        [
            r#"{"video": "videos/c0.mp4", "captions": ["a"], "split": "train"}"#,
            r#"{"video": "videos/c1.mp4", "start": 0.5, "end": 2.5, "captions": ["b"], "split": "train"}"#,
            r#"{"video": "videos/c2.mp4", "captions": ["c"], "split": "val"}"#,
            r#"{"video": "videos/broken.mp4", "captions": ["d"], "split": "train"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let ds = load_dataset(tmp.path(), &DatasetOptions::default()).unwrap();
    let cache = FeatureCache::open(tmp.path().join("cache")).unwrap();
    let encoder = QuadrantMeans;
    let spec = ExtractSpec {
        frames: 6,
        grid: true,
        motion: false,
    };
    let key = spec.key(&encoder, "weights-sha");
    let run = RunOptions {
        jobs: 3,
        force: false,
        samplings: 1,
        seed: 0,
    };
    let seen = Mutex::new(Vec::new());
    let progress = |clip: &vidcap::dataset::Clip, outcome: &ClipOutcome| {
        seen.lock()
            .unwrap()
            .push((clip.id.clone(), outcome.clone()));
    };

    let first = extract_dataset(&ds.clips, &cache, &encoder, &spec, &key, run, &progress).unwrap();
    assert_eq!((first.extracted, first.up_to_date), (3, 0));
    assert_eq!(first.failed.len(), 1);
    let (id, video, why) = &first.failed[0];
    assert_eq!(id, "videos/broken.mp4");
    assert!(
        why.contains("broken.mp4"),
        "the error names the file: {why}"
    );
    assert_eq!(video, &videos.join("broken.mp4"));
    assert_eq!(seen.lock().unwrap().len(), 4, "progress once per clip");

    let train = load_split_features(&ds, &cache, &key, Split::Train).unwrap();
    assert_eq!(train.len(), 2);
    for (clip, f) in &train {
        assert_eq!(f.features.dims(), &[6, 5, 3], "{}", clip.id);
        let (lo, hi) = (clip.start.unwrap_or(0.0), clip.end.unwrap_or(3.0));
        assert!(
            f.timestamps.windows(2).all(|w| w[0] < w[1]),
            "{:?}",
            f.timestamps
        );
        assert!(
            f.timestamps.iter().all(|&t| t >= lo && t < hi),
            "{:?}",
            f.timestamps
        );
        // Region 0 is the global pool: the mean of the four equal quadrants here.
        let global = f.features.narrow(1, 0, 1).unwrap().squeeze(1).unwrap();
        let quads = f.features.narrow(1, 1, 4).unwrap().mean(1).unwrap();
        let diff = (global - quads).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    }
    // Another hue gives other features.
    let a = train[0]
        .1
        .features
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = train[1]
        .1
        .features
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 0.05));

    // Second run: everything valid is skipped.
    let second = extract_dataset(&ds.clips, &cache, &encoder, &spec, &key, run, &progress).unwrap();
    assert_eq!(
        (second.extracted, second.up_to_date, second.failed.len()),
        (0, 3, 1)
    );

    // Replace one video: only that clip is re-extracted, with the new content.
    let c2 = videos.join("c2.mp4");
    let before = load_split_features(&ds, &cache, &key, Split::Val).unwrap();
    make_video(&c2, 60, 2);
    let later = fs::metadata(&c2).unwrap().modified().unwrap() + Duration::from_secs(2);
    fs::File::options()
        .write(true)
        .open(&c2)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let third = extract_dataset(&ds.clips, &cache, &encoder, &spec, &key, run, &progress).unwrap();
    assert_eq!((third.extracted, third.up_to_date), (1, 2));
    let after = load_split_features(&ds, &cache, &key, Split::Val).unwrap();
    assert_ne!(
        before[0]
            .1
            .features
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        after[0]
            .1
            .features
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    );
    assert!(
        after[0].1.timestamps.iter().all(|&t| t < 2.0),
        "new 2 s video"
    );

    // Another sampling is another key: all re-extracted, global pool only.
    let spec8 = ExtractSpec {
        frames: 8,
        grid: false,
        motion: false,
    };
    let key8 = spec8.key(&encoder, "weights-sha");
    let fourth =
        extract_dataset(&ds.clips, &cache, &encoder, &spec8, &key8, run, &progress).unwrap();
    assert_eq!(fourth.extracted, 3);
    let val = load_split_features(&ds, &cache, &key8, Split::Val).unwrap();
    assert_eq!(val[0].1.features.dims(), &[8, 1, 3]);
    // …and the old key's entries were replaced (one file per clip window).
    assert!(load_split_features(&ds, &cache, &key, Split::Val).is_err());
}

/// Frame timestamps stored in a cache file.
fn stored_timestamps(path: &Path) -> Vec<f64> {
    let bytes = fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensor("timestamps")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn jittered_samplings_are_reproducible_and_late_windows_are_skipped() {
    use vidcap::features::cache::{read_clip_features, split_entries};
    let tmp = tempfile::tempdir().unwrap();
    make_video(&tmp.path().join("v.mp4"), 0, 3);
    fs::write(
        tmp.path().join("annotations.jsonl"),
        [
            r#"{"id": "whole", "video": "v.mp4", "captions": ["a"], "split": "train"}"#,
            r#"{"id": "late", "video": "v.mp4", "start": 5.0, "end": 6.0, "captions": ["b"], "split": "train"}"#,
            r#"{"id": "overrun", "video": "v.mp4", "start": 2.0, "end": 4.0, "captions": ["c"], "split": "train"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let ds = load_dataset(tmp.path(), &DatasetOptions::default()).unwrap();
    let encoder = QuadrantMeans;
    let spec = ExtractSpec {
        frames: 4,
        grid: true,
        motion: false,
    };
    let key = spec.key(&encoder, "weights-sha");
    let run = |seed: u64, dir: &str| {
        let cache = FeatureCache::open(tmp.path().join(dir)).unwrap();
        let opts = RunOptions {
            jobs: 2,
            force: false,
            samplings: 3,
            seed,
        };
        let report =
            extract_dataset(&ds.clips, &cache, &encoder, &spec, &key, opts, &|_, _| {}).unwrap();
        (cache, report)
    };
    let (cache, report) = run(7, "a");
    assert_eq!(report.extracted, 2);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.skipped.len(), 1);
    let (id, _, why) = &report.skipped[0];
    assert_eq!(id, "late");
    assert!(
        why.contains("v.mp4") && why.contains("after the video ends"),
        "{why}"
    );

    // Train sees the skip recorded in the cache, not a clip waiting for extraction.
    let found = split_entries(&ds, &cache, &key, Split::Train);
    assert!(found.uncached.is_empty(), "{:?}", found.uncached);
    assert_eq!(found.skipped.len(), 1);
    assert_eq!(found.found.len(), 2);
    let whole = &found.found.iter().find(|(c, _)| c.id == "whole").unwrap().1;
    assert_eq!(whole.len(), 3, "uniform + 2 jittered samplings");
    let times: Vec<Vec<f64>> = whole.iter().map(|p| stored_timestamps(p)).collect();
    // Uniform targets are slot centres; jittered ones fall anywhere in their slot (the
    // first frame at or after the target, 25 fps).
    let slot = 3.0 / 4.0;
    for (k, t) in times.iter().enumerate() {
        assert_eq!(t.len(), 4);
        for (i, &ts) in t.iter().enumerate() {
            assert!(
                ts >= i as f64 * slot - 1e-6 && ts < (i + 1) as f64 * slot + 0.04 + 1e-6,
                "sampling {k} frame {i} at {ts}"
            );
        }
    }
    assert!(times[1] != times[0] && times[2] != times[0] && times[1] != times[2]);
    for path in whole {
        assert_eq!(read_clip_features(path, 5).unwrap().frames, 4);
    }
    // A window past the end is clamped to the video.
    let overrun = &found
        .found
        .iter()
        .find(|(c, _)| c.id == "overrun")
        .unwrap()
        .1;
    let t = stored_timestamps(&overrun[0]);
    assert!(t.iter().all(|&x| (2.0..3.0).contains(&x)), "{t:?}");

    // The same seed gives the same samplings; another seed others.
    let (same, _) = run(7, "b");
    let (other, _) = run(8, "c");
    let files = |c: &FeatureCache| split_entries(&ds, c, &key, Split::Train).found;
    for ((a, b), c) in files(&cache).iter().zip(files(&same)).zip(files(&other)) {
        for k in 0..3 {
            assert_eq!(stored_timestamps(&a.1[k]), stored_timestamps(&b.1[k]));
            if k > 0 {
                assert_ne!(stored_timestamps(&a.1[k]), stored_timestamps(&c.1[k]));
            }
        }
    }
    // A second run finds everything up to date, the skip included.
    let (_, again) = run(7, "a");
    assert_eq!(
        (again.extracted, again.up_to_date, again.skipped.len()),
        (0, 2, 1)
    );
}
