//! Encoder throughput, the counterpart of `../shared/bench/encoder_ort.py`: forward passes on a
//! ready random tensor `[B, 3, 224, 224]` in [-1, 1), `--warmup` untimed calls, then `--runs`
//! calls each timed on its own; prints `encoder_vidcap batch=B images_per_s=X (median of N)`
//! with X = B / median(seconds per call). Like the peer's `session.run(["features"])`, a call
//! asks for the pooled features only (`--all-outputs`: also the 2×2 grid and the logits).
//!
//! `cargo bench --bench encoder -- [--threads 2] [--batch 1 16] [--warmup 10] [--runs 50]
//! [--plain] [--all-outputs] [--model DIR] [--profile]`; `--profile` prints instead the fast path's
//! time per layer at batch 1 (median of `--runs` passes) and per kind of layer.
use std::time::Instant;

use anyhow::Context;
use candle_core::{Device, Tensor};
use vidcap::encoder::efficientnet_lite::{Backend, EfficientNetLite};
use vidcap::encoder::{Outputs, encoder_dir};

struct Options {
    threads: usize,
    batches: Vec<usize>,
    warmup: usize,
    runs: usize,
    backend: Backend,
    outputs: Outputs,
    profile: bool,
    /// `None`: the installed `efficientnet-lite0`.
    model: Option<std::path::PathBuf>,
}

fn parse() -> anyhow::Result<Options> {
    let mut o = Options {
        threads: 2,
        batches: vec![1, 16],
        warmup: 10,
        runs: 50,
        backend: Backend::FastCpu,
        outputs: Outputs::FEATURES,
        profile: false,
        model: None,
    };
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| {
            args.get(i + 1)
                .with_context(|| format!("{} needs a value", args[i]))
        };
        match args[i].as_str() {
            "--threads" => o.threads = value(i)?.parse()?,
            "--warmup" => o.warmup = value(i)?.parse()?,
            "--runs" => o.runs = value(i)?.parse()?,
            "--model" => o.model = Some(value(i)?.into()),
            "--profile" => {
                o.profile = true;
                i += 1;
                continue;
            }
            "--all-outputs" => {
                o.outputs = Outputs::ALL;
                i += 1;
                continue;
            }
            "--plain" => {
                o.backend = Backend::Plain;
                i += 1;
                continue;
            }
            "--batch" => {
                o.batches.clear();
                while let Some(b) = args.get(i + 1).and_then(|v| v.parse().ok()) {
                    o.batches.push(b);
                    i += 1;
                }
                i += 1;
                continue;
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
        i += 2;
    }
    Ok(o)
}

fn main() -> anyhow::Result<()> {
    let o = parse()?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(o.threads)
        .build_global()?;
    // Looked up only without --model, so that --model works where none is installed.
    let model = match &o.model {
        Some(dir) => dir.clone(),
        None => encoder_dir("efficientnet-lite0").context("run `make models`, or pass --model")?,
    };
    let encoder = EfficientNetLite::load(&model, &Device::Cpu)?;
    if o.profile {
        return profile(&encoder, &o);
    }
    for &b in &o.batches {
        let x = Tensor::rand(-1f32, 1f32, (b, 3, 224, 224), &Device::Cpu)?;
        for _ in 0..o.warmup {
            encoder.forward_with_outputs(&x, o.backend, o.outputs)?;
        }
        let mut secs: Vec<f64> = (0..o.runs)
            .map(|_| {
                let t = Instant::now();
                encoder
                    .forward_with_outputs(&x, o.backend, o.outputs)
                    .map(|_| t.elapsed().as_secs_f64())
            })
            .collect::<anyhow::Result<_>>()?;
        secs.sort_by(f64::total_cmp);
        let median = secs[secs.len() / 2];
        println!(
            "encoder_vidcap batch={b} images_per_s={:.2} (median of {})",
            b as f64 / median,
            o.runs
        );
        println!(
            "#   batch={b} per-call median_ms={:.3} min_ms={:.3} max_ms={:.3} threads={} backend={:?} outputs={:?} simd={}",
            median * 1e3,
            secs[0] * 1e3,
            secs[secs.len() - 1] * 1e3,
            o.threads,
            o.backend,
            o.outputs,
            vidcap::simd::dispatch_level()
        );
    }
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn profile(encoder: &EfficientNetLite, o: &Options) -> anyhow::Result<()> {
    let x = Tensor::rand(-1f32, 1f32, (1, 3, 224, 224), &Device::Cpu)?;
    encoder.profile(&x, o.warmup)?;
    let times = encoder.profile(&x, o.runs)?;
    // Medians per layer (robust to the other processes of a shared machine).
    let layers: Vec<(&str, f64)> = times
        .layers
        .iter()
        .map(|(name, secs)| (name.as_str(), median(secs) * 1e3))
        .collect();
    let total: f64 = layers.iter().map(|l| l.1).sum();
    let mut kinds: Vec<(&str, f64)> = Vec::new();
    for &(name, ms) in &layers {
        println!("# layer {name:<20} {ms:.4} ms");
        let kind = name.rsplit(' ').next().unwrap_or(name);
        match kinds.iter_mut().find(|k| k.0 == kind) {
            Some(k) => k.1 += ms,
            None => kinds.push((kind, ms)),
        }
    }
    for (kind, ms) in kinds {
        println!("# kind  {kind:<20} {ms:.4} ms ({:.1}%)", 100.0 * ms / total);
    }
    println!(
        "# total {total:.4} ms per pass, sum of the layers' medians (threads={}, {} passes)",
        o.threads, o.runs
    );
    Ok(())
}
