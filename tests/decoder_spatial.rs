//! What the 2×2 grid of region features buys: captions that name WHERE an object is can
//! only be learnt when the decoder attends over the cells; the global pool (the mean of the
//! cells) keeps what, not where. Synthetic features, so the test isolates the decoder.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vidcap::decoder::Arch;
use vidcap::features::ClipFeatures;
use vidcap::train::optim::Decay;
use vidcap::train::trainer::{TrainConfig, TrainExample, train};

const OBJECTS: [&str; 6] = ["cat", "dog", "car", "ball", "bird", "cup"];
const PLACES: [&str; 4] = ["top left", "top right", "bottom left", "bottom right"];
const DIM: usize = 8;

/// Two frames; each has 4 cells of noise, the object's one-hot code added to cell `place`.
/// `regions` 1: the global pool only; 5: global pool + the 4 cells.
fn clip(rng: &mut ChaCha8Rng, object: usize, place: usize, regions: usize) -> ClipFeatures {
    let mut features = vec![];
    for _ in 0..2 {
        let cells: Vec<Vec<f32>> = (0..4)
            .map(|c| {
                (0..DIM)
                    .map(|k| {
                        let signal = if c == place && k == object { 2.0 } else { 0.0 };
                        signal + rng.random_range(0.0..0.3)
                    })
                    .collect()
            })
            .collect();
        let global: Vec<f32> = (0..DIM)
            .map(|k| cells.iter().map(|c| c[k]).sum::<f32>() / 4.0)
            .collect();
        features.extend(&global);
        if regions == 5 {
            cells.iter().for_each(|c| features.extend(c));
        }
    }
    ClipFeatures {
        features,
        frames: 2,
        regions,
        dim: DIM,
    }
}

#[allow(clippy::needless_range_loop)] // o and p are the class labels, not just indices
fn data(seed: u64, per_combo: usize, regions: usize) -> Vec<TrainExample> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = vec![];
    for o in 0..OBJECTS.len() {
        for p in 0..PLACES.len() {
            for k in 0..per_combo {
                out.push(TrainExample {
                    clip: clip(&mut rng, o, p, regions),
                    captions: vec![format!("a {} in the {}", OBJECTS[o], PLACES[p])],
                    id: format!("{o}-{p}-{k}"),
                });
            }
        }
    }
    out
}

/// Exact-match rate of greedy captions on held-out clips after training.
fn held_out_accuracy(regions: usize) -> f64 {
    let train_set = data(1, 8, regions);
    let val_set = data(2, 2, regions);
    let cfg = TrainConfig {
        arch: Arch::Attention,
        encoder: "synthetic".into(),
        motion: false,
        hidden: 32,
        embed: 16,
        att_dim: 16,
        dropout: 0.0,
        min_count: 1,
        max_len: 8,
        epochs: 100,
        batch_size: 32,
        lr: 1e-2,
        weight_decay: 0.0,
        warmup_steps: 10,
        decay: Decay::Cosine,
        min_lr_ratio: 0.1,
        clip_norm: 5.0,
        label_smoothing: 0.0,
        scheduled_sampling: 0.0,
        patience: 0,
        seed: 1,
        stop_after_epochs: None,
        init_from: None,
    };
    let score = |pairs: &[(String, String)]| {
        let hits = pairs
            .iter()
            .zip(&val_set)
            .filter(|((_, h), e)| *h == e.captions[0])
            .count();
        hits as f64 / pairs.len() as f64
    };
    let dir = tempfile::tempdir().unwrap();
    let summary = train(&cfg, &train_set, &val_set, dir.path(), &score, false).unwrap();
    let best = summary.best_score.unwrap();
    eprintln!(
        "regions={regions}: held-out exact match {best:.3} (best epoch {:?})",
        summary.best_epoch
    );
    best
}

#[test]
fn grid_regions_let_the_decoder_say_where_and_the_global_pool_cannot() {
    let global_only = held_out_accuracy(1);
    let with_grid = held_out_accuracy(5);
    // Chance for the place is 1/4; the object alone is learnable from the global pool.
    assert!(global_only < 0.5, "global pool only: {global_only}");
    assert!(with_grid > 0.9, "with the 2×2 grid: {with_grid}");
}
