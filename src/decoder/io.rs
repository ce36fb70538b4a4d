//! The safetensors form of a parameter set.
use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use super::params::{Dims, Weights, layout};

/// Serialises named f32 tensors (`prefix` + PyTorch-style names) with string metadata.
pub fn tensors_to_bytes(
    groups: &[(&str, &Weights<f32>)],
    dims: &Dims,
    extra: Vec<(String, Vec<usize>, Vec<f32>)>,
    metadata: HashMap<String, String>,
) -> anyhow::Result<Vec<u8>> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (prefix, w) in groups {
        for ((name, shape), data) in layout(dims).into_iter().zip(w.tensors()) {
            if !data.is_empty() {
                owned.push((format!("{prefix}{name}"), shape, bytes_of(data)));
            }
        }
    }
    for (name, shape, data) in extra {
        owned.push((name, shape, bytes_of(&data)));
    }
    let views = owned
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    Ok(safetensors::serialize(views, Some(metadata))?)
}

fn bytes_of(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Reads one f32 tensor and checks its shape.
pub fn read_tensor(
    st: &SafeTensors,
    name: &str,
    shape: &[usize],
    file: &Path,
) -> anyhow::Result<Vec<f32>> {
    let view = st
        .tensor(name)
        .with_context(|| format!("{}: tensor {name} is missing", file.display()))?;
    if view.dtype() != Dtype::F32 {
        bail!(
            "{}: tensor {name} is {:?}, expected F32",
            file.display(),
            view.dtype()
        );
    }
    if view.shape() != shape {
        bail!(
            "{}: tensor {name} has shape {:?}, the config says {:?}",
            file.display(),
            view.shape(),
            shape
        );
    }
    Ok(view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Reads a parameter set written by `tensors_to_bytes` under `prefix`.
pub fn read_weights(
    st: &SafeTensors,
    prefix: &str,
    dims: &Dims,
    file: &Path,
) -> anyhow::Result<Weights<f32>> {
    let mut w = Weights::zeros(dims);
    for ((name, shape), dst) in layout(dims).into_iter().zip(w.tensors_mut()) {
        if shape.iter().product::<usize>() > 0 {
            *dst = read_tensor(st, &format!("{prefix}{name}"), &shape, file)?;
        }
    }
    Ok(w)
}
