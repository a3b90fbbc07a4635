//! Process lifecycle end to end, as root: a process that talked HTTP and then ended gets a
//! `process.stopped` with what ended it — its exit status, or the signal that killed it —
//! read by the real exit tracepoint on this kernel.
//!
//! Needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN): `sudo -E cargo test --test process_e2e`.
mod harness;

use harness::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

/// Runs a python client that GETs `port` with `tok` and then ends as `end` says; returns
/// its pid and how the OS saw it end.
fn client_then(port: u16, tok: &str, end: &str) -> (u32, std::process::ExitStatus) {
    let script = format!(
        "import os, signal, sys, urllib.request\n\
         r = urllib.request.Request('http://127.0.0.1:{port}/bye', headers={{'Authorization': 'Bearer {tok}'}})\n\
         urllib.request.urlopen(r).read()\n\
         {end}\n"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .spawn()
        .expect("python3");
    let pid = child.id();
    let status = child.wait().unwrap();
    (pid, status)
}

fn stopped(trace: &Trace, pid: u32) -> Value {
    trace.wait_for("process.stopped", Duration::from_secs(15), |d| {
        d["pid"] == pid
    })
}

#[test]
fn process_stopped_says_exit_status_or_signal() {
    use std::os::unix::process::ExitStatusExt;
    let trace = Trace::start(&[]);
    let (_server, port) = python_server(None);

    let tok = token("exit3");
    let (pid, st) = client_then(port, &tok, "sys.exit(3)");
    assert_eq!(st.code(), Some(3));
    // the process was seen talking (so it was announced), then it ended
    let tx = trace.transaction("egress", &tok);
    assert_eq!(tx["summary"]["process"]["pid"], pid);
    let s = stopped(&trace, pid);
    assert_eq!(s["exit_code"], 3, "{s}");
    assert!(s.get("signal").is_none(), "{s}");

    let tok = token("exit0");
    let (pid, st) = client_then(port, &tok, "pass");
    assert_eq!(st.code(), Some(0));
    trace.transaction("egress", &tok);
    assert_eq!(stopped(&trace, pid)["exit_code"], 0);

    let tok = token("killed");
    let (pid, st) = client_then(port, &tok, "os.kill(os.getpid(), signal.SIGKILL)");
    assert_eq!(st.signal(), Some(9));
    trace.transaction("egress", &tok);
    let s = stopped(&trace, pid);
    assert_eq!(s["signal"], "SIGKILL", "{s}");
    assert!(s.get("exit_code").is_none(), "{s}");
    assert!(s.get("core_dumped").is_none(), "{s}");
}

/// A server that dies while the capture runs: its process.stopped names SIGTERM (python's
/// default disposition), and the ingress transaction it served came first.
#[test]
fn a_server_terminated_by_a_signal() {
    let trace = Trace::start(&[]);
    let (server, port) = python_server(None);
    let pid = server.0.id();
    let tok = token("term");
    let (_, out) = run(Command::new("curl").args([
        "-sS",
        &format!("http://127.0.0.1:{port}/x"),
        "-H",
        &format!("Authorization: Bearer {tok}"),
    ]));
    assert_eq!(out, "hello from python");
    trace.transaction("ingress", &tok);
    // SAFETY: plain syscall on our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let s = stopped(&trace, pid);
    assert_eq!(s["signal"], "SIGTERM", "{s}");
    drop(server);
}
