//! Helpers of the integration tests, one module for all of them (each test binary includes
//! it with `mod util;` and uses its part, hence the dead-code allowance).
#![allow(dead_code)]
use std::ffi::OsStr;
use std::process::{Command, Output};

pub mod annotate;
pub mod checkpoint;
pub mod synth;
pub mod video;

/// The binary under test.
pub const VIDCAP: &str = env!("CARGO_BIN_EXE_vidcap");

/// A `vidcap` command with the environment the tests rely on: no METEOR jar (its scores
/// would depend on the machine).
pub fn vidcap_cmd() -> Command {
    let mut cmd = Command::new(VIDCAP);
    cmd.env_remove("VIDCAP_METEOR_JAR");
    cmd
}

/// Runs `vidcap ARGS` and returns its output, whatever its exit status.
pub fn vidcap<S: AsRef<OsStr>>(args: &[S]) -> Output {
    vidcap_cmd().args(args).output().expect("run vidcap")
}

/// [`vidcap`], asserting that it succeeded (stderr in the message otherwise).
pub fn vidcap_ok<S: AsRef<OsStr>>(args: &[S]) -> Output {
    let out = vidcap(args);
    let args: Vec<_> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    assert!(
        out.status.success(),
        "vidcap {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
