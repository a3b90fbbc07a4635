//! Plaintext from the Java agent (`capture::java`): tying each JSSE engine or socket to
//! the kernel's view of its TCP connection, and closing such connections only once the
//! agent's last bytes, which travel on another path than the kernel's records, are in.
//!
//! Tying: an `SSLSocket` reports its exact local and remote addresses. An `SSLEngine`
//! knows only its peer (`getPeerHost/Port`: the server for a client engine, the client's
//! address and port for a server engine), so a client engine takes the most recent egress
//! connection of the process to that port not tied to another engine; a server engine the
//! ingress connection from that client port. Without a match the engine gets a connection
//! of its own with what the agent knows.
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::{ConnKey, KernelControl, Tracker};
use crate::capture::java::JavaOpen;
use crate::capture::{Dir, Source};
use crate::events::{Direction, Timestamp};

/// How long a connection the kernel saw closed waits for the agent's last plaintext.
const CLOSE_GRACE: Duration = Duration::from_millis(1500);
/// Engines and sockets (agent stream ids) one JVM may have known at once. Past it, a new
/// id takes the place of one no connection uses yet (announced, no bytes); when every one
/// carries a connection, the new id's messages are dropped and counted
/// (`system.dropped`, reason `java-stream-limit`).
pub const MAX_STREAMS_PER_JVM: usize = 4096;

#[derive(Default)]
pub(super) struct JavaState {
    meta: HashMap<(u32, u64), JavaOpen>,
    keys: HashMap<(u32, u64), ConnKey>,
    deferred: Vec<(Instant, ConnKey, (u64, u64))>,
    /// the ids each JVM has now (in `meta` or `keys`)
    ids: HashMap<u32, HashSet<u64>>,
    /// (messages, bytes) dropped at the limit, not reported yet
    dropped: (u64, u64),
    /// JVMs whose reaching the limit was logged
    warned: HashSet<u32>,
}

impl Tracker {
    /// The agent describes an engine or socket (before its first bytes).
    pub fn java_open(&mut self, pid: u32, open: JavaOpen) {
        if !self.java_admit(pid, open.id) {
            self.java.dropped.0 += 1;
            return;
        }
        self.java.meta.insert((pid, open.id), open);
    }

    /// Whether `(pid, id)` may be known; makes room at the limit when it can.
    fn java_admit(&mut self, pid: u32, id: u64) -> bool {
        let j = &mut self.java;
        let ids = j.ids.entry(pid).or_default();
        if ids.contains(&id) {
            return true;
        }
        if ids.len() >= MAX_STREAMS_PER_JVM {
            let spare = ids
                .iter()
                .copied()
                .find(|i| !j.keys.contains_key(&(pid, *i)));
            match spare {
                Some(old) => {
                    ids.remove(&old);
                    j.meta.remove(&(pid, old));
                }
                None => {
                    if j.warned.insert(pid) {
                        tracing::warn!(
                            pid,
                            limit = MAX_STREAMS_PER_JVM,
                            "a JVM's agent reports more TLS engines and sockets with traffic than the limit: the new ones are dropped"
                        );
                    }
                    return false;
                }
            }
        }
        ids.insert(id);
        true
    }

    /// A connection carrying a Java stream closed: the id is forgotten.
    pub(super) fn java_forget(&mut self, pid: u32, id: u64) {
        let j = &mut self.java;
        j.meta.remove(&(pid, id));
        j.keys.remove(&(pid, id));
        if let Some(ids) = j.ids.get_mut(&pid) {
            ids.remove(&id);
        }
    }

    /// A `system.dropped` for what the stream limit cut, if anything.
    pub(super) fn java_dropped(&mut self) -> Option<crate::events::Dropped> {
        let (events, bytes) = std::mem::take(&mut self.java.dropped);
        (events > 0).then(|| crate::events::Dropped {
            events,
            bytes,
            reason: "java-stream-limit".into(),
        })
    }

    /// Plaintext of one engine or socket.
    #[allow(clippy::too_many_arguments)]
    pub fn java_data(
        &mut self,
        pid: u32,
        id: u64,
        dir: Dir,
        pos: u64,
        bytes: &[u8],
        ts: Timestamp,
        k: &mut dyn KernelControl,
    ) {
        let known = self.java.keys.get(&(pid, id)).copied();
        let key = match known {
            Some(key) if self.conns.contains_key(&key) => key,
            _ if !self.java_admit(pid, id) => {
                self.java.dropped.0 += 1;
                self.java.dropped.1 += bytes.len() as u64;
                return;
            }
            _ => {
                let key = self.java_link(pid, id, ts);
                self.java.keys.insert((pid, id), key);
                key
            }
        };
        self.data_at(key, pid, pos, dir, Source::Java, bytes, 0, ts, k);
    }

    fn java_link(&mut self, pid: u32, id: u64, ts: Timestamp) -> ConnKey {
        let meta = self.java.meta.get(&(pid, id)).cloned();
        if let Some(m) = &meta {
            let peer_ip: Option<IpAddr> = m.peer_host.as_deref().and_then(|h| h.parse().ok());
            let keys: Vec<ConnKey> = self
                .by_pid
                .get(&pid)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            let mut best: Option<(u64, ConnKey)> = None;
            for key in keys {
                let ConnKey::Fd(..) = key else { continue };
                let Some(c) = self.conns.get(&key) else {
                    continue;
                };
                if c.java.is_some() {
                    continue;
                }
                let ok = if m.socket {
                    c.remote.is_some()
                        && c.remote == m.remote
                        && (c.local.is_none()
                            || m.local.is_none()
                            || c.local.map(|a| a.port()) == m.local.map(|a| a.port()))
                } else {
                    let want = if m.client {
                        Direction::Egress
                    } else {
                        Direction::Ingress
                    };
                    c.direction == Some(want)
                        && m.peer_port != 0
                        && c.remote.is_some_and(|r| {
                            r.port() == m.peer_port && peer_ip.is_none_or(|ip| ip == r.ip())
                        })
                };
                if ok && best.is_none_or(|(s, _)| c.serial > s) {
                    best = Some((c.serial, key));
                }
            }
            if let Some((_, key)) = best {
                if let Some(c) = self.conns.get_mut(&key) {
                    c.java = Some(id);
                }
                return key;
            }
        }
        // not tied to a socket we know: a connection of its own
        let key = ConnKey::Java(pid, id);
        let c = self.new_conn(key, pid, -1, ts);
        c.java = Some(id);
        if let Some(m) = meta {
            c.direction = Some(if m.client {
                Direction::Egress
            } else {
                Direction::Ingress
            });
            c.local = m.local;
            c.remote = m.remote.or_else(|| {
                let ip: IpAddr = m.peer_host.as_deref()?.parse().ok()?;
                (m.peer_port != 0).then_some(SocketAddr::new(ip, m.peer_port))
            });
        }
        key
    }

    /// The kernel closed a socket tied to a Java engine: the connection moves to the
    /// engine's own key (the fd may be reused at once) and closes a moment later.
    pub(super) fn java_defer_close(&mut self, key: ConnKey, counters: (u64, u64)) {
        let Some(mut c) = self.conns.remove(&key) else {
            return;
        };
        let Some(id) = c.java else {
            self.conns.insert(key, c);
            return;
        };
        let new = ConnKey::Java(c.pid, id);
        if let Some(s) = self.by_pid.get_mut(&c.pid) {
            s.remove(&key);
            s.insert(new);
        }
        self.ssl_to_fd.retain(|_, v| *v != key);
        c.fd = -1;
        c.muted = true;
        self.java.keys.insert((c.pid, id), new);
        self.conns.insert(new, c);
        self.java
            .deferred
            .push((Instant::now() + CLOSE_GRACE, new, counters));
    }

    /// Closes the connections whose grace ended.
    pub fn java_tick(&mut self, now: Instant, ts: Timestamp) {
        if self.java.deferred.is_empty() {
            return;
        }
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.java.deferred)
            .into_iter()
            .partition(|(t, _, _)| *t <= now);
        self.java.deferred = keep;
        for (_, key, counters) in due {
            self.close_key(key, ts, Some(counters));
        }
    }

    pub(super) fn java_exit(&mut self, pid: u32) {
        self.java.meta.retain(|(p, _), _| *p != pid);
        self.java.keys.retain(|(p, _), _| *p != pid);
        self.java.ids.remove(&pid);
        self.java.warned.remove(&pid);
    }
}
