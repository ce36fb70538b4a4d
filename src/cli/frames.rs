//! `vidcap frames` (TODO(skeleton): filled in by the video work).
#[derive(clap::Args, Debug)]
pub struct Args {
    pub video: std::path::PathBuf,
}

pub fn run(_args: Args, _global: &super::Global) -> anyhow::Result<u8> {
    anyhow::bail!("not implemented yet")
}
