//! One `vidcap annotate` per annotation file: a lock file beside it (`NAME.lock`), created
//! exclusively, holding the owner's pid, and removed when the server stops. A lock left by
//! a process that is no longer running (killed, machine crash) is reported and replaced.
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Held while the server runs; dropping it removes the lock file.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

impl Lock {
    /// The lock file of `file`: `file` with `.lock` appended.
    pub fn path_for(file: &Path) -> PathBuf {
        let mut name = file.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        file.with_file_name(name)
    }

    /// Takes the lock of `file`, or says who holds it.
    pub fn acquire(file: &Path) -> Result<Self> {
        let path = Self::path_for(file);
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    writeln!(f, "pid {}", std::process::id())
                        .and_then(|_| f.sync_all())
                        .with_context(|| format!("{}: cannot write the lock", path.display()))?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).ok().and_then(|t| {
                        t.trim()
                            .strip_prefix("pid ")
                            .and_then(|p| p.trim().parse::<u32>().ok())
                    });
                    match owner {
                        Some(pid) if !is_running(pid) => {
                            tracing::warn!(
                                "{}: stale lock of pid {pid}, which is not running any more: taking it over",
                                path.display()
                            );
                            std::fs::remove_file(&path).with_context(|| {
                                format!("{}: cannot remove the stale lock", path.display())
                            })?;
                        }
                        Some(pid) => bail!(
                            "{} is being annotated by another vidcap annotate (pid {pid}; lock {}): stop that one first",
                            file.display(),
                            path.display()
                        ),
                        None => bail!(
                            "{} is locked ({} exists but names no pid): if no vidcap annotate is running on it, delete the lock file",
                            file.display(),
                            path.display()
                        ),
                    }
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("{}: cannot create the lock", path.display()));
                }
            }
        }
        bail!("{}: the lock keeps changing hands", path.display())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether `pid` is a running process that could hold the lock. Where that cannot be told
/// (no `/proc`), every pid counts as running, so a lock is never broken by mistake.
fn is_running(pid: u32) -> bool {
    let proc_dir = Path::new("/proc");
    if !proc_dir.join("self").exists() {
        return true;
    }
    if pid == std::process::id() {
        return true;
    }
    match std::fs::read(proc_dir.join(pid.to_string()).join("cmdline")) {
        // A recycled pid of some other program does not hold the lock.
        Ok(cmdline) => cmdline.split(|&b| b == 0).any(|arg| arg == b"annotate"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_a_dead_owner_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ann.jsonl");
        let lock = Lock::acquire(&file).unwrap();
        assert_eq!(lock.path(), dir.path().join("ann.jsonl.lock"));
        // This process holds it: a second acquire names our pid.
        let err = Lock::acquire(&file).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(lock);
        assert!(!dir.path().join("ann.jsonl.lock").exists());
        // A pid that cannot be running (beyond pid_max) is stale.
        std::fs::write(dir.path().join("ann.jsonl.lock"), "pid 4294967295\n").unwrap();
        let lock = Lock::acquire(&file).unwrap();
        let text = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(text.trim(), format!("pid {}", std::process::id()));
    }
}
