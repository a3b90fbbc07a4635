//! Logs: to the journal when running under systemd and the journal is there, to stderr
//! otherwise. Logs describe traffic, never quote it (DESIGN.md, Security).
use crate::cli::LogLevel;
use std::io::IsTerminal;
use std::path::Path;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Journald,
    Stderr,
}

/// Journald when its socket exists and we look like a service: systemd set
/// `JOURNAL_STREAM` (our stderr is the journal) or stderr is not a terminal.
pub fn choose(journal_socket_exists: bool, journal_stream: bool, stderr_is_tty: bool) -> Sink {
    if journal_socket_exists && (journal_stream || !stderr_is_tty) {
        Sink::Journald
    } else {
        Sink::Stderr
    }
}

fn filter(level: LogLevel) -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => EnvFilter::try_new(&s).unwrap_or_else(|e| {
            eprintln!(
                "qtap: ignoring RUST_LOG={s:?} ({e}); using --log-level {}",
                level.as_str()
            );
            EnvFilter::new(directives(level))
        }),
        _ => EnvFilter::new(directives(level)),
    }
}

/// `--log-level` applies to qtap; dependencies only ever say warnings and errors.
fn directives(level: LogLevel) -> String {
    let others = if level == LogLevel::Error {
        "error"
    } else {
        "warn"
    };
    format!("{others},qtap={}", level.as_str())
}

/// Installs the global subscriber; returns where logs go. Call once, early in `main`.
pub fn init(level: LogLevel) -> Sink {
    let want = choose(
        Path::new(JOURNAL_SOCKET).exists(),
        std::env::var_os("JOURNAL_STREAM").is_some(),
        std::io::stderr().is_terminal(),
    );
    if want == Sink::Journald {
        match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer.with_syslog_identifier("qtap".into());
                if tracing_subscriber::registry()
                    .with(filter(level))
                    .with(layer)
                    .try_init()
                    .is_ok()
                {
                    return Sink::Journald;
                }
            }
            Err(e) => eprintln!("qtap: cannot log to the journal ({e}); logging to stderr"),
        }
    }
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(filter(level))
        .with(fmt)
        .try_init();
    Sink::Stderr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journald_only_for_services_with_a_journal() {
        assert_eq!(
            choose(true, true, true),
            Sink::Journald,
            "systemd set JOURNAL_STREAM"
        );
        assert_eq!(
            choose(true, false, false),
            Sink::Journald,
            "no terminal: a service"
        );
        assert_eq!(
            choose(true, false, true),
            Sink::Stderr,
            "run by hand in a terminal"
        );
        assert_eq!(
            choose(false, true, false),
            Sink::Stderr,
            "no journal on this host"
        );
    }

    #[test]
    fn level_applies_to_qtap_only() {
        assert_eq!(directives(LogLevel::Debug), "warn,qtap=debug");
        assert_eq!(directives(LogLevel::Error), "error,qtap=error");
        assert!(EnvFilter::try_new(directives(LogLevel::Info)).is_ok());
    }
}
