//! Hostile HTTP/2 against the real daemon, as root: `qtap trace` with real eBPF, raw h2c
//! peers from `fixtures/h2_bombs.py` on 127.0.0.1 (issue 12, item 3). The HPACK bomb of
//! the issue (a table size update to 64 KiB, one 65,000-byte literal, 8,000 one-byte
//! references: a 73 KB block worth 520 MB of header text) once above the peer's SETTINGS
//! limit and once within it, and a gRPC decompression bomb (64 gzip messages of 8 MiB of
//! zeros each way). Asserts what a user would check: the daemon's peak RSS grows by less
//! than [`MAX_GROWTH`], each event says what was cut, and the daemon still captures a
//! normal request afterwards.
//!
//! Needs root and python3: `sudo -E cargo test --release --test decode_bombs_e2e`.
mod harness;

use harness::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Peak RSS growth allowed for all three bombs together (the issue asks for < 64 MiB;
/// before the fix the same run grew it by about 2 GiB).
const MAX_GROWTH_KIB: u64 = 64 * 1024;
const MAX_GROWTH: &str = "64 MiB";

fn server(mode: &str) -> (Proc, u16) {
    let child = Command::new("python3")
        .arg(fixtures().join("h2_bombs.py"))
        .args(["server", mode])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    port_line(child, "h2_bombs.py server")
}

fn client(port: u16, kind: &str, tag: &str) {
    // `run` asserts it exits successfully
    let (_, out) = run(Command::new("timeout")
        .args(["60", "python3"])
        .arg(fixtures().join("h2_bombs.py"))
        .args(["client", &port.to_string(), kind, tag]));
    assert_eq!(out.trim(), "ok", "h2_bombs.py client {kind}");
}

/// `VmHWM` (peak resident set) of `pid`, in KiB.
fn peak_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("daemon alive");
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// The transaction on `side` whose path is `/tag`.
fn by_path(trace: &Trace, side: &str, tag: &str) -> Value {
    trace.wait_for("request.http_transaction", Duration::from_secs(20), |d| {
        d["summary"]["direction"] == side && d["summary"]["path"] == format!("/{tag}")
    })["transaction"]
        .clone()
}

/// RFC 7541 size of the header fields listed.
fn header_bytes(h: &Value) -> usize {
    h.as_array()
        .unwrap()
        .iter()
        .map(|f| f[0].as_str().unwrap().len() + f[1].as_str().unwrap().len() + 32)
        .sum()
}

#[test]
fn hpack_and_grpc_bombs_leave_memory_bounded_and_are_reported() {
    let mut trace = Trace::start(&[]);
    let pid = trace.child.id();
    let (_plain, plain) = server("plain");
    let (_t64k, t64k) = server("table64k");
    let (_grpc, grpc) = server("grpc");
    // warm up the whole path (connections, process lookups, encoders) before measuring
    let warm = token("warm");
    client(plain, "plain", &warm);
    for side in ["egress", "ingress"] {
        by_path(&trace, side, &warm);
    }
    // the peak so far (start-up included) is forgotten: from here it is the current RSS
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");
    let before = peak_kib(pid);

    // 1. the block: its size update is above the 4096 the server allowed
    client(plain, "hpack", &token("bomb"));
    // 2. the same block to a server that allows a 64 KiB table: legal, but amplifying
    let legal = token("legal");
    client(t64k, "hpack", &legal);
    // 3. a gRPC call: 64 messages of 8 MiB of zeros each way, gzip
    let call = token("grpc");
    client(grpc, "grpc", &call);

    // The HPACK bombs are checked on the client's side: the server reads the 73 KB block
    // in two recv calls, and the capture hands its second one over after the server's
    // response (as on main before this change), so the server's side shows the stream
    // without its request headers.
    {
        let side = "egress";
        // 1: reported as a connection error, the update not obeyed
        let port = format!(":{plain}");
        let t = trace.wait_for("request.http_transaction", Duration::from_secs(20), |d| {
            let ours = d["transaction"]["network"]["remote"]
                .as_str()
                .is_some_and(|a| a.ends_with(&port));
            d["summary"]["direction"] == side
                && ours
                && d["summary"]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("decoding of the connection stopped"))
        })["transaction"]
            .clone();
        let err = t["error"].as_str().unwrap();
        assert!(
            err.contains("table size update to 65536") && err.contains("4096"),
            "{side}: {err}"
        );
        assert_eq!(t["request"]["headers_truncated"], true, "{side}: {t:#}");

        // 2: decoded up to the budget, marked truncated
        let t = by_path(&trace, side, &legal);
        assert_eq!(t["request"]["headers_truncated"], true, "{side}");
        let kept = header_bytes(&t["request"]["headers"]);
        assert!(kept <= 256 * 1024, "{side}: {kept} header bytes kept");
        assert!(
            t["error"].as_str().unwrap().contains("not kept"),
            "{side}: {}",
            t["error"]
        );
        assert_eq!(t["response"]["status"], 200, "{side}");
    }
    for side in ["egress", "ingress"] {
        // 3: every message listed, decompressed within one budget per direction
        let t = by_path(&trace, side, &call);
        let g = &t["grpc"];
        let msgs = g["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 128, "{side}");
        for from in ["request", "response"] {
            let last = msgs.iter().rfind(|m| m["from"] == from).unwrap();
            assert!(
                last["note"]
                    .as_str()
                    .is_some_and(|n| n.contains("not decompressed")),
                "{side} {from}: {last}"
            );
        }
        assert!(
            g["note"]
                .as_str()
                .is_some_and(|n| n.contains("decompression budget")),
            "{side}: {}",
            g["note"]
        );
    }
    let dropped = trace.all("system.dropped");
    assert!(
        dropped
            .iter()
            .any(|d| d["reason"] == "http2-connection-error"),
        "{dropped:?}"
    );

    let after = peak_kib(pid);
    eprintln!(
        "daemon peak RSS {} MiB before the bombs, {} MiB after (bound: + {MAX_GROWTH})",
        before / 1024,
        after / 1024
    );
    assert!(
        after.saturating_sub(before) < MAX_GROWTH_KIB,
        "peak RSS grew from {before} KiB to {after} KiB (more than {MAX_GROWTH})"
    );

    // still alive, still capturing
    assert_eq!(trace.child.try_wait().unwrap(), None, "the daemon exited");
    let next = token("after");
    client(plain, "plain", &next);
    for side in ["egress", "ingress"] {
        let t = by_path(&trace, side, &next);
        assert_eq!(t["response"]["status"], 200, "{side}: {t:#}");
        assert!(t["error"].is_null(), "{side}: {t:#}");
    }
}
