//! Who may speak on the agent socket, and reading what they say.
//!
//! The socket is mode 0666 in a directory every user of that `/tmp` can reach: a JVM runs
//! as any user, and connecting to a unix socket needs write permission on it. The gate is
//! here, per connection: the kernel's `SO_PEERCRED` pid must be a JVM this daemon attached
//! to (or found with an agent of an earlier run loaded and expects back), and that pid's
//! start time (`/proc/PID/stat`) must be the one recorded when the daemon looked at it (a
//! pid reused by another process does not pass). At most [`MAX_CONNS_PER_JVM`] connections
//! per JVM and [`MAX_AGENTS`] in all. Anything else is closed at once, before a byte is
//! read, and logged once per process.
use std::collections::HashSet;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::worker::{JvmState, Worker};
use super::{JavaRecord, proto};

/// Agent connections one JVM may hold (one per daemon socket in its `/tmp`; a reconnect
/// overlaps the old connection's end for a moment).
pub const MAX_CONNS_PER_JVM: usize = 4;
/// Agent connections in all.
pub const MAX_AGENTS: usize = 1024;
/// Bytes read from one agent per turn (the capture thread gets a bounded batch).
const READ_PER_AGENT: usize = 256 * 1024;
/// Processes whose refusal was logged, remembered at most (then refusals are only counted).
const MAX_LOGGED_REFUSALS: usize = 4096;

/// A connection from a JVM whose attach runs waits for it at most this long.
const WAIT_FOR_ATTACH: Duration = Duration::from_secs(30);
/// Connections waiting so at most.
const MAX_WAITING: usize = 64;

enum Admit {
    Yes(u32),
    Wait,
    No(u32, u64, String),
}

pub(super) struct AgentConn {
    pub(super) s: UnixStream,
    pub(super) pid: u32,
    buf: Vec<u8>,
}

/// Refused peers: each process logged once.
#[derive(Default)]
pub(super) struct Refusals {
    logged: HashSet<(u32, u64)>,
    saturated: bool,
    pub(super) count: u64,
}

impl Refusals {
    fn refuse(&mut self, pid: u32, start: u64, why: &str) {
        self.count += 1;
        if self.logged.contains(&(pid, start)) {
            return;
        }
        if self.logged.len() < MAX_LOGGED_REFUSALS {
            self.logged.insert((pid, start));
            tracing::warn!(
                pid,
                reason = why,
                "refused a connection to the Java agent socket (further ones from this process are not logged)"
            );
        } else if !self.saturated {
            self.saturated = true;
            tracing::warn!(
                "refused connections to the Java agent socket from many processes: no longer logged"
            );
        }
    }
}

/// The connecting process's pid, in our pid namespace.
fn peer_pid(s: &UnixStream) -> Option<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a valid socket fd and a ucred-sized buffer.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    (rc == 0 && cred.pid > 0).then_some(cred.pid as u32)
}

impl Worker {
    /// Accepts pending connections; keeps those of JVMs we attached to. A connection from
    /// a JVM whose attach still runs waits (unread) for its outcome.
    pub(super) fn accept(&mut self) {
        let mut new: Vec<(UnixStream, Instant)> = std::mem::take(&mut self.waiting);
        for l in self.listeners.values() {
            // bounded per turn: a flood of connections cannot hold the worker here
            for _ in 0..256 {
                match l.l.accept() {
                    Ok((s, _)) => new.push((s, Instant::now())),
                    Err(_) => break,
                }
            }
        }
        for (s, since) in new {
            match self.admit(&s) {
                Admit::Yes(pid) => {
                    if s.set_nonblocking(true).is_ok() {
                        self.agents.push(AgentConn {
                            s,
                            pid,
                            buf: Vec::new(),
                        });
                    }
                }
                Admit::Wait
                    if since.elapsed() < WAIT_FOR_ATTACH && self.waiting.len() < MAX_WAITING =>
                {
                    self.waiting.push((s, since));
                }
                Admit::Wait => {
                    let pid = peer_pid(&s).unwrap_or(0);
                    self.refusals
                        .refuse(pid, 0, "its attach did not finish in time");
                }
                Admit::No(pid, start, why) => self.refusals.refuse(pid, start, &why),
            }
        }
    }

    /// Whether the peer may speak: a JVM we loaded the agent into (or found it loaded in),
    /// the same process as then.
    fn admit(&mut self, s: &UnixStream) -> Admit {
        let Some(pid) = peer_pid(s) else {
            return Admit::No(0, 0, "the kernel gives no pid for it".into());
        };
        let start = super::start_time(&self.proc_root, pid).unwrap_or(0);
        if !self.jvms.contains_key(&pid) {
            // e.g. an agent another daemon loaded, before our own look at its JVM
            self.consider(pid);
        }
        let Some(j) = self.jvms.get(&pid) else {
            return Admit::No(pid, start, "not a JVM this daemon attached to".into());
        };
        if j.start != start {
            return Admit::No(
                pid,
                start,
                "its pid belonged to another process when the daemon attached".into(),
            );
        }
        if !j.loaded {
            if j.state == JvmState::Attaching {
                return Admit::Wait;
            }
            return Admit::No(
                pid,
                start,
                "a JVM this daemon did not load the agent into".into(),
            );
        }
        if self.agents.iter().filter(|a| a.pid == pid).count() >= MAX_CONNS_PER_JVM {
            return Admit::No(
                pid,
                start,
                format!("more than {MAX_CONNS_PER_JVM} connections from one JVM"),
            );
        }
        if self.agents.len() >= MAX_AGENTS {
            return Admit::No(
                pid,
                start,
                format!("more than {MAX_AGENTS} agent connections"),
            );
        }
        Admit::Yes(pid)
    }

    /// Reads what the agents sent (bounded per agent), settles hellos; returns the records.
    pub(super) fn read_agents(&mut self) -> Vec<JavaRecord> {
        let mut out = Vec::new();
        let mut msgs = Vec::new();
        let mut hellos = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        self.agents.retain_mut(|a| {
            let mut read = 0;
            let alive = loop {
                if read >= READ_PER_AGENT || a.buf.len() > proto::MAX_MESSAGE + 8 {
                    break true;
                }
                match a.s.read(&mut chunk) {
                    Ok(0) => break false,
                    Ok(n) => {
                        read += n;
                        a.buf.extend_from_slice(&chunk[..n]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break false,
                }
            };
            msgs.clear();
            let parsed = proto::parse(&mut a.buf, &mut msgs);
            for m in msgs.drain(..) {
                let pid = a.pid;
                match m {
                    proto::Message::Hello { version, .. } => hellos.push((pid, version)),
                    proto::Message::Open(open) => out.push(JavaRecord::Open { pid, open }),
                    proto::Message::Data {
                        id,
                        dir,
                        pos,
                        bytes,
                    } => out.push(JavaRecord::Data {
                        pid,
                        id,
                        dir,
                        pos,
                        bytes,
                    }),
                    proto::Message::Drops { messages, bytes } => out.push(JavaRecord::Drops {
                        pid,
                        messages,
                        bytes,
                    }),
                    proto::Message::Heartbeat => {}
                }
            }
            if let Err(e) = parsed {
                tracing::warn!(pid = a.pid, error = %e, "broken stream from a Java agent: closed");
                return false;
            }
            alive
        });
        for (pid, version) in hellos {
            self.hello(pid, &version);
        }
        out
    }
}
