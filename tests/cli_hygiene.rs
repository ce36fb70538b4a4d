//! The command line as a whole: every option explained, enum values listed, global options
//! apart, usage errors exit 2 in vidcap's message style, failures of a multi-video caption
//! on stderr only.
mod util;
use std::path::Path;
use std::process::Output;
use util::vidcap;

use clap::CommandFactory;
use vidcap::cli::Cli;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn check_help(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        if help.trim().is_empty() {
            missing.push(format!("{path} {id}"));
        }
    }
    for sub in cmd.get_subcommands() {
        check_help(sub, &format!("{path} {}", sub.get_name()), missing);
    }
}

#[test]
fn every_option_of_every_subcommand_has_a_help_line() {
    let mut missing = Vec::new();
    check_help(&Cli::command(), "vidcap", &mut missing);
    assert!(missing.is_empty(), "no help line: {missing:?}");
}

#[test]
fn help_lists_format_values_and_global_options_apart() {
    let out = vidcap(&["caption", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for value in ["text", "json", "jsonl", "srt", "vtt"] {
        assert!(
            help.contains(value),
            "--format value {value} not shown:\n{help}"
        );
    }
    let own = help.find("--beam").expect("caption's own options");
    let heading = help
        .find("Global options:")
        .expect("a Global options heading");
    let threads = help.find("--threads").unwrap();
    assert!(own < heading && heading < threads, "{help}");
    assert!(help.contains("in seconds"), "units in help lines:\n{help}");
}

#[test]
fn bad_values_are_usage_errors_in_one_style() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tmp.path().join("set.jsonl");
    std::fs::write(&dataset, "").unwrap();
    let d = dataset.to_str().unwrap();
    let o = tmp.path().join("out");
    let o = o.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["caption", "clip.mp4", "--segments", "0"],
        vec!["caption", "clip.mp4", "--segments", "-3"],
        vec!["caption", "clip.mp4", "--beam", "0"],
        vec!["caption", "clip.mp4", "--frames", "0"],
        vec!["caption", "clip.mp4", "--min-familiarity", "1.5"],
        vec!["batch", "lib", "--out", o, "--shard", "2/2"],
        vec!["batch", "lib", "--out", o, "--shard", "0/0"],
        vec!["extract", d, "--out", o, "--shard", "2/2"],
        vec!["train", d, "--out", o, "--batch-size", "0"],
        vec!["train", d, "--out", o, "--epochs", "0"],
        vec!["eval", d, "--model", o, "--beam", "0"],
        vec!["--threads", "0", "probe", "clip.mp4"],
        vec!["caption", "a.mp4", "b.mp4", "--sheet", "sheet.png"],
        vec!["caption", "a.mp4", "b.mp4", "--format", "srt"],
    ];
    for args in cases {
        let out = vidcap(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("vidcap: error: "), "{args:?}: {err}");
        assert_eq!(
            err.matches("error:").count(),
            1,
            "{args:?}: said once: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn caption_of_a_directory_keeps_failures_off_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/testsrc2_320x240_4s.mp4");
    std::fs::copy(&sample, lib.join("good.mp4")).unwrap();
    std::fs::write(lib.join("broken.mp4"), b"not a video at all").unwrap();
    std::fs::write(lib.join("notes.txt"), b"not a video, not counted as one").unwrap();
    let out = vidcap(&["caption", lib.to_str().unwrap(), "--frames", "4"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].contains("good.mp4: "), "{stdout}");
    let err = stderr(&out);
    let failures: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("vidcap: error: "))
        .collect();
    assert_eq!(failures.len(), 1, "{err}");
    assert!(failures[0].contains("broken.mp4"), "{err}");
    assert!(
        err.lines()
            .all(|l| l.is_empty() || l.starts_with("vidcap: ") || l.starts_with(' ')),
        "one message style: {err}"
    );
}
