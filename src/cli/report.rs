//! `vidcap report set MODEL_DIR KEY VALUE`: adds scores and notes to a model's
//! training_report.json, so recipes (scripts/train_synth_decoder.sh) need no other tool.
use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

use super::{EXIT_OK, Global};
use crate::train::report::set_report_value;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Set one value of the report (rewritten atomically).
    Set {
        /// Model directory holding training_report.json.
        model: PathBuf,
        /// Dotted key path, e.g. `test.annotations` (missing objects are created).
        key: String,
        /// JSON text, or `@FILE` for a JSON file (e.g. an eval's metrics.json).
        value: String,
        /// Keep only these fields of an object value (comma-separated).
        #[arg(long, value_delimiter = ',', value_name = "FIELD,...")]
        keep: Vec<String>,
    },
}

pub fn run(args: Args, _global: &Global) -> anyhow::Result<u8> {
    let What::Set {
        model,
        key,
        value,
        keep,
    } = args.what;
    let value: Value = match value.strip_prefix('@') {
        Some(file) => {
            let text =
                std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?;
            serde_json::from_str(&text).with_context(|| format!("{file}: not valid JSON"))?
        }
        None => serde_json::from_str(&value)
            .with_context(|| format!("{value:?} is not JSON (strings need quotes: '\"text\"')"))?,
    };
    set_report_value(&model, &key, value, &keep)?;
    Ok(EXIT_OK)
}
