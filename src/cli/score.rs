//! `vidcap score --refs REFS.json --hyps HYPS.json [--json]`: BLEU-1..4, ROUGE-L, CIDEr-D
//! (and METEOR when Java and the official jar are available) with pycocoevalcap's numbers.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::metrics::{self, MetricsError, ScoreOptions, Scores, meteor};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// References: {"id": ["caption", …], …}, or a COCO annotation file
    /// {"annotations": [{"image_id": id, "caption": "…"}, …]}.
    #[arg(long, value_name = "REFS.json")]
    pub refs: PathBuf,
    /// Hypotheses: {"id": "caption", …} or a coco results list
    /// [{"image_id"|"video_id": id, "caption": "…"}, …].
    #[arg(long, value_name = "HYPS.json")]
    pub hyps: PathBuf,
    /// Print one JSON document instead of a table, keyed as coco-caption does (Bleu_1…
    /// Bleu_4, METEOR, ROUGE_L, CIDEr; CIDEr is CIDEr-D, as in pycocoevalcap).
    #[arg(long)]
    pub json: bool,
    /// Also print every id's scores.
    #[arg(long)]
    pub per_id: bool,
    /// The METEOR 1.5 jar (default: $VIDCAP_METEOR_JAR, else pycocoevalcap's copy).
    #[arg(long, value_name = "PATH")]
    pub meteor_jar: Option<PathBuf>,
    /// Leave METEOR out even when Java and the jar are available.
    #[arg(long, conflicts_with = "meteor_jar")]
    pub no_meteor: bool,
}

pub fn run(args: Args, global: &super::Global) -> anyhow::Result<u8> {
    let clock = std::time::Instant::now();
    let refs = read_refs(&args.refs)?;
    let hyps = read_hyps(&args.hyps)?;
    tracing::debug!("read the inputs in {:.3} s", clock.elapsed().as_secs_f64());
    let context = || {
        format!(
            "scoring {} against {}",
            args.hyps.display(),
            args.refs.display()
        )
    };
    let scores = score_with_meteor(
        &refs,
        &hyps,
        args.meteor_jar.as_deref(),
        args.no_meteor,
        global,
    )
    .with_context(context)?;
    let report = if args.json {
        serde_json::to_string_pretty(&to_json(&scores, args.per_id))? + "\n"
    } else {
        to_table(&scores, args.per_id)
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(report.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // The reader went away (`| head`): nothing left to tell it.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(super::EXIT_OK),
        result => {
            result.context("writing to stdout")?;
            Ok(super::EXIT_OK)
        }
    }
}

/// [`metrics::score_all`] with METEOR when it can run: a jar asked for (`jar` or
/// $VIDCAP_METEOR_JAR) must work; one found in an installed pycocoevalcap is used when it
/// works and otherwise left out, said once. Shared by `score` and `eval`.
pub(super) fn score_with_meteor(
    refs: &BTreeMap<String, Vec<String>>,
    hyps: &BTreeMap<String, String>,
    jar: Option<&Path>,
    no_meteor: bool,
    global: &super::Global,
) -> anyhow::Result<Scores> {
    let asked_for = jar.is_some() || std::env::var_os(meteor::JAR_ENV).is_some();
    let leave_out = |why: &str| {
        if !global.quiet {
            tracing::warn!("METEOR left out of the report: {why}");
        }
    };
    let meteor = if no_meteor {
        None
    } else {
        match meteor::locate(jar) {
            Ok(config) => Some(config),
            Err(why) if asked_for => bail!("METEOR: {why}"),
            Err(why) => {
                leave_out(&why);
                None
            }
        }
    };
    Ok(
        match metrics::score_all(refs, hyps, &ScoreOptions { meteor }) {
            Err(MetricsError::Meteor(why)) if !asked_for => {
                leave_out(&why);
                metrics::score_all(refs, hyps, &ScoreOptions::default())?
            }
            result => result?,
        },
    )
}

/// The metrics under coco-caption's names (pycocoevalcap's `COCOEvalCap.eval` keys), in its
/// order. Its `CIDEr` is the CIDEr-D variant, and so is ours.
fn metric_values(
    bleu: [f64; 4],
    rouge_l: f64,
    cider_d: f64,
    meteor: Option<f64>,
) -> Vec<(&'static str, f64)> {
    let mut values = vec![
        ("Bleu_1", bleu[0]),
        ("Bleu_2", bleu[1]),
        ("Bleu_3", bleu[2]),
        ("Bleu_4", bleu[3]),
    ];
    values.extend(meteor.map(|m| ("METEOR", m)));
    values.extend([("ROUGE_L", rouge_l), ("CIDEr", cider_d)]);
    values
}

pub(super) fn to_table(scores: &Scores, per_id: bool) -> String {
    let mut out = String::new();
    for (name, value) in metric_values(scores.bleu, scores.rouge_l, scores.cider_d, scores.meteor) {
        out.push_str(&format!("{name:<8} {value:.6}\n"));
    }
    out.push_str(&format!("{:<8} {}\n", "ids", scores.per_id.len()));
    if per_id {
        for (id, s) in &scores.per_id {
            let values = metric_values(s.bleu, s.rouge_l, s.cider_d, s.meteor);
            let cells: Vec<String> = values.iter().map(|(n, v)| format!("{n}={v:.6}")).collect();
            out.push_str(&format!("{id}\t{}\n", cells.join(" ")));
        }
    }
    out
}

fn metrics_object(bleu: [f64; 4], rouge_l: f64, cider_d: f64, meteor: Option<f64>) -> Value {
    metric_values(bleu, rouge_l, cider_d, meteor)
        .into_iter()
        .map(|(name, value)| (name.to_string(), json!(value)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// `{"ids": N, "Bleu_1": …, "Bleu_4": …, "METEOR": …, "ROUGE_L": …, "CIDEr": …}` (METEOR only
/// when it ran; `per_id` holds the same keys per id).
pub(super) fn to_json(scores: &Scores, per_id: bool) -> Value {
    let mut doc = json!({"ids": scores.per_id.len()});
    let metrics = metrics_object(scores.bleu, scores.rouge_l, scores.cider_d, scores.meteor);
    doc.as_object_mut()
        .expect("an object")
        .extend(metrics.as_object().expect("an object").clone());
    if per_id {
        doc["per_id"] = scores
            .per_id
            .iter()
            .map(|(id, s)| {
                (
                    id.clone(),
                    metrics_object(s.bleu, s.rouge_l, s.cider_d, s.meteor),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    doc
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// serde_json errors already carry "at line L column C"; prefix the file.
fn parse<'a, T: Deserialize<'a>>(path: &Path, text: &'a str, expected: &str) -> anyhow::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        let kind = if e.is_syntax() || e.is_eof() {
            "malformed JSON"
        } else {
            "unexpected content"
        };
        anyhow::anyhow!("{}: {kind}: {e} (expected {expected})", path.display())
    })
}

/// References: `{"id": ["caption", …]}`, or a COCO annotation file
/// `{"annotations": [{"image_id": id, "caption": "…"}, …], …}` (other keys ignored).
pub fn read_refs(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let text = read(path)?;
    let value: Value = parse(path, &text, REFS_FORMS)?;
    if value.get("annotations").is_some_and(Value::is_array) {
        let coco: CocoAnnotations = parse(path, &text, REFS_FORMS)?;
        let mut refs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for entry in coco.annotations {
            refs.entry(entry.image_id.into_string())
                .or_default()
                .push(entry.caption);
        }
        return Ok(refs);
    }
    parse(path, &text, REFS_FORMS)
}

const REFS_FORMS: &str =
    r#"{"id": ["caption", …]} or {"annotations": [{"image_id": id, "caption": "…"}, …]}"#;

/// A COCO captions annotation file (`images`, `info`… are not needed for scoring).
#[derive(Deserialize)]
struct CocoAnnotations {
    annotations: Vec<CocoAnnotation>,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    image_id: Id,
    caption: String,
}

/// A video or image id in a coco results list: a string or an integer.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(i64),
}

impl Id {
    fn into_string(self) -> String {
        match self {
            Id::Text(s) => s,
            Id::Number(n) => n.to_string(),
        }
    }
}

/// One entry of a coco results list (other fields, such as a score, are ignored).
#[derive(Deserialize)]
struct ResultEntry {
    image_id: Option<Id>,
    video_id: Option<Id>,
    caption: String,
}

/// `{"id": "caption"}` or `[{"image_id"|"video_id": id, "caption": "…"}]`.
pub fn read_hyps(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = read(path)?;
    if !text.trim_start().starts_with('[') {
        return parse(
            path,
            &text,
            r#"{"id": "caption"} or [{"video_id": id, "caption": "…"}]"#,
        );
    }
    let entries: Vec<ResultEntry> = parse(
        path,
        &text,
        r#"[{"image_id"|"video_id": id, "caption": "…"}]"#,
    )?;
    let mut hyps = BTreeMap::new();
    let mut first_entry = BTreeMap::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let id = match (entry.image_id, entry.video_id) {
            (Some(id), None) | (None, Some(id)) => id,
            (None, None) => bail!(
                "{}: entry {} has neither image_id nor video_id",
                path.display(),
                i + 1
            ),
            (Some(_), Some(_)) => bail!(
                "{}: entry {} has both image_id and video_id",
                path.display(),
                i + 1
            ),
        };
        let id = id.into_string();
        if let Some(first) = first_entry.insert(id.clone(), i + 1) {
            bail!(
                "{}: id {id:?} appears twice (entries {first} and {})",
                path.display(),
                i + 1
            );
        }
        hyps.insert(id, entry.caption);
    }
    Ok(hyps)
}
