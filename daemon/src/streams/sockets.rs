//! Which socket a connection is and what its addresses are: connect and accept records,
//! the TCP tuples `sock/inet_sock_set_state` reports (joined to them by `sk` for outgoing
//! connections, by the remote address for accepted ones), and /proc for sockets seen
//! without their connect or accept (open before attach, accept(fd, NULL, NULL), an
//! accept() that began before the probes attached).
use std::net::SocketAddr;

use super::{ConnKey, KernelControl, PENDING_TUPLES, Reasm, Tracker};
use crate::events::{Direction, Timestamp};

impl Tracker {
    /// connect(): a new egress connection on `fd` (whatever `fd` was before is closed);
    /// its local address comes with it, or from the tuple seen for its `sk`.
    pub(super) fn on_connect(
        &mut self,
        pid: u32,
        fd: i32,
        ts: Timestamp,
        local: Option<SocketAddr>,
        remote: Option<SocketAddr>,
        sk: u64,
    ) {
        let key = ConnKey::Fd(pid, fd);
        self.unix_fds.remove(&key);
        self.close_key(key, ts, None);
        let pending = self.est_by_sk.remove(&sk);
        let c = self.new_conn(key, pid, fd, ts);
        c.direction = Some(Direction::Egress);
        c.sk = sk;
        c.remote = remote;
        c.local = local;
        c.raw = [Reasm { expected: Some(0) }, Reasm { expected: Some(0) }];
        if let Some((l, _)) = pending {
            c.local = l;
        }
    }

    /// accept(): a new ingress connection on `fd`; its local address comes from the tuple
    /// established for its remote address, or from /proc when the record has none.
    pub(super) fn on_accept(
        &mut self,
        pid: u32,
        fd: i32,
        ts: Timestamp,
        remote: Option<SocketAddr>,
        k: &mut dyn KernelControl,
    ) {
        let key = ConnKey::Fd(pid, fd);
        self.unix_fds.remove(&key);
        self.close_key(key, ts, None);
        if remote.is_none() && self.socket_is_unix(pid, fd) {
            k.set_sock_state(pid, fd, None);
            self.unix_fds.insert(key);
            return;
        }
        let local = remote.and_then(|r| self.est_by_remote.remove(&r)).flatten();
        let c = self.new_conn(key, pid, fd, ts);
        c.direction = Some(Direction::Ingress);
        c.remote = remote;
        c.local = local;
        c.raw = [Reasm { expected: Some(0) }, Reasm { expected: Some(0) }];
        if remote.is_none() {
            // accept(fd, NULL, NULL), as libuv (Node.js) calls it. /proc shows the
            // socket now behind `fd`; when the connection was closed already and
            // its fd number reused, that is a later connection, whose tuple is not
            // remembered yet. Such an answer gives way to the oldest tuple
            // established on a port this process listens on (a listener's queue
            // is accepted in order).
            self.fill_from_proc(key);
            let seen = self
                .conns
                .get(&key)
                .and_then(|c| Some((c.local?, c.remote?)));
            let tuple = match seen {
                Some((l, r)) if self.est_by_remote.get(&r) == Some(&Some(l)) => {
                    self.est_by_remote.remove(&r);
                    Some((l, r))
                }
                other => self.oldest_tuple_listened_by(pid).or(other),
            };
            if let Some(c) = self.conns.get_mut(&key) {
                // accepted: this side serves, whatever the listener does now
                c.direction = Some(Direction::Ingress);
                if let Some((l, r)) = tuple {
                    c.local = Some(l);
                    c.remote = Some(r);
                }
            }
        }
    }

    /// A TCP connection reached ESTABLISHED: its tuple completes the connection it
    /// belongs to, or waits (bounded) for that connection's record.
    pub(super) fn on_established(
        &mut self,
        local: Option<SocketAddr>,
        remote: Option<SocketAddr>,
        sk: u64,
        outgoing: bool,
    ) {
        let hit = if outgoing {
            self.conns
                .values_mut()
                .find(|c| c.sk == sk && c.sk != 0 && c.local.is_none_or(|l| l.port() == 0))
        } else {
            self.conns.values_mut().find(|c| {
                c.direction == Some(Direction::Ingress)
                    && c.local.is_none()
                    && c.remote.is_some()
                    && c.remote == remote
            })
        };
        match hit {
            Some(c) => c.local = local,
            None => self.remember_tuple(outgoing, sk, local, remote),
        }
    }

    pub fn add_existing(
        &mut self,
        pid: u32,
        fd: i32,
        local: SocketAddr,
        remote: SocketAddr,
        ingress: bool,
        ts: Timestamp,
    ) {
        let key = ConnKey::Fd(pid, fd);
        let c = self.new_conn(key, pid, fd, ts);
        c.local = Some(local);
        c.remote = Some(remote);
        c.direction = Some(if ingress {
            Direction::Ingress
        } else {
            Direction::Egress
        });
        // we join mid-stream: start where the bytes start
        c.raw = [Reasm::default(), Reasm::default()];
    }

    /// Sockets of connections without a record for `idle` (by `now`), as (pid, fd), for
    /// the sweep to check against /proc.
    pub fn idle_sockets(&self, idle: std::time::Duration, now: Timestamp) -> Vec<(u32, i32)> {
        let before = now.0.saturating_sub(idle.as_nanos() as u64);
        self.conns
            .iter()
            .filter(|(_, c)| c.active < before)
            .filter_map(|(k, _)| match k {
                ConnKey::Fd(p, f) => Some((*p, *f)),
                _ => None,
            })
            .collect()
    }

    /// Sockets the sweep found closed without a close record: their connections close
    /// now (with the bytes seen in user space), and the kernel forgets them.
    pub fn sockets_gone(&mut self, gone: &[(u32, i32)], ts: Timestamp, k: &mut dyn KernelControl) {
        for &(pid, fd) in gone {
            let key = ConnKey::Fd(pid, fd);
            k.set_sock_state(pid, fd, None);
            self.close_key(key, ts, None);
        }
    }

    fn remember_tuple(
        &mut self,
        outgoing: bool,
        sk: u64,
        local: Option<SocketAddr>,
        remote: Option<SocketAddr>,
    ) {
        if outgoing {
            self.est_by_sk.insert(sk, (local, remote));
        } else if let Some(r) = remote {
            self.est_by_remote.insert(r, local);
        }
        self.est_order.push_back((outgoing, sk, remote));
        while self.est_order.len() > PENDING_TUPLES {
            if let Some((o, sk, r)) = self.est_order.pop_front() {
                if o {
                    self.est_by_sk.remove(&sk);
                } else if let Some(r) = r {
                    self.est_by_remote.remove(&r);
                }
            }
        }
    }

    /// The oldest remembered incoming tuple (local, remote) whose local address one of
    /// `pid`'s listening sockets listens on; taken out of the remembered ones.
    fn oldest_tuple_listened_by(&mut self, pid: u32) -> Option<(SocketAddr, SocketAddr)> {
        let root = std::path::Path::new("/proc");
        let table = crate::capture::procnet::tcp_table(root, pid);
        let listeners = crate::capture::procnet::listening(root, pid, &table);
        if listeners.is_empty() {
            return None;
        }
        let hit = self.est_order.iter().find_map(|(outgoing, _, r)| {
            let r = r.filter(|_| !*outgoing)?;
            let l = (*self.est_by_remote.get(&r)?)?;
            listeners
                .iter()
                .any(|x| x.port() == l.port() && (x.ip().is_unspecified() || x.ip() == l.ip()))
                .then_some((l, r))
        })?;
        self.est_by_remote.remove(&hit.1);
        Some(hit)
    }

    /// `fd` of `pid` is a unix socket (accept(2) gives stream sockets: TCP or unix). Asked
    /// positively: a TCP socket its server already closed has left /proc's TCP table (an
    /// orphaned socket is listed with inode 0), and must not be taken for a unix one.
    /// False when unsure (the fd is gone, or not a socket).
    fn socket_is_unix(&self, pid: u32, fd: i32) -> bool {
        let root = std::path::Path::new("/proc");
        crate::capture::procnet::fd_socket_inode(root, pid, fd)
            .is_some_and(|ino| crate::capture::procnet::unix_inodes(root, pid).contains(&ino))
    }

    /// Addresses and direction of a socket first seen through its data (open before
    /// attach, or its connect record was lost), or accepted without an address.
    pub(super) fn fill_from_proc(&mut self, key: ConnKey) {
        let ConnKey::Fd(pid, fd) = key else { return };
        let root = std::path::Path::new("/proc");
        let Some(inode) = crate::capture::procnet::fd_socket_inode(root, pid, fd) else {
            return;
        };
        let table = crate::capture::procnet::tcp_table(root, pid);
        let Some(t) = table.get(&inode).copied() else {
            return;
        };
        let listening = table
            .values()
            .any(|e| e.state == 10 && e.local.port() == t.local.port());
        if let Some(c) = self.conns.get_mut(&key) {
            c.local = Some(t.local);
            c.remote = Some(t.remote);
            c.direction = Some(if listening {
                Direction::Ingress
            } else {
                Direction::Egress
            });
        }
    }
}
