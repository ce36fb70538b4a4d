//! The legacy (pre-1.6) `torch.save` stream: pickle(magic) pickle(protocol) pickle(sys_info)
//! pickle(object) pickle(storage keys), then per key an i64 element count and the raw
//! little-endian elements.
use std::collections::HashMap;

use super::pickle::{self, Value};
use super::{CheckpointTensor, StorageTable, gather_all};

pub const MAGIC_NUMBER: i128 = 0x1950a86a20f9469cfc6c;
pub const PROTOCOL_VERSION: i128 = 1001;

/// The header pickles contain no persistent ids.
struct NoStorages;

impl pickle::PersistentLoad for NoStorages {
    fn persistent_load(&mut self, _: &Value) -> Result<Value, String> {
        Err("unexpected persistent id in a header pickle".into())
    }
}

/// Unpickles the next stream at `*pos`, naming `what` in errors with the file offset.
fn next_pickle(
    data: &[u8],
    pos: &mut usize,
    what: &str,
    persistent: &mut impl pickle::PersistentLoad,
) -> Result<Value, String> {
    let (v, used) = pickle::unpickle(&data[*pos..], persistent)
        .map_err(|e| format!("{what} (at byte {}): {}", *pos + e.offset, e.reason))?;
    *pos += used;
    Ok(v)
}

pub fn parse(data: &[u8]) -> Result<Vec<CheckpointTensor>, String> {
    let mut pos = 0usize;
    let magic = next_pickle(data, &mut pos, "magic number", &mut NoStorages)?;
    if magic != Value::Int(MAGIC_NUMBER) {
        return Err(format!(
            "wrong magic number {magic:?} (expected 0x1950a86a20f9469cfc6c)"
        ));
    }
    let protocol = next_pickle(data, &mut pos, "protocol version", &mut NoStorages)?;
    if protocol != Value::Int(PROTOCOL_VERSION) {
        return Err(format!(
            "unsupported protocol version {protocol:?} (expected 1001)"
        ));
    }
    let sys_info = next_pickle(data, &mut pos, "system info", &mut NoStorages)?;
    check_little_endian(&sys_info)?;

    let mut storages = StorageTable::default();
    let object = next_pickle(data, &mut pos, "state dict", &mut storages)?;
    let keys = next_pickle(data, &mut pos, "storage key list", &mut NoStorages)?;
    let keys = keys
        .as_seq()
        .ok_or("the storage key list is not a list")?
        .iter()
        .map(|k| {
            k.as_str()
                .map(str::to_string)
                .ok_or("a storage key is not a string")
        })
        .collect::<Result<Vec<_>, _>>()?;

    // The raw storages follow in key order; each is sliced out of `data` after its declared
    // size has been checked against the bytes that are really there.
    let mut raw: HashMap<&str, &[u8]> = HashMap::new();
    for key in &keys {
        let (storage_type, numel) = *storages
            .roots
            .get(key)
            .ok_or_else(|| format!("storage key {key:?} is listed but no tensor uses it"))?;
        let count_bytes = data
            .get(pos..pos + 8)
            .ok_or_else(|| format!("truncated before the size of storage {key:?}"))?;
        let count = i64::from_le_bytes(count_bytes.try_into().unwrap());
        pos += 8;
        if usize::try_from(count).ok() != Some(numel) {
            return Err(format!(
                "storage {key:?} has {count} elements in the data but {numel} in the pickle"
            ));
        }
        let len = numel
            .checked_mul(storage_type.element_size())
            .filter(|&len| len <= data.len() - pos)
            .ok_or_else(|| {
                format!(
                    "storage {key:?} declares {numel} elements but only {} bytes are left (truncated?)",
                    data.len() - pos
                )
            })?;
        if raw.insert(key.as_str(), &data[pos..pos + len]).is_some() {
            return Err(format!("storage key {key:?} listed twice"));
        }
        pos += len;
    }
    if pos != data.len() {
        tracing::warn!("{} bytes after the last storage ignored", data.len() - pos);
    }
    gather_all(&object, data.len(), |s| {
        raw.get(s.key.as_str())
            .copied()
            .ok_or_else(|| format!("storage {:?} is missing from the storage key list", s.key))
    })
}

fn check_little_endian(sys_info: &Value) -> Result<(), String> {
    let Value::Dict(map) = sys_info else {
        return Err("system info is not a dict".into());
    };
    let flag = map
        .items
        .iter()
        .find(|(k, _)| k.as_str() == Some("little_endian"))
        .map(|(_, v)| v);
    match flag {
        Some(Value::Bool(true)) | None => Ok(()),
        Some(_) => Err("big-endian checkpoints are not supported".into()),
    }
}
