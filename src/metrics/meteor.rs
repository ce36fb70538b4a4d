//! METEOR 1.5 through the official jar, driven the way pycocoevalcap drives it:
//! `java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm` in the jar's directory, one
//! `SCORE ||| ref … ||| hyp` line per id (answered by a statistics line), then one
//! `EVAL ||| stats …` line answered by every id's score and the corpus score.
//! There is no Rust METEOR: without Java and the jar the metric is left out, never guessed.
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::MetricsError;
use super::corpus::Corpus;

/// Environment variable naming the jar.
pub const JAR_ENV: &str = "VIDCAP_METEOR_JAR";

/// How to run METEOR.
#[derive(Debug, Clone)]
pub struct MeteorConfig {
    pub java: PathBuf,
    pub jar: PathBuf,
}

/// Finds the jar and checks that Java runs. The jar comes from `explicit`, else from
/// `$VIDCAP_METEOR_JAR`, else from the pycocoevalcap package of `python3` or of
/// `$VIRTUAL_ENV`. The error says why METEOR cannot run.
pub fn locate(explicit: Option<&Path>) -> Result<MeteorConfig, String> {
    let jar = match explicit {
        Some(path) => path.to_path_buf(),
        None => match std::env::var_os(JAR_ENV) {
            Some(path) => PathBuf::from(path),
            None => pycocoevalcap_jar().ok_or_else(|| {
                format!("no METEOR jar (use --meteor-jar, ${JAR_ENV}, or install pycocoevalcap)")
            })?,
        },
    };
    if !jar.is_file() {
        return Err(format!("METEOR jar {} not found", jar.display()));
    }
    let java = PathBuf::from("java");
    match Command::new(&java)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => Ok(MeteorConfig { java, jar }),
        Ok(status) => Err(format!("`java -version` failed ({status})")),
        Err(err) => Err(format!("cannot run java: {err}")),
    }
}

/// meteor-1.5.jar inside an installed pycocoevalcap, asking the Python interpreters that
/// are likely to have it.
fn pycocoevalcap_jar() -> Option<PathBuf> {
    let mut pythons = vec![PathBuf::from("python3")];
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        pythons.insert(0, Path::new(&venv).join("bin/python"));
    }
    pythons.into_iter().find_map(|python| {
        let out = Command::new(python)
            .args([
                "-c",
                "import os, pycocoevalcap.meteor.meteor as m; print(os.path.dirname(m.__file__))",
            ])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let dir = String::from_utf8(out.stdout).ok()?;
        let jar = Path::new(dir.trim()).join("meteor-1.5.jar");
        (out.status.success() && jar.is_file()).then_some(jar)
    })
}

/// Corpus METEOR and per-id METEOR, in `corpus.ids` order, from the jar.
pub(crate) fn run(config: &MeteorConfig, corpus: &Corpus) -> Result<(f64, Vec<f64>), MetricsError> {
    let err = |what: String| MetricsError::Meteor(what);
    let jar_dir = config.jar.parent().unwrap_or(Path::new("."));
    let jar_name = config
        .jar
        .file_name()
        .ok_or_else(|| err("jar path has no file name".into()))?;
    let mut child = Command::new(&config.java)
        .args(["-jar", "-Xmx2G"])
        .arg(jar_name)
        .args(["-", "-", "-stdio", "-l", "en", "-norm"])
        .current_dir(jar_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot start {}: {e}", config.java.display())))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let stderr = child.stderr.take().expect("piped stderr");
    // Drain stderr so a chatty jar cannot block; keep its tail for error messages.
    let stderr_tail = std::thread::spawn(move || {
        let mut tail = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            tail.push(line);
            if tail.len() > 20 {
                tail.remove(0);
            }
        }
        tail.join("\n")
    });

    let score_lines: Vec<String> = corpus
        .hyps
        .iter()
        .zip(&corpus.refs)
        .map(|(hyp, refs)| {
            let hyp = corpus.text(hyp).replace("|||", "").replace("  ", " ");
            let refs: Vec<String> = refs.iter().map(|r| corpus.text(r)).collect();
            format!("SCORE ||| {} ||| {hyp}\n", refs.join(" ||| "))
        })
        .collect();
    let result = (|| -> Result<(f64, Vec<f64>), String> {
        // Writing on a second thread while reading here keeps both pipes moving.
        let writer = std::thread::scope(|scope| -> Result<Vec<String>, String> {
            let writer = scope.spawn(|| -> std::io::Result<()> {
                for line in &score_lines {
                    stdin.write_all(line.as_bytes())?;
                }
                stdin.flush()
            });
            let mut stats = Vec::with_capacity(score_lines.len());
            for _ in 0..score_lines.len() {
                stats.push(read_line(&mut stdout)?);
            }
            writer
                .join()
                .map_err(|_| "writer thread panicked".to_string())?
                .map_err(|e| format!("writing to the jar: {e}"))?;
            Ok(stats)
        })?;
        let eval = format!("EVAL ||| {}\n", writer.join(" ||| "));
        stdin
            .write_all(eval.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("writing to the jar: {e}"))?;
        let mut per_id = Vec::with_capacity(corpus.ids.len());
        for _ in 0..corpus.ids.len() {
            per_id.push(parse_score(&read_line(&mut stdout)?)?);
        }
        let corpus_score = parse_score(&read_line(&mut stdout)?)?;
        Ok((corpus_score, per_id))
    })();
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    let tail = stderr_tail.join().unwrap_or_default();
    result.map_err(|what| {
        if tail.is_empty() {
            err(what)
        } else {
            err(format!("{what}; the jar said:\n{tail}"))
        }
    })
}

fn read_line(reader: &mut impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => Err("the jar exited early".to_string()),
        Ok(_) => Ok(line.trim().to_string()),
        Err(e) => Err(format!("reading from the jar: {e}")),
    }
}

fn parse_score(line: &str) -> Result<f64, String> {
    line.parse()
        .map_err(|_| format!("unexpected answer from the jar: {line:?}"))
}
