//! EfficientNet-Lite0 against the independent PyTorch float64 reference of
//! `scripts/encoder_reference.py` (outputs committed under tests/data/encoder/), and the fast
//! CPU path against the plain candle path. Needs `models/efficientnet-lite0` (`make models`).
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{Device, Tensor};
use vidcap::encoder::FrameEncoder;
use vidcap::encoder::efficientnet_lite::{Backend, EfficientNetLite};
use vidcap::encoder::encoder_dir;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/encoder")
        .join(name)
}

fn npy(name: &str) -> Tensor {
    Tensor::read_npy(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn encoder() -> &'static EfficientNetLite {
    static ENCODER: OnceLock<EfficientNetLite> = OnceLock::new();
    ENCODER.get_or_init(|| {
        let dir = encoder_dir("efficientnet-lite0").expect("run `make models`");
        EfficientNetLite::load(&dir, &Device::Cpu)
            .unwrap_or_else(|e| panic!("{e:#}\n(run `make models` to create {})", dir.display()))
    })
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn argmax(logits: &Tensor) -> usize {
    logits
        .flatten_all()
        .unwrap()
        .argmax(0)
        .unwrap()
        .to_scalar::<u32>()
        .unwrap() as usize
}

#[test]
fn fast_path_matches_the_reference_from_the_same_input() {
    for name in ["chelsea", "coffee"] {
        let out = encoder()
            .forward_with(&npy(&format!("{name}_input.npy")), Backend::FastCpu)
            .unwrap();
        let features = max_abs_diff(&out.features, &npy(&format!("{name}_features.npy")));
        let logits = max_abs_diff(
            out.logits.as_ref().unwrap(),
            &npy(&format!("{name}_logits.npy")),
        );
        let grid = max_abs_diff(
            out.grid.as_ref().unwrap(),
            &npy(&format!("{name}_grid.npy")),
        );
        eprintln!("{name}: max abs diff features {features:e} logits {logits:e} grid {grid:e}");
        assert!(features < 1e-4 && logits < 1e-4 && grid < 1e-4, "{name}");
    }
}

#[test]
fn plain_candle_path_agrees_with_fast_path_and_reference() {
    let input = npy("chelsea_input.npy");
    let plain = encoder().forward_with(&input, Backend::Plain).unwrap();
    let fast = encoder().forward_with(&input, Backend::FastCpu).unwrap();
    for (what, a, b) in [
        ("features", &plain.features, &fast.features),
        (
            "logits",
            plain.logits.as_ref().unwrap(),
            fast.logits.as_ref().unwrap(),
        ),
        (
            "grid",
            plain.grid.as_ref().unwrap(),
            fast.grid.as_ref().unwrap(),
        ),
    ] {
        let d = max_abs_diff(a, b);
        eprintln!("plain vs fast {what}: {d:e}");
        assert!(d < 1e-4, "{what}: {d}");
    }
    assert!(max_abs_diff(&plain.features, &npy("chelsea_features.npy")) < 1e-4);
}

#[test]
fn end_to_end_from_the_png_matches_the_reference() {
    let enc = encoder();
    for (name, top1) in [("chelsea", "tiger cat"), ("coffee", "espresso")] {
        let img = image::open(data(&format!("{name}.png"))).unwrap().to_rgb8();
        let x = enc
            .preprocess(img.as_raw(), img.width(), img.height())
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let input_diff = max_abs_diff(&x, &npy(&format!("{name}_input.npy")));
        assert!(
            input_diff < 1e-5,
            "{name} preprocessing differs by {input_diff}"
        );
        let out = enc.forward(&x).unwrap();
        let logits = out.logits.unwrap();
        assert!(max_abs_diff(&out.features, &npy(&format!("{name}_features.npy"))) < 1e-3);
        assert!(max_abs_diff(&logits, &npy(&format!("{name}_logits.npy"))) < 1e-3);
        assert_eq!(enc.labels().unwrap()[argmax(&logits)], top1);
    }
}

/// Held by the test that lowers the instruction set level, and by tests whose tolerance is
/// tighter than the difference between two levels' rounding.
static LEVEL_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_batch_gives_what_its_images_give_alone() {
    let _level = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let a = npy("chelsea_input.npy");
    let b = npy("coffee_input.npy");
    let batch = Tensor::cat(&[&a, &b, &a], 0).unwrap();
    let out = encoder().forward(&batch).unwrap();
    let single = encoder().forward(&b).unwrap();
    let second = out.features.narrow(0, 1, 1).unwrap();
    assert!(max_abs_diff(&second, &single.features) < 1e-5);
    let (first, third) = (
        out.features.narrow(0, 0, 1).unwrap(),
        out.features.narrow(0, 2, 1).unwrap(),
    );
    assert!(max_abs_diff(&first, &third) < 1e-6);
}

#[test]
fn wrong_input_shapes_are_refused_with_a_clear_error() {
    let bad = Tensor::zeros((1, 3, 200, 224), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = encoder().forward(&bad).err().unwrap().to_string();
    assert!(err.contains("[N, 3, 224, 224]"), "{err}");
    let empty = Tensor::zeros((0, 3, 224, 224), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(encoder().forward(&empty).is_err());
}

#[test]
fn every_instruction_set_level_matches_the_reference() {
    use std::sync::atomic::Ordering;
    use vidcap::simd::MAX_LEVEL;
    // 0: portable code, 1: AVX2 (+ the gemm crate), 2: AVX-512 kernels; a level the CPU lacks
    // falls back to the next one down. Other tests running meanwhile stay correct at any level.
    let input = npy("coffee_input.npy");
    let want = npy("coffee_logits.npy");
    let _level = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for level in [0u8, 1, 2] {
        MAX_LEVEL.store(level, Ordering::Relaxed);
        let out = encoder().forward_with(&input, Backend::FastCpu);
        MAX_LEVEL.store(2, Ordering::Relaxed);
        let d = max_abs_diff(out.unwrap().logits.as_ref().unwrap(), &want);
        assert!(d < 1e-4, "level {level}: logits differ by {d}");
    }
}

#[test]
fn features_alone_are_the_features_of_the_full_pass() {
    use vidcap::encoder::Outputs;
    let _level = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let a = npy("chelsea_input.npy");
    let b = npy("coffee_input.npy");
    for batch in [b.clone(), Tensor::cat(&[&a, &b], 0).unwrap()] {
        let full = encoder().forward(&batch).unwrap();
        let only = encoder()
            .forward_outputs(&batch, Outputs::FEATURES)
            .unwrap();
        assert!(only.grid.is_none() && only.logits.is_none());
        assert_eq!(max_abs_diff(&only.features, &full.features), 0.0);
        let wanted = Outputs {
            grid: true,
            logits: false,
        };
        let grid = encoder().forward_outputs(&batch, wanted).unwrap();
        assert!(grid.logits.is_none());
        assert_eq!(max_abs_diff(&grid.grid.unwrap(), &full.grid.unwrap()), 0.0);
    }
}
