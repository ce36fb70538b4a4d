//! Runs many videos through decode → encode → caption as a pipeline: decode workers read
//! and scale frames in parallel while the encoder and decoder (which use the rayon pool)
//! caption what is ready, so both cores stay busy. A failing, panicking or hanging input
//! becomes an error record; the run goes on.
use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::Result;

use super::VideoCaptions;
use super::batch::Input;
use super::caption::{CaptionOptions, Captioner, WindowFrames, decode_windows};

pub struct RunOptions {
    /// Decode workers (files decoded at once).
    pub jobs: usize,
    /// Longest a single file may take to decode before it is given up.
    pub timeout: Duration,
}

/// What the sink gets for each input, in completion order.
pub struct Outcome<'a> {
    pub input: &'a Input,
    pub result: VideoCaptions,
    /// The decoded windows, when captioning succeeded (for contact sheets).
    pub windows: Option<&'a [WindowFrames]>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct RunSummary {
    pub captioned: usize,
    pub failed: usize,
}

/// Caption `inputs`, handing each outcome to `sink` as soon as it is ready.
pub fn run(
    inputs: Vec<Input>,
    captioner: &Captioner,
    caption: &CaptionOptions,
    opts: &RunOptions,
    sink: &mut dyn FnMut(Outcome) -> Result<()>,
) -> Result<RunSummary> {
    let short_side = captioner.encoder.resize_shorter();
    // The workers share the cores: each decodes with its share of the pool's threads (one
    // video alone gets them all).
    let jobs = opts.jobs.clamp(1, inputs.len().max(1));
    let threads = (rayon::current_num_threads() / jobs).max(1);
    let queue = Arc::new(Mutex::new(inputs.into_iter()));
    // Bounded: decoded frames wait for the encoder in at most this many slots, so memory
    // stays flat however many files there are.
    let (tx, rx) = mpsc::sync_channel::<(Input, Result<Vec<WindowFrames>, String>)>(jobs);
    let workers: Vec<_> = (0..jobs)
        .map(|_| {
            let (queue, tx, caption) = (Arc::clone(&queue), tx.clone(), caption.clone());
            let timeout = opts.timeout;
            thread::spawn(move || {
                loop {
                    let Some(input) = queue.lock().unwrap_or_else(|e| e.into_inner()).next() else {
                        break;
                    };
                    let decoded =
                        decode_with_timeout(&input, short_side, &caption, threads, timeout);
                    if tx.send((input, decoded)).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(tx);

    let mut summary = RunSummary::default();
    for (input, decoded) in rx {
        let captioned = decoded.and_then(|windows| {
            catch_unwind(AssertUnwindSafe(|| {
                captioner.caption_windows(&input.display, &windows, caption)
            }))
            .map_err(|panic| format!("internal error while captioning: {}", panic_message(&panic)))?
            .map(|captions| (captions, windows))
            .map_err(|e| format!("{e:#}"))
        });
        match captioned {
            Ok((result, windows)) => {
                summary.captioned += 1;
                sink(Outcome {
                    input: &input,
                    result,
                    windows: Some(&windows),
                })?;
            }
            Err(reason) => {
                summary.failed += 1;
                // Every error record names its file (FFmpeg's errors already do).
                let reason = if reason.contains(&input.display) {
                    reason
                } else {
                    format!("{}: {reason}", input.display)
                };
                // Reported by the sink's owner, once (a lone video's failure is the fatal error).
                sink(Outcome {
                    input: &input,
                    result: VideoCaptions::failed(&input.display, reason),
                    windows: None,
                })?;
            }
        }
    }
    for worker in workers {
        let _ = worker.join();
    }
    Ok(summary)
}

/// Decode on a thread of its own so a pathological file can be abandoned after `timeout`
/// (FFmpeg offers no way to cancel a blocked call from outside; the abandoned thread ends
/// when FFmpeg returns, or with the process).
fn decode_with_timeout(
    input: &Input,
    short_side: u32,
    caption: &CaptionOptions,
    threads: usize,
    timeout: Duration,
) -> Result<Vec<WindowFrames>, String> {
    let (tx, rx) = mpsc::channel();
    let (path, caption) = (input.path.clone(), caption.clone());
    let spawned = thread::Builder::new()
        .name("vidcap-decode".into())
        .spawn(move || {
            crate::video::set_decode_threads(threads);
            let result = catch_unwind(AssertUnwindSafe(|| {
                decode_windows(&path, short_side, &caption)
            }))
            .map_err(|panic| format!("internal error while decoding: {}", panic_message(&panic)))
            .and_then(|r| r.map_err(|e| format!("{e:#}")));
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return Err(format!("cannot start a decode thread: {e}"));
    }
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(RecvTimeoutError::Timeout) => Err(format!(
            "timed out after {:.0} s while decoding",
            timeout.as_secs_f64()
        )),
        Err(RecvTimeoutError::Disconnected) => {
            Err("the decode thread ended without a result".into())
        }
    }
}

fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic without a message".into())
}
