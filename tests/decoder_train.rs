//! Training end to end on tiny synthetic data: overfitting 20 clips, exact resume, and
//! search (beam width 1 = an independent greedy loop).
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vidcap::decoder::step::ClipMemory;
use vidcap::decoder::{Arch, CaptionModel, SearchOptions};
use vidcap::features::ClipFeatures;
use vidcap::text::vocab::{BOS, EOS};
use vidcap::train::optim::Decay;
use vidcap::train::trainer::{TrainConfig, TrainExample, checkpoint_weights, train};

const COLORS: [&str; 5] = ["red", "blue", "green", "black", "white"];
const THINGS: [&str; 4] = ["dog", "car", "man", "bird"];
const ACTIONS: [&str; 5] = ["runs", "jumps", "sits", "turns", "waits"];

/// 20 clips with random features [3 frames, 2 regions, 8] and one distinct caption each.
fn corpus(seed: u64) -> Vec<TrainExample> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..20)
        .map(|i| {
            let caption = format!(
                "a {} {} {} near the {}",
                COLORS[i % 5],
                THINGS[i % 4],
                ACTIONS[(i / 4) % 5],
                THINGS[(i + 1) % 4]
            );
            TrainExample {
                clip: ClipFeatures {
                    features: (0..3 * 2 * 8).map(|_| rng.random_range(0.0..2.0)).collect(),
                    frames: 3,
                    regions: 2,
                    dim: 8,
                },
                captions: vec![caption],
                id: format!("clip{i}"),
            }
        })
        .collect()
}

fn small_config(arch: Arch, epochs: usize) -> TrainConfig {
    TrainConfig {
        arch,
        encoder: "test-features".into(),
        motion: false,
        hidden: 48,
        embed: 16,
        att_dim: 16,
        dropout: 0.0,
        min_count: 1,
        max_len: 12,
        epochs,
        batch_size: 10,
        lr: 1e-2,
        weight_decay: 0.0,
        warmup_steps: 5,
        decay: Decay::Cosine,
        min_lr_ratio: 0.1,
        clip_norm: 5.0,
        label_smoothing: 0.0,
        scheduled_sampling: 0.0,
        patience: 0,
        seed: 3,
        stop_after_epochs: None,
        init_from: None,
    }
}

fn exact_match(data: &[TrainExample]) -> impl Fn(&[(String, String)]) -> f64 + '_ {
    move |pairs| {
        let hits = pairs
            .iter()
            .zip(data)
            .filter(|((_, hyp), ex)| *hyp == ex.captions[0])
            .count();
        hits as f64 / pairs.len() as f64
    }
}

fn overfit(arch: Arch) {
    let data = corpus(1);
    let dir = tempfile::tempdir().unwrap();
    let summary = train(
        &small_config(arch, 400),
        &data,
        &[],
        dir.path(),
        &|_| 0.0,
        false,
    )
    .unwrap();
    assert!(summary.final_loss < 0.02, "loss {}", summary.final_loss);
    let model = CaptionModel::load(dir.path()).unwrap();
    let clips: Vec<ClipFeatures> = data.iter().map(|e| e.clip.clone()).collect();
    for beam in [1, 3] {
        let opts = SearchOptions {
            beam,
            max_len: 12,
            length_penalty: 1.0,
            no_repeat_ngram: 0,
        };
        let hyps = model.caption(&clips, &opts).unwrap();
        for (h, e) in hyps.iter().zip(&data) {
            assert_eq!(h.text, e.captions[0], "beam {beam}");
        }
    }
    // The log and the plot are written.
    let log = std::fs::read_to_string(dir.path().join("train_log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 400);
    assert!(
        std::fs::read_to_string(dir.path().join("train_plot.svg"))
            .unwrap()
            .contains("<svg")
    );
}

#[test]
fn attention_decoder_overfits_twenty_clips_and_reproduces_their_captions() {
    overfit(Arch::Attention);
}

#[test]
fn meanpool_decoder_overfits_twenty_clips_and_reproduces_their_captions() {
    overfit(Arch::Meanpool);
}

#[test]
fn resume_gives_the_same_final_weights_as_an_uninterrupted_run() {
    let data = corpus(2);
    let (train_set, val_set) = data.split_at(16);
    let mut cfg = small_config(Arch::Attention, 6);
    cfg.dropout = 0.2;
    cfg.label_smoothing = 0.1;
    cfg.scheduled_sampling = 0.3;
    cfg.weight_decay = 1e-3;
    cfg.batch_size = 5;
    let score = exact_match(val_set);
    let straight = tempfile::tempdir().unwrap();
    let a = train(&cfg, train_set, val_set, straight.path(), &score, false).unwrap();
    assert!(a.finished && a.epochs_done == 6);

    let split = tempfile::tempdir().unwrap();
    let mut first = cfg.clone();
    first.stop_after_epochs = Some(2);
    let b1 = train(&first, train_set, val_set, split.path(), &score, false).unwrap();
    assert!(!b1.finished && b1.epochs_done == 2);
    let b = train(&cfg, train_set, val_set, split.path(), &score, true).unwrap();
    assert_eq!(b.epochs_done, 6);
    assert_eq!(a.final_loss.to_bits(), b.final_loss.to_bits());

    let model = CaptionModel::load(straight.path()).unwrap();
    let dims = model.config.dims();
    let wa = checkpoint_weights(straight.path(), &dims).unwrap();
    let wb = checkpoint_weights(split.path(), &dims).unwrap();
    assert!(wa == wb, "final weights differ after resume");
    // And training did change them.
    let fresh = vidcap::decoder::Weights::<f32>::init(&dims, cfg.seed);
    assert!(wa != fresh);
    let strip = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p.join("train_log.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("seconds");
                v.to_string()
            })
            .collect()
    };
    assert_eq!(strip(straight.path()), strip(split.path()));
}

#[test]
fn resume_with_a_different_config_is_refused() {
    let data = corpus(4);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config(Arch::Meanpool, 2);
    cfg.stop_after_epochs = Some(1);
    train(&cfg, &data, &[], dir.path(), &|_| 0.0, false).unwrap();
    cfg.lr = 5e-3;
    let err = train(&cfg, &data, &[], dir.path(), &|_| 0.0, true).unwrap_err();
    assert!(
        format!("{err:#}").contains("different training configuration"),
        "{err:#}"
    );
}

/// Plain greedy decoding written independently of `search`.
fn greedy(model: &CaptionModel, clip: &ClipFeatures, max_len: usize) -> Vec<u32> {
    let decoder = model.decoder();
    let mems = [ClipMemory::new(decoder.w, &decoder.d, clip)];
    let mut state = decoder.states(mems[0].h0());
    let (mut tok, mut out) = (BOS, vec![]);
    for _ in 0..max_len {
        // Only the most probable token must be exact for argmax.
        let (next, logp) = decoder.step(&mems, &[0], &state, &[tok], 1);
        state = next;
        tok = (0..logp.len()).fold(0, |best, i| if logp[i] > logp[best] { i } else { best }) as u32;
        if tok == EOS {
            break;
        }
        out.push(tok);
    }
    out
}

#[test]
fn beam_width_one_is_greedy_and_wider_beams_score_at_least_as_well() {
    let data = corpus(5);
    let dir = tempfile::tempdir().unwrap();
    // A partly trained model: captions are neither random nor memorised.
    train(
        &small_config(Arch::Attention, 8),
        &data,
        &[],
        dir.path(),
        &|_| 0.0,
        false,
    )
    .unwrap();
    let model = CaptionModel::load(dir.path()).unwrap();
    let clips: Vec<ClipFeatures> = data.iter().map(|e| e.clip.clone()).collect();
    let opts = |beam| SearchOptions {
        beam,
        max_len: 12,
        length_penalty: 0.0,
        no_repeat_ngram: 0,
    };
    let one = model.caption(&clips, &opts(1)).unwrap();
    let wide = model.caption(&clips, &opts(4)).unwrap();
    for (i, clip) in clips.iter().enumerate() {
        assert_eq!(one[i].tokens, greedy(&model, clip, 12), "clip {i}");
        assert_eq!(one[i].text, model.vocab.decode(&one[i].tokens));
        assert!(
            wide[i].score >= one[i].score - 1e-5,
            "clip {i}: beam 4 {} < greedy {}",
            wide[i].score,
            one[i].score
        );
    }
    // Batched search gives what clip-by-clip search gives.
    for (i, clip) in clips.iter().enumerate() {
        let single = model.caption(std::slice::from_ref(clip), &opts(4)).unwrap();
        assert_eq!(single[0].tokens, wide[i].tokens);
    }
}
