//! Model lookup and the errors of broken model directories.
use std::path::Path;

use vidcap::encoder::{encoder_dir, load_encoder};

fn copy_model(to: &Path) {
    let from = encoder_dir("efficientnet-lite0").expect("run `make models`");
    std::fs::create_dir_all(to).unwrap();
    for f in ["config.json", "model.safetensors", "labels.txt"] {
        std::fs::copy(from.join(f), to.join(f))
            .unwrap_or_else(|e| panic!("{}: {e} (run `make models`)", from.join(f).display()));
    }
}

fn err(name_or_dir: &str) -> String {
    format!(
        "{:#}",
        load_encoder(name_or_dir)
            .err()
            .expect("loading should fail")
    )
}

// One test function: it sets VIDCAP_MODELS, which other threads must not see change.
#[test]
fn models_are_found_by_name_and_broken_directories_are_refused_clearly() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("efficientnet-lite0");
    copy_model(&dir);

    // SAFETY: no other thread of this test binary reads the environment.
    unsafe { std::env::set_var("VIDCAP_MODELS", root.path()) };
    assert_eq!(encoder_dir("efficientnet-lite0").unwrap(), dir);
    let enc = load_encoder("efficientnet-lite0").unwrap();
    assert_eq!(
        (
            enc.name(),
            enc.feature_dim(),
            enc.input_size(),
            enc.resize_shorter()
        ),
        ("efficientnet-lite0", 1280, 224, 256)
    );
    assert_eq!(enc.labels().unwrap().len(), 1000);
    assert!(load_encoder(dir.to_str().unwrap()).is_ok());
    // An unknown name lists every place it was looked for (tests/install.rs covers a
    // missing bundled model, which only a binary outside the checkout can see).
    let unknown = err("resnet-9000");
    assert!(
        unknown.contains("unknown encoder `resnet-9000`"),
        "{unknown}"
    );
    assert!(
        unknown.contains(&root.path().join("resnet-9000").display().to_string()),
        "{unknown}"
    );

    // Wrong arch, truncated weights, a tensor of the wrong shape, too few labels.
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        cfg.replace("efficientnet-lite0\"", "efficientnet-b7\""),
    )
    .unwrap();
    assert!(err(dir.to_str().unwrap()).contains("unsupported encoder arch `efficientnet-b7`"));
    std::fs::write(dir.join("config.json"), &cfg).unwrap();

    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &weights[..weights.len() / 3]).unwrap();
    assert!(err(dir.to_str().unwrap()).contains("model.safetensors"));

    let mut tensors =
        candle_core::safetensors::load_buffer(&weights, &candle_core::Device::Cpu).unwrap();
    tensors.insert(
        "_fc.bias".into(),
        candle_core::Tensor::zeros(999, candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap(),
    );
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    let e = err(dir.to_str().unwrap());
    assert!(e.contains("`_fc.bias` has shape [999]"), "{e}");
    tensors.remove("_blocks.3._depthwise_conv.weight");
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    assert!(err(dir.to_str().unwrap()).contains("`_blocks.3._depthwise_conv.weight` is missing"));
    std::fs::write(dir.join("model.safetensors"), &weights).unwrap();

    let labels = std::fs::read_to_string(dir.join("labels.txt")).unwrap();
    std::fs::write(
        dir.join("labels.txt"),
        labels.lines().take(10).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    assert!(err(dir.to_str().unwrap()).contains("10 class names"));
}
