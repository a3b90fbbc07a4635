//! Files of other users are hostile, as root (issue 12, items 6 and 7): planted symlinks in a
//! JVM's /tmp, a FIFO as a JDK's `release`, a library truncated while the daemon reads it, a
//! process that never was attached speaking on the agent socket. The JVMs are stand-ins
//! (`fixtures/go/fakejvm.go`: a static program that maps a file named libjvm.so), run as
//! `nobody`, some in a chroot of their own (another root, as a container's).
//!
//! Run with `sudo -E cargo test --test hostile_files_e2e`.
mod harness;

use harness::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Any shared object, to be mapped under the name libjvm.so.
fn some_library() -> PathBuf {
    [
        "/usr/lib/x86_64-linux-gnu/libssl.so.3",
        "/lib/x86_64-linux-gnu/libssl.so.3",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("libssl3 (.ci/setup installs it)")
}

struct FakeJvm {
    proc: Proc,
    pid: u32,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl FakeJvm {
    /// Runs `cmd` (the fake, possibly through chroot) and waits for its "ready".
    fn start(mut cmd: Command) -> FakeJvm {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("fake JVM");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let pid = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("fake JVM said {line:?}"));
        FakeJvm {
            proc: Proc(child),
            pid,
            stdin,
            stdout,
        }
    }

    /// Connects to `sock` as an agent would and sends a forged exchange; "closed" when the
    /// daemon ended the connection.
    fn forge(&mut self, sock: &Path, token: &str) -> String {
        writeln!(self.stdin, "forge {} {token}", sock.display()).unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    }
}

/// A root of its own for a fake JVM: the program, a libjvm.so, a /tmp anyone may write.
fn chroot_tree(dir: &Path, fake: &Path) {
    std::fs::create_dir_all(dir.join("jvm")).unwrap();
    std::fs::copy(fake, dir.join("fakejvm")).unwrap();
    std::fs::copy(some_library(), dir.join("jvm/libjvm.so")).unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn in_chroot(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("chroot");
    c.arg("--userspec=65534:65534").arg(dir).arg("/fakejvm");
    c.args(["-map", "/jvm/libjvm.so"]).args(args);
    c
}

fn java_status(connected: &Value, pid: u32) -> String {
    connected["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["library"] == "java"
                && p["path"]
                    .as_str()
                    .is_some_and(|s| s.ends_with(&format!("(pid {pid})")))
        })
        .unwrap_or_else(|| panic!("no java probe for pid {pid}: {connected:#}"))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn hostile_tmp_links_are_never_followed_and_the_jvm_is_reported_not_attached() {
    require_root();
    let (_go, fake) = go_build("fakejvm", false);
    let t = tempdir::Dir::new("hostile-tmp");
    std::fs::set_permissions(&t.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    // the canaries: a root file and an empty root directory outside every fake's root
    let canary = t.0.join("canary");
    std::fs::write(&canary, b"canary").unwrap();
    let canary_dir = t.0.join("canary-dir");
    std::fs::create_dir(&canary_dir).unwrap();
    // A: /tmp/.attach_pid<pid> -> the canary file (root would have truncated it)
    let a = t.0.join("a");
    chroot_tree(&a, &fake);
    let fa = FakeJvm::start(in_chroot(
        &a,
        &[
            "-sigquit",
            "catch",
            "-attach-link",
            canary.to_str().unwrap(),
        ],
    ));
    // B: /tmp/.qtap-java -> the canary directory
    let b = t.0.join("b");
    chroot_tree(&b, &fake);
    std::os::unix::fs::symlink(&canary_dir, b.join("tmp/.qtap-java")).unwrap();
    let fb = FakeJvm::start(in_chroot(&b, &["-sigquit", "catch"]));
    // C: /tmp itself -> the canary directory (root would have made .qtap-java, the jar and
    // its socket there)
    let c = t.0.join("c");
    chroot_tree(&c, &fake);
    std::fs::remove_dir(c.join("tmp")).unwrap();
    std::os::unix::fs::symlink(&canary_dir, c.join("tmp")).unwrap();
    let fc = FakeJvm::start(in_chroot(&c, &["-sigquit", "catch"]));

    let trace = Trace::start(&[]);
    let connected = &trace.all("system.connected")[0];
    for (f, what) in [
        (&fa, "/tmp/.attach_pid"),
        (&fb, "/tmp/.qtap-java"),
        (&fc, "/tmp is a symbolic link"),
    ] {
        let st = java_status(connected, f.pid);
        assert!(
            st.starts_with("failed: ") && st.contains("symbolic link") && st.contains(what),
            "pid {}: {st}",
            f.pid
        );
    }
    assert_eq!(
        std::fs::read(&canary).unwrap(),
        b"canary",
        "canary file changed"
    );
    let left: Vec<_> = std::fs::read_dir(&canary_dir).unwrap().flatten().collect();
    assert!(
        left.is_empty(),
        "files made in the canary directory: {left:?}"
    );
    drop(trace);
    drop((fa.proc, fb.proc, fc.proc));
}

#[test]
fn a_process_never_attached_is_refused_on_the_agent_socket() {
    require_root();
    let (_go, fake) = go_build("fakejvm", false);
    let t = tempdir::Dir::new("forged-peer");
    std::fs::set_permissions(&t.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let lib = t.0.join("libjvm.so");
    std::fs::copy(some_library(), &lib).unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o644)).unwrap();
    // maps a libjvm.so (what the socket used to accept), ignores SIGQUIT: the attach fails
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&fake)
        .args(["-map", lib.to_str().unwrap(), "-sigquit", "ignore"]);
    let mut f = FakeJvm::start(cmd);
    let mut trace_cmd = Command::new(env!("CARGO_BIN_EXE_qtap"));
    let log = t.0.join("daemon.log");
    let trace = Trace::start_with_log(&mut trace_cmd, &log);
    let connected = &trace.all("system.connected")[0];
    let st = java_status(connected, f.pid);
    assert!(st.starts_with("failed: ") && st.contains("SIGQUIT"), "{st}");
    // the daemon's socket in this /tmp, bound when it looked at the fake
    let sock = PathBuf::from(format!("/tmp/.qtap-java/{}.sock", trace.child.id()));
    assert!(sock.exists(), "{}", sock.display());
    let tok = token("forged");
    for _ in 0..3 {
        assert_eq!(f.forge(&sock, &tok), "closed");
    }
    // a real request afterwards shows; the forged one never does
    let (_server, port) = python_server(None);
    let real = token("real");
    run(Command::new("curl").args([
        "-sS",
        &format!("http://127.0.0.1:{port}/x"),
        "-H",
        &format!("Authorization: Bearer {real}"),
    ]));
    trace.transaction("egress", &real);
    std::thread::sleep(Duration::from_millis(500));
    for tx in trace.all("request.http_transaction") {
        assert!(
            !tx.to_string().contains(&tok),
            "forged transaction shown: {tx:#}"
        );
    }
    for c in trace.all("connection.opened") {
        assert_ne!(c["pid"], f.pid, "forged connection: {c:#}");
    }
    // refused, logged once for the three connections
    let text = std::fs::read_to_string(&log).unwrap();
    let n = text
        .lines()
        .filter(|l| {
            l.contains("refused a connection to the Java agent socket")
                && l.contains(&format!("pid={}", f.pid))
        })
        .count();
    assert_eq!(n, 1, "{text}");
}

#[test]
fn a_fifo_or_a_device_as_the_jdk_release_leaves_capture_running() {
    require_root();
    let (_go, fake) = go_build("fakejvm", false);
    let t = tempdir::Dir::new("release-fifo");
    std::fs::set_permissions(&t.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut fakes = Vec::new();
    for (name, fifo) in [("fifo", true), ("zero", false)] {
        let server = t.0.join(name).join("lib/server");
        std::fs::create_dir_all(&server).unwrap();
        for d in [t.0.join(name), t.0.join(name).join("lib"), server.clone()] {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let lib = server.join("libjvm.so");
        std::fs::copy(some_library(), &lib).unwrap();
        let release = server.join("release");
        if fifo {
            let c = std::ffi::CString::new(release.to_str().unwrap()).unwrap();
            // SAFETY: a valid C string.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        } else {
            std::os::unix::fs::symlink("/dev/zero", &release).unwrap();
        }
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&fake)
            .args(["-map", lib.to_str().unwrap(), "-sigquit", "ignore"]);
        fakes.push(FakeJvm::start(cmd));
    }
    // the capture starts (its start used to wait forever on the FIFO) and reports both
    let t0 = Instant::now();
    let trace = Trace::start(&[]);
    let connected = &trace.all("system.connected")[0];
    for f in &fakes {
        let st = java_status(connected, f.pid);
        assert!(st.starts_with("failed: ") && st.contains("SIGQUIT"), "{st}");
    }
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    // and keeps capturing
    let (_server, port) = python_server(None);
    let tok = token("afterfifo");
    run(Command::new("curl").args([
        "-sS",
        &format!("http://127.0.0.1:{port}/x"),
        "-H",
        &format!("Authorization: Bearer {tok}"),
    ]));
    trace.transaction("egress", &tok);
}

#[test]
fn a_library_truncated_before_or_while_it_is_read_leaves_the_daemon_alive() {
    require_root();
    let (_go, fake) = go_build("fakejvm", false);
    let t = tempdir::Dir::new("trunc-lib");
    std::fs::set_permissions(&t.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    // two large copies of libssl (64 MiB: its own bytes, then zeros)
    let whole = std::fs::read(some_library()).unwrap();
    let mut big = whole.clone();
    big.resize(64 << 20, 0);
    let (before, during) = (t.0.join("a/libssl.so.3"), t.0.join("b/libssl.so.3"));
    for p in [&before, &during] {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, &big).unwrap();
    }
    let mut cmd = Command::new(&fake);
    cmd.args([
        "-map",
        before.to_str().unwrap(),
        "-map",
        during.to_str().unwrap(),
    ]);
    let f = FakeJvm::start(cmd);
    // one truncated before the scan; the other truncated and restored over and over
    // while the daemon starts and reads it
    std::fs::OpenOptions::new()
        .write(true)
        .open(&before)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (stop, during, big) = (stop.clone(), during.clone(), big.clone());
        std::thread::spawn(move || {
            use std::os::unix::fs::FileExt;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&during)
                .unwrap();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 100_000 {
                file.set_len(4096).unwrap();
                file.write_all_at(&big[4096..], 4096).unwrap();
                n += 1;
            }
        })
    };
    let trace = Trace::start(&[]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
    let connected = &trace.all("system.connected")[0];
    let probes = connected["probes"].as_array().unwrap();
    let p = probes
        .iter()
        .find(|p| {
            p["path"]
                .as_str()
                .is_some_and(|s| s.starts_with(before.to_str().unwrap()))
        })
        .unwrap_or_else(|| panic!("no status for {}: {connected:#}", before.display()));
    assert!(
        p["status"]
            .as_str()
            .unwrap()
            .starts_with("failed: cannot read its symbols"),
        "{p:#}"
    );
    // alive and capturing
    let (_server, port) = python_server(None);
    let tok = token("aftertrunc");
    run(Command::new("curl").args([
        "-sS",
        &format!("http://127.0.0.1:{port}/x"),
        "-H",
        &format!("Authorization: Bearer {tok}"),
    ]));
    trace.transaction("egress", &tok);
    let mut child = trace;
    assert!(child.child.try_wait().unwrap().is_none(), "the daemon died");
    drop(f);
    child.child.kill().ok();
}
