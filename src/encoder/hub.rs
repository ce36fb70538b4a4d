//! Backbones from the Hugging Face hub, built with candle-transformers: ResNet-18/50,
//! MobileNetV4-small and ConvNeXt-tiny, ImageNet-1k classifiers.
//!
//! Weights come from the repositories candle-transformers' own examples use and live in the
//! standard Hugging Face cache (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`); the
//! endpoint can be redirected with `HF_ENDPOINT`. Only [`fetch_hub_backbone`] touches the
//! network; [`load_hub_backbone`] works offline from the cache.
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Func, VarBuilder};
use candle_transformers::models::{convnext, mobilenetv4, resnet};

use super::{EncoderOutput, FrameEncoder};

/// Names accepted by `vidcap models fetch` and `--encoder`.
pub const HUB_BACKBONES: &[&str] = &["resnet18", "resnet50", "mobilenetv4-small", "convnext-tiny"];

/// Where one backbone's weights are published and how its input is prepared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HubSpec {
    pub name: &'static str,
    pub repo: &'static str,
    pub file: &'static str,
    pub feature_dim: usize,
    pub input_size: usize,
    /// Shorter side before the centre crop (input_size / 0.875, timm's default crop ratio).
    pub resize_shorter: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

#[rustfmt::skip]
const SPECS: [HubSpec; 4] = [
    HubSpec { name: "resnet18", repo: "lmz/candle-resnet", file: "resnet18.safetensors",
              feature_dim: 512, input_size: 224, resize_shorter: 256,
              mean: IMAGENET_MEAN, std: IMAGENET_STD },
    HubSpec { name: "resnet50", repo: "lmz/candle-resnet", file: "resnet50.safetensors",
              feature_dim: 2048, input_size: 224, resize_shorter: 256,
              mean: IMAGENET_MEAN, std: IMAGENET_STD },
    HubSpec { name: "mobilenetv4-small", repo: "timm/mobilenetv4_conv_small.e2400_r224_in1k",
              file: "model.safetensors", feature_dim: 1280, input_size: 224, resize_shorter: 256,
              mean: IMAGENET_MEAN, std: IMAGENET_STD },
    HubSpec { name: "convnext-tiny", repo: "timm/convnext_tiny.fb_in1k",
              file: "model.safetensors", feature_dim: 768, input_size: 224, resize_shorter: 256,
              mean: IMAGENET_MEAN, std: IMAGENET_STD },
];

const NUM_CLASSES: usize = 1000;

/// The table entry for `name`, or an error listing the known names.
pub fn hub_spec(name: &str) -> anyhow::Result<&'static HubSpec> {
    SPECS.iter().find(|s| s.name == name).with_context(|| {
        format!(
            "unknown hub backbone {name:?} (known: {})",
            HUB_BACKBONES.join(", ")
        )
    })
}

/// The hub API configured from the environment (`HF_HOME`, `HF_ENDPOINT`).
fn api() -> anyhow::Result<hf_hub::api::sync::Api> {
    if std::env::var_os("HF_HOME").is_none() && std::env::var_os("HOME").is_none() {
        // hf-hub would panic looking for a home directory.
        bail!("neither HF_HOME nor HOME is set: no place for the Hugging Face cache");
    }
    hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(false)
        .build()
        .context("cannot set up the Hugging Face hub client")
}

fn cache() -> anyhow::Result<hf_hub::Cache> {
    if std::env::var_os("HF_HOME").is_none() && std::env::var_os("HOME").is_none() {
        bail!("neither HF_HOME nor HOME is set: no Hugging Face cache");
    }
    Ok(hf_hub::Cache::from_env())
}

/// The cached weights of `name`, if they were fetched before.
pub fn cached_hub_weights(name: &str) -> anyhow::Result<Option<PathBuf>> {
    let spec = hub_spec(name)?;
    Ok(cache()?.model(spec.repo.to_string()).get(spec.file))
}

/// Downloads the weights of `name` into the Hugging Face cache (nothing is fetched when they
/// are already there) and checks that the file is a readable safetensors file.
pub fn fetch_hub_backbone(name: &str) -> anyhow::Result<PathBuf> {
    let spec = hub_spec(name)?;
    let path = api()?
        .model(spec.repo.to_string())
        .get(spec.file)
        // The error's own text already holds its causes; a context chain would repeat them.
        .map_err(|e| anyhow::anyhow!("downloading {}/{}: {e}", spec.repo, spec.file))?;
    check_safetensors(&path)?;
    Ok(path)
}

fn check_safetensors(path: &Path) -> anyhow::Result<()> {
    let data = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    safetensors::SafeTensors::read_metadata(&data)
        .map_err(|e| anyhow::anyhow!("{}: not a safetensors file: {e}", path.display()))?;
    Ok(())
}

/// Builds backbone `name` from the cache, without touching the network.
pub fn load_hub_backbone(name: &str) -> anyhow::Result<Box<dyn FrameEncoder>> {
    Ok(Box::new(HubEncoder::load(name, None)?))
}

/// A hub backbone split in two: `trunk` gives the pooled features, `head` the logits from them,
/// so one forward pass yields both.
pub struct HubEncoder {
    spec: &'static HubSpec,
    trunk: Func<'static>,
    head: Func<'static>,
    labels: Option<Vec<String>>,
}

impl HubEncoder {
    /// Loads `name` from the cache; `labels` are the 1000 ImageNet class names, if known.
    pub fn load(name: &str, labels: Option<Vec<String>>) -> anyhow::Result<Self> {
        let spec = hub_spec(name)?;
        let path = cached_hub_weights(name)?.with_context(|| {
            format!("{name} is not in the Hugging Face cache: run `vidcap models fetch {name}`")
        })?;
        let device = Device::Cpu;
        let weights = candle_core::safetensors::load(&path, &device)
            .with_context(|| format!("{}: cannot load weights", path.display()))?;
        let vb = VarBuilder::from_tensors(weights, DType::F32, &device);
        let (trunk, head) = build(spec, vb)
            .with_context(|| format!("{}: weights do not fit {name}", path.display()))?;
        if let Some(l) = &labels
            && l.len() != NUM_CLASSES
        {
            bail!(
                "{name}: {} labels given, the head has {NUM_CLASSES} classes",
                l.len()
            );
        }
        Ok(Self {
            spec,
            trunk,
            head,
            labels,
        })
    }
}

fn build(
    spec: &HubSpec,
    vb: VarBuilder<'static>,
) -> candle_core::Result<(Func<'static>, Func<'static>)> {
    match spec.name {
        "resnet18" | "resnet50" => {
            let trunk = if spec.name == "resnet18" {
                resnet::resnet18_no_final_layer(vb.clone())?
            } else {
                resnet::resnet50_no_final_layer(vb.clone())?
            };
            let fc = candle_nn::linear(spec.feature_dim, NUM_CLASSES, vb.pp("fc"))?;
            Ok((trunk, Func::new(move |x| x.apply(&fc))))
        }
        "mobilenetv4-small" => {
            // The trunk ends at the 960-channel pooled map; timm's head (1x1 conv to 1280,
            // BatchNorm, ReLU) makes the feature vector the classifier reads.
            let pooled =
                mobilenetv4::mobilenetv4_no_final_layer(&mobilenetv4::Config::small(), vb.clone())?;
            let conv = candle_nn::conv2d_no_bias(
                960,
                spec.feature_dim,
                1,
                Default::default(),
                vb.pp("conv_head"),
            )?;
            let norm = candle_nn::batch_norm(spec.feature_dim, 1e-5, vb.pp("norm_head"))?;
            let classifier = candle_nn::linear(spec.feature_dim, NUM_CLASSES, vb.pp("classifier"))?;
            let trunk = Func::new(move |x| {
                x.apply(&pooled)?
                    .apply(&conv)?
                    .apply_t(&norm, false)?
                    .relu()?
                    .flatten_from(1)
            });
            Ok((trunk, Func::new(move |x| x.apply(&classifier))))
        }
        "convnext-tiny" => {
            // Features after the head's LayerNorm (timm's pre-logits), logits from `head.fc`.
            let pooled = convnext::convnext_no_final_layer(&convnext::Config::tiny(), vb.clone())?;
            let norm = candle_nn::layer_norm(spec.feature_dim, 1e-6, vb.pp("head.norm"))?;
            let fc = candle_nn::linear(spec.feature_dim, NUM_CLASSES, vb.pp("head.fc"))?;
            let trunk = Func::new(move |x| x.apply(&pooled)?.apply(&norm));
            Ok((trunk, Func::new(move |x| x.apply(&fc))))
        }
        other => Err(candle_core::Error::Msg(format!("no builder for {other}"))),
    }
}

impl FrameEncoder for HubEncoder {
    fn name(&self) -> &str {
        self.spec.name
    }

    fn feature_dim(&self) -> usize {
        self.spec.feature_dim
    }

    fn input_size(&self) -> usize {
        self.spec.input_size
    }

    fn resize_shorter(&self) -> u32 {
        self.spec.resize_shorter
    }

    fn preprocess(&self, rgb: &[u8], width: u32, height: u32) -> anyhow::Result<Tensor> {
        let s = self.spec;
        let chw = resize_crop_normalise(
            rgb,
            width,
            height,
            s.resize_shorter,
            s.input_size,
            |c, v| (v / 255.0 - s.mean[c]) / s.std[c],
        )?;
        Ok(Tensor::from_vec(
            chw,
            (3, s.input_size, s.input_size),
            &Device::Cpu,
        )?)
    }

    fn forward(&self, batch: &Tensor) -> anyhow::Result<EncoderOutput> {
        let features = self.trunk.forward(batch)?;
        let logits = self.head.forward(&features)?;
        Ok(EncoderOutput {
            features,
            logits: Some(logits),
            grid: None,
        })
    }

    fn labels(&self) -> Option<&[String]> {
        self.labels.as_deref()
    }
}

/// Shorter side to `shorter` by bilinear interpolation with half-pixel centres (no
/// antialiasing, computed in float), centre crop `crop`, then `normalise(channel, value)`;
/// returns CHW floats. Only the cropped pixels are interpolated.
pub fn resize_crop_normalise(
    rgb: &[u8],
    width: u32,
    height: u32,
    shorter: u32,
    crop: usize,
    normalise: impl Fn(usize, f32) -> f32,
) -> anyhow::Result<Vec<f32>> {
    let (w, h) = (width as usize, height as usize);
    if w == 0 || h == 0 || rgb.len() != w * h * 3 {
        bail!(
            "image buffer of {} bytes does not hold {width}x{height} RGB",
            rgb.len()
        );
    }
    let short = w.min(h);
    let long_out = |long: usize| (shorter as usize * long) / short;
    let (out_w, out_h) = if w <= h {
        (shorter as usize, long_out(h))
    } else {
        (long_out(w), shorter as usize)
    };
    if out_w < crop || out_h < crop {
        bail!("{width}x{height} resized to {out_w}x{out_h} is smaller than the {crop} crop");
    }
    let top = round_half_even((out_h - crop) as f64 / 2.0);
    let left = round_half_even((out_w - crop) as f64 / 2.0);
    // Source coordinate and weights along one axis, per output index.
    let axis = |len_in: usize, len_out: usize, start: usize| -> Vec<(usize, usize, f32)> {
        let scale = len_in as f64 / len_out as f64;
        (start..start + crop)
            .map(|o| {
                let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (src.floor() as usize).min(len_in - 1);
                let i1 = (i0 + 1).min(len_in - 1);
                (i0, i1, (src - i0 as f64) as f32)
            })
            .collect()
    };
    let xs = axis(w, out_w, left);
    let ys = axis(h, out_h, top);
    let mut out = vec![0f32; 3 * crop * crop];
    for (oy, &(y0, y1, fy)) in ys.iter().enumerate() {
        for (ox, &(x0, x1, fx)) in xs.iter().enumerate() {
            for c in 0..3 {
                let p = |y: usize, x: usize| rgb[(y * w + x) * 3 + c] as f32;
                let top_row = p(y0, x0) + (p(y0, x1) - p(y0, x0)) * fx;
                let bottom_row = p(y1, x0) + (p(y1, x1) - p(y1, x0)) * fx;
                let v = top_row + (bottom_row - top_row) * fy;
                out[c * crop * crop + oy * crop + ox] = normalise(c, v);
            }
        }
    }
    Ok(out)
}

/// Python's `round` (ties to even), which the reference crop offsets use.
fn round_half_even(x: f64) -> usize {
    let r = x.round();
    let r = if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    };
    r as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_backbone_has_a_spec() {
        for name in HUB_BACKBONES {
            assert_eq!(hub_spec(name).unwrap().name, *name);
        }
        assert!(hub_spec("vgg16").is_err());
    }

    #[test]
    fn crop_offsets_round_like_python() {
        assert_eq!(round_half_even(115.5), 116);
        assert_eq!(round_half_even(80.0), 80);
        assert_eq!(round_half_even(0.5), 0);
        assert_eq!(round_half_even(1.5), 2);
    }

    /// Each builder wires trunk and head with the dimensions the table promises (zero
    /// weights: this checks the graph, not the values, which need the real downloads).
    /// MobileNetV4 is left out: its builder detects optional layers by whether their weights
    /// exist, so an all-zeros weight source builds a different (invalid) graph.
    #[test]
    fn builders_give_features_and_logits_of_the_promised_sizes() {
        let input = Tensor::zeros((1, 3, 224, 224), DType::F32, &Device::Cpu).unwrap();
        for spec in SPECS.iter().filter(|s| s.name != "mobilenetv4-small") {
            let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
            let (trunk, head) = build(spec, vb).unwrap();
            let features = trunk.forward(&input).unwrap();
            assert_eq!(features.dims(), &[1, spec.feature_dim], "{}", spec.name);
            let logits = head.forward(&features).unwrap();
            assert_eq!(logits.dims(), &[1, NUM_CLASSES], "{}", spec.name);
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let rgb = vec![200u8; 300 * 451 * 3];
        let out = resize_crop_normalise(&rgb, 451, 300, 256, 224, |_, v| v).unwrap();
        assert!(out.iter().all(|&v| (v - 200.0).abs() < 1e-4));
    }
}
