//! Kernel micro-benchmarks on the shapes of EfficientNet-Lite0 at batch 1, one thread:
//! best-of-N time and GMAC/s per kernel call (`cargo bench --bench kbench`).
use std::time::Instant;

use vidcap::encoder::kernels::Activation;
use vidcap::encoder::kernels::depthwise::Depthwise;
use vidcap::encoder::kernels::pointwise::Pointwise;

fn best(mut f: impl FnMut()) -> f64 {
    (0..100)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .unwrap();
    for &(h, c, k, s) in &[
        (112, 96, 3, 2),
        (56, 144, 3, 1),
        (56, 144, 5, 2),
        (28, 240, 5, 1),
        (14, 672, 5, 1),
        (7, 1152, 5, 1),
    ] {
        let dw = Depthwise {
            height: h,
            width: h,
            channels: c,
            kernel: k,
            stride: s,
        };
        let (input, w, b) = (
            vec![0.5f32; h * h * c],
            vec![0.1f32; k * k * c],
            vec![0.0f32; c],
        );
        let (oh, ow) = dw.output_size();
        let mut out = vec![0f32; oh * ow * c];
        let mut scratch = Vec::new();
        let t =
            best(|| dw.run_with_scratch(&input, &w, &b, Activation::Relu6, &mut out, &mut scratch));
        let macs = (oh * ow * c * k * k) as f64;
        println!(
            "depthwise {h}x{h}x{c} k{k} s{s}: {:.1} us, {:.1} GMAC/s",
            t * 1e6,
            macs / t / 1e9
        );
        if let Some(pad) = dw.padded_input() {
            let padded = vec![0.5f32; pad.pixels() * c];
            let t = best(|| dw.run_padded(&padded, &w, &b, Activation::Relu6, &mut out));
            println!(
                "  kernel alone (input already padded): {:.1} us, {:.1} GMAC/s",
                t * 1e6,
                macs / t / 1e9
            );
        }
    }
    for &(rows, k, n) in &[
        (12544, 16, 96),
        (3136, 144, 24),
        (784, 240, 40),
        (196, 672, 112),
        (196, 112, 672),
        (49, 192, 1152),
        (49, 1152, 192),
        (49, 1152, 320),
        (49, 320, 1280),
    ] {
        let pw = Pointwise::new(vec![0.01f32; k * n], k, n, vec![0.0; n]);
        let input = vec![0.5f32; rows * k];
        let mut out = vec![0f32; rows * n];
        let t = best(|| pw.run(&input, rows, Activation::Relu6, None, &mut out));
        let macs = (rows * k * n) as f64;
        println!(
            "pointwise {rows}x{k} -> {n}: {:.1} us, {:.1} GMAC/s",
            t * 1e6,
            macs / t / 1e9
        );
    }
}
