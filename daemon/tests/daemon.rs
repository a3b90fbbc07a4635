//! The real `qtap` binary: socket activation through `systemd-socket-activate`, READY=1 on
//! a NOTIFY_SOCKET the test owns, idle exit, SIGTERM, and the command line.
//!
//! The binary is built with the placeholder engine (or the real one, without privileges):
//! probes fail to attach, which the stream reports in `system.connected`; everything else
//! (UI, health, SSE, lifecycle of the process) works the same.
mod common;

use common::{Sse, get};
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const QTAP: &str = env!("CARGO_BIN_EXE_qtap");
const ACTIVATE: &str = "/usr/bin/systemd-socket-activate";

/// systemd-socket-activate is part of the test set-up (.ci/setup installs `systemd`).
fn require_activate() {
    assert!(
        Path::new(ACTIVATE).exists(),
        "{ACTIVATE} not found: install Debian's `systemd` package (.ci/setup does)"
    );
}

/// The NOTIFY_SOCKET the daemon reports to.
struct Notify {
    sock: UnixDatagram,
    path: PathBuf,
    seen: Vec<String>,
}

impl Notify {
    fn new(name: &str) -> Notify {
        let path =
            std::env::temp_dir().join(format!("qtap-test-{}-{name}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Notify {
            sock,
            path,
            seen: Vec::new(),
        }
    }

    /// Waits (at most `secs`) for a message containing `line`, e.g. `READY=1`.
    fn wait_for(&mut self, line: &str, secs: u64) -> String {
        let t = Instant::now();
        loop {
            if let Some(m) = self.seen.iter().find(|m| m.lines().any(|l| l == line)) {
                return m.clone();
            }
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "no {line} within {secs}s; got {:?}",
                self.seen
            );
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.sock.recv(&mut buf) {
                self.seen
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A daemon behind `systemd-socket-activate` (which execs it on the first connection).
/// `--listen` points at an address that is already taken, so only the inherited socket can
/// serve.
struct Activated {
    child: Child,
    addr: SocketAddr,
    notify: Notify,
    _busy: TcpListener,
}

impl Activated {
    fn start(name: &str, extra: &[&str]) -> Activated {
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy_addr = busy.local_addr().unwrap().to_string();
        let notify = Notify::new(name);
        let addr = free_addr();
        let child = Command::new(ACTIVATE)
            .args([
                "-l",
                &addr.to_string(),
                "-E",
                &format!("NOTIFY_SOCKET={}", notify.path.display()),
            ])
            .args([
                QTAP,
                "--enable-dev-tools",
                "--listen",
                &busy_addr,
                "--log-level",
                "debug",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "systemd-socket-activate is not listening on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Activated {
            child,
            addr,
            notify,
            _busy: busy,
        }
    }

    fn sigterm(&self) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) },
            0
        );
    }

    /// Waits for the exit (at most `secs`); returns the status and what it said on stderr.
    fn wait_exit(&mut self, secs: u64) -> (ExitStatus, String) {
        wait_exit(&mut self.child, secs)
    }
}

impl Drop for Activated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_exit(child: &mut Child, secs: u64) -> (ExitStatus, String) {
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("still running after {secs}s; stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (status, err)
}

#[test]
fn socket_activated_daemon_reports_ready_serves_and_stops_on_sigterm() {
    require_activate();
    let mut d = Activated::start("ready", &[]);
    // the first connection starts qtap, which answers it on the inherited socket
    let r = get(d.addr, "/devtools/api/health", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let ready = d.notify.wait_for("READY=1", 20);
    assert!(
        ready.contains("STATUS="),
        "READY=1 comes with a status line: {ready:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        get(d.addr, "/devtools/", &[]).status,
        200,
        "the UI is served"
    );

    // a client attaches the probes (this test runs as root) and the stream stays open
    let mut sse = Sse::connect(d.addr, "/devtools/api/events");
    let first = sse.next_frame().unwrap();
    assert_eq!((first.id, first.event.as_str()), (1, "system.connected"));
    let status = first.data["data"]["probes"][0]["status"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(status.starts_with("attached"), "{status}");

    d.sigterm();
    // whatever was captured meanwhile comes first; the stream ends with system.disconnected
    let mut last_id = first.id;
    let last = loop {
        let f = sse
            .next_frame()
            .expect("system.disconnected before the stream ends");
        assert_eq!(f.id, last_id + 1, "ids increase by one");
        last_id = f.id;
        if f.event == "system.disconnected" {
            break f;
        }
    };
    assert_eq!(last.data["data"]["reason"], "daemon stopping");
    assert!(sse.next_frame().is_none());
    let (st, err) = d.wait_exit(10);
    assert!(st.success(), "exit status {st}; stderr:\n{err}");
    d.notify.wait_for("STOPPING=1", 5);
}

#[test]
fn socket_activated_daemon_exits_when_idle() {
    require_activate();
    let mut d = Activated::start("idle", &["--idle-timeout", "1s"]);
    assert_eq!(get(d.addr, "/devtools/api/health", &[]).status, 200);
    d.notify.wait_for("READY=1", 20);
    let (st, err) = d.wait_exit(20);
    assert!(
        st.success(),
        "an idle exit is a clean exit; status {st}; stderr:\n{err}"
    );
    let stopping = d.notify.wait_for("STOPPING=1", 5);
    assert!(stopping.contains("no client for"), "{stopping:?}");
}

#[test]
fn plain_daemon_binds_listen_pings_watchdog_ignores_idle_timeout_and_stops_on_sigterm() {
    let addr = free_addr();
    let mut notify = Notify::new("plain");
    // as systemd would for WatchdogSec=: WATCHDOG_PID is the daemon's own pid (exec keeps it)
    let mut child = Command::new("sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\"", QTAP])
        .args([
            "--enable-dev-tools",
            "--listen",
            &addr.to_string(),
            "--idle-timeout",
            "1s",
        ])
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "qtap is not listening on {addr}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "qtap exited: {:?}",
            wait_exit(&mut child, 1)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(addr, "/devtools/api/health", &[]).status, 200);
    notify.wait_for("READY=1", 20);
    notify.wait_for("WATCHDOG=1", 10);
    // not socket-activated: the idle timeout does not apply (3x the timeout, generously)
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "a daemon started by hand must not exit when idle"
    );
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let (st, err) = wait_exit(&mut child, 10);
    assert!(st.success(), "status {st}; stderr:\n{err}");
}

#[test]
fn bare_qtap_prints_help_and_exits_2() {
    let out = Command::new(QTAP)
        .env_remove("ENABLE_DEV_TOOLS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--enable-dev-tools") && err.contains("trace"),
        "{err}"
    );
    let out = Command::new(QTAP)
        .env("ENABLE_DEV_TOOLS", "false")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "ENABLE_DEV_TOOLS=false enables nothing"
    );
    let out = Command::new(QTAP).arg("--help").output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("--max-body-bytes")
    );
}

#[test]
fn env_enables_dev_tools_and_remote_listen_is_refused() {
    // ENABLE_DEV_TOOLS=true selects the DevTools mode: it gets as far as checking --listen
    let out = Command::new(QTAP)
        .env("ENABLE_DEV_TOOLS", "true")
        .args(["--listen", "0.0.0.0:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:1") && err.contains("--allow-remote"),
        "{err}"
    );
}

#[test]
fn trace_without_capture_says_why() {
    // as an unprivileged user (setpriv from util-linux) the kernel refuses our programs
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            QTAP,
            "trace",
            "--topics",
            "request.http_transaction",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["topic"], "system.connected");
    assert!(
        v["data"]["probes"][0]["status"]
            .as_str()
            .unwrap()
            .starts_with("failed: ")
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot capture: ") && err.contains("run as root"),
        "{err}"
    );
    let out = Command::new(QTAP)
        .args(["trace", "--topics", "bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown topic `bogus`"));
}
