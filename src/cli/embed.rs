//! `vidcap embed IMAGE|VIDEO|TENSOR.npy -o OUT.npy`: encoder features `[T, D]` as .npy.
//!
//! Also home of the input handling `classify` shares: what kind of file an input is, and how it
//! becomes a preprocessed batch.
use std::path::{Path, PathBuf};

use crate::encoder::{FrameEncoder, Outputs, load_encoder};
use crate::video::{Resize, SampleSpec, Sampling, sample_frames};
use anyhow::{Context, bail};
use candle_core::Tensor;

use super::{EXIT_OK, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// An image (PNG, JPEG), a video, or a .npy tensor (N,3,224,224) that is already
    /// preprocessed.
    pub input: PathBuf,
    /// Frames sampled uniformly from a video input.
    #[arg(long, default_value_t = 16)]
    pub frames: usize,
    /// Where to write the features (.npy, float32, [T, D]).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Encoder: a registry name or a model directory.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub encoder: String,
    /// Write the 2×2 spatial grid [T, 4, D] instead of the pooled features.
    #[arg(long)]
    pub grid: bool,
}

/// Images per forward pass for tensors with many images.
const BATCH: usize = 16;

/// What an input file is, by its extension.
pub(super) enum InputKind {
    Image,
    Tensor,
    Video,
}

pub(super) fn input_kind(path: &Path) -> anyhow::Result<InputKind> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("png" | "jpg" | "jpeg") => Ok(InputKind::Image),
        Some("npy") => Ok(InputKind::Tensor),
        // Anything else is handed to FFmpeg, which names the file if it is not a video.
        _ => Ok(InputKind::Video),
    }
}

/// `frames` frames sampled uniformly from a video, preprocessed: `[T, 3, S, S]` and the
/// frames' timestamps.
fn video_batch(
    encoder: &dyn FrameEncoder,
    path: &Path,
    frames: usize,
) -> anyhow::Result<(Tensor, Vec<f64>)> {
    anyhow::ensure!(frames >= 1, "--frames must be at least 1");
    let spec = SampleSpec {
        sampling: Sampling::Uniform { count: frames },
        start: None,
        end: None,
        resize: Resize::ShortSide(encoder.resize_shorter()),
        keyframes: false,
    };
    let frames = sample_frames(path, &spec)?;
    let inputs = frames
        .iter()
        .map(|f| encoder.preprocess(&f.rgb, f.width, f.height))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((
        Tensor::stack(&inputs, 0)?,
        frames.iter().map(|f| f.pts).collect(),
    ))
}

/// Decodes an image file and applies the encoder's preprocessing: `[1, 3, S, S]`.
pub(super) fn image_batch(encoder: &dyn FrameEncoder, path: &Path) -> anyhow::Result<Tensor> {
    let img = image::open(path)
        .with_context(|| format!("{}: cannot decode image", path.display()))?
        .to_rgb8();
    let x = encoder
        .preprocess(img.as_raw(), img.width(), img.height())
        .with_context(|| format!("{}: cannot preprocess", path.display()))?;
    Ok(x.unsqueeze(0)?)
}

/// Checks that a .npy file holds exactly the data its header declares, before candle's reader
/// allocates what the header says (a hostile or truncated header must not make it allocate
/// without bound).
fn check_npy_size(path: &Path) -> anyhow::Result<()> {
    use std::io::Read;
    let bad = |why: String| anyhow::anyhow!("{}: cannot read .npy: {why}", path.display());
    let mut file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let file_len = file.metadata().map_err(|e| bad(e.to_string()))?.len();
    let mut head = [0u8; 10];
    file.read_exact(&mut head)
        .map_err(|_| bad("shorter than a .npy header".into()))?;
    if &head[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (bad magic)".into()));
    }
    let (header_start, header_len) = match head[6] {
        1 => (10u64, u16::from_le_bytes([head[8], head[9]]) as u64),
        2 | 3 => {
            let mut more = [0u8; 2];
            file.read_exact(&mut more)
                .map_err(|_| bad("truncated header".into()))?;
            (
                12u64,
                u32::from_le_bytes([head[8], head[9], more[0], more[1]]) as u64,
            )
        }
        v => return Err(bad(format!("unsupported .npy version {v}"))),
    };
    if header_len > 1 << 20 || header_start + header_len > file_len {
        return Err(bad("truncated header".into()));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|_| bad("truncated header".into()))?;
    let header = String::from_utf8_lossy(&header);
    let field = |name: &str| -> Option<&str> {
        let at = header.find(&format!("'{name}'"))? + name.len() + 2;
        Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
    };
    let descr = field("descr")
        .and_then(|d| d.strip_prefix('\'')?.split('\'').next())
        .ok_or_else(|| bad("no descr in header".into()))?;
    let elem: u64 = descr
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .map_err(|_| bad(format!("unsupported dtype {descr}")))?;
    let shape = field("shape")
        .and_then(|s| s.strip_prefix('(')?.split(')').next())
        .ok_or_else(|| bad("no shape in header".into()))?;
    let mut bytes = elem;
    for dim in shape.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let dim: u64 = dim
            .parse()
            .map_err(|_| bad(format!("bad shape ({shape})")))?;
        bytes = bytes
            .checked_mul(dim)
            .ok_or_else(|| bad(format!("shape ({shape}) overflows")))?;
    }
    let data = file_len - header_start - header_len;
    if data != bytes {
        return Err(bad(format!(
            "header declares shape ({shape}) of {descr}, {bytes} bytes, but the file holds {data}"
        )));
    }
    Ok(())
}

/// Reads a preprocessed `(N, 3, S, S)` tensor.
pub(super) fn tensor_batch(encoder: &dyn FrameEncoder, path: &Path) -> anyhow::Result<Tensor> {
    check_tensor(encoder, path, read_tensor(path)?)
}

/// Reads a .npy tensor (any shape), after [`check_npy_size`].
fn read_tensor(path: &Path) -> anyhow::Result<Tensor> {
    check_npy_size(path)?;
    Tensor::read_npy(path).with_context(|| format!("{}: cannot read .npy", path.display()))
}

/// `t` as the encoder's f32 `(N, 3, S, S)` input, or an error naming `path`.
fn check_tensor(encoder: &dyn FrameEncoder, path: &Path, t: Tensor) -> anyhow::Result<Tensor> {
    let s = encoder.input_size();
    if t.dims().len() != 4 || t.dims()[1..] != [3, s, s] || t.dims()[0] == 0 {
        bail!(
            "{}: tensor has shape {:?}, expected (N, 3, {s}, {s}) with N >= 1",
            path.display(),
            t.dims()
        );
    }
    Ok(t.to_dtype(candle_core::DType::F32)?)
}

/// The input as one or more preprocessed batches, with the frame timestamps of a video.
pub(super) fn input_batches(
    encoder: &dyn FrameEncoder,
    path: &Path,
    video_frames: usize,
) -> anyhow::Result<(Vec<Tensor>, Option<Vec<f64>>)> {
    match input_kind(path)? {
        InputKind::Image => Ok((vec![image_batch(encoder, path)?], None)),
        InputKind::Video => {
            let (batch, pts) = video_batch(encoder, path, video_frames)?;
            Ok((vec![batch], Some(pts)))
        }
        InputKind::Tensor => Ok((split_batches(&tensor_batch(encoder, path)?)?, None)),
    }
}

/// A tensor of many images as views of [`BATCH`] images (no copy).
fn split_batches(t: &Tensor) -> anyhow::Result<Vec<Tensor>> {
    let n = t.dim(0)?;
    (0..n)
        .step_by(BATCH)
        .map(|i| Ok(t.narrow(0, i, BATCH.min(n - i))?))
        .collect()
}

/// The encoder and the input's batches. A tensor file is read on a second thread while the
/// encoder loads (both take tens of milliseconds, and neither needs the other until the
/// shape check).
fn load_with_input(args: &Args) -> anyhow::Result<(Box<dyn FrameEncoder>, Vec<Tensor>)> {
    if !matches!(input_kind(&args.input)?, InputKind::Tensor) {
        let encoder = load_encoder(&args.encoder)?;
        let (batches, _) = input_batches(encoder.as_ref(), &args.input, args.frames)?;
        return Ok((encoder, batches));
    }
    let (encoder, tensor) = std::thread::scope(|s| {
        let reader = s.spawn(|| read_tensor(&args.input));
        let encoder = load_encoder(&args.encoder);
        let tensor = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (encoder, tensor)
    });
    let encoder = encoder?;
    let tensor = check_tensor(encoder.as_ref(), &args.input, tensor?)?;
    Ok((encoder, split_batches(&tensor)?))
}

/// Writes `t` to `path` as .npy through a temporary file in the same directory and a rename,
/// so a reader never sees a partial file.
pub(super) fn write_npy_atomic(t: &Tensor, path: &Path) -> anyhow::Result<()> {
    if t.dtype() == candle_core::DType::F32 {
        return crate::atomic::write_atomic(path, &npy_f32_bytes(t)?);
    }
    let tmp = crate::atomic::temp_path(path);
    let written = t
        .write_npy(&tmp)
        .with_context(|| format!("cannot write {}", path.display()));
    crate::atomic::commit_temp(&tmp, path, written)
}

/// An f32 tensor as .npy bytes (format 1.0, little-endian, C order), written in one go:
/// candle's `write_npy` issues one unbuffered write per value (30 ms for 80×1280 features).
fn npy_f32_bytes(t: &Tensor) -> anyhow::Result<Vec<u8>> {
    let values = t.flatten_all()?.to_vec1::<f32>()?;
    let shape = match t.dims() {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + newline, padded to 64 bytes as numpy does.
    let unpadded = 10 + header.len() + 1;
    header.extend(std::iter::repeat_n(
        ' ',
        unpadded.next_multiple_of(64) - unpadded,
    ));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + 4 * values.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&u16::try_from(header.len())?.to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    Ok(bytes)
}

pub fn run(args: Args, _global: &Global) -> anyhow::Result<u8> {
    let (encoder, batches) = load_with_input(&args)?;
    let mut parts = Vec::new();
    for batch in batches {
        let wanted = Outputs {
            grid: args.grid,
            logits: false,
        };
        let out = encoder.forward_outputs(&batch, wanted)?;
        parts.push(if args.grid {
            out.grid
                .with_context(|| format!("encoder {} has no spatial grid", encoder.name()))?
        } else {
            out.features
        });
    }
    let features = Tensor::cat(&parts, 0)?.to_device(&candle_core::Device::Cpu)?;
    write_npy_atomic(&features, &args.output)?;
    tracing::info!(
        "{}: wrote {:?} to {}",
        args.input.display(),
        features.dims(),
        args.output.display()
    );
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our .npy writer against candle's reader, for a 2-D, a 3-D and a 1-D tensor; and the
    /// header is padded as numpy pads it.
    #[test]
    fn f32_npy_writer_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let dev = candle_core::Device::Cpu;
        for shape in [vec![3usize, 5], vec![2, 4, 7], vec![9]] {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n).map(|i| i as f32 * 0.37 - 3.0).collect();
            let t = Tensor::from_vec(values.clone(), shape.as_slice(), &dev).unwrap();
            let path = dir.path().join("t.npy");
            write_npy_atomic(&t, &path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + header_len) % 64, 0);
            assert_eq!(bytes.len(), 10 + header_len + 4 * n);
            let back = Tensor::read_npy(&path).unwrap();
            assert_eq!(back.dims(), shape.as_slice());
            assert_eq!(
                back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                values
            );
        }
    }
}
