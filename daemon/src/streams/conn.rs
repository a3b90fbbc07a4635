//! One connection's state in the tracker ([`Conn`]), and the per-direction position
//! check ([`Reasm`]) that finds bytes lost in capture.
use super::H2Conn;
use crate::capture::Dir;
use crate::events::{Direction, Timestamp};
use crate::http::{BodyLimits, HttpConn};
use std::net::SocketAddr;

#[derive(Default)]
pub(super) struct Reasm {
    /// next expected stream position; `None` until the first byte is seen
    pub(super) expected: Option<u64>,
}

impl Reasm {
    /// Returns (lost bytes before this chunk, the part of `bytes` not seen before).
    pub(super) fn accept<'a>(&mut self, pos: u64, bytes: &'a [u8]) -> (u64, &'a [u8]) {
        let exp = *self.expected.get_or_insert(pos);
        let end = pos + bytes.len() as u64;
        if end <= exp && !bytes.is_empty() {
            return (0, &[]);
        }
        let (lost, fresh) = if pos >= exp {
            (pos - exp, bytes)
        } else {
            (0, &bytes[(exp - pos) as usize..])
        };
        self.expected = Some(end.max(exp));
        (lost, fresh)
    }
}

pub(super) struct Conn {
    pub(super) id: String,
    pub(super) pid: u32,
    pub(super) fd: i32,
    pub(super) sk: u64,
    pub(super) direction: Option<Direction>,
    pub(super) local: Option<SocketAddr>,
    pub(super) remote: Option<SocketAddr>,
    pub(super) opened: Timestamp,
    pub(super) opened_emitted: bool,
    /// TLS seen (handshake records or library plaintext)
    pub(super) tls: bool,
    pub(super) tls_version: Option<String>,
    pub(super) sni: Option<String>,
    /// the whole ClientHello was read (SNI and ALPN are known, or absent)
    pub(super) client_hello: bool,
    /// ALPN protocols the ClientHello offered
    pub(super) alpn_offered: Option<Vec<String>>,
    /// the server's ALPN choice, when its ServerHello showed it (TLS 1.2 and older)
    pub(super) alpn: Option<String>,
    pub(super) hello: [Vec<u8>; 2],
    pub(super) muted: bool,
    /// plaintext arrived from a TLS library for this connection
    pub(super) library: Option<&'static str>,
    pub(super) raw: [Reasm; 2],
    pub(super) ssl: [Reasm; 2],
    pub(super) http: Option<HttpConn>,
    /// the connection speaks HTTP/2 (then `http` is `None`); boxed, as most do not
    pub(super) h2: Option<Box<H2Conn>>,
    /// bytes were given to the HTTP parser
    pub(super) fed: bool,
    /// bytes seen while neither side was known to be the client
    pub(super) undecided: u64,
    pub(super) seq: u64,
    /// wire bytes as seen in user space (the kernel's counters win at close)
    pub(super) bytes_sent: u64,
    pub(super) bytes_recv: u64,
    /// the Java agent's id of the engine or socket whose plaintext this connection carries
    pub(super) java: Option<u64>,
    /// creation order (the most recent of several candidates wins)
    pub(super) serial: u64,
    /// bytes counted for this connection in the memory budget
    pub(super) mem: usize,
    /// since when something is in flight (ns), for the budget's eviction order
    pub(super) busy_since: Option<u64>,
    /// last record (ns)
    pub(super) active: u64,
}

pub(super) fn di(d: Dir) -> usize {
    match d {
        Dir::Recv => 0,
        Dir::Send => 1,
    }
}

impl Conn {
    pub(super) fn new(
        id: String,
        pid: u32,
        fd: i32,
        ts: Timestamp,
        limits: BodyLimits,
        serial: u64,
    ) -> Conn {
        Conn {
            id,
            pid,
            fd,
            sk: 0,
            direction: None,
            local: None,
            remote: None,
            opened: ts,
            opened_emitted: false,
            tls: false,
            tls_version: None,
            sni: None,
            client_hello: false,
            alpn_offered: None,
            alpn: None,
            hello: [Vec::new(), Vec::new()],
            muted: false,
            library: None,
            raw: [Reasm::default(), Reasm::default()],
            ssl: [Reasm::default(), Reasm::default()],
            http: Some(HttpConn::new(limits)),
            h2: None,
            fed: false,
            undecided: 0,
            seq: 0,
            bytes_sent: 0,
            bytes_recv: 0,
            java: None,
            serial,
            mem: 0,
            busy_since: None,
            active: 0,
        }
    }
}
