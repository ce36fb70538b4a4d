//! Decoder speed with the shapes of ../shared/bench/gru_train_torch.py (see
//! scripts/bench_decoder.sh, which alternates this with the PyTorch peer).
//!
//! Train: one step = forward over all B·T positions, masked cross-entropy, BPTT,
//! grad-norm clip 5.0, Adam (lr 1e-3, no weight decay); tokens/s = B·T / median step time,
//! and the median of each phase (forward, backward, clip, Adam) as a diagnostic line.
//! Infer (`--infer`): greedy 20 tokens for one clip (no stop at `<eos>`), initial state
//! included; ms per caption, median.
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vidcap::decoder::bptt::{Batch, PassOptions, Tape};
use vidcap::decoder::params::{Dims, Weights};
use vidcap::decoder::step::{ClipMemory, Decoder, Prepared};
use vidcap::train::optim::{AdamW, clip_grad_norm};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads = arg(&args, "--threads", 2);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let attention = args.iter().any(|a| a == "--attention");
    let (bsz, frames, len) = (
        arg(&args, "--batch", 32),
        arg(&args, "--frames", 16),
        arg(&args, "--len", 20),
    );
    let d = Dims {
        vocab: arg(&args, "--vocab", 5000),
        embed: arg(&args, "--emb", 300),
        hidden: arg(&args, "--hidden", 512),
        feat: arg(&args, "--feat-dim", 1280),
        regions: 1,
        att: arg(&args, "--att-dim", 256),
        attention,
    };
    let variant = if attention {
        "attention"
    } else {
        "meanpool-fused"
    };
    let (warmup, steps) = (arg(&args, "--warmup", 5), arg(&args, "--steps", 30));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut w: Weights<f32> = Weights::init(&d, 0);
    if args.iter().any(|a| a == "--infer") {
        let clip = vidcap::features::ClipFeatures {
            features: (0..frames * d.feat)
                .map(|_| rng.random_range(0.0..2.0))
                .collect(),
            frames,
            regions: 1,
            dim: d.feat,
        };
        let runs = arg(&args, "--runs", 50);
        // What a captioner prepares once per model (the f16 output projection); word gates
        // fill in as words are met, so the first caption also pays for its words once.
        let t0 = Instant::now();
        let prepared = Prepared::new(&w, &d);
        let t_prepare = t0.elapsed().as_secs_f64();
        let decoder = Decoder {
            w: &w,
            d,
            prepared: &prepared,
        };
        let (mut times, mut mem_times) = (vec![], vec![]);
        for i in 0..warmup + runs {
            let t0 = Instant::now();
            // Inside the pool, as search runs: each step's fork/join then stays among workers.
            let (tok, t_mem) = vidcap::decoder::linalg::in_pool(|| {
                let mem = [ClipMemory::new(&w, &d, &clip)];
                let t_mem = t0.elapsed().as_secs_f64();
                let mut state = decoder.states(mem[0].h0());
                let mut tok = 1u32;
                for _ in 0..20 {
                    let (next, logp) = decoder.step(&mem, &[0], &state, &[tok], 1);
                    state = next;
                    tok = logp
                        .iter()
                        .enumerate()
                        .fold(
                            (0, f32::NEG_INFINITY),
                            |b, (i, &x)| if x > b.1 { (i, x) } else { b },
                        )
                        .0 as u32;
                }
                (tok, t_mem)
            });
            std::hint::black_box(tok);
            if i == 0 {
                println!(
                    "#   model prepared in {:.3} ms; first caption {:.3} ms",
                    t_prepare * 1e3,
                    t0.elapsed().as_secs_f64() * 1e3
                );
            }
            if i >= warmup {
                times.push(t0.elapsed().as_secs_f64());
                mem_times.push(t_mem);
            }
        }
        println!(
            "decoder_infer ms_per_caption={:.3} (median of {runs}; greedy 20 tokens, batch 1, variant={variant})",
            median(times) * 1e3
        );
        println!(
            "#   of which ClipMemory::new {:.3} ms (median; frames={frames})",
            median(mem_times) * 1e3
        );
        return;
    }
    // The peer's data: features in [0,2), caption lengths uniform in [8, len], 4 batches cycled.
    // (per-clip features, caption tokens, caption lengths) of one batch
    type PeerBatch = (Vec<Vec<f32>>, Vec<u32>, Vec<u32>);
    let pool: Vec<PeerBatch> = (0..4)
        .map(|_| {
            let clips = (0..bsz)
                .map(|_| {
                    (0..frames * d.feat)
                        .map(|_| rng.random_range(0.0..2.0))
                        .collect()
                })
                .collect();
            let (mut tin, mut tgt) = (vec![0u32; bsz * len], vec![0u32; bsz * len]);
            for b in 0..bsz {
                let l = rng.random_range(8..=len);
                let words: Vec<u32> = (0..len)
                    .map(|_| rng.random_range(3..d.vocab as u32))
                    .collect();
                for t in 0..l {
                    tin[b * len + t] = if t == 0 { 1 } else { words[t - 1] };
                    tgt[b * len + t] = if t + 1 < l { words[t] } else { 2 };
                }
            }
            (clips, tin, tgt)
        })
        .collect();
    // `--all-positions`: project every position to the vocabulary as the peer does, instead
    // of only those with a target (same loss and gradient either way).
    let all_positions = args.iter().any(|a| a == "--all-positions");
    let mut opt = AdamW::new(&d, 0.0);
    let mut g = Weights::zeros(&d);
    // Kept across steps, as the trainer keeps it.
    let mut tape = Tape::default();
    let (mut times, mut losses) = (vec![], vec![]);
    // Per phase: forward, backward, clip, Adam (seconds).
    let mut phases: [Vec<f64>; 4] = Default::default();
    for i in 0..warmup + steps {
        let (clips, tin, tgt) = &pool[i % pool.len()];
        let t0 = Instant::now();
        let batch = Batch {
            clips: clips.iter().map(Vec::as_slice).collect(),
            tokens_in: tin,
            targets: tgt,
            len,
        };
        let opts = PassOptions {
            all_positions,
            ..Default::default()
        };
        tape.record(&w, &d, &batch, &opts);
        let loss = tape.loss;
        let t1 = Instant::now();
        tape.backward(&w, &d, &mut g);
        let t2 = Instant::now();
        clip_grad_norm(&mut g, 5.0);
        let t3 = Instant::now();
        opt.step(&mut w, &g, 1e-3);
        let t4 = Instant::now();
        if i >= warmup {
            times.push((t4 - t0).as_secs_f64());
            for (p, (a, b)) in phases
                .iter_mut()
                .zip([(t0, t1), (t1, t2), (t2, t3), (t3, t4)])
            {
                p.push((b - a).as_secs_f64());
            }
        }
        losses.push(loss);
    }
    let med = median(times);
    println!(
        "decoder_train tokens_per_s={:.1} steps_per_s={:.3} (median of {steps} steps; variant={variant} B={bsz} T={len} V={} positions={})",
        (bsz * len) as f64 / med,
        1.0 / med,
        d.vocab,
        if all_positions { "all" } else { "targets" }
    );
    println!("#   loss {:.4} -> {:.4}", losses[0], losses.last().unwrap());
    let [f, b, c, a] = phases.map(|p| median(p) * 1e3);
    println!("#   median ms: forward {f:.2}, backward {b:.2}, clip {c:.2}, adam {a:.2}");
}
