//! Probe lifecycle with the real daemon and the real kernel (root): none of our programs
//! is in the kernel while nobody watches; the first SSE client attaches them, a
//! transaction made meanwhile reaches it within a second, and they are gone again a
//! grace period after the client leaves. `bpftool prog show` is the witness.
mod common;

use common::{Sse, get};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every program of the object (bpftool shows full names through BTF).
const OUR_PROGRAMS: &[&str] = &[
    "gnutls_recv",
    "gnutls_send",
    "go_tls_handshake",
    "go_tls_read",
    "go_tls_ret",
    "go_tls_write",
    "inet_sock_set_state",
    "sched_process_exec",
    "sched_process_exit",
    "ssl_read",
    "ssl_read_ex",
    "ssl_ret",
    "ssl_write",
    "ssl_write_ex",
    "sys_enter_accept",
    "sys_enter_accept4",
    "sys_enter_close",
    "sys_enter_connect",
    "sys_enter_read",
    "sys_enter_readv",
    "sys_enter_recvfrom",
    "sys_enter_recvmsg",
    "sys_enter_sendfile64",
    "sys_enter_sendmsg",
    "sys_enter_sendto",
    "sys_enter_socket",
    "sys_enter_write",
    "sys_enter_writev",
    "sys_exit_accept",
    "sys_exit_accept4",
    "sys_exit_connect",
    "sys_exit_read",
    "sys_exit_readv",
    "sys_exit_recvfrom",
    "sys_exit_recvmsg",
    "sys_exit_sendfile64",
    "sys_exit_sendmsg",
    "sys_exit_sendto",
    "sys_exit_socket",
    "sys_exit_write",
    "sys_exit_writev",
];

/// Programs in the kernel whose names are ours.
fn our_programs() -> usize {
    let out = Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .expect("bpftool (Debian package bpftool)");
    assert!(
        out.status.success(),
        "bpftool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| OUR_PROGRAMS.contains(&n))
        })
        .count()
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{what} (waited {secs} s)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    t.elapsed()
}

#[test]
fn probes_only_while_someone_watches() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "loads eBPF programs: run as root"
    );
    assert_eq!(
        our_programs(),
        0,
        "another qtap is running: stop it before this test"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _d = Daemon(
        Command::new(env!("CARGO_BIN_EXE_qtap"))
            .args([
                "--enable-dev-tools",
                "--listen",
                &addr.to_string(),
                "--grace",
                "2s",
                "--log-level",
                "info",
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until(10, "the daemon serves health", || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    assert_eq!(get(addr, "/devtools/api/health", &[]).status, 200);
    assert_eq!(
        our_programs(),
        0,
        "nobody watches yet: no program of ours in the kernel"
    );

    let mut sse = Sse::connect(addr, "/devtools/api/events?topics=request.http_transaction");
    let first = sse.next_frame().unwrap();
    assert_eq!(first.event, "system.connected");
    assert_eq!(
        our_programs(),
        OUR_PROGRAMS.len(),
        "every program loaded while a client watches"
    );

    // a request made now reaches this client within a second
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sport = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut s, _)) = server.accept() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        }
    });
    let sent = Instant::now();
    let st = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{sport}/lifecycle-probe"),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let frame = loop {
        let f = sse.next_frame().expect("stream open");
        if f.event == "request.http_transaction"
            && f.data["data"]["summary"]["path"] == "/lifecycle-probe"
        {
            break f;
        }
    };
    let latency = sent.elapsed();
    assert_eq!(frame.data["data"]["summary"]["status"], 204);
    assert!(
        latency < Duration::from_secs(1),
        "first transaction took {latency:?}"
    );

    drop(sse);
    // still attached during the grace period, gone after it
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        our_programs(),
        OUR_PROGRAMS.len(),
        "probes stay attached during the grace period"
    );
    // Unregistering uprobes is slow on some kernels/VMs (measured here: ~60 uprobe links,
    // e.g. the Go TLS probes on dockerd and containerd, take ~8 s to go): generous bound.
    wait_until(45, "probes detached after the grace period", || {
        our_programs() == 0
    });
    let h: serde_json::Value =
        serde_json::from_slice(&get(addr, "/devtools/api/health", &[]).body).unwrap();
    assert_eq!(h["attached"], false, "{h}");
    assert_eq!(h["clients"], 0, "{h}");
}
