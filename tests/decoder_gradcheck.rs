//! The hand-written BPTT of the whole decoder against central finite differences, in f64.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vidcap::decoder::bptt::{Batch, PassOptions, Tape, loss_and_grad, loss_and_grad_with};
use vidcap::decoder::params::{Dims, Weights, layout};

fn check(attention: bool, opts: PassOptions) {
    let d = Dims {
        vocab: 11,
        embed: 5,
        hidden: 6,
        feat: 4,
        regions: 2,
        att: 3,
        attention,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut w: Weights<f64> = Weights::init(&d, 3);
    // Non-zero region embedding, so its gradient path is exercised away from zero.
    w.region
        .iter_mut()
        .for_each(|x| *x = rng.random_range(-0.5..0.5));
    // Three clips with 2, 3 and 1 frames of 2 regions each.
    let clips: Vec<Vec<f64>> = [2usize, 3, 1]
        .iter()
        .map(|&t| {
            (0..t * d.regions * d.feat)
                .map(|_| rng.random_range(0.0..2.0))
                .collect()
        })
        .collect();
    let len = 5;
    // Captions of 5, 3 and 1 targets (the last is <eos> = 2), then <pad> = 0.
    let targets: Vec<u32> = vec![4, 5, 6, 7, 2, 8, 9, 2, 0, 0, 2, 0, 0, 0, 0];
    let tokens_in: Vec<u32> = vec![1, 4, 5, 6, 7, 1, 8, 9, 0, 0, 1, 0, 0, 0, 0];
    let batch = Batch {
        clips: clips.iter().map(Vec::as_slice).collect(),
        tokens_in: &tokens_in,
        targets: &targets,
        len,
    };
    let mut g = Weights::zeros(&d);
    let loss = loss_and_grad(&w, &d, &batch, &opts, Some(&mut g));
    assert!(loss.is_finite() && loss > 0.0);
    let eps = 1e-6;
    let names = layout(&d);
    for (i, (name, _)) in names.iter().enumerate() {
        let n = w.tensors()[i].len();
        if n == 0 {
            continue;
        }
        let analytic = g.tensors()[i].clone();
        assert!(
            analytic.iter().any(|x| x.abs() > 1e-8),
            "{name}: gradient is all zero"
        );
        #[allow(clippy::needless_range_loop)] // j indexes the weights and the gradient alike
        for j in 0..n {
            let orig = w.tensors()[i][j];
            w.tensors_mut()[i][j] = orig + eps;
            let up = loss_and_grad(&w, &d, &batch, &opts, None);
            w.tensors_mut()[i][j] = orig - eps;
            let down = loss_and_grad(&w, &d, &batch, &opts, None);
            w.tensors_mut()[i][j] = orig;
            let numeric = (up - down) / (2.0 * eps);
            let a = analytic[j];
            let scale = a.abs().max(numeric.abs());
            assert!(
                (a - numeric).abs() <= 1e-4 * scale + 1e-9,
                "{name}[{j}]: analytic {a:e} vs numeric {numeric:e} (attention={attention})"
            );
        }
    }
}

#[test]
fn attention_decoder_gradients_match_finite_differences() {
    check(true, PassOptions::default());
}

#[test]
fn attention_decoder_with_dropout_and_label_smoothing() {
    check(
        true,
        PassOptions {
            dropout: 0.3,
            label_smoothing: 0.1,
            seed: 11,
            all_positions: true,
        },
    );
}

#[test]
fn meanpool_decoder_gradients_match_finite_differences() {
    check(
        false,
        PassOptions {
            dropout: 0.2,
            label_smoothing: 0.1,
            seed: 5,
            all_positions: false,
        },
    );
}

/// A tape and a gradient reused pass after pass (as the trainer does) give the same bits as
/// fresh ones, whatever the previous pass left in them: batches of other sizes, the other
/// decoder kind, dropout on and off, every position or only the targets, and a gradient
/// that starts as NaN.
#[test]
fn reused_tape_and_gradient_match_fresh_ones() {
    let dims = |attention| Dims {
        vocab: 13,
        embed: 5,
        hidden: 6,
        feat: 4,
        regions: 2,
        att: 3,
        attention,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    // (frames per clip, caption length per clip, len)
    let shapes: [(&[usize], &[usize], usize); 3] = [
        (&[2, 3, 1], &[5, 3, 1], 5),
        (&[4, 1], &[2, 7], 7),
        (&[1, 2, 3, 2], &[3, 1, 3, 2], 3),
    ];
    // (clips, tokens_in, targets, len) of each batch
    type OwnedBatch = (Vec<Vec<f32>>, Vec<u32>, Vec<u32>, usize);
    let batches: Vec<OwnedBatch> = shapes
        .iter()
        .map(|&(frames, lens, len)| {
            let clips = frames
                .iter()
                .map(|&t| (0..t * 2 * 4).map(|_| rng.random_range(0.0..2.0)).collect())
                .collect();
            let (mut tokens_in, mut targets) = (vec![], vec![]);
            for &l in lens {
                for t in 0..len {
                    tokens_in.push(if t == 0 {
                        1
                    } else if t < l {
                        rng.random_range(3..13)
                    } else {
                        0
                    });
                    targets.push(if t + 1 < l {
                        rng.random_range(3..13)
                    } else if t + 1 == l {
                        2
                    } else {
                        0
                    });
                }
            }
            (clips, tokens_in, targets, len)
        })
        .collect();
    let mut tape = Tape::default();
    let mut reused: Weights<f32> = Weights::zeros(&dims(true));
    reused
        .tensors_mut()
        .into_iter()
        .for_each(|t| t.fill(f32::NAN));
    let runs = [
        (true, 0, 0.3, false),
        (false, 1, 0.0, true),
        (true, 2, 0.0, false),
        (true, 1, 0.2, true),
        (true, 0, 0.0, true),
    ];
    for (run, &(attention, which, dropout, all_positions)) in runs.iter().enumerate() {
        let d = dims(attention);
        let w: Weights<f32> = Weights::init(&d, 3);
        let (clips, tokens_in, targets, len) = &batches[which];
        let batch = Batch {
            clips: clips.iter().map(Vec::as_slice).collect(),
            tokens_in,
            targets,
            len: *len,
        };
        let opts = PassOptions {
            dropout,
            label_smoothing: 0.1,
            seed: run as u64,
            all_positions,
        };
        let mut fresh = Weights::zeros(&d);
        let want = loss_and_grad(&w, &d, &batch, &opts, Some(&mut fresh));
        let got = loss_and_grad_with(&mut tape, &w, &d, &batch, &opts, Some(&mut reused));
        assert_eq!(got.to_bits(), want.to_bits(), "run {run}: loss");
        for ((name, _), (a, b)) in layout(&d)
            .iter()
            .zip(reused.tensors().iter().zip(fresh.tensors()))
        {
            assert!(
                a.iter()
                    .zip(b.iter())
                    .all(|(x, y)| x.to_bits() == y.to_bits())
                    && a.len() == b.len(),
                "run {run}: {name} differs"
            );
        }
    }
}
