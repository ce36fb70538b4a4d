//! Atomic file writes, the one way every output and checkpoint reaches the disk: a uniquely
//! named temporary file in the same directory, synced, then renamed over the target, so a
//! reader (or a crash) sees the old file or the new one, never half of one.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;

/// A hidden temporary path beside `path`, unique per process and call (threads may write
/// into one directory at once).
pub fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Write `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomic_with(path, |w| Ok(w.write_all(bytes)?))
}

/// Write `path` atomically through `write`, which gets a buffered writer on the temp file.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&mut File>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let tmp = temp_path(path);
    let result = (|| -> anyhow::Result<()> {
        let mut file = File::create(&tmp)?;
        {
            let mut w = BufWriter::new(&mut file);
            write(&mut w)?;
            w.flush()?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("{}: cannot write", path.display()))
}

/// A PNG of 8-bit pixels (`color` says which: RGB, RGBA, …), written atomically.
pub fn write_png(
    path: &Path,
    pixels: &[u8],
    width: u32,
    height: u32,
    color: image::ExtendedColorType,
) -> anyhow::Result<()> {
    use image::ImageEncoder;
    write_atomic_with(path, |w| {
        image::codecs::png::PngEncoder::new(w).write_image(pixels, width, height, color)?;
        Ok(())
    })
}

/// Finish a file written to [`temp_path`] by a writer that needs a path (image, npy and MP4
/// encoders): rename it into place, or remove it if writing failed.
pub fn commit_temp(tmp: &Path, path: &Path, written: anyhow::Result<()>) -> anyhow::Result<()> {
    let result = written.and_then(|_| {
        std::fs::rename(tmp, path).with_context(|| format!("{}: cannot write", path.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temp_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new contents").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new contents");
        let failed = write_atomic_with(&path, |w| {
            w.write_all(b"partial")?;
            anyhow::bail!("the writer failed")
        });
        assert!(failed.is_err());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"new contents",
            "a failed write keeps the old file"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
