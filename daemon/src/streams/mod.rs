//! Per-connection streams: turns kernel records into connections, reassembles each
//! direction in order (by stream position, so every lost byte is known), feeds the
//! HTTP parser, and builds the contract's events.
//!
//! A connection is keyed by (pid, fd), or by (pid, `SSL*`) when a TLS library call came
//! before the tool could tie that `SSL*` to a socket. TLS and plaintext share one model:
//! raw socket bytes of a TLS connection are only read for the handshake (SNI, version),
//! after which the kernel is told to stop sending them; the plaintext comes from the
//! library probes.
mod budget;
mod conn;
mod h2;
mod java;
mod key_hash;
mod sockets;
pub mod tls;
mod transaction;

pub use budget::{DEFAULT_MAX_BUFFER_BYTES, MEMORY_BUDGET};
use conn::{Conn, Reasm, di};
use key_hash::{KeyMap, KeySet};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::attribution::{ProcessInfo, Processes};
use crate::capture::{Dir, Record, Source};
use crate::events::{
    ConnectionClosed, ConnectionOpened, Direction, Dropped, Event, ProcessStarted, ProcessStopped,
    Timestamp, TlsInfo,
};
use crate::http::{self, BodyLimits, HttpConn, Side};
use crate::http2::{self, H2Conn};

/// What the tracker asks of the kernel side.
pub trait KernelControl {
    /// `Some(state)` sets a socket's state in the kernel map (`sock_state::MUTE`), `None` forgets it.
    fn set_sock_state(&mut self, pid: u32, fd: i32, state: Option<u32>);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnKey {
    Fd(u32, i32),
    Ssl(u32, u64),
    /// (pid, the Java agent's id of an engine or socket) not tied to a socket
    Java(u32, u64),
}

/// Bytes of a handshake kept to read SNI and version.
const HELLO_BUF: usize = 16 * 1024;
/// Bytes of a connection whose client side is still unknown after which it is taken
/// for another protocol.
const UNDECIDED_LIMIT: u64 = 4096;
/// Remembered ESTABLISHED tuples waiting for their connect/accept record.
const PENDING_TUPLES: usize = 4096;

pub struct TrackerConfig {
    pub limits: BodyLimits,
    /// the global memory budget (`--max-buffer-bytes`), see [`budget`]
    pub max_buffer_bytes: usize,
}

impl TrackerConfig {
    pub fn new(limits: BodyLimits) -> Self {
        TrackerConfig {
            limits,
            max_buffer_bytes: DEFAULT_MAX_BUFFER_BYTES,
        }
    }
}

pub struct Tracker {
    /// boxed: the map's room (never given back while it grows) costs a pointer per slot
    conns: KeyMap<ConnKey, Box<Conn>>,
    /// `SSL*` → the socket connection it was tied to
    ssl_to_fd: KeyMap<(u32, u64), ConnKey>,
    by_pid: KeyMap<u32, KeySet<ConnKey>>,
    est_by_sk: HashMap<u64, (Option<SocketAddr>, Option<SocketAddr>)>,
    est_by_remote: HashMap<SocketAddr, Option<SocketAddr>>,
    est_order: VecDeque<(bool, u64, Option<SocketAddr>)>,
    procs: Processes,
    announced: KeySet<u32>,
    limits: BodyLimits,
    next_id: u64,
    id_prefix: String,
    out: Vec<Event>,
    lost_stream_bytes: u64,
    java: java::JavaState,
    /// Sockets accepted without a known address that /proc showed are unix sockets
    /// (accepted by a call that began before the probes attached): their bytes already
    /// in the ring are dropped. Forgotten when the fd is reused or the process
    /// ends.
    unix_fds: KeySet<ConnKey>,
    budget: budget::Budget,
}

impl Tracker {
    pub fn new(cfg: TrackerConfig, procs: Processes) -> Self {
        let prefix = format!("{:x}", Timestamp::now().0 / 1_000_000 % 0xfffff);
        Tracker {
            conns: KeyMap::default(),
            ssl_to_fd: KeyMap::default(),
            by_pid: KeyMap::default(),
            est_by_sk: HashMap::new(),
            est_by_remote: HashMap::new(),
            est_order: VecDeque::new(),
            procs,
            announced: KeySet::default(),
            limits: cfg.limits,
            next_id: 1,
            id_prefix: prefix,
            out: Vec::new(),
            lost_stream_bytes: 0,
            java: java::JavaState::default(),
            unix_fds: KeySet::default(),
            budget: budget::Budget::new(cfg.max_buffer_bytes),
        }
    }

    /// Events produced since the last call.
    pub fn drain(&mut self) -> Vec<Event> {
        if self.lost_stream_bytes > 0 {
            let bytes = std::mem::take(&mut self.lost_stream_bytes);
            self.out.push(Event::Dropped(Dropped {
                events: 0,
                bytes,
                reason: "stream-gap".into(),
            }));
        }
        if let Some(d) = self.budget.report() {
            self.out.push(d);
        }
        self.compact();
        if let Some(d) = self.java_dropped() {
            self.out.push(Event::Dropped(d));
        }
        std::mem::take(&mut self.out)
    }

    /// process.started for every process that has a connection open now.
    pub fn snapshot(&mut self) -> Vec<Event> {
        let pids: Vec<u32> = self
            .by_pid
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(p, _)| *p)
            .collect();
        pids.into_iter()
            .map(|p| {
                let info = self.procs.get(p);
                Event::ProcessStarted(self.procs.started(&info))
            })
            .collect()
    }

    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    fn new_conn(&mut self, key: ConnKey, pid: u32, fd: i32, ts: Timestamp) -> &mut Conn {
        let id = format!("{}-{}", self.id_prefix, self.next_id);
        let serial = self.next_id;
        self.next_id += 1;
        self.by_pid.entry(pid).or_default().insert(key);
        // read /proc now, while the process surely lives
        let info = self.procs.get(pid);
        if self.announced.insert(pid) {
            self.out
                .push(Event::ProcessStarted(self.procs.started(&info)));
        }
        let limits = self.limits;
        let mut added = 0;
        let c = self.conns.entry(key).or_insert_with(|| {
            let c = Box::new(Conn::new(id, pid, fd, ts, limits, serial));
            added = c.base_bytes();
            c
        });
        if added > 0 {
            c.mem = added;
            c.active = ts.0;
            self.budget.total += added;
        }
        c
    }
}

impl Tracker {
    /// A socket that was open before the probes attached.
    pub fn handle(
        &mut self,
        rec: Record,
        wall: &dyn Fn(u64) -> Timestamp,
        k: &mut dyn KernelControl,
    ) {
        match rec {
            Record::Connect {
                pid,
                fd,
                ts_ns,
                local,
                remote,
                sk,
                ..
            } => self.on_connect(pid, fd, wall(ts_ns), local, remote, sk),
            Record::Accept {
                pid,
                fd,
                ts_ns,
                remote,
                ..
            } => self.on_accept(pid, fd, wall(ts_ns), remote, k),
            Record::Established {
                local,
                remote,
                sk,
                outgoing,
                ..
            } => self.on_established(local, remote, sk, outgoing),
            Record::Data {
                pid,
                fd,
                ts_ns,
                ssl,
                pos,
                dir,
                source,
                bytes,
                unseen,
                ..
            } => {
                let ts = wall(ts_ns);
                self.data(pid, fd, ssl, pos, dir, source, &bytes, unseen, ts, k);
            }
            Record::Close {
                pid,
                fd,
                ts_ns,
                bytes_sent,
                bytes_recv,
            } => {
                let key = ConnKey::Fd(pid, fd);
                if self.conns.get(&key).is_some_and(|c| c.java.is_some()) {
                    // the agent's last plaintext may still be on its way
                    self.java_defer_close(key, (bytes_sent, bytes_recv));
                } else {
                    self.close_key(key, wall(ts_ns), Some((bytes_sent, bytes_recv)));
                }
            }
            Record::Exec {
                pid,
                comm,
                uid,
                filename,
                cgroup_id,
                ..
            } => self.procs.exec(pid, filename, comm, uid, cgroup_id),
            Record::Exit {
                pid,
                ts_ns,
                comm,
                exit_code,
            } => {
                let ts = wall(ts_ns);
                let keys: Vec<ConnKey> = self
                    .by_pid
                    .remove(&pid)
                    .map(|s| s.into_iter().collect())
                    .unwrap_or_default();
                for key in keys {
                    if let ConnKey::Fd(p, fd) = key {
                        k.set_sock_state(p, fd, None);
                    }
                    self.close_key(key, ts, None);
                }
                self.ssl_to_fd.retain(|(p, _), _| *p != pid);
                self.unix_fds
                    .retain(|k| !matches!(k, ConnKey::Fd(p, _) if *p == pid));
                self.java_exit(pid);
                let _ = self.procs.exit(pid, &comm);
                if self.announced.remove(&pid) {
                    self.out
                        .push(Event::ProcessStopped(ProcessStopped::from_raw(
                            pid, exit_code,
                        )));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn data(
        &mut self,
        pid: u32,
        fd: i32,
        ssl: u64,
        pos: u64,
        dir: Dir,
        source: Source,
        bytes: &[u8],
        unseen: u64,
        ts: Timestamp,
        k: &mut dyn KernelControl,
    ) {
        let key = match source {
            Source::Syscall => ConnKey::Fd(pid, fd),
            Source::Java => ConnKey::Java(pid, ssl),
            Source::OpenSsl | Source::GnuTls | Source::GoTls if fd >= 0 => {
                // an SSL* first seen without its fd: merge into the socket connection
                if let Some(old) = self.ssl_to_fd.insert((pid, ssl), ConnKey::Fd(pid, fd))
                    && old != ConnKey::Fd(pid, fd)
                {
                    self.close_key(old, ts, None);
                }
                ConnKey::Fd(pid, fd)
            }
            Source::OpenSsl | Source::GnuTls | Source::GoTls => *self
                .ssl_to_fd
                .get(&(pid, ssl))
                .unwrap_or(&ConnKey::Ssl(pid, ssl)),
        };
        self.data_at(key, pid, pos, dir, source, bytes, unseen, ts, k);
    }

    /// Bytes of the connection `key` (made when missing), then what it holds counted.
    #[allow(clippy::too_many_arguments)]
    fn data_at(
        &mut self,
        key: ConnKey,
        pid: u32,
        pos: u64,
        dir: Dir,
        source: Source,
        bytes: &[u8],
        unseen: u64,
        ts: Timestamp,
        k: &mut dyn KernelControl,
    ) {
        self.data_in(key, pid, pos, dir, source, bytes, unseen, ts, k);
        self.account(key, ts, k);
    }

    #[allow(clippy::too_many_arguments)]
    fn data_in(
        &mut self,
        key: ConnKey,
        pid: u32,
        pos: u64,
        dir: Dir,
        source: Source,
        bytes: &[u8],
        unseen: u64,
        ts: Timestamp,
        k: &mut dyn KernelControl,
    ) {
        if self.unix_fds.contains(&key) {
            return;
        }
        if !self.conns.contains_key(&key) {
            let fd_for = if let ConnKey::Fd(_, f) = key { f } else { -1 };
            self.new_conn(key, pid, fd_for, ts);
            if fd_for >= 0 {
                self.fill_from_proc(key);
            }
        }
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let d = di(dir);
        match dir {
            Dir::Send => c.bytes_sent += bytes.len() as u64 + unseen,
            Dir::Recv => c.bytes_recv += bytes.len() as u64 + unseen,
        }
        match source {
            Source::Syscall => {
                let (lost, fresh) = c.raw[d].accept(pos, bytes);
                let lost = lost + unseen;
                if c.library.is_some() || c.muted {
                    return;
                }
                if c.tls || (lost == 0 && !c.fed && tls::looks_like_tls(fresh)) {
                    c.tls = true;
                    let buf = &mut c.hello[d];
                    if buf.len() < HELLO_BUF {
                        let take = fresh.len().min(HELLO_BUF - buf.len());
                        buf.extend_from_slice(&fresh[..take]);
                    }
                    let client_d = match c.direction {
                        Some(Direction::Ingress) => di(Dir::Recv),
                        _ => di(Dir::Send),
                    };
                    if !c.client_hello
                        && let Some(h) = tls::client_hello(&c.hello[client_d])
                    {
                        c.client_hello = true;
                        c.sni = h.sni;
                        c.alpn_offered = h.alpn;
                    }
                    if c.tls_version.is_none()
                        && let Some(h) = tls::server_hello(&c.hello[1 - client_d])
                    {
                        c.tls_version = h.version;
                        c.alpn = h.alpn;
                    }
                    let full = c.hello.iter().all(|h| h.len() >= HELLO_BUF);
                    if (c.tls_version.is_some() || full) && c.fd >= 0 {
                        // nothing more to learn from ciphertext: stop copying it
                        c.muted = true;
                        c.hello = [Vec::new(), Vec::new()];
                        k.set_sock_state(c.pid, c.fd, Some(qtap_common::sock_state::MUTE));
                    }
                    return;
                }
                if self.feed(key, dir, lost, fresh, ts) {
                    self.mute(key, k);
                }
            }
            Source::OpenSsl | Source::GnuTls | Source::GoTls | Source::Java => {
                if c.library.is_none() {
                    // plaintext from the library replaces the raw stream from here on
                    c.library = source.library();
                    c.tls = true;
                    c.http = Some(HttpConn::new(self.limits));
                    c.h2 = None;
                    c.fed = false;
                    if c.fd >= 0 && !c.muted {
                        c.muted = true;
                        k.set_sock_state(c.pid, c.fd, Some(qtap_common::sock_state::MUTE));
                    }
                }
                // library positions come from the kernel's per-`SSL*` table, an LRU: an
                // entry evicted (or tied to its socket anew) counts from 0 again. A library
                // never hands the same bytes twice, so a position behind the stream is such
                // a restart, not a repeat: nothing was lost, the count starts over
                if c.ssl[d].expected.is_some_and(|e| pos < e) {
                    c.ssl[d].expected = Some(pos);
                }
                let (lost, fresh) = c.ssl[d].accept(pos, bytes);
                self.feed(key, dir, lost, fresh, ts);
            }
        }
    }

    /// Feeds the HTTP parser. Returns true when the connection turned out not to carry
    /// HTTP/1.x (the caller then tells the kernel to stop copying its bytes).
    fn feed(&mut self, key: ConnKey, dir: Dir, lost: u64, fresh: &[u8], ts: Timestamp) -> bool {
        let Some(c) = self.conns.get_mut(&key) else {
            return false;
        };
        if c.direction.is_none() && !fresh.is_empty() {
            // which side speaks first with a request line (or the HTTP/2 preface) is the client
            if http::looks_like_request(fresh) || http2::starts_with_preface(fresh) {
                c.direction = Some(if dir == Dir::Send {
                    Direction::Egress
                } else {
                    Direction::Ingress
                });
            }
        }
        let Some(direction) = c.direction else {
            // neither side opened with a request line in the first bytes: not HTTP/1.x
            c.undecided += fresh.len() as u64;
            if c.undecided > UNDECIDED_LIMIT {
                c.http = None;
                self.emit_opened(key);
                return true;
            }
            return false;
        };
        let side = match (direction, dir) {
            (Direction::Egress, Dir::Send) | (Direction::Ingress, Dir::Recv) => Side::Client,
            _ => Side::Server,
        };
        // HTTP/2: the client preface, a server's SETTINGS, or frames of a connection
        // joined mid-way, as the first bytes seen
        if !c.fed && c.h2.is_none() && http2::looks_like_h2(fresh) {
            c.h2 = Some(Box::new(H2Conn::new(self.limits)));
            c.http = None;
        }
        if c.h2.is_some() {
            return self.feed_h2(key, side, lost, fresh, ts);
        }
        let Some(h) = c.http.as_mut() else {
            return true;
        };
        let mut done = Vec::new();
        if lost > 0 {
            self.lost_stream_bytes += lost;
            done.extend(h.gap(side, lost, ts));
        }
        if !fresh.is_empty() {
            c.fed = true;
            done.extend(h.feed(side, fresh, ts));
        }
        let not_http = h.is_not_http();
        if not_http {
            c.http = None;
        }
        // `Upgrade: h2c` accepted: the connection goes on in HTTP/2
        let upgraded =
            not_http && side == Side::Server && self.h2c_upgrade(key, fresh, &mut done, ts);
        self.emit_opened(key);
        for ex in done {
            self.emit_exchange(key, ex);
        }
        not_http && !upgraded
    }

    /// Stops the kernel copying a socket's bytes (user space cannot use them).
    fn mute(&mut self, key: ConnKey, k: &mut dyn KernelControl) {
        if let Some(c) = self.conns.get_mut(&key)
            && !c.muted
            && c.fd >= 0
        {
            c.muted = true;
            k.set_sock_state(c.pid, c.fd, Some(qtap_common::sock_state::MUTE));
        }
    }

    fn emit_opened(&mut self, key: ConnKey) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        if c.opened_emitted {
            return;
        }
        c.opened_emitted = true;
        let container = self
            .procs
            .cached(c.pid)
            .and_then(|p| self.procs.container_of(p));
        let ev = ConnectionOpened {
            connection_id: c.id.clone(),
            pid: c.pid,
            local: c.local.map(|a| a.to_string()).unwrap_or_default(),
            remote: c.remote.map(|a| a.to_string()).unwrap_or_default(),
            direction: c.direction.unwrap_or(Direction::Egress),
            tls: c.tls.then(|| TlsInfo {
                version: c.tls_version.clone(),
                sni: c.sni.clone(),
                library: c.library.map(str::to_string),
                alpn_offered: c.alpn_offered.clone(),
                alpn: c.alpn.clone(),
            }),
            container,
        };
        self.out.push(Event::ConnectionOpened(ev));
    }

    fn emit_exchange(&mut self, key: ConnKey, ex: http::Exchange) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        c.seq += 1;
        let info: Arc<ProcessInfo> = match self.procs.cached(c.pid) {
            Some(p) => p.clone(),
            None => self.procs.get(c.pid),
        };
        let container = self.procs.container_of(&info);
        let ev = transaction::build(c, &info, container, ex);
        self.out.push(Event::HttpTransaction(Box::new(ev)));
    }

    /// Flushes and forgets a connection. `counters`: the kernel's (sent, received).
    fn close_key(&mut self, key: ConnKey, ts: Timestamp, counters: Option<(u64, u64)>) {
        let Some(mut c) = self.conns.remove(&key) else {
            return;
        };
        if let Some(s) = self.by_pid.get_mut(&c.pid) {
            s.remove(&key);
        }
        self.ssl_to_fd.retain(|_, v| *v != key);
        let mut rest = c.http.as_mut().map(|h| h.close(ts)).unwrap_or_default();
        rest.extend(c.h2.as_mut().map(|h| h.close(ts)).unwrap_or_default());
        let (sent, recv) = counters.unwrap_or((c.bytes_sent, c.bytes_recv));
        c.bytes_sent = c.bytes_sent.max(sent);
        c.bytes_recv = c.bytes_recv.max(recv);
        self.conns.insert(key, c);
        self.emit_opened(key);
        for ex in rest {
            self.emit_exchange(key, ex);
        }
        let Some(c) = self.conns.remove(&key) else {
            return;
        };
        self.account_gone(&c);
        if let Some(id) = c.java {
            self.java_forget(c.pid, id);
        }
        self.out.push(Event::ConnectionClosed(ConnectionClosed {
            connection_id: c.id,
            bytes_sent: c.bytes_sent,
            bytes_received: c.bytes_recv,
            duration_ms: c.opened.ms_until(ts),
        }));
    }

    /// Forgets a connection without a word (the memory budget evicts it): a later record
    /// of its socket starts a new one.
    fn forget(&mut self, key: ConnKey) -> Option<Box<Conn>> {
        let c = self.conns.remove(&key)?;
        if let Some(s) = self.by_pid.get_mut(&c.pid) {
            s.remove(&key);
        }
        self.ssl_to_fd.retain(|_, v| *v != key);
        self.account_gone(&c);
        if let Some(id) = c.java {
            self.java_forget(c.pid, id);
        }
        Some(c)
    }

    /// Closes every connection (the capture is stopping).
    pub fn close_all(&mut self, ts: Timestamp) {
        let keys: Vec<ConnKey> = self.conns.keys().copied().collect();
        for k in keys {
            self.close_key(k, ts, None);
        }
    }

    /// Processes known to have a connection, for `process.started` snapshots.
    pub fn started(&mut self, pid: u32) -> ProcessStarted {
        let info = self.procs.get(pid);
        self.procs.started(&info)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_budget;
#[cfg(test)]
mod tests_java;
