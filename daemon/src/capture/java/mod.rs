//! Java: plaintext of JSSE (pure-Java TLS) from a small agent the daemon loads into each
//! running JVM through the HotSpot attach mechanism (no restart, no flag). There is no
//! native TLS code to uprobe in a JVM, so the agent instruments JSSE's
//! `SSLEngineImpl.wrap/unwrap` and `SSLSocketImpl`'s application streams
//! (`daemon/java-agent`) and writes what they see to this daemon.
//!
//! The probe point is a unix stream socket the daemon binds in each JVM's own `/tmp`
//! (`/tmp/.qtap-java/<daemon pid>.sock`, reached as `/proc/PID/root/tmp/...`, so it works
//! through containers' mount namespaces and systemd's `PrivateTmp=`), in a directory owned
//! by root and writable by nobody else. Why a socket of ours rather than a file the kernel
//! side copies: the agent learns at once when no daemon listens (it then goes quiet: the
//! hooks return after one volatile read) and when one is back (it watches the directory),
//! several daemons can listen at once, the kernel tells us the sending process
//! (`SO_PEERCRED`, a pid of our namespace even for a container's JVM), and nothing in the
//! kernel programs changes. The agent cannot be unloaded; an agent loaded earlier (by a
//! previous run) is recognised by its jar being open in the JVM and is not loaded twice.
pub mod attach;
pub mod proto;

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::capture::Dir;
use crate::events::ProbeStatus;
pub use proto::JavaOpen;

/// The agent jar built by `daemon/build.rs` (empty when `javac` was missing at build time).
static AGENT_JAR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/qtap-java-agent.jar"));

/// The directory, in a JVM's `/tmp`, that holds the agent jar and the daemons' sockets.
pub const DIR_NAME: &str = ".qtap-java";
/// The first JDK without `jdk.internal.org.objectweb.asm` (removed for the ClassFile API).
const FIRST_WITHOUT_ASM: u32 = 24;
/// How long a freshly loaded agent has to connect back.
const HELLO_WAIT: Duration = Duration::from_secs(4);

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

/// (pid, outcome of loading the agent), from an attach thread
type AttachResult = (u32, Result<(), String>);

struct Listener {
    l: UnixListener,
    path: PathBuf,
}

struct AgentConn {
    s: UnixStream,
    pid: u32,
    buf: Vec<u8>,
}

#[derive(Debug)]
enum JvmState {
    /// attach running in a thread
    Attaching,
    /// loaded (or found loaded); waiting for the agent's hello
    Waiting { since: Instant, earlier: bool },
    /// status reported
    Done,
}

struct Jvm {
    exe: String,
    state: JvmState,
}

pub struct JavaCapture {
    proc_root: PathBuf,
    listeners: HashMap<(u64, u64), Listener>,
    agents: Vec<AgentConn>,
    jvms: HashMap<u32, Jvm>,
    /// pids whose agent said hello, with the JVM's version
    hello: HashMap<u32, String>,
    results: (mpsc::Sender<AttachResult>, mpsc::Receiver<AttachResult>),
    statuses: Vec<ProbeStatus>,
    backlog: Vec<JavaRecord>,
    me: u32,
}

/// True when `pid` runs a HotSpot JVM (maps `libjvm.so`); returns the library's path.
pub fn libjvm_of(proc_root: &Path, pid: u32) -> Option<String> {
    let maps = std::fs::read_to_string(proc_root.join(pid.to_string()).join("maps")).ok()?;
    maps.lines().find_map(|l| {
        let p = l.splitn(6, ' ').nth(5)?.trim();
        p.ends_with("/libjvm.so").then(|| p.to_string())
    })
}

/// The `JAVA_VERSION` of the JDK a `libjvm.so` belongs to (its `release` file).
fn java_version(proc_root: &Path, pid: u32, libjvm: &str) -> Option<String> {
    let root = proc_root.join(pid.to_string()).join("root");
    let mut dir = Path::new(libjvm).parent();
    for _ in 0..4 {
        let d = dir?;
        if let Ok(s) = std::fs::read_to_string(root.join(d.strip_prefix("/").ok()?).join("release"))
        {
            return s.lines().find_map(|l| {
                l.strip_prefix("JAVA_VERSION=")
                    .map(|v| v.trim_matches('"').to_string())
            });
        }
        dir = d.parent();
    }
    None
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
fn jar_name() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in AGENT_JAR {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("qtap-agent-{h:016x}.jar")
}

/// An agent jar of any qtap build open in the JVM: loaded before.
fn agent_loaded(proc_root: &Path, pid: u32) -> bool {
    let Ok(rd) = std::fs::read_dir(proc_root.join(pid.to_string()).join("fd")) else {
        return false;
    };
    rd.flatten().any(|e| {
        std::fs::read_link(e.path()).is_ok_and(|t| {
            let t = t.to_string_lossy();
            t.contains(&format!("/{DIR_NAME}/qtap-agent-")) && t.contains(".jar")
        })
    })
}

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

impl JavaCapture {
    pub fn new(proc_root: &Path) -> Self {
        JavaCapture {
            proc_root: proc_root.to_path_buf(),
            listeners: HashMap::new(),
            agents: Vec::new(),
            jvms: HashMap::new(),
            hello: HashMap::new(),
            results: mpsc::channel(),
            statuses: Vec::new(),
            backlog: Vec::new(),
            me: std::process::id(),
        }
    }

    fn status(&mut self, pid: u32, status: String) {
        let exe = self
            .jvms
            .get(&pid)
            .map(|j| j.exe.clone())
            .unwrap_or_default();
        if status.starts_with("failed") {
            tracing::info!(pid, %exe, %status, "Java not captured");
        } else {
            tracing::info!(pid, %exe, %status, "Java agent");
        }
        if let Some(j) = self.jvms.get_mut(&pid) {
            j.state = JvmState::Done;
        }
        self.statuses.push(ProbeStatus {
            library: "java".into(),
            path: format!("{exe} (pid {pid})"),
            status,
        });
    }

    /// Looks at `pid` once: when it is a JVM not seen before, starts attaching.
    pub fn consider(&mut self, pid: u32) {
        if pid == self.me || self.jvms.contains_key(&pid) {
            return;
        }
        let Some(libjvm) = libjvm_of(&self.proc_root, pid) else {
            return;
        };
        let base = self.proc_root.join(pid.to_string());
        let exe = std::fs::read_link(base.join("exe"))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "java".into());
        self.jvms.insert(
            pid,
            Jvm {
                exe,
                state: JvmState::Attaching,
            },
        );
        if AGENT_JAR.is_empty() {
            self.status(
                pid,
                "failed: Java capture is unavailable in this build (javac was missing when qtap was built; install a JDK and rebuild)".into(),
            );
            return;
        }
        let version = java_version(&self.proc_root, pid, &libjvm);
        if let Some(m) = version.as_deref().and_then(major)
            && m < 16
        {
            self.status(
                pid,
                format!(
                    "failed: JDK {} is too old for the qtap agent (it needs JDK 16 or later)",
                    version.unwrap_or_default()
                ),
            );
            return;
        }
        if let Some(m) = version.as_deref().and_then(major)
            && m >= FIRST_WITHOUT_ASM
        {
            self.status(
                pid,
                format!(
                    "failed: JDK {} no longer carries the internal ASM library the qtap agent rewrites JSSE with (it supports JDK 16 to {})",
                    version.unwrap_or_default(),
                    FIRST_WITHOUT_ASM - 1
                ),
            );
            return;
        }
        let cmdline = std::fs::read(base.join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(base.join("environ")).unwrap_or_default();
        if attach_disabled(&cmdline, &environ) {
            self.status(
                pid,
                "failed: JVM refuses attach (started with -XX:+DisableAttachMechanism)".into(),
            );
            return;
        }
        let dir = match self.prepare(pid) {
            Ok(d) => d,
            Err(e) => {
                self.status(pid, format!("failed: {e}"));
                return;
            }
        };
        if agent_loaded(&self.proc_root, pid) {
            // the agent finds our socket by itself
            self.jvms.get_mut(&pid).unwrap().state = JvmState::Waiting {
                since: Instant::now(),
                earlier: true,
            };
            return;
        }
        let target = match attach::target(&self.proc_root, pid) {
            Ok(t) => t,
            Err(e) => {
                self.status(pid, format!("failed: {e}"));
                return;
            }
        };
        let jar = format!("/tmp/{DIR_NAME}/{}", jar_name());
        let _ = dir;
        let tx = self.results.0.clone();
        let proc_root = self.proc_root.clone();
        let spawned = std::thread::Builder::new()
            .name("qtap-java-attach".into())
            .spawn(move || {
                let r =
                    attach::load_agent(&proc_root, &target, &jar, &format!("dir=/tmp/{DIR_NAME}"))
                        .map_err(|e| e.to_string());
                let _ = tx.send((pid, r));
            });
        if let Err(e) = spawned {
            self.status(pid, format!("failed: cannot start a thread: {e}"));
        }
    }

    /// The JVM's `/tmp/.qtap-java`: made (root-owned, 0755) if missing, the agent jar
    /// written, our socket bound. Returns the directory as we reach it.
    fn prepare(&mut self, pid: u32) -> Result<PathBuf, String> {
        let tmp = attach::tmp_of(&self.proc_root, pid);
        let dir = tmp.join(DIR_NAME);
        let md = match std::fs::symlink_metadata(&dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match std::fs::create_dir(&dir) {
                    Ok(()) => {
                        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                            .map_err(|e| format!("cannot chmod {}: {e}", dir.display()))?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
                }
                std::fs::symlink_metadata(&dir)
                    .map_err(|e| format!("cannot stat {}: {e}", dir.display()))?
            }
            Err(e) => return Err(format!("cannot stat {}: {e}", dir.display())),
        };
        if !md.is_dir() || md.uid() != 0 || md.mode() & 0o022 != 0 {
            return Err(format!(
                "/tmp/{DIR_NAME} in the JVM's /tmp is not a directory owned by root and writable only by it: refusing to use it (remove it)"
            ));
        }
        let jar = dir.join(jar_name());
        if !jar.exists() {
            let part = dir.join(format!(".{}.part", self.me));
            std::fs::write(&part, AGENT_JAR)
                .and_then(|()| {
                    std::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o644))
                })
                .and_then(|()| std::fs::rename(&part, &jar))
                .map_err(|e| format!("cannot write the agent jar into {}: {e}", dir.display()))?;
        }
        let key = (md.dev(), md.ino());
        if !self.listeners.contains_key(&key) {
            self.remove_stale_sockets(&dir);
            let path = dir.join(format!("{}.sock", self.me));
            let _ = std::fs::remove_file(&path);
            let l = UnixListener::bind(&path)
                .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
                .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?;
            l.set_nonblocking(true)
                .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
            self.listeners.insert(key, Listener { l, path });
        }
        Ok(dir)
    }

    /// Sockets of daemons that are gone.
    fn remove_stale_sockets(&self, dir: &Path) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".sock"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != self.me && !self.proc_root.join(pid.to_string()).exists() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Accepts agents, reads what they sent, settles attach results. Never blocks.
    pub fn poll(&mut self, out: &mut Vec<JavaRecord>) {
        out.append(&mut self.backlog);
        while let Ok((pid, r)) = self.results.1.try_recv() {
            match r {
                Ok(()) => {
                    if let Some(j) = self.jvms.get_mut(&pid) {
                        j.state = JvmState::Waiting {
                            since: Instant::now(),
                            earlier: false,
                        };
                    }
                }
                Err(e) => self.status(pid, format!("failed: {e}")),
            }
        }
        for l in self.listeners.values() {
            while let Ok((s, _)) = l.l.accept() {
                let Some(pid) = peer_pid(&s) else { continue };
                if libjvm_of(&self.proc_root, pid).is_none() || s.set_nonblocking(true).is_err() {
                    tracing::debug!(pid, "refused a connection to the Java socket: not a JVM");
                    continue;
                }
                self.agents.push(AgentConn {
                    s,
                    pid,
                    buf: Vec::new(),
                });
            }
        }
        let mut msgs = Vec::new();
        let mut hellos = Vec::new();
        self.agents.retain_mut(|a| {
            let mut chunk = [0u8; 64 * 1024];
            let alive = loop {
                match a.s.read(&mut chunk) {
                    Ok(0) => break false,
                    Ok(n) => {
                        a.buf.extend_from_slice(&chunk[..n]);
                        if a.buf.len() > 4 << 20 {
                            break true;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break false,
                }
            };
            msgs.clear();
            let parsed = proto::parse(&mut a.buf, &mut msgs);
            for m in msgs.drain(..) {
                match m {
                    proto::Message::Hello { version, .. } => hellos.push((a.pid, version)),
                    proto::Message::Open(open) => out.push(JavaRecord::Open { pid: a.pid, open }),
                    proto::Message::Data {
                        id,
                        dir,
                        pos,
                        bytes,
                    } => out.push(JavaRecord::Data {
                        pid: a.pid,
                        id,
                        dir,
                        pos,
                        bytes,
                    }),
                    proto::Message::Drops { messages, bytes } => out.push(JavaRecord::Drops {
                        pid: a.pid,
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
            self.hello.insert(pid, version.clone());
            let known = self
                .jvms
                .get(&pid)
                .map(|j| (j.exe.is_empty(), matches!(j.state, JvmState::Done)));
            if known.is_none() {
                // an agent loaded by an earlier run, in a JVM not looked at yet
                let exe = std::fs::read_link(self.proc_root.join(pid.to_string()).join("exe"))
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "java".into());
                self.jvms.insert(
                    pid,
                    Jvm {
                        exe,
                        state: JvmState::Waiting {
                            since: Instant::now(),
                            earlier: true,
                        },
                    },
                );
            }
            if let Some(j) = self.jvms.get(&pid)
                && let JvmState::Waiting { earlier, .. } = j.state
            {
                let how = if earlier {
                    "java agent, loaded earlier"
                } else {
                    "java agent"
                };
                self.status(pid, format!("attached ({how}; JDK {version})"));
            }
        }
        let now = Instant::now();
        let late: Vec<u32> = self
            .jvms
            .iter()
            .filter(|(_, j)| matches!(j.state, JvmState::Waiting { since, .. } if now.duration_since(since) > HELLO_WAIT))
            .map(|(p, _)| *p)
            .collect();
        for pid in late {
            self.status(
                pid,
                format!(
                    "failed: the agent is loaded but did not connect back within {} s",
                    HELLO_WAIT.as_secs()
                ),
            );
        }
    }

    /// True while some JVM's attach is still in progress.
    pub fn settling(&self) -> bool {
        self.jvms
            .values()
            .any(|j| !matches!(j.state, JvmState::Done))
    }

    /// Attaches to every JVM running now and waits (up to `limit`) until each one's
    /// status is known; records that arrive meanwhile are kept for the next `poll`.
    pub fn start_all(&mut self, pids: &[u32], limit: Duration) {
        for &pid in pids {
            self.consider(pid);
        }
        let end = Instant::now() + limit;
        let mut recs = Vec::new();
        while self.settling() && Instant::now() < end {
            self.poll(&mut recs);
            std::thread::sleep(Duration::from_millis(10));
        }
        self.backlog = recs;
    }

    /// New per-JVM statuses since the last call.
    pub fn take_statuses(&mut self) -> Vec<ProbeStatus> {
        std::mem::take(&mut self.statuses)
    }

    /// Pids with a connected agent.
    pub fn connected(&self) -> HashSet<u32> {
        self.agents.iter().map(|a| a.pid).collect()
    }

    /// Forgets an exited process.
    pub fn exited(&mut self, pid: u32) {
        self.jvms.remove(&pid);
        self.hello.remove(&pid);
    }
}

impl Drop for JavaCapture {
    fn drop(&mut self) {
        // the agents see the connection end and go quiet
        for l in self.listeners.values() {
            let _ = std::fs::remove_file(&l.path);
        }
    }
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
}
