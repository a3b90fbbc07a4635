//! Sockets closed without close(2) — a process that exits or execs with sockets open, a
//! `dup2` over one — leave their entry in the kernel's socket table (`SOCKS`, not an LRU)
//! and their connection in the tracker, since no close record comes. The sweep finds
//! them from /proc: an entry whose process is gone, or whose fd is no longer a socket,
//! is removed, and its connection closed.
//!
//! It runs every [`INTERVAL`], and every [`PRESSED_INTERVAL`] while the table is full
//! (connections are being lost for want of room). Each run reads the table's keys (one
//! syscall each) and, per process still alive, readlink()s the fds in the table; at the
//! default 65,536 entries a full run costs tens of milliseconds, hence the interval.
use super::Capture;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Time between sweeps.
pub const INTERVAL: Duration = Duration::from_secs(30);
/// Time between sweeps while the socket table is full.
pub const PRESSED_INTERVAL: Duration = Duration::from_secs(2);
/// Connections idle this long are checked against /proc too (their kernel entry may be
/// gone already, with a close record lost to a full ring buffer).
pub const IDLE: Duration = Duration::from_secs(60);

pub struct Sweeper {
    last: Instant,
}

impl Default for Sweeper {
    fn default() -> Self {
        Self::new()
    }
}

impl Sweeper {
    pub fn new() -> Self {
        Sweeper {
            last: Instant::now(),
        }
    }

    /// When a sweep is due (`pressed`: the table was full since the last call), removes
    /// the kernel entries of sockets that are gone, and returns them with `idle`
    /// connections' sockets that are gone too, as (pid, fd).
    pub fn due(
        &mut self,
        now: Instant,
        pressed: bool,
        cap: &mut Capture,
        idle: impl FnOnce() -> Vec<(u32, i32)>,
    ) -> Option<Vec<(u32, i32)>> {
        let wait = if pressed { PRESSED_INTERVAL } else { INTERVAL };
        if now.duration_since(self.last) < wait {
            return None;
        }
        self.last = now;
        let root = cap.cfg.proc_root.clone();
        let mut gone = cap.sweep_socks(&root);
        let mut alive = Alive::default();
        gone.extend(
            idle()
                .into_iter()
                .filter(|&(p, f)| !alive.socket(&root, p, f)),
        );
        gone.sort_unstable();
        gone.dedup();
        if !gone.is_empty() {
            tracing::debug!(sockets = gone.len(), "sockets closed unseen were forgotten");
        }
        Some(gone)
    }
}

/// Which processes exist, asked once each.
#[derive(Default)]
struct Alive(HashMap<u32, bool>);

impl Alive {
    /// `fd` of `pid` is a socket now.
    fn socket(&mut self, root: &Path, pid: u32, fd: i32) -> bool {
        let dir = root.join(pid.to_string());
        if !*self.0.entry(pid).or_insert_with(|| dir.exists()) {
            return false;
        }
        std::fs::read_link(dir.join("fd").join(fd.to_string()))
            .is_ok_and(|l| l.as_os_str().as_encoded_bytes().starts_with(b"socket:"))
    }
}

impl Capture {
    /// Removes the socket table's entries whose socket is gone; returns them.
    fn sweep_socks(&mut self, root: &Path) -> Vec<(u32, i32)> {
        let keys: Vec<u64> = self.socks.keys().filter_map(Result::ok).collect();
        let mut alive = Alive::default();
        let mut gone = Vec::new();
        for key in keys {
            let (pid, fd) = ((key >> 32) as u32, key as u32 as i32);
            if !alive.socket(root, pid, fd) {
                let _ = self.socks.remove(&key);
                gone.push((pid, fd));
            }
        }
        gone
    }
}
