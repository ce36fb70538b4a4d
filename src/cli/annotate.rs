//! `vidcap annotate INPUT... --out ANN.jsonl`: a local web page to caption clips with the
//! model's suggestions, saved at every change as a vidcap JSONL dataset.
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use rand::Rng;

use super::caption::ModelArgs;
use super::{EXIT_OK, Global};
use crate::annotate::analysis::Suggester;
use crate::annotate::clips::Annotations;
use crate::annotate::lock::Lock;
use crate::annotate::server::{self, App, Options};

/// How long in-flight requests get to finish after Ctrl-C.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Video files, directories (recursive), @list.txt files, or an existing dataset
    /// (.jsonl, MSR-VTT/VATEX .json, MSVD .txt/.csv) whose clips are added to --out.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// The annotation file (vidcap's JSONL dataset format, paths relative to it): created,
    /// or resumed and extended; rewritten atomically at every save.
    #[arg(long, value_name = "ANN.jsonl", value_parser = jsonl_path)]
    pub out: PathBuf,
    /// TCP port to listen on (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Listen on this address instead of 127.0.0.1. Anyone who can reach it and has the
    /// token can watch the listed videos and change the annotation file (plain HTTP).
    #[arg(long, value_name = "ADDRESS")]
    pub host: Option<IpAddr>,
    /// Open the page in the system's web browser.
    #[arg(long)]
    pub open: bool,
    /// Decoder whose captions are suggested: a model directory, an installed model's name,
    /// or `none` for no suggestions (default: the bundled decoder, models/synth-decoder).
    #[arg(long, value_name = "DIR|NAME|none")]
    pub model: Option<String>,
    /// Encoder name or directory (default: the one the decoder was trained on).
    #[arg(long)]
    pub encoder: Option<String>,
    /// Beam width of the suggestions (1 = greedy) [default: 3, as `caption`].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub beam: Option<u64>,
    /// Frames sampled per clip for the strip and the suggestion [default: 16, as `caption`].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub frames: Option<u64>,
}

fn jsonl_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    if ext.as_deref() != Some("jsonl") {
        return Err(format!(
            "{text}: the annotation file is JSONL: name it NAME.jsonl"
        ));
    }
    if path.is_dir() {
        return Err(format!("{text}: is a directory"));
    }
    Ok(path)
}

/// `caption`'s model options with their defaults, for [`ModelArgs::load`].
#[derive(Parser)]
struct ModelDefaults {
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(args: Args, global: &Global) -> Result<u8> {
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the directory", dir.display()))?;
    }
    let lock = Lock::acquire(&args.out)?;
    let ann = Annotations::open(&args.inputs, &args.out, global.seed)?;
    let (suggester, model_name, by_familiarity) = load_model(&args)?;

    let host = args.host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    if !host.is_loopback() {
        tracing::warn!(
            "listening on {host}, not only on this machine: anyone who can reach {host} and has the token can watch the listed videos and change {} (plain HTTP: the token crosses the network unencrypted)",
            args.out.display()
        );
    }
    let token = {
        let mut bytes = [0u8; 24];
        rand::rng().fill(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let (clips, captioned_before) = (ann.clips.len(), ann.captioned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the web server's runtime")?;
    let captioned = runtime.block_on(async {
        let address = SocketAddr::new(host, args.port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| {
                format!("{address}: cannot listen (--port 0 picks a free port)")
            })?;
        let bound = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let app = App::new(
            ann,
            suggester,
            Options {
                token: token.clone(),
                port: bound.port(),
                loopback_only: host.is_loopback(),
                model: model_name.clone(),
                by_familiarity,
            },
            stopped.clone(),
        );
        let router = server::router(std::sync::Arc::clone(&app));
        let mut until = stopped.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = until.wait_for(|stop| *stop).await;
                })
                .await
        });
        let shown = if bound.ip().is_unspecified() {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), bound.port())
        } else {
            bound
        };
        let url = format!("http://{shown}/?token={token}");
        {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{url}")?;
            stdout.flush()?;
        }
        if !global.quiet {
            eprintln!(
                "vidcap annotate: {clips} clip(s), {captioned_before} captioned, saved to {}; suggestions: {}; Ctrl-C stops",
                args.out.display(),
                match (&model_name, by_familiarity) {
                    (Some(m), true) => format!("{m}, least familiar clips first"),
                    (Some(m), false) => format!("{m} (no familiarity summary: file order)"),
                    (None, _) => "none".to_string(),
                }
            );
        }
        if args.open {
            open_browser(&url);
        }
        let mut server = server;
        tokio::select! {
            _ = stop_signal() => {}
            finished = &mut server => {
                finished.context("the web server stopped")?.context("the web server failed")?;
            }
        }
        let _ = stop.send(true);
        app.analyzer.stop();
        if !server.is_finished()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await.is_err()
        {
            server.abort();
        }
        Ok::<usize, anyhow::Error>(app.captioned())
    })?;
    runtime.shutdown_timeout(Duration::from_millis(200));
    drop(lock);
    if !global.quiet {
        eprintln!(
            "vidcap annotate: stopped; {} holds {captioned} captioned clip(s)",
            args.out.display()
        );
    }
    Ok(EXIT_OK)
}

/// The suggesting model (none with `--model none`), its name, and whether it can order the
/// list by familiarity.
fn load_model(args: &Args) -> Result<(Suggester, Option<String>, bool)> {
    let mut model = ModelDefaults::try_parse_from(["vidcap"])
        .context("the model options' defaults")?
        .model;
    if let Some(frames) = args.frames {
        model.frames = frames as usize;
    }
    if args.model.as_deref() == Some("none") {
        return Ok((
            Suggester {
                captioner: None,
                frames: model.frames,
            },
            None,
            false,
        ));
    }
    // Names and directories are looked up as `caption` does (crate::model_path).
    model.model = args.model.clone();
    model.encoder = args.encoder.clone();
    if let Some(beam) = args.beam {
        model.beam = beam as usize;
    }
    let (captioner, options, _) = model.load()?;
    let dir = crate::model_path::locate(
        model
            .model
            .as_deref()
            .unwrap_or(crate::pipeline::caption::DEFAULT_DECODER),
        None,
    )?
    .dir;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let by_familiarity = captioner.familiarity.is_some();
    Ok((
        Suggester {
            captioner: Some((captioner, options)),
            frames: model.frames,
        },
        Some(name),
        by_familiarity,
    ))
}

/// Ctrl-C, or SIGTERM (a service manager, `kill`).
async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return ctrl_c.await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

/// Opens `url` in the desktop's browser; a failure is a warning (the URL is printed).
fn open_browser(url: &str) {
    let (program, args): (&str, Vec<&str>) = if cfg!(target_os = "macos") {
        ("open", vec![url])
    } else if cfg!(windows) {
        ("cmd", vec!["/C", "start", "", url])
    } else {
        ("xdg-open", vec![url])
    };
    let spawned = std::process::Command::new(program)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        tracing::warn!("--open: cannot start {program} ({e}): open the address above yourself");
    }
}
