//! The zip format of `torch.save` (torch >= 1.6): `<name>/data.pkl` holds the pickled object,
//! `<name>/data/<key>` the raw little-endian bytes of each storage, stored uncompressed.
use std::collections::HashMap;
use std::io::{Cursor, Read};

use super::pickle;
use super::{CheckpointTensor, StorageTable, gather_all};

pub fn parse(data: &[u8]) -> Result<Vec<CheckpointTensor>, String> {
    let mut archive =
        ::zip::ZipArchive::new(Cursor::new(data)).map_err(|e| format!("bad zip archive: {e}"))?;
    let pickles: Vec<String> = archive
        .file_names()
        .filter_map(Result::ok)
        .filter(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .map(|n| n.into_owned())
        .collect();
    let [pkl] = pickles.as_slice() else {
        return Err(format!(
            "expected one <name>/data.pkl entry, found {}",
            pickles.len()
        ));
    };
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    // Entries may overlap inside a hostile archive; the sum of all reads stays within the
    // file's own size.
    let mut budget = data.len();

    if let Ok(order) = read_entry(&mut archive, &format!("{prefix}byteorder"), 16, &mut budget)
        && order != b"little"
    {
        return Err(format!(
            "byte order {:?} is not supported",
            String::from_utf8_lossy(&order)
        ));
    }
    let pickle_bytes = read_entry(&mut archive, pkl, data.len(), &mut budget)?;
    let mut storages = StorageTable::default();
    let (object, _) =
        pickle::unpickle(&pickle_bytes, &mut storages).map_err(|e| format!("{pkl}: {e}"))?;

    let mut raw: HashMap<String, Vec<u8>> = HashMap::new();
    for (key, (storage_type, numel)) in &storages.roots {
        if key.contains(['/', '\\']) || key.contains("..") {
            return Err(format!("storage key {key:?} is not a plain name"));
        }
        let len = numel
            .checked_mul(storage_type.element_size())
            .filter(|&len| len <= budget)
            .ok_or_else(|| {
                format!("storage {key:?} declares {numel} elements, more than the file holds")
            })?;
        let name = format!("{prefix}data/{key}");
        let bytes = read_entry(&mut archive, &name, len, &mut budget)?;
        if bytes.len() < len {
            return Err(format!(
                "{name} holds {} bytes, its storage needs {len} (truncated?)",
                bytes.len()
            ));
        }
        raw.insert(key.clone(), bytes);
    }
    gather_all(&object, data.len(), |s| {
        raw.get(&s.key)
            .map(Vec::as_slice)
            .ok_or_else(|| format!("storage {:?} not found", s.key))
    })
}

/// Reads at most `limit` bytes of an entry, charging them to `budget`.
fn read_entry(
    archive: &mut ::zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    limit: usize,
    budget: &mut usize,
) -> Result<Vec<u8>, String> {
    let entry = archive
        .by_name(name)
        .map_err(|e| format!("entry {name}: {e}"))?;
    let declared = usize::try_from(entry.size()).unwrap_or(usize::MAX);
    let want = declared.min(limit);
    if want > *budget {
        return Err(format!(
            "entry {name} declares {declared} bytes, more than the file holds"
        ));
    }
    let mut out = Vec::with_capacity(want);
    entry
        .take(want as u64)
        .read_to_end(&mut out)
        .map_err(|e| format!("entry {name}: {e}"))?;
    *budget -= out.len();
    Ok(out)
}
