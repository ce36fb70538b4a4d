//! `vidcap classify IMAGE|TENSOR.npy --top K [--json]`: the encoder's ImageNet top-K.
use std::path::PathBuf;

use crate::encoder::load_encoder;
use anyhow::Context;
use serde::Serialize;

use super::embed::input_batches;
use super::{EXIT_OK, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// An image (PNG, JPEG), or a .npy tensor (N,3,224,224) that is already preprocessed.
    pub input: PathBuf,
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
    for batch in input_batches(encoder.as_ref(), &args.input)? {
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
