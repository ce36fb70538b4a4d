//! stderr is shared by progress bars and messages. Every bar is drawn through one
//! `MultiProgress`, and every message (`vidcap: error: …`, `vidcap: warning: …`) is written
//! whole with the bars lifted, so a message never lands on the end of a half-drawn bar.
use std::io::{IsTerminal, Write};
use std::sync::LazyLock;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

static BARS: LazyLock<MultiProgress> = LazyLock::new(MultiProgress::new);

/// A bar on stderr with `template`, or a hidden one unless `show` and stderr is a terminal.
pub fn bar(len: u64, show: bool, template: &str) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = BARS.add(ProgressBar::new(len));
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Removes every bar from the terminal (before a fatal error is printed).
pub fn clear() {
    let _ = BARS.clear();
}

/// Prints `vidcap: error: …` with the bars lifted.
pub fn print_error(message: &str) {
    write_above_bars(format!("vidcap: error: {message}\n").as_bytes());
}

fn write_above_bars(bytes: &[u8]) {
    BARS.suspend(|| {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(bytes);
        let _ = err.flush();
    });
}

/// Formats events as `vidcap: LEVEL: message` (warning, not WARN), the style of every
/// message vidcap prints.
pub struct MessageStyle;

impl<S, N> FormatEvent<S, N> for MessageStyle
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        write!(writer, "vidcap: {level}: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The writer of log events: one buffered event, written whole above the bars when dropped.
pub struct AboveBars;

pub struct EventBuffer(Vec<u8>);

impl Write for EventBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer {
    fn drop(&mut self) {
        write_above_bars(&self.0);
    }
}

impl<'a> MakeWriter<'a> for AboveBars {
    type Writer = EventBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        EventBuffer(Vec::new())
    }
}
