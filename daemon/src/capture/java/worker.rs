//! The Java worker thread: looks at new JVMs, prepares their `/tmp/.qtap-java`, runs the
//! attaches (a few at a time, each on a short-lived thread of its own), and serves the
//! agents' sockets (`peers`). Nothing here runs on the capture thread.
use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::peers::{AgentConn, Refusals};
use super::{AGENT_JAR, Cmd, DIR_NAME, JavaRecord, Shared, attach, jar_name, major};
use crate::capture::libs::read_proc_bytes;
use crate::capture::safefs::{self, Root};
use crate::events::ProbeStatus;

/// How long a freshly loaded agent has to connect back.
const HELLO_WAIT: Duration = Duration::from_secs(4);
/// The first JDK without `jdk.internal.org.objectweb.asm` (removed for the ClassFile API).
const FIRST_WITHOUT_ASM: u32 = 24;
/// Attaches running at once (each may wait seconds for a JVM); the others wait their turn.
const MAX_ATTACHING: usize = 4;
/// A JDK's `release` file read at most.
const MAX_RELEASE: u64 = 64 * 1024;
/// `/proc/PID/cmdline` and `environ` read at most.
const MAX_PROC_ARGS: u64 = 1 << 20;
/// How long the worker sleeps at most with nothing to do (timeouts are checked that often).
const IDLE_WAIT_MS: i32 = 250;

/// Wakes the worker (a byte on a socket pair it polls). Cheap to clone; never blocks.
#[derive(Clone)]
pub(super) struct Waker(Arc<UnixStream>);

impl Waker {
    pub(super) fn pair() -> std::io::Result<(Waker, UnixStream)> {
        let (a, b) = UnixStream::pair()?;
        a.set_nonblocking(true)?;
        b.set_nonblocking(true)?;
        Ok((Waker(Arc::new(a)), b))
    }

    pub(super) fn wake(&self) {
        // a full socket already holds a wake-up
        let _ = (&*self.0).write(&[1]);
    }
}

/// (pid, outcome of loading the agent), from an attach thread
type AttachResult = (u32, Result<(), String>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum JvmState {
    /// attach queued or running
    Attaching,
    /// loaded (or found loaded); waiting for the agent's hello
    Waiting {
        since: Instant,
        earlier: bool,
    },
    Attached,
    Failed,
}

pub(super) struct Jvm {
    exe: String,
    /// start time (`/proc/PID/stat`): with the pid, names this process
    pub(super) start: u64,
    pub(super) state: JvmState,
    /// the agent was loaded by us (or found loaded): its connections are expected
    pub(super) loaded: bool,
    /// the agent's hello came before the attach thread's result
    hello: Option<String>,
}

/// A socket of ours in one `/tmp/.qtap-java`; removed (through the directory's descriptor)
/// when dropped.
pub(super) struct Listener {
    pub(super) l: UnixListener,
    dir: safefs::Dir,
    name: OsString,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.dir.unlink(&self.name);
    }
}

struct Queued {
    pid: u32,
    target: attach::Target,
    tmp: safefs::Dir,
}

pub(super) struct Worker {
    pub(super) proc_root: PathBuf,
    shared: Arc<Shared>,
    waker: Waker,
    pub(super) listeners: HashMap<(u64, u64), Listener>,
    pub(super) agents: Vec<AgentConn>,
    pub(super) jvms: HashMap<u32, Jvm>,
    pub(super) refusals: Refusals,
    /// connections from JVMs whose attach runs (see `peers`)
    pub(super) waiting: Vec<(UnixStream, Instant)>,
    queued: VecDeque<Queued>,
    attaching: usize,
    results: (mpsc::Sender<AttachResult>, mpsc::Receiver<AttachResult>),
    me: u32,
}

impl Worker {
    pub(super) fn new(proc_root: &Path, shared: Arc<Shared>, waker: Waker) -> Worker {
        Worker {
            proc_root: proc_root.to_path_buf(),
            shared,
            waker,
            listeners: HashMap::new(),
            agents: Vec::new(),
            jvms: HashMap::new(),
            refusals: Refusals::default(),
            waiting: Vec::new(),
            queued: VecDeque::new(),
            attaching: 0,
            results: mpsc::channel(),
            me: std::process::id(),
        }
    }

    pub(super) fn status(&mut self, pid: u32, status: String) {
        let Some(j) = self.jvms.get_mut(&pid) else {
            return;
        };
        let exe = j.exe.clone();
        if status.starts_with("failed") {
            j.state = JvmState::Failed;
            tracing::info!(pid, %exe, %status, "Java not captured");
        } else {
            j.state = JvmState::Attached;
            tracing::info!(pid, %exe, %status, "Java agent");
        }
        let st = ProbeStatus {
            library: "java".into(),
            path: format!("{exe} (pid {pid})"),
            status,
        };
        push_status(&self.shared.statuses, st);
    }

    fn command(&mut self, c: Cmd) {
        match c {
            Cmd::Consider(pids) => {
                for pid in pids {
                    self.consider(pid);
                }
            }
            Cmd::Exited(pid) => self.exited(pid),
            Cmd::Sync(n) => {
                // the JVMs looked at before it count as unsettled from now on
                self.publish();
                self.shared.synced.store(n, Ordering::Release);
            }
        }
    }

    /// Looks at `pid` once: when it is a JVM not seen before, starts attaching.
    pub(super) fn consider(&mut self, pid: u32) {
        if pid == self.me {
            return;
        }
        let Some(start) = super::start_time(&self.proc_root, pid) else {
            return;
        };
        match self.jvms.get(&pid) {
            Some(j) if j.start == start => return,
            // the pid was reused
            Some(_) => self.exited(pid),
            None => {}
        }
        let Some(libjvm) = super::libjvm_of(&self.proc_root, pid) else {
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
                start,
                state: JvmState::Attaching,
                loaded: false,
                hello: None,
            },
        );
        if let Err(why) = self.start_attach(pid, &libjvm) {
            self.status(pid, format!("failed: {why}"));
        }
    }

    fn start_attach(&mut self, pid: u32, libjvm: &str) -> Result<(), String> {
        if AGENT_JAR.is_empty() {
            return Err("Java capture is unavailable in this build (javac was missing when qtap was built; install a JDK and rebuild)".into());
        }
        let root = Root::of_pid(&self.proc_root, pid)
            .map_err(|e| format!("cannot open the JVM's root directory: {e}"))?;
        let version = java_version(&root, libjvm);
        let m = version.as_deref().and_then(major);
        if let Some(m) = m
            && m < 16
        {
            return Err(format!(
                "JDK {} is too old for the qtap agent (it needs JDK 16 or later)",
                version.unwrap_or_default()
            ));
        }
        if let Some(m) = m
            && m >= FIRST_WITHOUT_ASM
        {
            return Err(format!(
                "JDK {} no longer carries the internal ASM library the qtap agent rewrites JSSE with (it supports JDK 16 to {})",
                version.unwrap_or_default(),
                FIRST_WITHOUT_ASM - 1
            ));
        }
        let base = self.proc_root.join(pid.to_string());
        let bytes =
            |name: &str| read_proc_bytes(&base.join(name), MAX_PROC_ARGS).unwrap_or_default();
        if super::attach_disabled(&bytes("cmdline"), &bytes("environ")) {
            return Err("JVM refuses attach (started with -XX:+DisableAttachMechanism)".into());
        }
        let tmp = self.prepare(&root)?;
        if agent_loaded(&self.proc_root, pid) {
            // the agent finds our socket by itself
            if let Some(j) = self.jvms.get_mut(&pid) {
                j.state = JvmState::Waiting {
                    since: Instant::now(),
                    earlier: true,
                };
                j.loaded = true;
            }
            return Ok(());
        }
        let target = attach::target(&self.proc_root, pid).map_err(|e| e.to_string())?;
        self.queued.push_back(Queued { pid, target, tmp });
        Ok(())
    }

    /// The JVM's `/tmp/.qtap-java`: made (root's, 0755) if missing, the agent jar written,
    /// our socket bound. Returns the JVM's `/tmp`, held open. Nothing in that `/tmp` is
    /// followed: a symlink anywhere on the way is refused.
    fn prepare(&mut self, root: &Root) -> Result<safefs::Dir, String> {
        let tmp = root.open_dir("/tmp").map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR) => {
                "the JVM's /tmp is a symbolic link (or not a directory): refusing to use it"
                    .to_string()
            }
            _ => format!("cannot open the JVM's /tmp: {e}"),
        })?;
        let name = OsStr::new(DIR_NAME);
        let refuse = || {
            format!(
                "/tmp/{DIR_NAME} in the JVM's /tmp is not a directory owned by root and writable only by it (a symbolic link?): refusing to use it (remove it)"
            )
        };
        tmp.mkdir(name, 0o755)
            .map_err(|e| format!("cannot create /tmp/{DIR_NAME} in the JVM's /tmp: {e}"))?;
        let dir = tmp.open_dir(name).map_err(|_| refuse())?;
        let st = dir
            .stat()
            .map_err(|e| format!("cannot stat /tmp/{DIR_NAME}: {e}"))?;
        if st.st_uid != 0 || st.st_mode & 0o022 != 0 {
            return Err(refuse());
        }
        let jar = OsStr::new(jar_name());
        match dir.stat_at(jar) {
            Ok(Some(j)) if j.st_mode & libc::S_IFMT == libc::S_IFREG && j.st_uid == 0 => {}
            Ok(Some(_)) => {
                return Err(format!(
                    "/tmp/{DIR_NAME}/{} is not root's regular file: refusing to use it (remove it)",
                    jar_name()
                ));
            }
            Ok(None) => write_jar(&dir, self.me, jar).map_err(|e| {
                format!("cannot write the agent jar into /tmp/{DIR_NAME} in the JVM's /tmp: {e}")
            })?,
            Err(e) => return Err(format!("cannot stat the agent jar: {e}")),
        }
        let key = (st.st_dev, st.st_ino);
        if !self.listeners.contains_key(&key) {
            let l = self.listen(dir)?;
            self.listeners.insert(key, l);
        }
        Ok(tmp)
    }

    fn listen(&self, dir: safefs::Dir) -> Result<Listener, String> {
        remove_stale_sockets(&dir, &self.proc_root, self.me);
        let name = OsString::from(format!("{}.sock", self.me));
        let _ = dir.unlink(&name);
        let shown = name.to_string_lossy().into_owned();
        let what = |e: std::io::Error| format!("cannot listen on /tmp/{DIR_NAME}/{shown}: {e}");
        let path = dir.fd_path(&name).map_err(what)?;
        let l = UnixListener::bind(&path).map_err(what)?;
        let l = Listener { l, dir, name };
        // Anyone may connect (the JVMs of every user of this /tmp must): who may speak is
        // decided per connection by `peers` (SO_PEERCRED pid and start time).
        l.dir.chmod(&l.name, libc::S_IFSOCK, 0o666).map_err(what)?;
        l.l.set_nonblocking(true).map_err(what)?;
        Ok(l)
    }

    /// Starts queued attaches while fewer than [`MAX_ATTACHING`] run.
    fn start_queued(&mut self) {
        while self.attaching < MAX_ATTACHING {
            let Some(q) = self.queued.pop_front() else {
                return;
            };
            if !self
                .jvms
                .get(&q.pid)
                .is_some_and(|j| j.state == JvmState::Attaching)
            {
                continue;
            }
            let jar = format!("/tmp/{DIR_NAME}/{}", jar_name());
            let tx = self.results.0.clone();
            let waker = self.waker.clone();
            let pid = q.pid;
            let spawned = std::thread::Builder::new()
                .name("qtap-java-attach".into())
                .spawn(move || {
                    let r = attach::load_agent(
                        &q.tmp,
                        &q.target,
                        &jar,
                        &format!("dir=/tmp/{DIR_NAME}"),
                    )
                    .map_err(|e| e.to_string());
                    let _ = tx.send((pid, r));
                    waker.wake();
                });
            match spawned {
                Ok(_) => self.attaching += 1,
                Err(e) => self.status(pid, format!("failed: cannot start a thread: {e}")),
            }
        }
    }

    /// Outcomes of finished attaches.
    fn settle(&mut self) {
        while let Ok((pid, r)) = self.results.1.try_recv() {
            self.attaching = self.attaching.saturating_sub(1);
            match r {
                Ok(()) => {
                    let Some(j) = self.jvms.get_mut(&pid) else {
                        continue;
                    };
                    j.loaded = true;
                    j.state = JvmState::Waiting {
                        since: Instant::now(),
                        earlier: false,
                    };
                    if let Some(v) = j.hello.take() {
                        self.hello(pid, &v);
                    }
                }
                Err(e) => self.status(pid, format!("failed: {e}")),
            }
        }
    }

    /// An agent's hello: its JVM is attached.
    pub(super) fn hello(&mut self, pid: u32, version: &str) {
        let Some(j) = self.jvms.get_mut(&pid) else {
            return;
        };
        let how = match j.state {
            // the agent was quicker than the attach thread's result
            JvmState::Attaching => {
                j.hello = Some(version.to_string());
                return;
            }
            JvmState::Waiting { earlier: true, .. } => "java agent, loaded earlier",
            JvmState::Waiting { earlier: false, .. } => "java agent",
            // connected back after we gave up waiting
            JvmState::Failed if j.loaded => "java agent, connected late",
            _ => return,
        };
        self.status(pid, format!("attached ({how}; JDK {version})"));
    }

    fn timeouts(&mut self) {
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

    fn exited(&mut self, pid: u32) {
        self.jvms.remove(&pid);
        self.queued.retain(|q| q.pid != pid);
        self.agents.retain(|a| a.pid != pid);
    }

    fn publish(&self) {
        let unsettled = self
            .jvms
            .values()
            .filter(|j| matches!(j.state, JvmState::Attaching | JvmState::Waiting { .. }))
            .count();
        self.shared.unsettled.store(unsettled, Ordering::Release);
    }
}

fn push_status(statuses: &Mutex<Vec<ProbeStatus>>, st: ProbeStatus) {
    if let Ok(mut s) = statuses.lock() {
        // bounded: the capture thread takes them every turn; a stalled one loses the oldest
        if s.len() >= 4096 {
            s.remove(0);
        }
        s.push(st);
    }
}

/// Writes the agent jar as `.<pid>.part`, then renames it into place.
fn write_jar(dir: &safefs::Dir, me: u32, jar: &OsStr) -> std::io::Result<()> {
    let part = OsString::from(format!(".{me}.part"));
    let _ = dir.unlink(&part);
    let mut f = dir.create(&part, 0o644)?;
    f.write_all(AGENT_JAR)?;
    drop(f);
    dir.rename(&part, jar)
}

/// Sockets of daemons that are gone.
fn remove_stale_sockets(dir: &safefs::Dir, proc_root: &Path, me: u32) {
    let Ok(names) = dir.names(4096) else {
        return;
    };
    for name in names {
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".sock"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != me && !proc_root.join(pid.to_string()).exists() {
            let _ = dir.unlink(&name);
        }
    }
}

/// The `JAVA_VERSION` of the JDK a `libjvm.so` belongs to (its `release` file, a regular
/// file of at most [`MAX_RELEASE`] bytes: a FIFO or a device there is not read).
fn java_version(root: &Root, libjvm: &str) -> Option<String> {
    let mut dir = Path::new(libjvm).parent();
    for _ in 0..4 {
        let d = dir?;
        match root.read(&d.join("release").to_string_lossy(), MAX_RELEASE) {
            Ok(b) => {
                return String::from_utf8_lossy(&b).lines().find_map(|l| {
                    l.strip_prefix("JAVA_VERSION=")
                        .map(|v| v.trim_matches('"').to_string())
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::debug!(release = %d.join("release").display(), error = %e, "JDK release file not read");
                return None;
            }
        }
        dir = d.parent();
    }
    None
}

/// An agent jar of any qtap build open in the JVM: loaded before.
fn agent_loaded(proc_root: &Path, pid: u32) -> bool {
    let Ok(rd) = std::fs::read_dir(proc_root.join(pid.to_string()).join("fd")) else {
        return false;
    };
    rd.flatten().take(1 << 16).any(|e| {
        std::fs::read_link(e.path()).is_ok_and(|t| {
            let t = t.to_string_lossy();
            t.contains(&format!("/{DIR_NAME}/qtap-agent-")) && t.contains(".jar")
        })
    })
}

/// The worker's loop; ends when the command queue closes (the handle was dropped).
pub(super) fn run(
    mut w: Worker,
    cmds: Receiver<Cmd>,
    out: SyncSender<Vec<JavaRecord>>,
    mut wake_rx: UnixStream,
) {
    let mut pending: Option<Vec<JavaRecord>> = None;
    loop {
        loop {
            match cmds.try_recv() {
                Ok(c) => w.command(c),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        w.settle();
        w.start_queued();
        w.accept();
        // records go out before more are read: the queue's bound holds
        if let Some(b) = pending.take() {
            match out.try_send(b) {
                Ok(()) => {}
                Err(TrySendError::Full(b)) => pending = Some(b),
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        if pending.is_none() {
            let batch = w.read_agents();
            if !batch.is_empty() {
                match out.try_send(batch) {
                    Ok(()) => {}
                    Err(TrySendError::Full(b)) => pending = Some(b),
                    Err(TrySendError::Disconnected(_)) => return,
                }
            }
        }
        w.timeouts();
        w.publish();
        wait(&w, &mut wake_rx, pending.is_some());
    }
}

/// Sleeps until a wake-up, a connection or agent bytes (not agent bytes while `blocked`:
/// the capture thread has not taken the last batch yet).
fn wait(w: &Worker, wake_rx: &mut UnixStream, blocked: bool) {
    let mut fds = vec![libc::pollfd {
        fd: wake_rx.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    for l in w.listeners.values() {
        fds.push(libc::pollfd {
            fd: l.l.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
    }
    if !blocked {
        for a in &w.agents {
            fds.push(libc::pollfd {
                fd: a.s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
    }
    let timeout = if blocked { 10 } else { IDLE_WAIT_MS };
    // SAFETY: a valid array of pollfds of the length given.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
    let mut buf = [0u8; 256];
    while matches!(std::io::Read::read(wake_rx, &mut buf), Ok(n) if n > 0) {}
}
