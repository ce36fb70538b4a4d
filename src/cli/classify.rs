//! `vidcap classify IMAGE|VIDEO|TENSOR.npy --top K [--json]`: the encoder's ImageNet top-K
//! (per frame for a video).
use std::path::PathBuf;

use crate::encoder::load_encoder;
use anyhow::Context;
use serde::Serialize;

use super::embed::input_batches;
use super::{EXIT_OK, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// An image (PNG, JPEG), a video, or a .npy tensor (N,3,224,224) that is already
    /// preprocessed.
    pub input: PathBuf,
    /// Frames sampled uniformly from a video input.
    #[arg(long, default_value_t = 16)]
    pub frames: usize,
    /// How many classes to list.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    pub top: u16,
    /// Print one JSON document: `[{class_id, label, prob}]` (one such list per image for a
    /// tensor of several images).
    #[arg(long)]
    pub json: bool,
    /// Encoder: a registry name or a model directory.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub encoder: String,
}

/// One sampled frame of a video input and its classes.
#[derive(Serialize)]
struct VideoFrameClasses {
    index: usize,
    pts: f64,
    classes: Vec<Class>,
}

#[derive(Serialize)]
struct Class {
    class_id: usize,
    label: String,
    prob: f64,
}

/// Softmax (in f64) of one row of logits, the `k` most probable classes first.
fn top_k(logits: &[f32], labels: &[String], k: usize) -> Vec<Class> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|i| Class {
            class_id: i,
            label: labels.get(i).cloned().unwrap_or_default(),
            prob: exp[i] / sum,
        })
        .collect()
}

pub fn run(args: Args, _global: &Global) -> anyhow::Result<u8> {
    let encoder = load_encoder(&args.encoder)?;
    let labels = encoder
        .labels()
        .with_context(|| format!("encoder {} has no classifier", encoder.name()))?
        .to_vec();
    let mut results = Vec::new();
    let (batches, pts) = input_batches(encoder.as_ref(), &args.input, args.frames)?;
    for batch in batches {
        let logits = encoder
            .forward(&batch)?
            .logits
            .with_context(|| format!("encoder {} has no classifier", encoder.name()))?;
        for row in logits
            .to_device(&candle_core::Device::Cpu)?
            .to_vec2::<f32>()?
        {
            results.push(top_k(&row, &labels, args.top as usize));
        }
    }
    if let Some(pts) = pts {
        let frames: Vec<VideoFrameClasses> = pts
            .into_iter()
            .zip(results)
            .enumerate()
            .map(|(index, (pts, classes))| VideoFrameClasses {
                index,
                pts,
                classes,
            })
            .collect();
        if args.json {
            println!("{}", serde_json::to_string_pretty(&frames)?);
        } else {
            for f in &frames {
                println!("# frame {} at {:.3} s", f.index, f.pts);
                for c in &f.classes {
                    println!("{:>4}  {:>7.3}%  {}", c.class_id, 100.0 * c.prob, c.label);
                }
            }
        }
        return Ok(EXIT_OK);
    }
    if args.json {
        let doc = if results.len() == 1 {
            serde_json::to_string_pretty(&results[0])?
        } else {
            serde_json::to_string_pretty(&results)?
        };
        println!("{doc}");
    } else {
        for (i, classes) in results.iter().enumerate() {
            if results.len() > 1 {
                println!("# image {i}");
            }
            for c in classes {
                println!("{:>4}  {:>7.3}%  {}", c.class_id, 100.0 * c.prob, c.label);
            }
        }
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::top_k;

    #[test]
    fn top_k_orders_by_logit_and_normalises() {
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let top = top_k(&[1.0, 3.0, 2.0], &labels, 2);
        assert_eq!((top[0].class_id, top[1].class_id), (1, 2));
        let z = 1f64.exp() + 3f64.exp() + 2f64.exp();
        assert!((top[0].prob - 3f64.exp() / z).abs() < 1e-12);
    }
}
