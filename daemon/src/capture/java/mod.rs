//! Java: plaintext of JSSE (pure-Java TLS) from a small agent the daemon loads into each
//! running JVM through the HotSpot attach mechanism (no restart, no flag). There is no
//! native TLS code to uprobe in a JVM, so the agent instruments JSSE's
//! `SSLEngineImpl.wrap/unwrap` and `SSLSocketImpl`'s application streams
//! (`daemon/java-agent`) and writes what they see to this daemon.
//!
//! The probe point is a unix stream socket the daemon binds in each JVM's own `/tmp`
//! (`/tmp/.qtap-java/<daemon pid>.sock`, reached through `/proc/PID/root`, so it works
//! through containers' mount namespaces and systemd's `PrivateTmp=`), in a directory owned
//! by root and writable by nobody else. Why a socket of ours rather than a file the kernel
//! side copies: the agent learns at once when no daemon listens (it then goes quiet: the
//! hooks return after one volatile read) and when one is back (it watches the directory),
//! several daemons can listen at once, the kernel tells us the sending process
//! (`SO_PEERCRED`, a pid of our namespace even for a container's JVM), and nothing in the
//! kernel programs changes. The agent cannot be unloaded; an agent loaded earlier (by a
//! previous run) is recognised by its jar being open in the JVM and is not loaded twice.
//!
//! A JVM's `/tmp` belongs to its user (or to a container): every file there is opened with
//! `safefs` (no symlink followed, created `O_EXCL`, modes set on descriptors). All of it —
//! looking at a new JVM, its JDK's `release`, the attach, the agents' sockets — runs on a
//! worker thread of its own ([`JavaHandle`]), behind bounded queues: whatever a JVM or its
//! user does, the capture thread never waits for it. Only processes this daemon attached to
//! may speak on the socket (see `peers`).
pub mod attach;
mod peers;
pub mod proto;
mod worker;

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::capture::Dir;
use crate::events::ProbeStatus;
pub use proto::JavaOpen;

/// The agent jar built by `daemon/build.rs` (empty when `javac` was missing at build time).
static AGENT_JAR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/qtap-java-agent.jar"));

/// The directory, in a JVM's `/tmp`, that holds the agent jar and the daemons' sockets.
pub const DIR_NAME: &str = ".qtap-java";
/// Commands (processes to look at, exits) queued for the worker at most; more are dropped
/// (counted and logged once): the capture thread never waits for the worker.
const COMMAND_QUEUE: usize = 4096;
/// Batches of agent records queued for the capture thread at most; while it is full the
/// worker stops reading the agents (their own bounded queues then drop and count).
const RECORD_QUEUE: usize = 16;

/// What the agents report, for the connection tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JavaRecord {
    Open {
        pid: u32,
        open: JavaOpen,
    },
    Data {
        pid: u32,
        id: u64,
        dir: Dir,
        pos: u64,
        bytes: Vec<u8>,
    },
    Drops {
        pid: u32,
        messages: u64,
        bytes: u64,
    },
}

enum Cmd {
    Consider(Vec<u32>),
    Exited(u32),
    /// answered by setting `Shared::synced` to the number once the commands before it ran
    Sync(u64),
}

/// What the worker tells the capture thread besides records.
#[derive(Default)]
struct Shared {
    statuses: Mutex<Vec<ProbeStatus>>,
    /// JVMs whose status is not known yet
    unsettled: AtomicUsize,
    synced: AtomicU64,
}

/// The Java capture as the capture thread sees it: commands in, records and statuses out,
/// never a wait (except [`JavaHandle::start_all`], bounded, before the capture is
/// announced).
pub struct JavaHandle {
    cmds: Option<SyncSender<Cmd>>,
    records: Receiver<Vec<JavaRecord>>,
    shared: Arc<Shared>,
    waker: worker::Waker,
    thread: Option<std::thread::JoinHandle<()>>,
    backlog: Vec<JavaRecord>,
    next_sync: u64,
    dropped_cmds: u64,
}

impl JavaHandle {
    /// Starts the worker thread. `None` (and a log line) when no thread can be started: Java
    /// capture is then off, everything else works.
    pub fn start(proc_root: &Path) -> Option<JavaHandle> {
        let (cmd_tx, cmd_rx) = mpsc::sync_channel(COMMAND_QUEUE);
        let (rec_tx, rec_rx) = mpsc::sync_channel(RECORD_QUEUE);
        let shared = Arc::new(Shared::default());
        let (waker, wake_rx) = match worker::Waker::pair() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "Java capture off: cannot make the worker's wake-up socket");
                return None;
            }
        };
        let w = worker::Worker::new(proc_root, shared.clone(), waker.clone());
        let thread = std::thread::Builder::new()
            .name("qtap-java".into())
            .spawn(move || worker::run(w, cmd_rx, rec_tx, wake_rx));
        match thread {
            Ok(t) => Some(JavaHandle {
                cmds: Some(cmd_tx),
                records: rec_rx,
                shared,
                waker,
                thread: Some(t),
                backlog: Vec::new(),
                next_sync: 0,
                dropped_cmds: 0,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "Java capture off: cannot start its thread");
                None
            }
        }
    }

    fn send(&mut self, c: Cmd) {
        let Some(tx) = &self.cmds else { return };
        match tx.try_send(c) {
            Ok(()) => self.waker.wake(),
            Err(TrySendError::Full(_)) => {
                self.dropped_cmds += 1;
                if self.dropped_cmds == 1 {
                    tracing::warn!(
                        "the Java worker is behind: processes started meanwhile are not looked at for a JVM (further ones are counted)"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => self.cmds = None,
        }
    }

    /// Looks at `pid` (on the worker): when it is a JVM not seen before, attaches to it.
    pub fn consider(&mut self, pid: u32) {
        self.send(Cmd::Consider(vec![pid]));
    }

    /// Forgets an exited process.
    pub fn exited(&mut self, pid: u32) {
        self.send(Cmd::Exited(pid));
    }

    /// Records the agents sent since the last call. Never waits.
    pub fn poll(&mut self, out: &mut Vec<JavaRecord>) {
        out.append(&mut self.backlog);
        while let Ok(mut b) = self.records.try_recv() {
            out.append(&mut b);
        }
    }

    /// Attaches to every JVM among `pids` and waits (up to `limit`) until each one's status
    /// is known; records that arrive meanwhile are kept for the next `poll`.
    pub fn start_all(&mut self, pids: &[u32], limit: Duration) {
        let end = Instant::now() + limit;
        self.next_sync += 1;
        let n = self.next_sync;
        let Some(tx) = self.cmds.clone() else { return };
        // the queue is empty at start: these two fit
        if tx.try_send(Cmd::Consider(pids.to_vec())).is_err() || tx.try_send(Cmd::Sync(n)).is_err()
        {
            return;
        }
        self.waker.wake();
        while Instant::now() < end {
            if self.shared.synced.load(Ordering::Acquire) >= n
                && self.shared.unsettled.load(Ordering::Acquire) == 0
            {
                break;
            }
            // at most a queue's worth kept aside; past that the worker waits for us
            if self.backlog.len() < 4096
                && let Ok(mut b) = self.records.try_recv()
            {
                self.backlog.append(&mut b);
                continue;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// New per-JVM statuses since the last call.
    pub fn take_statuses(&mut self) -> Vec<ProbeStatus> {
        self.shared
            .statuses
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }
}

impl Drop for JavaHandle {
    fn drop(&mut self) {
        // the worker ends when its command queue closes; its listeners' sockets are removed
        // and the agents see their connections end and go quiet
        self.cmds = None;
        self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The `libjvm.so` path in a `/proc/PID/maps` text: the process runs a HotSpot JVM.
pub fn libjvm_in_maps(maps: &str) -> Option<String> {
    maps.lines().find_map(|l| {
        let p = l.splitn(6, ' ').nth(5)?.trim();
        p.ends_with("/libjvm.so").then(|| p.to_string())
    })
}

/// True when `pid` runs a HotSpot JVM (maps `libjvm.so`); returns the library's path.
pub fn libjvm_of(proc_root: &Path, pid: u32) -> Option<String> {
    let maps =
        crate::capture::libs::read_proc(&proc_root.join(pid.to_string()).join("maps"), 32 << 20)?;
    libjvm_in_maps(&maps)
}

/// The process's start time (field 22 of `/proc/PID/stat`, clock ticks since boot): with
/// the pid, it names one process (a pid is reused, the pair is not).
pub fn start_time(proc_root: &Path, pid: u32) -> Option<u64> {
    let s = crate::capture::libs::read_proc(&proc_root.join(pid.to_string()).join("stat"), 4096)?;
    parse_start_time(&s)
}

fn parse_start_time(stat: &str) -> Option<u64> {
    // the command name (field 2) may hold spaces and parentheses: fields after the last ')'
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn major(version: &str) -> Option<u32> {
    let v = version.strip_prefix("1.").unwrap_or(version);
    v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// `-XX:+DisableAttachMechanism` in the command line or the options the JVM reads from
/// its environment (the last setting wins).
pub fn attach_disabled(cmdline: &[u8], environ: &[u8]) -> bool {
    let mut args: Vec<String> = Vec::new();
    for var in ["JAVA_TOOL_OPTIONS=", "_JAVA_OPTIONS=", "JDK_JAVA_OPTIONS="] {
        for e in environ.split(|b| *b == 0) {
            if let Some(v) = e.strip_prefix(var.as_bytes()) {
                args.extend(
                    String::from_utf8_lossy(v)
                        .split_whitespace()
                        .map(str::to_string),
                );
            }
        }
    }
    args.extend(
        cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned()),
    );
    let mut disabled = false;
    for a in args {
        match a.as_str() {
            "-XX:+DisableAttachMechanism" => disabled = true,
            "-XX:-DisableAttachMechanism" => disabled = false,
            _ => {}
        }
    }
    disabled
}

/// The agent jar's name: its content's hash, so a new build never overwrites a jar a JVM
/// has open.
fn jar_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in AGENT_JAR {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("qtap-agent-{h:016x}.jar")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disable_attach_mechanism_anywhere() {
        assert!(attach_disabled(
            b"java\0-XX:+DisableAttachMechanism\0Main\0",
            b""
        ));
        assert!(!attach_disabled(b"java\0Main\0", b"PATH=/bin\0"));
        assert!(attach_disabled(
            b"java\0Main\0",
            b"JAVA_TOOL_OPTIONS=-Xmx1g -XX:+DisableAttachMechanism\0"
        ));
        assert!(!attach_disabled(
            b"java\0-XX:-DisableAttachMechanism\0Main\0",
            b"JAVA_TOOL_OPTIONS=-XX:+DisableAttachMechanism\0"
        ));
    }

    #[test]
    fn versions() {
        assert_eq!(major("17.0.15"), Some(17));
        assert_eq!(major("1.8.0_392"), Some(8));
        assert_eq!(major("21"), Some(21));
        assert!(jar_name().starts_with("qtap-agent-") && jar_name().ends_with(".jar"));
    }

    #[test]
    fn start_time_after_a_hostile_command_name() {
        let stat = "4242 (a) b) 1 2 3) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 12345 67";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("garbage"), None);
        let me = start_time(Path::new("/proc"), std::process::id()).unwrap();
        assert_eq!(start_time(Path::new("/proc"), std::process::id()), Some(me));
    }
}
