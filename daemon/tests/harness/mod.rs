//! The harness of the capture tests, as root: a running `qtap trace` with its lines
//! collected, test peers (the python server, certificates, clients run to completion)
//! and Go programs built from `fixtures/go`.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "capture tests load eBPF programs: run them as root (sudo -E cargo test)"
    );
}

/// A running `qtap trace`, its lines collected in the background.
pub struct Trace {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<Value>>>,
}

impl Trace {
    pub fn start(args: &[&str]) -> Trace {
        require_root();
        let mut child = Command::new(env!("CARGO_BIN_EXE_qtap"))
            .arg("trace")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start qtap trace");
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("trace printed a non-JSON line ({e}): {line}"));
                l2.lock().unwrap().push(v);
            }
        });
        let t = Trace { child, lines };
        t.wait_for("system.connected", Duration::from_secs(20), |_| true);
        t
    }

    /// [`Trace::start`] with the daemon's log (stderr) written to `log`; `cmd` is the qtap
    /// binary's command, arguments after `trace` unset.
    pub fn start_with_log(cmd: &mut Command, log: &Path) -> Trace {
        require_root();
        let err = std::fs::File::create(log).expect("log file");
        let mut child = cmd
            .arg("trace")
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("start qtap trace");
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    l2.lock().unwrap().push(v);
                }
            }
        });
        let t = Trace { child, lines };
        t.wait_for("system.connected", Duration::from_secs(20), |_| true);
        t
    }

    pub fn wait_for(&self, topic: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + timeout;
        loop {
            if let Some(v) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|v| v["topic"] == topic && pred(&v["data"]))
            {
                return v["data"].clone();
            }
            if Instant::now() > end {
                let seen: Vec<String> = self
                    .lines
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|v| {
                        let s = v.to_string();
                        s.chars().take(400).collect()
                    })
                    .collect();
                panic!(
                    "no {topic} event matching within {timeout:?}; saw {} lines:\n{}",
                    seen.len(),
                    seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The transaction on `side` ("egress"/"ingress") whose request carries `token`.
    pub fn transaction(&self, side: &str, token: &str) -> Value {
        self.wait_for("request.http_transaction", Duration::from_secs(15), |d| {
            d["summary"]["direction"] == side
                && has_header(
                    &d["transaction"]["request"]["headers"],
                    "authorization",
                    &format!("Bearer {token}"),
                )
        })
    }

    pub fn all(&self, topic: &str) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["topic"] == topic)
            .map(|v| v["data"].clone())
            .collect()
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn has_header(headers: &Value, name: &str, value: &str) -> bool {
    headers.as_array().is_some_and(|hs| {
        hs.iter()
            .any(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)) && h[1] == value)
    })
}

pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A started server that prints its port on its first stdout line (`what` names it in
/// the failure): the process and that port.
pub fn port_line(mut child: Child, what: &str) -> (Proc, u16) {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{what} printed {line:?}"));
    (Proc(child), port)
}

/// Starts fixtures/server.py (TLS when `tls`), returns it and its port.
pub fn python_server(tls: Option<&Certs>) -> (Proc, u16) {
    let mut cmd = Command::new("python3");
    cmd.arg(fixtures().join("server.py"));
    if let Some(c) = tls {
        cmd.arg("--tls").arg(&c.cert).arg(&c.key);
    }
    let child = cmd.stdout(Stdio::piped()).spawn().expect("python3");
    port_line(child, "server.py")
}

pub struct Certs {
    _dir: tempdir::Dir,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Dir {
            let p = std::env::temp_dir().join(
                format!(
                    "qtap-test-{tag}-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                )
                .replace(['(', ')'], ""),
            );
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn certs() -> Certs {
    let dir = tempdir::Dir::new("certs");
    let cert = dir.0.join("cert.pem");
    let key = dir.0.join("key.pem");
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(st.success());
    Certs {
        _dir: dir,
        cert,
        key,
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a client to completion; returns (pid, stdout).
pub fn run(cmd: &mut Command) -> (u32, String) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("client");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (pid, String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn token(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ (std::ptr::addr_of!(tag) as usize as u128)
    )
}

pub fn assert_exchange(tx: &Value, method: &str, path: &str, status: u64, body: &str) {
    let t = &tx["transaction"];
    assert_eq!(t["request"]["method"], method, "{tx:#}");
    assert_eq!(t["request"]["path"], path, "{tx:#}");
    assert_eq!(t["response"]["status"], status, "{tx:#}");
    assert_eq!(t["response"]["body"]["text"], body, "{tx:#}");
}

/// Builds `fixtures/go/<name>.go` with Debian's `golang-go` (standard library only, no
/// network; `-ldflags=-s -w` when `stripped`). Returns the directory (removed on drop)
/// and the executable's path.
pub fn go_build(name: &str, stripped: bool) -> (tempdir::Dir, PathBuf) {
    let dir = tempdir::Dir::new(&format!("go-{name}-{stripped}"));
    std::fs::copy(
        fixtures().join("go").join(format!("{name}.go")),
        dir.0.join("main.go"),
    )
    .unwrap();
    std::fs::write(dir.0.join("go.mod"), "module qtaptest\n\ngo 1.17\n").unwrap();
    let exe = dir.0.join(if stripped {
        format!("go-{name}-stripped")
    } else {
        format!("go-{name}")
    });
    let mut cmd = Command::new("go");
    cmd.arg("build").arg("-o").arg(&exe);
    if stripped {
        cmd.arg("-ldflags=-s -w");
    }
    let out = cmd
        .arg(".")
        .current_dir(&dir.0)
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", std::env::temp_dir().join("qtap-test-gocache"))
        .env("GOPATH", dir.0.join("gopath"))
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `go` ({e}): install golang-go (.ci/setup does)"));
    assert!(
        out.status.success(),
        "go build {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, exe)
}
