//! `vidcap merge OUT SOURCE...`: one JSONL annotation file from several, e.g. two synthetic
//! corpora as one training set, or a corpus with every clip moved to the test split.
use std::path::PathBuf;

use anyhow::Context;

use super::{EXIT_OK, Global};
use crate::dataset::{MergeSource, Split, merge_jsonl};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The merged annotation file to write (corpus.json describing the sources is written
    /// beside it, unless that folder holds one of the sources).
    pub out: PathBuf,
    /// JSONL annotation files, each optionally followed by `,split=train|val|test` (every
    /// clip to that split) and `,prefix=P` (put before every clip id).
    #[arg(required = true, value_name = "FILE[,split=S][,prefix=P]", value_parser = parse_source)]
    pub sources: Vec<MergeSource>,
    /// Print the summary as one JSON document.
    #[arg(long)]
    pub json: bool,
}

fn parse_source(text: &str) -> Result<MergeSource, String> {
    let mut parts = text.split(',');
    let file = PathBuf::from(parts.next().unwrap_or_default());
    let mut source = MergeSource {
        file,
        split: None,
        prefix: String::new(),
    };
    for part in parts {
        match part.split_once('=') {
            Some(("split", s)) => {
                source.split = Some(s.parse::<Split>().map_err(|e| e.to_string())?)
            }
            Some(("prefix", p)) => source.prefix = p.to_string(),
            _ => return Err(format!("{part:?}: expected split=S or prefix=P")),
        }
    }
    Ok(source)
}

pub fn run(args: Args, _global: &Global) -> anyhow::Result<u8> {
    let summary = merge_jsonl(&args.sources, &args.out)
        .with_context(|| format!("cannot merge into {}", args.out.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let splits: Vec<String> = summary
            .splits
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        println!(
            "{}: {} clips ({})",
            args.out.display(),
            summary.clips,
            splits.join(", ")
        );
    }
    Ok(EXIT_OK)
}
