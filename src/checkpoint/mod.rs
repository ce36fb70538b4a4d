//! PyTorch checkpoint readers and the import of a checkpoint into a model directory.
//!
//! Two on-disk formats, told apart by content: the zip format of `torch.save` since 1.6
//! (`<name>/data.pkl` plus one `<name>/data/<key>` entry per storage) and the legacy stream
//! (magic number, protocol, system info, the pickled object, the storage keys, the raw
//! storages), which candle cannot read. Both go through one restricted unpickler
//! ([`pickle`]) that executes nothing, and one bounds-checked tensor gatherer (here).
//! The whole file is read once into memory with its size taken from the file system, so no
//! size declared inside the file can make the reader allocate more than the file holds; the
//! gathered tensors are capped at [`MAX_EXPANSION`] times the file.
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use candle_core::{DType, Device, Tensor};

mod import;
mod legacy;
pub mod pickle;
mod zip;

pub use import::{
    ARCHES, ExpectedTensor, expected_tensors, import_to_model_dir, import_with_labels,
};

use pickle::{StorageRef, StorageType, TensorRef, Value};

/// The two serialisations of `torch.save`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// torch >= 1.6: a zip archive holding `data.pkl` and the storages.
    Zip,
    /// torch < 1.6 (or `_use_new_zipfile_serialization=False`): one pickle stream.
    Legacy,
}

impl std::fmt::Display for CheckpointFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Zip => "zip-format PyTorch checkpoint",
            Self::Legacy => "legacy PyTorch checkpoint",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a PyTorch checkpoint: {reason}", path.display())]
    Unrecognised { path: PathBuf, reason: String },
    #[error("{}: invalid {format}: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        format: CheckpointFormat,
        reason: String,
    },
    #[error("{}: tensor {name}: {source}", path.display())]
    Tensor {
        path: PathBuf,
        name: String,
        #[source]
        source: Box<candle_core::Error>,
    },
}

/// One tensor of a checkpoint, gathered into contiguous little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointTensor {
    pub name: String,
    /// Candle dtype; torch `bool` arrives as `U8` (0/1).
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// `shape.iter().product() * dtype.size_in_bytes()` bytes, row-major, little-endian.
    pub data: Vec<u8>,
}

impl CheckpointTensor {
    pub fn to_tensor(&self, device: &Device) -> candle_core::Result<Tensor> {
        Tensor::from_raw_buffer(&self.data, self.dtype, &self.shape, device)
    }
}

/// Reads every tensor of a checkpoint in either format (detected by content), in the order
/// the state dict lists them. Tensors inside nested dicts (`{"state_dict": {...}}`) are named
/// `outer.inner`; non-tensor entries (epoch counters, ...) are skipped.
pub fn read_checkpoint(path: &Path) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    read_checkpoint_tensors(path)?
        .into_iter()
        .map(|t| {
            let tensor = t
                .to_tensor(&Device::Cpu)
                .map_err(|source| CheckpointError::Tensor {
                    path: path.to_path_buf(),
                    name: t.name.clone(),
                    source: Box::new(source),
                })?;
            Ok((t.name, tensor))
        })
        .collect()
}

/// Like [`read_checkpoint`], keeping the raw bytes and dtype of each tensor.
pub fn read_checkpoint_tensors(path: &Path) -> Result<Vec<CheckpointTensor>, CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(CheckpointError::Unrecognised {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    // The size comes from the file system, and `take` stops a growing file from exceeding it.
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(meta.len()).read_to_end(&mut data).map_err(io)?;
    parse_checkpoint(&data).map_err(|(format, reason)| match format {
        Some(format) => CheckpointError::Invalid {
            path: path.to_path_buf(),
            format,
            reason,
        },
        None => CheckpointError::Unrecognised {
            path: path.to_path_buf(),
            reason,
        },
    })
}

/// Parses a checkpoint held in memory. The error names the detected format (if any).
pub fn parse_checkpoint(
    data: &[u8],
) -> Result<Vec<CheckpointTensor>, (Option<CheckpointFormat>, String)> {
    let format = detect_format(data).map_err(|reason| (None, reason))?;
    let result = match format {
        CheckpointFormat::Zip => zip::parse(data),
        CheckpointFormat::Legacy => legacy::parse(data),
    };
    result.map_err(|reason| (Some(format), reason))
}

/// Zip archives start with a local file header; legacy files with a pickle PROTO opcode
/// followed by the magic number as an 80-bit LONG1.
pub fn detect_format(data: &[u8]) -> Result<CheckpointFormat, String> {
    if data.starts_with(b"PK\x03\x04") {
        Ok(CheckpointFormat::Zip)
    } else if data.len() >= 3 && data[0] == 0x80 && data[2] == 0x8a {
        Ok(CheckpointFormat::Legacy)
    } else if data.is_empty() {
        Err("the file is empty".into())
    } else {
        Err("neither a zip archive nor a legacy torch pickle (unexpected first bytes)".into())
    }
}

/// Storages named by the persistent ids of one pickle, keyed by their root key.
#[derive(Default)]
struct StorageTable {
    roots: HashMap<String, (StorageType, usize)>,
}

impl pickle::PersistentLoad for StorageTable {
    fn persistent_load(&mut self, pid: &Value) -> Result<Value, String> {
        let storage = pickle::parse_storage_pid(pid)?;
        let root = (storage.storage_type, storage.root_numel);
        match self.roots.get(&storage.key) {
            Some(seen) if *seen != root => {
                return Err(format!(
                    "storage {:?} declared twice with different type or size",
                    storage.key
                ));
            }
            Some(_) => {}
            None => {
                self.roots.insert(storage.key.clone(), root);
            }
        }
        Ok(Value::Storage(Rc::new(storage)))
    }
}

/// The tensors of an unpickled state dict, in order, last one winning for a repeated name.
fn collect_tensors(root: &Value) -> Result<Vec<(String, Rc<TensorRef>)>, String> {
    fn walk(
        v: &Value,
        prefix: &str,
        out: &mut Vec<(String, Rc<TensorRef>)>,
        index: &mut HashMap<String, usize>,
    ) -> Result<(), String> {
        let Value::Dict(map) = v else { return Ok(()) };
        for (key, value) in &map.items {
            let key = match key {
                Value::Str(s) => s.to_string(),
                Value::Int(i) => i.to_string(),
                other => return Err(format!("state dict key is a {other:?}, not a string")),
            };
            let name = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                Value::Tensor(t) => match index.get(&name) {
                    Some(&i) => out[i].1 = t.clone(),
                    None => {
                        index.insert(name.clone(), out.len());
                        out.push((name, t.clone()));
                    }
                },
                Value::Dict(_) => walk(value, &name, out, index)?,
                _ => tracing::debug!("checkpoint entry {name} is not a tensor; skipped"),
            }
        }
        Ok(())
    }
    if !matches!(root, Value::Dict(_)) {
        return Err("the pickled object is not a dict of tensors".into());
    }
    let mut out = Vec::new();
    walk(root, "", &mut out, &mut HashMap::new())?;
    if out.is_empty() {
        return Err("the state dict holds no tensors".into());
    }
    Ok(out)
}

/// Copies one tensor out of its root storage's bytes, after checking that every element it
/// addresses lies inside the storage. Tensors addressing more elements than their storage
/// holds (stride-0 broadcasts, overlapping strides) are refused: a state dict never has them
/// and they would let a tiny file claim a huge tensor.
fn gather(name: &str, t: &TensorRef, root_bytes: &[u8]) -> Result<CheckpointTensor, String> {
    let err = |what: String| format!("tensor {name}: {what}");
    let StorageRef {
        storage_type,
        offset: view_offset,
        numel,
        ..
    } = t.storage;
    let es = storage_type.element_size();
    let view_end = view_offset
        .checked_add(numel)
        .and_then(|e| e.checked_mul(es))
        .filter(|&e| e <= root_bytes.len())
        .ok_or_else(|| err("storage is larger than the data in the file".into()))?;
    let storage = &root_bytes[view_offset * es..view_end];

    let elements = t
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| err(format!("shape {:?} overflows", t.shape)))?;
    let mut data = Vec::new();
    if elements > 0 {
        let last = t
            .shape
            .iter()
            .zip(&t.stride)
            .try_fold(t.storage_offset, |acc, (&d, &s)| {
                (d - 1).checked_mul(s).and_then(|x| acc.checked_add(x))
            })
            .filter(|&last| last < numel)
            .ok_or_else(|| {
                err(format!(
                    "offset {} + shape {:?} x stride {:?} reaches past its storage of {numel} elements",
                    t.storage_offset, t.shape, t.stride
                ))
            })?;
        debug_assert!(last < numel);
        if elements > numel {
            return Err(err(format!(
                "shape {:?} has more elements than its storage ({numel})",
                t.shape
            )));
        }
        data.reserve_exact(elements * es);
        copy_strided(&mut data, storage, t, es);
    }
    Ok(CheckpointTensor {
        name: name.to_string(),
        dtype: storage_type.dtype(),
        shape: t.shape.clone(),
        data,
    })
}

/// Row-major copy of a strided view; contiguous runs of the innermost dimension are copied
/// as one slice. Bounds were checked by the caller.
fn copy_strided(out: &mut Vec<u8>, storage: &[u8], t: &TensorRef, es: usize) {
    let rank = t.shape.len();
    if rank == 0 {
        out.extend_from_slice(&storage[t.storage_offset * es..][..es]);
        return;
    }
    let inner = t.shape[rank - 1];
    let inner_stride = t.stride[rank - 1];
    let mut index = vec![0usize; rank - 1];
    loop {
        let base = t.storage_offset
            + index
                .iter()
                .zip(&t.stride)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        if inner_stride == 1 {
            out.extend_from_slice(&storage[base * es..(base + inner) * es]);
        } else {
            for i in 0..inner {
                let at = (base + i * inner_stride) * es;
                out.extend_from_slice(&storage[at..at + es]);
            }
        }
        // Odometer increment over the outer dimensions.
        let mut d = rank - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            index[d] += 1;
            if index[d] < t.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
}

/// How much larger than the file its gathered tensors may be. Tensors sharing a storage are
/// each copied out, so a tiny file naming one storage thousands of times could otherwise
/// expand without bound; real checkpoints share little (tied weights: about 2x).
pub const MAX_EXPANSION: usize = 8;

/// Gathers every tensor of a state dict, given a lookup of root storage bytes by key.
/// `file_len` bounds the total output to `MAX_EXPANSION` times the file (plus 1 MiB).
fn gather_all<'a>(
    root: &Value,
    file_len: usize,
    mut storage_bytes: impl FnMut(&StorageRef) -> Result<&'a [u8], String>,
) -> Result<Vec<CheckpointTensor>, String> {
    let mut budget = file_len
        .saturating_mul(MAX_EXPANSION)
        .saturating_add(1 << 20);
    collect_tensors(root)?
        .into_iter()
        .map(|(name, t)| {
            let bytes = storage_bytes(&t.storage).map_err(|e| format!("tensor {name}: {e}"))?;
            // Elements are at most the storage's (checked in `gather`), so this bounds the
            // copy before it is made.
            let most = t
                .storage
                .numel
                .saturating_mul(t.storage.storage_type.element_size());
            budget = budget.checked_sub(most.min(tensor_bytes(&t))).ok_or_else(|| {
                format!(
                    "tensor {name}: the tensors would take more than {MAX_EXPANSION}x the file's \
                     size (the same storage referenced over and over)"
                )
            })?;
            gather(&name, &t, bytes)
        })
        .collect()
}

/// Bytes of a tensor's elements, saturating (its validity is checked by `gather`).
fn tensor_bytes(t: &TensorRef) -> usize {
    t.shape
        .iter()
        .fold(t.storage.storage_type.element_size(), |acc, &d| {
            acc.saturating_mul(d)
        })
}
