//! `vidcap classify` and `vidcap embed` end to end, against the independent reference outputs
//! of `scripts/encoder_reference.py`, and their errors on bad input. Needs
//! `models/efficientnet-lite0` (`make models`).
mod util;
use std::path::{Path, PathBuf};
use util::vidcap;

use candle_core::Tensor;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/encoder")
        .join(name)
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

#[test]
fn classify_json_gives_the_reference_top_classes_and_probabilities() {
    let out = vidcap(&[
        "classify",
        data("chelsea.png").to_str().unwrap(),
        "--top",
        "3",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let top: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let top = top.as_array().unwrap();
    assert_eq!(top.len(), 3);
    // Softmax of the reference logits, computed here.
    let logits: Vec<f32> = Tensor::read_npy(data("chelsea_logits.npy"))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
    for (entry, (id, label)) in top.iter().zip([
        (282, "tiger cat"),
        (285, "Egyptian cat"),
        (281, "tabby, tabby cat"),
    ]) {
        assert_eq!(entry["class_id"], id);
        assert_eq!(entry["label"], label);
        let want = (logits[id] as f64).exp() / z;
        assert!((entry["prob"].as_f64().unwrap() - want).abs() < 1e-4);
    }
}

#[test]
fn embed_writes_the_reference_features_for_images_and_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("coffee.npy");
    let out = vidcap(&[
        "embed",
        data("coffee.png").to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = Tensor::read_npy(&out_path).unwrap();
    assert!(
        max_abs_diff(
            &got,
            &Tensor::read_npy(data("coffee_features.npy")).unwrap()
        ) < 1e-3
    );

    // A preprocessed (2,3,224,224) tensor gives [2, 1280]; --grid gives [2, 4, 1280].
    let both = Tensor::cat(
        &[
            Tensor::read_npy(data("chelsea_input.npy")).unwrap(),
            Tensor::read_npy(data("coffee_input.npy")).unwrap(),
        ],
        0,
    )
    .unwrap();
    let input = dir.path().join("both.npy");
    both.write_npy(&input).unwrap();
    let feats = dir.path().join("both_features.npy");
    assert!(
        vidcap(&[
            "embed",
            input.to_str().unwrap(),
            "-o",
            feats.to_str().unwrap()
        ])
        .status
        .success()
    );
    let want = Tensor::cat(
        &[
            Tensor::read_npy(data("chelsea_features.npy")).unwrap(),
            Tensor::read_npy(data("coffee_features.npy")).unwrap(),
        ],
        0,
    )
    .unwrap();
    assert!(max_abs_diff(&Tensor::read_npy(&feats).unwrap(), &want) < 1e-4);
    let grid = dir.path().join("both_grid.npy");
    assert!(
        vidcap(&[
            "embed",
            input.to_str().unwrap(),
            "-o",
            grid.to_str().unwrap(),
            "--grid"
        ])
        .status
        .success()
    );
    let want = Tensor::cat(
        &[
            Tensor::read_npy(data("chelsea_grid.npy")).unwrap(),
            Tensor::read_npy(data("coffee_grid.npy")).unwrap(),
        ],
        0,
    )
    .unwrap();
    assert!(max_abs_diff(&Tensor::read_npy(&grid).unwrap(), &want) < 1e-4);
}

#[test]
fn bad_inputs_fail_with_the_file_named_and_no_output_written() {
    let dir = tempfile::tempdir().unwrap();
    let garbled = dir.path().join("garbled.png");
    std::fs::write(&garbled, b"\x89PNG\r\n\x1a\nnot really a png").unwrap();
    let wrong_shape = dir.path().join("wrong.npy");
    Tensor::zeros(
        (1, 3, 100, 100),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap()
    .write_npy(&wrong_shape)
    .unwrap();
    let truncated = dir.path().join("truncated.npy");
    let bytes = std::fs::read(data("chelsea_input.npy")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    // A header that declares 60 GB must be refused before anything is allocated.
    let hostile = dir.path().join("hostile.npy");
    let mut header =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 3, 224, 224), }".to_string();
    while !(header.len() + 11).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend([0u8; 1000]);
    std::fs::write(&hostile, bytes).unwrap();
    let video = dir.path().join("clip.xyz");
    std::fs::write(&video, b"xyz").unwrap();
    let missing = dir.path().join("missing.png");
    for (input, expect) in [
        (&garbled, "cannot decode image"),
        (&wrong_shape, "expected (N, 3, 224, 224)"),
        (&truncated, "cannot read .npy"),
        (&hostile, "header declares shape (100000, 3, 224, 224)"),
        (&video, "not a readable video file"),
        (&missing, "cannot decode image"),
    ] {
        let out_path = dir.path().join("out.npy");
        let out = vidcap(&[
            "embed",
            input.to_str().unwrap(),
            "-o",
            out_path.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(input.file_name().unwrap().to_str().unwrap()),
            "{stderr}"
        );
        assert!(stderr.contains(expect), "{stderr}");
        assert!(!out_path.exists());
        let out = vidcap(&["classify", input.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
    }
    // A real video: one feature row per sampled frame, and per-frame classes with their pts.
    let clip = dir.path().join("clip.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=10:duration=2",
        ])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(status.success());
    let out_path = dir.path().join("clip.npy");
    let out = vidcap(&[
        "embed",
        clip.to_str().unwrap(),
        "--frames",
        "3",
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let features = candle_core::Tensor::read_npy(&out_path).unwrap();
    assert_eq!(features.dims(), [3, 1280]);
    let out = vidcap(&[
        "classify",
        clip.to_str().unwrap(),
        "--frames",
        "2",
        "--top",
        "1",
        "--json",
    ]);
    let frames: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pts: Vec<f64> = frames
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["pts"].as_f64().unwrap())
        .collect();
    assert_eq!(
        pts,
        [0.5, 1.5],
        "uniform targets (i + 0.5) * 2 s / 2 land on 10 fps frames"
    );
    let out = vidcap(&[
        "classify",
        data("chelsea.png").to_str().unwrap(),
        "--top",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
}
