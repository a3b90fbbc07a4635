//! Who may watch (issue 12, item 1): the real `qtap` binary, real users.
//!
//! Every connection is identified before anything is served: a user who is not allowed
//! gets a 403 page naming their uid and the flag that would allow them, and the daemon
//! loads no probe for them (counted with `bpftool` by the daemon's pid: other qtap daemons
//! may run at the same time). Allowed users (`--allow-user`, `--allow-group`, `SUDO_UID`)
//! are served over TCP and over a unix socket. Needs root (the tests switch users with
//! `runuser`/`setpriv` and create a throw-away user and group).
mod common;

use common::{Sse, eventually};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const QTAP: &str = env!("CARGO_BIN_EXE_qtap");

/// Who runs curl.
#[derive(Clone, Copy)]
enum As<'a> {
    /// a user from the database, through `runuser -u`
    User(&'a str),
    /// any uid, even one without a passwd entry, through `setpriv`
    Uid(u32),
}

/// A `qtap --enable-dev-tools` on a free loopback port and a unix socket.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    sock: PathBuf,
    dir: PathBuf,
}

impl Daemon {
    fn start(name: &str, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("qtap-access-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sock = dir.join("devtools.sock");
        let mut cmd = Command::new(QTAP);
        cmd.args(["--enable-dev-tools", "--log-level", "info", "--grace", "0"])
            .args(["--listen", &addr.to_string()])
            .args(["--listen", &format!("unix:{}", sock.display())])
            .args(extra)
            .env_remove("SUDO_UID")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let t = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() || !sock.exists() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "qtap {extra:?} exited at start"
            );
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "qtap is not listening on {addr} and {}",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon {
            child,
            addr,
            sock,
            dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `curl` as `who` over TCP (`unix: false`) or the unix socket; (status, body).
    fn curl(&self, who: As, unix: bool, path: &str, headers: &[&str]) -> (u16, String) {
        let mut args: Vec<String> = vec!["-s".into(), "--max-time".into(), "20".into()];
        if unix {
            args.extend(["--unix-socket".into(), self.sock.display().to_string()]);
            args.push(format!("http://localhost{path}"));
        } else {
            args.extend(["-H".into(), format!("Host: localhost:{}", self.addr.port())]);
            args.push(format!("http://{}{path}", self.addr));
        }
        for h in headers {
            args.extend(["-H".into(), h.to_string()]);
        }
        args.extend(["-w".into(), "\n%{http_code}".into()]);
        let out = as_user(who, "curl").args(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (
            code.trim()
                .parse()
                .unwrap_or_else(|_| panic!("curl {args:?}: {out:?}")),
            body.to_string(),
        )
    }

    /// An SSE client as `who` (curl -N): its first frame must be `system.connected`.
    fn first_frame_as(&self, who: As, unix: bool) -> String {
        let mut cmd = as_user(who, "curl");
        cmd.args(["-s", "-N", "--max-time", "60"]);
        if unix {
            cmd.args(["--unix-socket", self.sock.to_str().unwrap()])
                .arg("http://localhost/devtools/api/events");
        } else {
            cmd.args(["-H", &format!("Host: localhost:{}", self.addr.port())])
                .arg(format!("http://{}/devtools/api/events", self.addr));
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = String::new();
        let found = loop {
            match lines.next() {
                Some(Ok(l)) => {
                    let done = l.starts_with("event: ");
                    seen += &l;
                    seen.push('\n');
                    if done {
                        break l;
                    }
                }
                _ => break String::new(),
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        assert!(!found.is_empty(), "no SSE frame; got {seen:?}");
        found
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let t = Instant::now();
        while self.child.try_wait().ok().flatten().is_none()
            && t.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn as_user(who: As, program: &str) -> Command {
    match who {
        As::User(name) => {
            let mut c = Command::new("runuser");
            c.args(["-u", name, "--", program]);
            c
        }
        As::Uid(uid) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                program,
            ]);
            c
        }
    }
}

/// BPF programs loaded by `pid`: the program ids its descriptors hold
/// (`/proc/PID/fdinfo`, `prog_id:`) that `bpftool prog show` lists. (Debian's bpftool has
/// no "pids" field; other qtap daemons may be running, so a global count would not do.)
fn programs_of(pid: u32) -> usize {
    let mut ids = std::collections::HashSet::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .flatten()
    {
        if let Ok(info) = std::fs::read_to_string(e.path())
            && let Some(id) = info
                .lines()
                .find_map(|l| l.strip_prefix("prog_id:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        {
            ids.insert(id);
        }
    }
    let out = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .expect("bpftool (installed by .ci/setup)");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|p| p["id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .count()
}

fn assert_refused(code: u16, body: &str, uid: &str, flag: &str) {
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(&format!("comes from uid {uid}")) && body.contains(flag),
        "the page names the uid ({uid}) and the flag ({flag}): {body}"
    );
}

#[test]
fn a_user_not_allowed_gets_403_naming_its_uid_and_no_probe_is_loaded() {
    let d = Daemon::start("refused", &[], &[]);
    let (code, body) = d.curl(As::User("nobody"), false, "/devtools/api/events", &[]);
    assert_refused(code, &body, "65534 (nobody)", "--allow-user nobody");
    assert_eq!(programs_of(d.pid()), 0, "a refused client loaded probes");
    let (code, body) = d.curl(As::User("nobody"), true, "/devtools/api/events", &[]);
    assert_refused(code, &body, "65534 (nobody)", "--allow-user nobody");
    let (code, body) = d.curl(As::Uid(4242), false, "/devtools/", &[]);
    assert_refused(code, &body, "4242,", "--allow-user 4242");
    // and the UI page, health: the same (nothing is served before the check)
    let (code, _) = d.curl(As::User("nobody"), false, "/devtools/api/health", &[]);
    assert_eq!(code, 403);
    assert_eq!(programs_of(d.pid()), 0, "a refused client loaded probes");
    let (code, health) = d.curl(As::User("root"), false, "/devtools/api/health", &[]);
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(
        (v["clients"].as_u64(), v["attached"].as_bool()),
        (Some(0), Some(false))
    );
    // the count above can see programs: root's stream loads them
    let mut sse = Sse::connect(d.addr, "/devtools/api/events");
    assert_eq!(sse.next_frame().unwrap().event, "system.connected");
    assert!(programs_of(d.pid()) > 0, "root's stream loaded no program");
}

#[test]
fn an_allowed_user_is_served_over_tcp_and_the_unix_socket() {
    let d = Daemon::start("allowed", &["--allow-user", "nobody"], &[]);
    for unix in [false, true] {
        let (code, body) = d.curl(As::User("nobody"), unix, "/devtools/", &[]);
        assert_eq!(code, 200, "unix: {unix}: {body}");
        assert!(body.contains("<title>qtap devtools"), "{body}");
        assert_eq!(
            d.first_frame_as(As::User("nobody"), unix),
            "event: system.connected",
            "unix: {unix}"
        );
    }
    // only that user: another uid is still refused, on both
    for unix in [false, true] {
        let (code, body) = d.curl(As::Uid(4243), unix, "/devtools/api/health", &[]);
        assert_refused(code, &body, "4243,", "--allow-user 4243");
    }
}

#[test]
fn sudo_uid_is_allowed_and_only_it() {
    let d = Daemon::start("sudo", &[], &[("SUDO_UID", "65534")]);
    let (code, body) = d.curl(As::User("nobody"), false, "/devtools/api/health", &[]);
    assert_eq!(code, 200, "{body}");
    let (code, body) = d.curl(As::Uid(4244), true, "/devtools/api/health", &[]);
    assert_refused(code, &body, "4244,", "--allow-user 4244");
}

/// A throw-away user whose only tie to the group is a supplementary membership.
struct TempUser {
    user: String,
    group: String,
}

impl TempUser {
    fn create() -> TempUser {
        let id = std::process::id();
        let t = TempUser {
            user: format!("qtapu{id}"),
            group: format!("qtapg{id}"),
        };
        let run = |args: &[&str]| {
            let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
            assert!(out.status.success(), "{args:?}: {out:?}");
        };
        run(&["groupadd", &t.group]);
        run(&[
            "useradd",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
            "--groups",
            &t.group,
            &t.user,
        ]);
        t
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.user).output();
        let _ = Command::new("groupdel").arg(&self.group).output();
    }
}

#[test]
fn allow_group_admits_members_of_a_supplementary_group() {
    let u = TempUser::create();
    let d = Daemon::start("group", &["--allow-group", &u.group], &[]);
    for unix in [false, true] {
        let (code, body) = d.curl(As::User(&u.user), unix, "/devtools/api/health", &[]);
        assert_eq!(code, 200, "{} (in {}): {body}", u.user, u.group);
    }
    let (code, body) = d.curl(As::User("nobody"), false, "/devtools/api/health", &[]);
    assert_refused(code, &body, "65534 (nobody)", "--allow-group");
    drop(d);
    // names that do not exist stop the daemon at start, saying which flag
    let out = Command::new(QTAP)
        .args(["--enable-dev-tools", "--listen", "127.0.0.1:1"])
        .args(["--allow-group", "qtap-no-such-group"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--allow-group qtap-no-such-group: no such group"),
        "{err}"
    );
}

#[test]
fn cross_site_navigation_to_the_api_is_refused_typed_address_is_served() {
    let d = Daemon::start("fetchmeta", &[], &[]);
    let (code, body) = d.curl(
        As::User("root"),
        false,
        "/devtools/api/events",
        &["Sec-Fetch-Site: cross-site", "Sec-Fetch-Mode: navigate"],
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("Sec-Fetch-Site: cross-site"), "{body}");
    assert_eq!(
        programs_of(d.pid()),
        0,
        "a cross-site navigation loaded probes"
    );
    let (code, body) = d.curl(
        As::User("root"),
        false,
        "/devtools/",
        &["Sec-Fetch-Site: none", "Sec-Fetch-Mode: navigate"],
    );
    assert_eq!(code, 200, "{body}");
    eventually(5, "health answers", || {
        d.curl(As::User("root"), true, "/devtools/api/health", &[])
            .0
            == 200
    });
}

#[test]
fn socket_activated_unix_and_tcp_sockets_are_both_served_and_checked() {
    // as qtap-devtools.socket and qtap-devtools-unix.socket both active would: two fds
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("qtap-access-{}-activated", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let sock = dir.join("devtools.sock");
    let child = Command::new("/usr/bin/systemd-socket-activate")
        .args(["-l", &addr.to_string(), "-l", sock.to_str().unwrap()])
        .args([QTAP, "--enable-dev-tools", "--listen", "127.0.0.1:1"])
        .env_remove("SUDO_UID")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let d = Daemon {
        child,
        addr,
        sock: sock.clone(),
        dir,
    };
    eventually(10, "systemd-socket-activate listens", || {
        std::net::TcpStream::connect(addr).is_ok() && sock.exists()
    });
    // systemd-socket-activate leaves the mode to the umask; the unit sets SocketMode=0666
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    for unix in [true, false] {
        let (code, body) = d.curl(As::User("root"), unix, "/devtools/api/health", &[]);
        assert_eq!(code, 200, "unix: {unix}: {body}");
        let (code, body) = d.curl(As::User("nobody"), unix, "/devtools/api/health", &[]);
        assert_refused(code, &body, "65534 (nobody)", "--allow-user nobody");
    }
}
