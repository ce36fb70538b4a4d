//! `training_report.json`: how a model was trained and, added later by recipes (`vidcap
//! report set`), how it scored.
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Map, Value};

/// The report's file name in a model directory.
pub const REPORT_FILE: &str = "training_report.json";

/// Sets `path` (keys joined by dots; missing objects are created) of the model's report to
/// `value`, keeping only the `keep` fields of an object value when `keep` is not empty, and
/// rewrites the report atomically.
pub fn set_report_value(
    model_dir: &Path,
    path: &str,
    mut value: Value,
    keep: &[String],
) -> anyhow::Result<()> {
    let file = model_dir.join(REPORT_FILE);
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("{}: cannot read the training report", file.display()))?;
    let mut report: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", file.display()))?;
    if !keep.is_empty() {
        let Value::Object(fields) = &mut value else {
            bail!("only fields of a JSON object can be kept, not of {value}");
        };
        fields.retain(|k, _| keep.contains(k));
    }
    let keys: Vec<&str> = path.split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        bail!("{path:?} is not a dotted key path (e.g. test.annotations)");
    }
    let mut node = &mut report;
    for (depth, key) in keys.iter().enumerate() {
        let Value::Object(object) = node else {
            bail!(
                "{}: {} is not a JSON object",
                file.display(),
                keys[..depth].join(".")
            );
        };
        if depth + 1 == keys.len() {
            object.insert(key.to_string(), value);
            break;
        }
        node = object
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    let mut text = serde_json::to_string_pretty(&report)?;
    text.push('\n');
    crate::atomic::write_atomic(&file, text.as_bytes())
}
