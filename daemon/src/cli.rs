//! Command line: `qtap --enable-dev-tools [...]` and `qtap trace [...]`.
use crate::attribution::docker::DEFAULT_SOCKET as DEFAULT_DOCKER_SOCKET;
use crate::events::parse_topics;
use crate::hub::{DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_HEADER_BYTES};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:10001";

#[derive(Parser, Debug)]
#[command(
    name = "qtap",
    version,
    about = "Chrome DevTools' Network panel for a Linux server, fed by eBPF",
    long_about = "Chrome DevTools' Network panel for a Linux server, fed by eBPF.\n\n\
        Every HTTP/S exchange on this host (ingress and egress, plaintext and TLS) is shown \
        live in the browser, attributed to the process, user and container that made it. \
        Probes are attached only while a client is connected; nothing is written to disk.\n\n\
        Needs root, or CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH.",
    after_help = "Examples:\n  \
        sudo qtap --enable-dev-tools          then open http://localhost:10001/devtools/\n  \
        ssh -L 10001:localhost:10001 HOST     to reach a remote host's DevTools\n  \
        sudo qtap --enable-dev-tools --listen unix:/run/qtap/devtools.sock --allow-user alice\n  \
        ssh -L 10001:/run/qtap/devtools.sock HOST   the same, over the unix socket\n  \
        sudo qtap trace --topics request.http_transaction | jq .\n\n\
        Under systemd: systemctl start qtap-devtools.socket"
)]
pub struct Cli {
    /// Serve the DevTools UI and event stream (http://localhost:10001/devtools/). The
    /// environment variable ENABLE_DEV_TOOLS=true does the same.
    #[arg(long, env = "ENABLE_DEV_TOOLS")]
    pub enable_dev_tools: bool,

    /// Address to listen on when systemd does not pass a socket: IP:PORT (loopback only
    /// unless --allow-remote is given) or unix:PATH (a unix socket, e.g.
    /// unix:/run/qtap/devtools.sock). Repeatable.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: Vec<String>,

    /// Also let this user watch (a name or a numeric UID; repeatable). By default only
    /// root and the user who started qtap through sudo (SUDO_UID) may connect; anyone
    /// else gets 403.
    #[arg(long, value_name = "USER")]
    pub allow_user: Vec<String>,

    /// Also let the members of this group watch (a name or a numeric GID; repeatable;
    /// primary and supplementary groups count).
    #[arg(long, value_name = "GROUP")]
    pub allow_group: Vec<String>,

    /// Allow a non-loopback --listen address, and accept requests addressed to it. The
    /// stream carries credentials and personal data: prefer `ssh -L` to this.
    #[arg(long)]
    pub allow_remote: bool,

    /// When started by systemd socket activation, exit after this long without any client
    /// (the next connection starts the daemon again). `0` never exits. Units: ms, s, m, h;
    /// a bare number is seconds.
    #[arg(long, value_name = "DUR", default_value = "10m", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// How long probes stay attached after the last client disconnects, so a page reload
    /// does not detach and re-attach them.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_duration)]
    pub grace: Duration,

    /// Log verbosity (to the journal under systemd, to stderr otherwise). Logs describe
    /// traffic, never quote it. RUST_LOG, when set, overrides it.
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = LogLevel::Info, global = true)]
    pub log_level: LogLevel,

    /// Keep at most this many bytes of each request or response body (the rest is counted
    /// and marked truncated).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_BODY_BYTES, global = true)]
    pub max_body_bytes: u64,

    /// The memory budget for captured traffic held in memory, across all connections:
    /// requests and responses in flight, their bodies, HTTP/2 streams, TLS handshakes
    /// being read. Past it the oldest unfinished exchanges are dropped, and reported as
    /// system.dropped {reason: "memory-budget"}. Each client's queue of events holds at
    /// most a quarter of it. Units: K, M, G (powers of 1024); a bare number is bytes.
    #[arg(long, value_name = "BYTES", default_value = "256M", value_parser = parse_bytes, global = true)]
    pub max_buffer_bytes: u64,

    /// Sockets the kernel side follows at once (its socket table). When it is full, new
    /// connections are not captured and are reported as system.dropped
    /// {reason: "socket-table-full"}; connections followed already are never pushed out.
    #[arg(long, value_name = "N", default_value_t = qtap_common::SOCKS_MAX_ENTRIES,
          value_parser = clap::value_parser!(u32).range(16..=4_194_304), global = true)]
    pub socket_table_entries: u32,
    /// Decode at most this many bytes of HTTP/2 header fields per header block and per
    /// stream (HPACK output, counted as name + value + 32 per field); the fields past it
    /// are left out and the request or response is marked `headers_truncated`.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_HEADER_BYTES,
          value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub max_header_bytes: u64,

    /// Docker's API socket, asked for the name, image and Compose/Kubernetes labels of
    /// the containers that make requests. Without an answer containers are shown by id
    /// and runtime. An empty value turns Docker lookups off.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_DOCKER_SOCKET, global = true)]
    pub docker_socket: String,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print every event as one JSON object per line (NDJSON, with a "topic" field) on
    /// stdout until Ctrl-C. No HTTP server is started.
    Trace(TraceArgs),
}

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// Only these topics (comma-separated), e.g. request.http_transaction,process.started.
    /// system.* events (connected, dropped, disconnected) are always printed.
    #[arg(long, value_name = "LIST", value_parser = check_topics)]
    pub topics: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// What the capture engine is built with.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    pub max_body_bytes: u64,
    /// `--max-buffer-bytes`
    pub max_buffer_bytes: u64,
    /// `--socket-table-entries`
    pub socket_table_entries: u32,
    pub max_header_bytes: u64,
    /// `None`: no Docker lookups
    pub docker_socket: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct DevToolsConfig {
    pub listen: Vec<String>,
    pub allow_remote: bool,
    pub allow_users: Vec<String>,
    pub allow_groups: Vec<String>,
    /// `None`: never exit for idleness
    pub idle_timeout: Option<Duration>,
    pub grace: Duration,
    pub capture: CaptureConfig,
}

#[derive(Clone, Debug)]
pub struct TraceConfig {
    /// `None`: every topic
    pub topics: Option<Vec<String>>,
    pub capture: CaptureConfig,
}

/// What to do, once the command line is understood.
#[derive(Clone, Debug)]
pub enum Mode {
    DevTools(DevToolsConfig),
    Trace(TraceConfig),
    /// neither `--enable-dev-tools` nor a subcommand: print help, exit 2
    Help,
}

impl Cli {
    pub fn mode(&self) -> Mode {
        let capture = CaptureConfig {
            max_body_bytes: self.max_body_bytes,
            max_buffer_bytes: self.max_buffer_bytes,
            socket_table_entries: self.socket_table_entries,
            max_header_bytes: self.max_header_bytes,
            docker_socket: Some(PathBuf::from(&self.docker_socket))
                .filter(|p| !p.as_os_str().is_empty()),
        };
        match &self.command {
            Some(Command::Trace(t)) => Mode::Trace(TraceConfig {
                topics: t
                    .topics
                    .as_deref()
                    .and_then(|l| parse_topics(l).ok())
                    .filter(|v| !v.is_empty()),
                capture,
            }),
            None if self.enable_dev_tools => Mode::DevTools(DevToolsConfig {
                listen: self.listen.clone(),
                allow_remote: self.allow_remote,
                allow_users: self.allow_user.clone(),
                allow_groups: self.allow_group.clone(),
                idle_timeout: Some(self.idle_timeout).filter(|d| !d.is_zero()),
                grace: self.grace,
                capture,
            }),
            None => Mode::Help,
        }
    }

    /// The full `--help` text.
    pub fn help_text() -> String {
        Cli::command().render_long_help().to_string()
    }
}

fn check_topics(s: &str) -> Result<String, String> {
    parse_topics(s).map(|_| s.to_string())
}

/// Smallest `--max-buffer-bytes`: below it a single exchange could not be held.
pub const MIN_BUFFER_BYTES: u64 = 4 << 20;

/// `256M`, `1G`, `512K`, `1048576` (bytes); K, M, G are powers of 1024 (`KiB`, `MB`...
/// are read the same). At least [`MIN_BUFFER_BYTES`].
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let bad = || format!("invalid size `{s}`: use e.g. 256M, 1G, 512K, or a number of bytes");
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..digits].parse().map_err(|_| bad())?;
    let unit = t[digits..].trim().to_ascii_uppercase();
    let shift = match unit.trim_end_matches('B').trim_end_matches('I') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(bad()),
    };
    let v = n.checked_mul(1u64 << shift).ok_or_else(bad)?;
    if v < MIN_BUFFER_BYTES {
        return Err(format!(
            "--max-buffer-bytes {s} is too small: at least {}M is needed to hold one exchange",
            MIN_BUFFER_BYTES >> 20
        ));
    }
    Ok(v)
}

/// `500ms`, `30s`, `10m`, `1h`, `1m30s`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad =
        || format!("invalid duration `{s}`: use e.g. 30s, 10m, 1h, 500ms, or a number of seconds");
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" | "sec" => Duration::from_secs(1),
            "m" | "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        total += unit
            .checked_mul(u32::try_from(n).map_err(|_| bad())?)
            .ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("qtap").chain(args.iter().copied()))
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "m", "10x", "ten", "-1s", "1.5s"] {
            assert!(
                parse_duration(bad)
                    .unwrap_err()
                    .contains("invalid duration"),
                "{bad}"
            );
        }
    }

    #[test]
    fn devtools_defaults() {
        let Mode::DevTools(c) = parse(&["--enable-dev-tools"]).unwrap().mode() else {
            panic!()
        };
        assert_eq!(c.listen, ["127.0.0.1:10001"]);
        assert!(!c.allow_remote);
        assert!(c.allow_users.is_empty() && c.allow_groups.is_empty());
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(600)));
        assert_eq!(c.grace, Duration::from_secs(5));
        assert_eq!(c.capture.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(c.capture.max_header_bytes, 256 * 1024);
        assert_eq!(
            c.capture.docker_socket.as_deref(),
            Some(std::path::Path::new("/var/run/docker.sock"))
        );
    }

    #[test]
    fn devtools_flags() {
        let cli = parse(&[
            "--enable-dev-tools",
            "--listen",
            "0.0.0.0:8080",
            "--allow-remote",
            "--idle-timeout",
            "0",
            "--grace",
            "1s",
            "--log-level",
            "debug",
            "--max-body-bytes",
            "4096",
            "--listen",
            "unix:/run/qtap/devtools.sock",
            "--allow-user",
            "alice",
            "--allow-user",
            "1001",
            "--allow-group",
            "wheel",
        ])
        .unwrap();
        assert_eq!(cli.log_level, LogLevel::Debug);
        let Mode::DevTools(c) = cli.mode() else {
            panic!()
        };
        assert_eq!(
            (c.listen.clone(), c.allow_remote, c.idle_timeout),
            (
                vec![
                    "0.0.0.0:8080".to_string(),
                    "unix:/run/qtap/devtools.sock".to_string()
                ],
                true,
                None
            )
        );
        assert_eq!(
            (c.allow_users, c.allow_groups),
            (
                vec!["alice".to_string(), "1001".to_string()],
                vec!["wheel".to_string()]
            )
        );
        assert_eq!(
            (c.grace, c.capture.max_body_bytes),
            (Duration::from_secs(1), 4096)
        );
        assert!(parse(&["--enable-dev-tools", "--log-level", "loud"]).is_err());
        assert!(parse(&["--enable-dev-tools", "--grace", "soon"]).is_err());
    }

    #[test]
    fn memory_budget_and_socket_table() {
        assert_eq!(parse_bytes("256M"), Ok(256 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("32MiB"), Ok(32 << 20));
        assert_eq!(parse_bytes("8388608"), Ok(8 << 20));
        assert!(parse_bytes("1M").unwrap_err().contains("too small"));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("99999999999G").is_err());
        let Mode::DevTools(c) = parse(&["--enable-dev-tools"]).unwrap().mode() else {
            panic!()
        };
        assert_eq!(
            (c.capture.max_buffer_bytes, c.capture.socket_table_entries),
            (256 << 20, 65_536)
        );
        let Mode::Trace(t) = parse(&[
            "trace",
            "--max-buffer-bytes",
            "64M",
            "--socket-table-entries",
            "1024",
        ])
        .unwrap()
        .mode() else {
            panic!()
        };
        assert_eq!(
            (t.capture.max_buffer_bytes, t.capture.socket_table_entries),
            (64 << 20, 1024)
        );
        assert!(parse(&["trace", "--socket-table-entries", "0"]).is_err());
    }

    #[test]
    fn trace_subcommand() {
        let Mode::Trace(t) = parse(&[
            "trace",
            "--topics",
            "request.http_transaction,system.dropped",
            "--max-body-bytes",
            "10",
            "--max-header-bytes",
            "4096",
        ])
        .unwrap()
        .mode() else {
            panic!()
        };
        assert_eq!(
            t.topics.unwrap(),
            ["request.http_transaction", "system.dropped"]
        );
        assert_eq!(t.capture.max_body_bytes, 10);
        assert_eq!(t.capture.max_header_bytes, 4096);
        assert!(parse(&["trace", "--max-header-bytes", "0"]).is_err());
        let Mode::Trace(t) = parse(&["trace", "--docker-socket", "/run/d.sock"])
            .unwrap()
            .mode()
        else {
            panic!()
        };
        assert_eq!(
            t.capture.docker_socket.as_deref(),
            Some(std::path::Path::new("/run/d.sock"))
        );
        let Mode::Trace(t) = parse(&["trace", "--docker-socket", ""]).unwrap().mode() else {
            panic!()
        };
        assert_eq!(t.capture.docker_socket, None, "empty turns Docker off");
        let Mode::Trace(t) = parse(&["trace"]).unwrap().mode() else {
            panic!()
        };
        assert!(t.topics.is_none());
        let e = parse(&["trace", "--topics", "request.http"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown topic `request.http`"), "{e}");
    }

    #[test]
    fn bare_qtap_asks_for_help() {
        assert!(matches!(parse(&[]).unwrap().mode(), Mode::Help));
        assert!(matches!(
            parse(&["--listen", "127.0.0.1:1"]).unwrap().mode(),
            Mode::Help
        ));
    }

    #[test]
    fn help_mentions_every_flag() {
        let h = Cli::help_text();
        for f in [
            "--enable-dev-tools",
            "ENABLE_DEV_TOOLS",
            "--listen",
            "--allow-remote",
            "--allow-user",
            "--allow-group",
            "unix:",
            "--idle-timeout",
            "--grace",
            "--log-level",
            "--max-body-bytes",
            "--docker-socket",
            "trace",
        ] {
            assert!(h.contains(f), "help lacks {f}");
        }
        Cli::command().debug_assert();
    }
}
