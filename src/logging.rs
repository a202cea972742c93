//! Logging setup: readable on a terminal, journald-friendly under systemd (no timestamps, the
//! journal adds them; `<N>` priority prefixes so levels survive), JSON lines on request.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::RwLock;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogConfig, LogFormat};

/// Formats events as `<6>tgparser::daemon: message key=value`, the sd-daemon(3) convention.
struct Journald;

impl<S, N> FormatEvent<S, N> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let prio = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{prio}>{}: ", event.metadata().target())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Secrets that must never be written: any log line containing one has it replaced. Our own
/// code does not log secrets; this is for libraries whose messages we do not control (an HTTP
/// client's error names the Bot API URL, which carries the bot token).
static SECRETS: RwLock<Vec<zeroize::Zeroizing<String>>> = RwLock::new(Vec::new());

/// Adds a secret to hide from every log line from now on (ignored if shorter than 8 bytes,
/// which could match ordinary text).
pub fn hide(secret: &str) {
    if secret.len() < 8 {
        return;
    }
    let mut s = SECRETS.write().unwrap_or_else(|p| p.into_inner());
    if !s.iter().any(|x| x.as_str() == secret) {
        s.push(zeroize::Zeroizing::new(secret.to_string()));
    }
}

/// `text` with every hidden secret replaced by `<secret>`.
pub fn scrub(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|p| p.into_inner());
    let mut out = text.to_string();
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "<secret>");
        }
    }
    out
}

/// stderr, through [`scrub`]: each formatted event arrives as one write.
struct ScrubbedStderr;

impl Write for ScrubbedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let hidden = !SECRETS.read().unwrap_or_else(|p| p.into_inner()).is_empty();
        if hidden {
            let text = String::from_utf8_lossy(buf);
            std::io::stderr().write_all(scrub(&text).as_bytes())?;
        } else {
            std::io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Which format `auto` means here: journald when stderr goes to the journal.
pub fn resolve(format: LogFormat) -> LogFormat {
    match format {
        LogFormat::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `log.level`.
pub fn init(cfg: &LogConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(&cfg.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| ScrubbedStderr);
    let _ = match resolve(cfg.format) {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Journald => builder.event_format(Journald).try_init(),
        _ => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_secrets_are_scrubbed_and_short_ones_are_not_hidden() {
        hide("123456:AAE-secret-part-xyz");
        hide("abc");
        let line =
            "error sending request for url (http://x/bot123456:AAE-secret-part-xyz/getMe) abc";
        assert_eq!(
            scrub(line),
            "error sending request for url (http://x/bot<secret>/getMe) abc"
        );
    }
}
