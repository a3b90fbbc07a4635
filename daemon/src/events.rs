//! The event contract between the daemon, the UI and `qtap trace` (see docs/events.md).
//!
//! Every frame carries a topic and an object `{ts, data}`; `Event` is the typed form of
//! `data` and `Event::topic` its topic. Fields are added, never renamed: the schema test
//! in `tests` below and `docs/events.md` pin the names.
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub mod json;
mod ser;

/// Longest [`Timestamp::rfc3339`] text (`YYYY-MM-DDTHH:MM:SS.fffffffffZ`, with room).
pub const RFC3339_MAX: usize = 40;

/// Nanoseconds since the UNIX epoch (UTC). Serialised as RFC 3339 with nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_secs() * 1_000_000_000 + u64::from(d.subsec_nanos()))
    }

    /// Milliseconds from `self` to `later` (0 when `later` is earlier), as a float.
    pub fn ms_until(self, later: Timestamp) -> f64 {
        later.0.saturating_sub(self.0) as f64 / 1e6
    }

    /// RFC 3339, UTC, nanoseconds: `2026-11-24T10:00:00.123456789Z`.
    pub fn rfc3339(self) -> String {
        let mut buf = [0u8; RFC3339_MAX];
        self.write_rfc3339(&mut buf).to_string()
    }

    /// [`Timestamp::rfc3339`] into a caller's buffer, without allocating.
    pub fn write_rfc3339(self, buf: &mut [u8; RFC3339_MAX]) -> &str {
        const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
            2021222324252627282930313233343536373839\
            4041424344454647484950515253545556575859\
            6061626364656667686970717273747576777879\
            8081828384858687888990919293949596979899";
        let secs = self.0 / 1_000_000_000;
        let nanos = (self.0 % 1_000_000_000) as u32;
        // u64 seconds are at most ~5.8e11 s: the year has 4 digits (≤ 2554) for every
        // u64 timestamp
        let (y, m, d) = civil_from_days_unsigned((secs / 86_400) as u32);
        let rem = (secs % 86_400) as u32;
        let two = |buf: &mut [u8; RFC3339_MAX], at: usize, v: u32| {
            let i = v as usize * 2;
            buf[at..at + 2].copy_from_slice(&PAIRS[i..i + 2]);
        };
        two(buf, 0, y / 100);
        two(buf, 2, y % 100);
        buf[4] = b'-';
        two(buf, 5, m);
        buf[7] = b'-';
        two(buf, 8, d);
        buf[10] = b'T';
        two(buf, 11, rem / 3600);
        buf[13] = b':';
        two(buf, 14, (rem % 3600) / 60);
        buf[16] = b':';
        two(buf, 17, rem % 60);
        buf[19] = b'.';
        buf[20] = b'0' + (nanos / 100_000_000) as u8;
        let low = nanos % 100_000_000;
        two(buf, 21, low / 1_000_000);
        two(buf, 23, low / 10_000 % 100);
        two(buf, 25, low / 100 % 100);
        two(buf, 27, low % 100);
        buf[29] = b'Z';
        // all ASCII
        std::str::from_utf8(&buf[..30]).unwrap_or("")
    }

    /// The former `core::fmt` implementation of [`Timestamp::write_rfc3339`], kept to
    /// check the digit arithmetic against.
    #[cfg(test)]
    fn rfc3339_via_fmt(self) -> String {
        let secs = (self.0 / 1_000_000_000) as i64;
        let nanos = self.0 % 1_000_000_000;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )
    }

    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        // YYYY-MM-DDTHH:MM:SS[.fffffffff]Z
        let b = s.as_bytes();
        if b.len() < 20 || *b.last()? != b'Z' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let mut nanos = 0u64;
        if b[19] == b'.' {
            let frac = &s[20..s.len() - 1];
            if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            nanos = frac.parse::<u64>().ok()? * 10u64.pow(9 - frac.len() as u32);
        }
        let days = days_from_civil(y, mo as u32, d as u32);
        let secs = days * 86_400 + h * 3600 + mi * 60 + se;
        Some(Timestamp(u64::try_from(secs).ok()? * 1_000_000_000 + nanos))
    }
}

// Howard Hinnant's civil-from-days algorithm (public domain).
#[cfg(test)]
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// [`civil_from_days`] for days since 1970 (what a u64 timestamp has), in u32 arithmetic.
fn civil_from_days_unsigned(z: u32) -> (u32, u32, u32) {
    let z = z + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; RFC3339_MAX];
        s.serialize_str(self.write_rfc3339(&mut buf))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 UTC time: {s}")))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// this host is the client
    Egress,
    /// this host is the server
    Ingress,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// docker, containerd, cri-o, podman
    pub runtime: String,
    /// Compose service (`com.docker.compose.service`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Kubernetes pod (`io.kubernetes.pod.name`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Kubernetes namespace (`io.kubernetes.pod.namespace`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `process` in a summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRef {
    pub pid: u32,
    pub exe: String,
    pub name: String,
    pub user: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TlsInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// the library that gave the plaintext (`openssl`), when one did
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    /// ALPN protocols the ClientHello offered, in the client's order
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn_offered: Option<Vec<String>>,
    /// the server's ALPN choice, when the handshake showed it in clear (TLS 1.2 and
    /// older: TLS 1.3 encrypts it)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    Utf8,
    Base64,
}

/// A captured body. `text` is the decoded form (after Content-Encoding) when
/// `content_encoding` was understood; `size` counts the bytes on the wire (after
/// transfer-decoding, before content-decoding); `captured` counts what was kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Body {
    pub size: u64,
    pub captured: u64,
    pub truncated: bool,
    pub encoding: BodyEncoding,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// why the body could not be decoded or was not fully seen, if so
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Body {
    pub fn empty() -> Body {
        Body {
            size: 0,
            captured: 0,
            truncated: false,
            encoding: BodyEncoding::Utf8,
            text: String::new(),
            content_encoding: None,
            note: None,
        }
    }
}

pub type Headers = Vec<(String, String)>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub scheme: String,
    pub authority: String,
    pub path: String,
    pub http_version: String,
    pub headers: Headers,
    pub body: Body,
    /// header (or trailer) fields were left out: present, `true`, only then
    #[serde(default, skip_serializing_if = "is_false")]
    pub headers_truncated: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub http_version: String,
    pub headers: Headers,
    pub body: Body,
    /// header (or trailer) fields were left out: present, `true`, only then
    #[serde(default, skip_serializing_if = "is_false")]
    pub headers_truncated: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub start: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_sent: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_start: Option<Timestamp>,
    pub end: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub local: String,
    pub remote: String,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
}

/// One row of the list.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Summary {
    pub id: String,
    pub connection_id: String,
    pub start: Timestamp,
    pub duration_ms: f64,
    pub direction: Direction,
    pub method: String,
    pub url: String,
    pub host: String,
    pub path: String,
    /// absent when no response was seen (connection closed, process died)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    pub request_size: u64,
    pub response_size: u64,
    pub tls: bool,
    pub process: ProcessRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// why the exchange is incomplete, when it is (e.g. "connection closed before response")
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// the response answers a request the capture never saw (in flight when the capture
    /// started, or an HTTP/2 stream joined mid-way): method and path are unknown (empty),
    /// and the response is not another request's; present (`true`) only then
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub request_not_captured: bool,
}

fn arc<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Arc<T>, D::Error> {
    T::deserialize(d).map(Arc::new)
}

/// The detail of an exchange: the [`Summary`] fields, then its own (one flat object).
/// The summary is shared with [`HttpTransaction::summary`] rather than copied.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Transaction {
    #[serde(flatten, deserialize_with = "arc")]
    pub summary: Arc<Summary>,
    pub request: Request,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
    pub timing: Timing,
    pub network: Network,
    /// present for gRPC calls (HTTP/2 with `content-type: application/grpc*`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<Grpc>,
}

/// A gRPC call: what `/package.Service/Method`, how it ended, and its messages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grpc {
    /// `package.Service` (the path's first segment)
    pub service: String,
    /// `Method` (the path's second segment)
    pub method: String,
    /// `grpc-status` (from the trailers, or the headers of a trailers-only response);
    /// absent when the call did not end where the tool could see it
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u32>,
    /// the status code's name, e.g. `OK`, `NOT_FOUND`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_name: Option<String>,
    /// `grpc-message`, percent-decoded
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// length-prefixed messages of both directions, requests first, each in order
    pub messages: Vec<GrpcMessage>,
    /// why the list is incomplete, if it is (body beyond the capture cap, too many)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One length-prefixed gRPC message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrpcMessage {
    /// `request` (client to server) or `response`
    pub from: String,
    /// the compressed flag of the prefix was set
    pub compressed: bool,
    /// the length in the prefix (bytes on the wire, compressed if `compressed`)
    pub size: u64,
    /// wire bytes kept (less than `size` when the body was cut at the capture cap)
    pub captured: u64,
    /// the message (decompressed per `grpc-encoding` when `compressed`), base64
    pub data: String,
    /// best-effort field dump of `data` read as protobuf without its schema
    /// (`protoc --decode_raw` style), absent when it does not parse as protobuf
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `request.http_transaction`: the row and the detail. Both carry the same summary
/// (one `Arc`), which the JSON repeats.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct HttpTransaction {
    #[serde(deserialize_with = "arc")]
    pub summary: Arc<Summary>,
    pub transaction: Transaction,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeStatus {
    /// `openssl`, `syscalls`, ...
    pub library: String,
    pub path: String,
    /// `attached`, `failed: <why>`, `detached`
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// per-body capture cap in bytes
    pub max_body_bytes: u64,
    /// payload bytes per kernel record
    pub chunk_bytes: u64,
    /// bytes captured per syscall / TLS call at most
    pub max_bytes_per_call: u64,
    /// frames queued per client before it is told it missed some
    pub client_queue: u64,
    /// bytes (events and their JSON, approximately) queued per client before it is told
    /// it missed some
    #[serde(default)]
    pub client_queue_bytes: u64,
    /// the daemon's memory budget for traffic it buffers (`--max-buffer-bytes`)
    #[serde(default)]
    pub max_buffer_bytes: u64,
    /// HTTP/2 header bytes decoded per header block and per stream (HPACK output)
    pub max_header_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Connected {
    pub version: String,
    pub hostname: String,
    pub kernel: String,
    pub probes: Vec<ProbeStatus>,
    pub limits: Limits,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessStarted {
    pub pid: u32,
    pub ppid: u32,
    pub exe: String,
    pub cmdline: Vec<String>,
    pub user: String,
    pub uid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessStopped {
    pub pid: u32,
    /// the status it exited with (0–255), when it exited
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// the signal that killed it (`"SIGKILL"`), when one did
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub core_dumped: bool,
}

impl ProcessStopped {
    /// From the task's `exit_code` as the kernel keeps it: `status << 8` after exit(), or
    /// the signal number (`| 0x80` with a core dump) when a signal killed it.
    pub fn from_raw(pid: u32, raw: Option<u32>) -> Self {
        let mut s = ProcessStopped {
            pid,
            exit_code: None,
            signal: None,
            core_dumped: false,
        };
        if let Some(raw) = raw {
            let sig = raw & 0x7f;
            if sig == 0 {
                s.exit_code = Some(((raw >> 8) & 0xff) as i32);
            } else {
                s.signal = Some(signal_name(sig));
                s.core_dumped = raw & 0x80 != 0;
            }
        }
        s
    }
}

/// `SIGKILL` for 9, …; `SIG<n>` for the real-time and unknown ones.
pub fn signal_name(sig: u32) -> String {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match NAMES.get(sig as usize) {
        Some(n) if !n.is_empty() => (*n).to_string(),
        _ => format!("SIG{sig}"),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectionOpened {
    pub connection_id: String,
    pub pid: u32,
    pub local: String,
    pub remote: String,
    pub direction: Direction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectionClosed {
    pub connection_id: String,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub duration_ms: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    pub events: u64,
    pub bytes: u64,
    /// `ringbuf-full`, `per-call-limit`, `read-fault`, `slow-client`, `stream-gap`
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Disconnected {
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Event {
    Connected(Connected),
    ProcessStarted(ProcessStarted),
    ProcessStopped(ProcessStopped),
    ConnectionOpened(ConnectionOpened),
    ConnectionClosed(ConnectionClosed),
    HttpTransaction(Box<HttpTransaction>),
    Dropped(Dropped),
    Disconnected(Disconnected),
}

pub const TOPICS: &[&str] = &[
    "system.connected",
    "system.disconnected",
    "system.dropped",
    "process.started",
    "process.stopped",
    "connection.opened",
    "connection.closed",
    "request.http_transaction",
];

impl Event {
    /// HTTP body bytes the event carries (request and response bodies as captured); 0
    /// for events without bodies. What a client that misses the event loses of the
    /// traffic, counted without encoding it.
    pub fn body_bytes(&self) -> u64 {
        match self {
            Event::HttpTransaction(t) => {
                let tx = &t.transaction;
                tx.request.body.captured + tx.response.as_ref().map_or(0, |r| r.body.captured)
            }
            _ => 0,
        }
    }

    pub fn topic(&self) -> &'static str {
        match self {
            Event::Connected(_) => "system.connected",
            Event::Disconnected(_) => "system.disconnected",
            Event::Dropped(_) => "system.dropped",
            Event::ProcessStarted(_) => "process.started",
            Event::ProcessStopped(_) => "process.stopped",
            Event::ConnectionOpened(_) => "connection.opened",
            Event::ConnectionClosed(_) => "connection.closed",
            Event::HttpTransaction(_) => "request.http_transaction",
        }
    }
}

/// An event with its time: the `{ts, data}` object of a frame.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Envelope {
    pub ts: Timestamp,
    pub data: Event,
}

impl Envelope {
    pub fn new(data: Event) -> Self {
        Envelope {
            ts: Timestamp::now(),
            data,
        }
    }

    /// `{"ts":…,"data":…}` on one line (SSE `data:`).
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(1024);
        self.write(&mut out, None);
        // the writer writes UTF-8 only
        String::from_utf8(out).unwrap_or_default()
    }

    /// `qtap trace` line: the same object with `"topic"` added (no trailing newline).
    pub fn to_ndjson(&self) -> String {
        let mut out = Vec::with_capacity(1024);
        self.write_ndjson(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends the `qtap trace` line `{"topic":…,"ts":…,"data":…}` (no trailing newline)
    /// to `out`, serialised once, straight from the typed event.
    pub fn write_ndjson(&self, out: &mut Vec<u8>) {
        self.write(out, Some(self.data.topic()));
    }

    /// `{["topic":…,]"ts":…,"data":…}` with [`json`], the same bytes as serde_json.
    fn write(&self, out: &mut Vec<u8>, topic: Option<&str>) {
        let start = out.len();
        out.push(b'{');
        if let Some(t) = topic {
            out.extend_from_slice(b"\"topic\":");
            json::write_str(out, t);
            out.push(b',');
        }
        let mut ts = [0u8; RFC3339_MAX];
        out.extend_from_slice(b"\"ts\":");
        json::write_str(out, self.ts.write_rfc3339(&mut ts));
        out.extend_from_slice(b",\"data\":");
        let data = match &self.data {
            Event::HttpTransaction(t) => ser::write_http_transaction(out, t),
            other => json::to_vec(out, other),
        };
        match data {
            Ok(()) => out.push(b'}'),
            Err(e) => {
                // as before the direct writer (no event type fails to encode today)
                out.truncate(start);
                let error = format!("cannot encode event: {e}");
                match topic {
                    Some(t) => {
                        let v = serde_json::json!({
                            "topic": t,
                            "ts": self.ts,
                            "data": {"error": error},
                        });
                        let _ = serde_json::to_writer(&mut *out, &v);
                    }
                    None => out.extend_from_slice(
                        format!(
                            r#"{{"ts":"{}","data":{{"error":"{error}"}}}}"#,
                            self.ts.rfc3339()
                        )
                        .as_bytes(),
                    ),
                }
            }
        }
    }

    /// The former `qtap trace` encoding (a `serde_json::Value` tree with `topic`
    /// inserted), kept to check that [`Envelope::write_ndjson`] says the same.
    #[cfg(test)]
    pub(crate) fn to_ndjson_via_value(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("topic".into(), self.data.topic().into());
        }
        v.to_string()
    }
}

/// Parses a `?topics=a,b` list; `None` means every topic. Unknown names are an error so a
/// typo does not silently filter everything out.
pub fn parse_topics(list: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for t in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !TOPICS.contains(&t) {
            return Err(format!(
                "unknown topic `{t}`; known topics: {}",
                TOPICS.join(", ")
            ));
        }
        out.push(t.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
