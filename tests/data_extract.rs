//! `extract_dataset` with a small stand-in encoder (quadrant mean colours, so features are
//! cheap and still depend on the frames) over short videos made by the ffmpeg CLI:
//! filling, resuming, re-extracting only what changed, and isolating broken videos.
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use candle_core::{Device, Tensor};
use vidcap::encoder::{EncoderOutput, FrameEncoder};
use vidcap::train::cache::{FeatureCache, load_split_features};
use vidcap::train::data::{DatasetOptions, Split, load_dataset};
use vidcap::train::extract::{ClipOutcome, ExtractSpec, RunOptions, extract_dataset};

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
    };
    let seen = Mutex::new(Vec::new());
    let progress = |clip: &vidcap::train::data::Clip, outcome: &ClipOutcome| {
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
