//! For tests/containers_e2e.rs: `qtap trace` as a child, peers on 127.0.0.1, a Docker
//! engine (the host's, or a private one the test may stop), and a test image built from
//! this host's own curl and shell with copies of their libraries (so the container has a
//! libssl file of its own). No image is pulled.
#![allow(dead_code)]
mod devtools;
pub use devtools::Devtools;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const HOST_SOCKET: &str = "/var/run/docker.sock";

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "container tests load eBPF programs and drive Docker: run them as root (sudo -E cargo test)"
    );
}

/// Runs a command; panics with its output when it fails.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The docker CLI speaking to the engine at `socket`.
pub fn docker(socket: &str) -> Command {
    let mut c = Command::new("docker");
    c.arg("-H").arg(format!("unix://{socket}"));
    c
}

/// Fails clearly (never skips) when no engine answers at `socket`.
pub fn require_docker(socket: &str) {
    require_root();
    let ok = docker(socket)
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "no Docker engine answers at {socket}: install docker.io and start dockerd \
         (.ci/setup and .ci/test do both), then rerun"
    );
}

/// A tar of this host's curl, dash, sleep and cat with every library they load, the
/// dynamic loader and the CA bundle: a root filesystem of its own for `docker import`.
fn rootfs_tar() -> PathBuf {
    rootfs_tar_marked(None)
}

/// The rootfs tarball; with a `marker`, one more file holding it, so that the image
/// imported from it has a layer of its own (the same tarball imported twice is one layer
/// on disk, whose files — libssl among them — every container of those images shares).
fn rootfs_tar_marked(marker: Option<&str>) -> PathBuf {
    let bins = [
        "/usr/bin/curl",
        "/usr/bin/dash",
        "/usr/bin/sleep",
        "/usr/bin/cat",
    ];
    let mut files: Vec<String> = bins.iter().map(|s| s.to_string()).collect();
    for b in bins {
        let out = sh(Command::new("ldd").arg(b));
        for l in out.lines() {
            let path = match l.split_once("=>") {
                Some((_, r)) => r.split_whitespace().next(),
                None => l.split_whitespace().next(),
            };
            if let Some(p) = path.filter(|p| p.starts_with('/'))
                && !files.iter().any(|f| f == p)
            {
                files.push(p.to_string());
            }
        }
    }
    for extra in ["/etc/ssl/certs/ca-certificates.crt"] {
        if Path::new(extra).exists() {
            files.push(extra.to_string());
        }
    }
    assert!(
        files.iter().any(|f| f.contains("libssl")),
        "curl here does not load libssl: {files:?}"
    );
    let name = match marker {
        Some(m) => {
            let safe: String = m
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let file = std::env::temp_dir().join(format!("qtap-e2e-marker-{safe}"));
            std::fs::write(&file, m).unwrap();
            files.push(file.display().to_string());
            format!("qtap-e2e-rootfs-{safe}.tar")
        }
        None => "qtap-e2e-rootfs.tar".to_string(),
    };
    // one fixed path, rewritten by each run that needs it
    let tar = std::env::temp_dir().join(name);
    // -h: copies of the files, not the host's symlinks
    sh(Command::new("tar")
        .args(["-chf"])
        .arg(&tar)
        .args(["--absolute-names", "--transform", "s,^/,,"])
        .args(&files));
    tar
}

/// Imports the test rootfs into the engine at `socket` as each of `tags`, unless the
/// engine has that tag already (so reruns leave no untagged images behind).
pub fn image(socket: &str, tags: &[&str]) {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    static DONE: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap();
    for tag in tags {
        let key = format!("{socket} {tag}");
        if done.contains(&key) {
            continue;
        }
        if !image_present(socket, tag) {
            let tar = TAR.get_or_init(rootfs_tar);
            sh(docker(socket).arg("import").arg(tar).arg(tag));
        }
        done.push(key);
    }
}

/// Imports `tag` with a layer of its own (see `rootfs_tar_marked`) unless it exists: its
/// containers' files are theirs alone, not shared with other tests' containers.
pub fn image_own_layer(socket: &str, tag: &str) {
    if !image_present(socket, tag) {
        let tar = rootfs_tar_marked(Some(tag));
        sh(docker(socket).arg("import").arg(&tar).arg(tag));
        let _ = std::fs::remove_file(tar);
    }
}

fn image_present(socket: &str, tag: &str) -> bool {
    docker(socket)
        .args(["image", "inspect", tag])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A container removed (forcibly) when dropped.
pub struct Ctr {
    pub socket: String,
    pub name: String,
}

impl Ctr {
    /// Removes any leftover container of that name, then names the new one.
    /// A container named `name-<this test process's pid>` (so two checkouts testing
    /// on one host at once do not take each other's names), removed first if it exists.
    pub fn named(socket: &str, name: &str) -> Ctr {
        let name = format!("{name}-{}", std::process::id());
        let _ = docker(socket).args(["rm", "-f", &name]).output();
        Ctr {
            socket: socket.to_string(),
            name,
        }
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = docker(&self.socket).args(["rm", "-f", &self.name]).output();
    }
}

/// A running `qtap trace`, its lines collected in the background. Lines are kept raw and
/// parsed only when they hold what a test looks for: the host may be busy with other
/// traffic, and a reader slower than qtap would make qtap drop frames for it.
pub struct Trace {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
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
                l2.lock().unwrap().push(line);
            }
        });
        let t = Trace { child, lines };
        t.wait_for(
            "system.connected",
            "system.connected",
            Duration::from_secs(20),
            |_| true,
        );
        t
    }

    /// `data` of the first `topic` event whose line contains `needle` and that `pred`
    /// accepts.
    pub fn wait_for(
        &self,
        topic: &str,
        needle: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let end = Instant::now() + timeout;
        let tag = format!("\"topic\":\"{topic}\"");
        let mut from = 0;
        loop {
            let fresh: Vec<String> = {
                let l = self.lines.lock().unwrap();
                let new = l[from..]
                    .iter()
                    .filter(|s| s.contains(needle) && s.contains(&tag))
                    .cloned()
                    .collect();
                from = l.len();
                new
            };
            for line in fresh {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("trace printed a non-JSON line ({e}): {line}"));
                if v["topic"] == topic && pred(&v["data"]) {
                    return v["data"].clone();
                }
            }
            if Instant::now() > end {
                let l = self.lines.lock().unwrap();
                let drops: Vec<&String> = l
                    .iter()
                    .filter(|s| s.contains("system.dropped"))
                    .take(5)
                    .collect();
                let mine: Vec<String> = l
                    .iter()
                    .filter(|s| s.contains(needle))
                    .map(|s| s.chars().take(600).collect())
                    .collect();
                panic!(
                    "no {topic} event with {needle:?} matching within {timeout:?}; of {} lines, \
                     these hold {needle:?}:\n{}\ndrops: {drops:?}",
                    l.len(),
                    mine.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The egress transaction whose request carries `Authorization: Bearer <token>`.
    pub fn egress(&self, token: &str) -> Value {
        self.side("egress", token)
    }

    /// The transaction on `side` whose request carries `Authorization: Bearer <token>`.
    pub fn side(&self, side: &str, token: &str) -> Value {
        let want = format!("Bearer {token}");
        self.wait_for(
            "request.http_transaction",
            token,
            Duration::from_secs(20),
            |d| {
                d["summary"]["direction"] == side
                    && d["transaction"]["request"]["headers"]
                        .as_array()
                        .is_some_and(|hs| {
                            hs.iter().any(|h| {
                                h[0].as_str()
                                    .is_some_and(|n| n.eq_ignore_ascii_case("authorization"))
                                    && h[1] == want.as_str()
                            })
                        })
            },
        )
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("qtap-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// fixtures/server.py on 127.0.0.1 (TLS with a fresh self-signed certificate when `tls`);
/// returns it, its port, and the directory holding the certificate.
pub fn python_server(tls: bool) -> (Proc, u16, TempDir) {
    let dir = TempDir::new(if tls { "tls" } else { "plain" });
    let mut cmd = Command::new("python3");
    cmd.arg(fixtures().join("server.py"));
    if tls {
        let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
        sh(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null()));
        cmd.arg("--tls").arg(&cert).arg(&key);
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("server.py printed {line:?}"));
    (Proc(child), port, dir)
}

pub fn token(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{tag}-{}-{n}-{t}", std::process::id())
}

/// A Docker engine of the test's own (socket, data and state under private paths, no
/// bridge, no iptables), so that stopping it disturbs nothing else.
pub struct PrivateDockerd {
    pub socket: String,
    child: Option<Child>,
}

impl PrivateDockerd {
    pub fn start() -> PrivateDockerd {
        require_root();
        let run = "/run/qtap-e2e-docker";
        std::fs::create_dir_all(run).unwrap();
        let socket = format!("{run}/docker.sock");
        let log = std::fs::File::create(format!("{run}/dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(format!("unix://{socket}"))
            .args(["--data-root", "/var/lib/qtap-e2e-docker"])
            .args(["--exec-root", &format!("{run}/exec")])
            .args(["--pidfile", &format!("{run}/dockerd.pid")])
            .args(["--bridge", "none", "--iptables=false", "--ip-masq=false"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start dockerd ({e}): install docker.io (.ci/setup does)")
            });
        let d = PrivateDockerd {
            socket,
            child: Some(child),
        };
        let end = Instant::now() + Duration::from_secs(60);
        while !docker(&d.socket)
            .arg("info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(
                Instant::now() < end,
                "the test's own dockerd did not start; see {run}/dockerd.log"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    /// Stops the engine (SIGTERM) and waits until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let end = Instant::now() + Duration::from_secs(30);
            while c.try_wait().ok().flatten().is_none() {
                if Instant::now() > end {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The mount point of the cgroup v2 hierarchy (`/sys/fs/cgroup`, or
/// `/sys/fs/cgroup/unified` on hybrid hosts).
pub fn cgroup2_mount() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mount = pre.split_whitespace().nth(4)?;
            (post.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount))
        })
        .expect("no cgroup2 hierarchy mounted")
}
