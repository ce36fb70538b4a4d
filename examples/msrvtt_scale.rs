//! Builds an MSR-VTT-shaped training set for `scripts/bench_train_scale.sh`: a
//! `videodatainfo.json` in the published schema (videos with `video_id`, `url`,
//! `start time`, `end time`, `split`; sentences with `video_id`, `caption`, `sen_id`), an
//! empty stand-in file per video (the cache stamps the file; training never decodes), and
//! random features written straight into the feature cache in vidcap's format.
//!
//! Usage: msrvtt_scale OUT_DIR CLIPS CAPTIONS_PER_CLIP VOCAB [SUBSET_CLIPS]
//! Writes OUT_DIR/full/videodatainfo.json and, with SUBSET_CLIPS, OUT_DIR/subset/ (its
//! first clips, the same videos and cache); the cache goes to OUT_DIR/cache.
use std::path::Path;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde_json::json;
use vidcap::dataset::{DatasetOptions, load_dataset};
use vidcap::features::cache::{CacheKey, FeatureCache};

/// Frames, regions and width of the default cache (EfficientNet-Lite0 + motion descriptor).
const FRAMES: usize = 16;
const REGIONS: usize = 5;
const DIM: usize = 1280 + 203;

/// A pronounceable pseudo-word per index, so the vocabulary is as large as asked.
fn word(mut i: usize) -> String {
    const ON: [&str; 12] = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t"];
    const NU: [&str; 5] = ["a", "e", "i", "o", "u"];
    let mut w = String::new();
    loop {
        w.push_str(ON[i % ON.len()]);
        i /= ON.len();
        w.push_str(NU[i % NU.len()]);
        i /= NU.len();
        if i == 0 {
            return w;
        }
    }
}

fn write_dataset(dir: &Path, videos: &[serde_json::Value], sentences: &[serde_json::Value]) {
    std::fs::create_dir_all(dir).unwrap();
    let doc = json!({
        "info": {"contributor": "vidcap scale benchmark", "year": 2026},
        "videos": videos,
        "sentences": sentences,
    });
    std::fs::write(dir.join("videodatainfo.json"), doc.to_string()).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = Path::new(&args[1]);
    let clips: usize = args[2].parse().unwrap();
    let per_clip: usize = args[3].parse().unwrap();
    let vocab: usize = args[4].parse().unwrap();
    let subset: Option<usize> = args.get(5).map(|s| s.parse().unwrap());
    let video_dir = out.join("videos");
    std::fs::create_dir_all(&video_dir).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(20261205);
    let mut videos = Vec::with_capacity(clips);
    let mut sentences = Vec::with_capacity(clips * per_clip);
    for i in 0..clips {
        // MSR-VTT's 6513 / 497 / 2990 split, in proportion.
        let split = match i * 10_000 / clips {
            r if r < 6513 => "train",
            r if r < 7010 => "validate",
            _ => "test",
        };
        let id = format!("video{i}");
        std::fs::write(video_dir.join(format!("{id}.mp4")), b"").unwrap();
        let start = rng.random_range(0.0..200.0f64);
        videos.push(json!({
            "category": i % 20, "url": format!("https://www.youtube.com/watch?v=vid{i:07}"),
            "video_id": id, "start time": start, "end time": start + 15.0,
            "split": split, "id": i,
        }));
        for _ in 0..per_clip {
            // Half the words uniform over the vocabulary (every word is seen), half from a
            // small frequent core, as captions have.
            let n = rng.random_range(7..=12);
            let caption: Vec<String> = (0..n)
                .map(|_| {
                    if rng.random_bool(0.5) {
                        word(rng.random_range(0..vocab))
                    } else {
                        word(rng.random_range(0..50))
                    }
                })
                .collect();
            sentences.push(json!({
                "caption": caption.join(" "), "video_id": format!("video{i}"),
                "sen_id": sentences.len(),
            }));
        }
    }
    write_dataset(&out.join("full"), &videos, &sentences);
    if let Some(n) = subset {
        let ids: std::collections::HashSet<String> =
            (0..n).map(|i| format!("video{}", i * clips / n)).collect();
        let keep = |v: &serde_json::Value| ids.contains(v["video_id"].as_str().unwrap());
        let v: Vec<_> = videos.iter().filter(|v| keep(v)).cloned().collect();
        let s: Vec<_> = sentences.iter().filter(|s| keep(s)).cloned().collect();
        write_dataset(&out.join("subset"), &v, &s);
    }
    let opts = DatasetOptions {
        videos: Some(video_dir.clone()),
        ..DatasetOptions::default()
    };
    let ds = load_dataset(&out.join("full/videodatainfo.json"), &opts).unwrap();
    let cache = FeatureCache::open(out.join("cache")).unwrap();
    let sha = std::env::var("ENCODER_SHA").expect("ENCODER_SHA: the encoder weights' sha256");
    let key = CacheKey::new("efficientnet-lite0", &sha, FRAMES, true, true);
    ds.clips.par_iter().enumerate().for_each(|(i, clip)| {
        let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
        let values: Vec<f32> = (0..FRAMES * REGIONS * DIM)
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        let f = Tensor::from_vec(values, (FRAMES, REGIONS, DIM), &Device::Cpu).unwrap();
        let stamps: Vec<f64> = (0..FRAMES).map(|t| t as f64).collect();
        cache.put(clip, &key, &f, &stamps).unwrap();
    });
    println!(
        "{} clips, {} captions, cache {}",
        ds.clips.len(),
        sentences.len(),
        cache.dir().display()
    );
}
