//! Encoders by name: where model directories live and which implementation loads each name.
use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::Device;

use super::FrameEncoder;
use super::efficientnet_lite::{self, EfficientNetLite};

/// The models root: `$VIDCAP_MODELS` if set, else the first `models/` directory found next to
/// the executable or in a directory above it (the repository's, for `target/release/vidcap`),
/// else `./models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VIDCAP_MODELS").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            let candidate = dir.join("models");
            if candidate.is_dir() {
                return candidate;
            }
        }
    }
    PathBuf::from("models")
}

/// The device encoders run on: the first CUDA GPU with the `cuda` feature when there is one,
/// else the CPU (where the fast kernels run).
pub fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(dev) = Device::new_cuda(0) {
        return dev;
    }
    Device::Cpu
}

/// Loads an encoder by registry name (`efficientnet-lite0` → `models_dir()/efficientnet-lite0`)
/// or from a model directory path.
pub fn load_encoder(name_or_dir: &str) -> anyhow::Result<Box<dyn FrameEncoder>> {
    load_encoder_on(name_or_dir, &default_device())
}

/// [`load_encoder`] on a given device.
pub fn load_encoder_on(
    name_or_dir: &str,
    device: &Device,
) -> anyhow::Result<Box<dyn FrameEncoder>> {
    let path = Path::new(name_or_dir);
    if path.is_dir() {
        return load_dir(path, device);
    }
    match name_or_dir {
        efficientnet_lite::ARCH => {
            let dir = models_dir().join(efficientnet_lite::ARCH);
            if !dir.is_dir() {
                anyhow::bail!(
                    "encoder `{name_or_dir}` is not installed: {} does not exist (run `make models`, or set VIDCAP_MODELS)",
                    dir.display()
                );
            }
            load_dir(&dir, device)
        }
        hub_name if super::hub::HUB_BACKBONES.contains(&hub_name) => {
            // Hub backbones are ImageNet-1k classifiers too: reuse the installed class names.
            let labels = std::fs::read_to_string(
                models_dir()
                    .join(efficientnet_lite::ARCH)
                    .join("labels.txt"),
            )
            .ok()
            .map(|text| text.lines().map(str::to_string).collect());
            Ok(Box::new(super::hub::HubEncoder::load(hub_name, labels)?))
        }
        other => anyhow::bail!(
            "unknown encoder `{other}`: not a model directory and not a known name (known: {}, {})",
            efficientnet_lite::ARCH,
            super::hub::HUB_BACKBONES.join(", ")
        ),
    }
}

/// Loads a model directory, choosing the implementation by its config's `arch`.
fn load_dir(dir: &Path, device: &Device) -> anyhow::Result<Box<dyn FrameEncoder>> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read encoder config {}", config_path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: invalid JSON", config_path.display()))?;
    match value.get("arch").and_then(|a| a.as_str()) {
        Some(efficientnet_lite::ARCH) => Ok(Box::new(EfficientNetLite::load(dir, device)?)),
        Some(other) => anyhow::bail!(
            "{}: unsupported encoder arch `{other}`",
            config_path.display()
        ),
        None => anyhow::bail!("{}: no `arch` field", config_path.display()),
    }
}
