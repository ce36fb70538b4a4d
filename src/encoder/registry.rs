//! Encoders by name: where model directories live and which implementation loads each name.
use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::Device;

use super::FrameEncoder;
use super::efficientnet_lite::{self, EfficientNetLite};
use crate::model_path::{self, LookupError};

/// The device encoders run on: the first CUDA GPU with the `cuda` feature when there is one,
/// else the CPU (where the fast kernels run).
pub fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(dev) = Device::new_cuda(0) {
        return dev;
    }
    Device::Cpu
}

/// Loads an encoder by name (looked up as [`crate::model_path`] describes) or from a model
/// directory path.
pub fn load_encoder(name_or_dir: &str) -> anyhow::Result<Box<dyn FrameEncoder>> {
    load_encoder_on(name_or_dir, None, &default_device())
}

/// [`load_encoder`] for the encoder a decoder names: its own folder is searched first, so a
/// decoder and its encoder copied side by side work from anywhere.
pub fn load_encoder_beside(
    name_or_dir: &str,
    decoder_dir: &Path,
) -> anyhow::Result<Box<dyn FrameEncoder>> {
    load_encoder_on(name_or_dir, decoder_dir.parent(), &default_device())
}

/// The model directory of an encoder name or path (its weights' hash keys feature caches).
pub fn encoder_dir(name_or_dir: &str) -> anyhow::Result<PathBuf> {
    Ok(model_path::locate(name_or_dir, None)?.dir)
}

/// [`load_encoder`] on a given device, searching `beside` before the standard roots.
pub fn load_encoder_on(
    name_or_dir: &str,
    beside: Option<&Path>,
    device: &Device,
) -> anyhow::Result<Box<dyn FrameEncoder>> {
    match model_path::locate(name_or_dir, beside) {
        Ok(found) => load_dir(&found.dir, device),
        Err(LookupError::NotFound { .. }) if super::hub::HUB_BACKBONES.contains(&name_or_dir) => {
            // Hub backbones are ImageNet-1k classifiers too: reuse the installed class names.
            let labels = model_path::locate(efficientnet_lite::ARCH, beside)
                .ok()
                .and_then(|found| std::fs::read_to_string(found.dir.join("labels.txt")).ok())
                .map(|text| text.lines().map(str::to_string).collect());
            Ok(Box::new(super::hub::HubEncoder::load(name_or_dir, labels)?))
        }
        Err(err @ LookupError::NotFound { .. }) if name_or_dir != efficientnet_lite::ARCH => {
            anyhow::bail!(
                "unknown encoder `{name_or_dir}`: not a known name (known: {}, {}) and {err}",
                efficientnet_lite::ARCH,
                super::hub::HUB_BACKBONES.join(", ")
            )
        }
        Err(err) => Err(err.into()),
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
