use std::time::Instant;
use vidcap::encoder::kernels::{Activation, depthwise::Depthwise};
fn main() {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .unwrap();
    for &(h, c, k, s) in &[
        (112usize, 96usize, 3usize, 2usize),
        (56, 144, 3, 1),
        (28, 240, 5, 1),
        (14, 672, 5, 1),
        (7, 1152, 5, 1),
        (14, 480, 3, 1),
    ] {
        let dw = Depthwise {
            height: h,
            width: h,
            channels: c,
            kernel: k,
            stride: s,
        };
        let input = vec![0.5f32; h * h * c];
        let w = vec![0.1f32; k * k * c];
        let b = vec![0.0f32; c];
        let (oh, ow) = dw.output_size();
        let mut out = vec![0f32; oh * ow * c];
        let mut best = f64::MAX;
        for _ in 0..200 {
            let t = Instant::now();
            dw.run(&input, &w, &b, Activation::Relu6, &mut out);
            best = best.min(t.elapsed().as_secs_f64());
        }
        let macs = (oh * ow * c * k * k) as f64;
        println!(
            "dw h{h} c{c} k{k} s{s}: best {:.1} us, {:.1} GMAC/s",
            best * 1e6,
            macs / best / 1e9
        );
    }
}
