//! HTTP/1.1 `Upgrade: h2c` end to end, as root: `qtap trace` with real eBPF, real peers on
//! 127.0.0.1 — curl `--http2` and `nghttp -u` against `fixtures/h2c_upgrade_server.py`
//! (the `h2` Python library; nghttpd does not upgrade). Asserts what a user reads on both
//! sides: the HTTP/1.1 exchange answered by 101, then the upgraded request as an HTTP/2
//! stream with its headers, bodies and status.
//!
//! Needs root, curl, nghttp2-client and Python `h2` (installed by `.ci/setup`):
//! `sudo -E cargo test --test h2c_e2e`.
mod harness;

use harness::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The first value of header `name` (exact case).
fn header(headers: &Value, name: &str) -> Option<String> {
    headers.as_array()?.iter().find_map(|h| {
        (h[0].as_str()? == name).then(|| h[1].as_str().unwrap_or_default().to_string())
    })
}

/// The transaction on `side` whose `transaction` object `pred` picks.
fn tx(trace: &Trace, side: &str, pred: impl Fn(&Value) -> bool) -> Value {
    trace.wait_for("request.http_transaction", Duration::from_secs(15), |d| {
        d["summary"]["direction"] == side && pred(&d["transaction"])
    })["transaction"]
        .clone()
}

fn assert_h2(t: &Value, method: &str, path: &str, status: u64) {
    assert_eq!(t["request"]["http_version"], "HTTP/2", "{t:#}");
    assert_eq!(t["response"]["http_version"], "HTTP/2", "{t:#}");
    assert_eq!(t["request"]["method"], method, "{t:#}");
    assert_eq!(t["request"]["path"], path, "{t:#}");
    assert_eq!(t["response"]["status"], status, "{t:#}");
    assert_eq!(
        header(&t["request"]["headers"], ":method").as_deref(),
        Some(method)
    );
    assert_eq!(
        header(&t["response"]["headers"], ":status"),
        Some(status.to_string())
    );
    assert!(t["error"].is_null(), "{t:#}");
}

fn h2c_upgrade_server() -> (Proc, u16) {
    let mut child = Command::new("python3")
        .arg(fixtures().join("h2c_upgrade_server.py"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().unwrap_or_else(|_| {
        panic!("h2c_upgrade_server.py printed {line:?}: is h2 installed (.ci/setup)?")
    });
    (Proc(child), port)
}

/// The transaction on `side` of HTTP version `version` whose request carries
/// `Authorization: Bearer token` (under any case of the name).
fn upgraded_tx(trace: &Trace, side: &str, version: &str, tok: &str) -> Value {
    tx(trace, side, |t| {
        t["request"]["http_version"] == version
            && t["request"]["headers"].as_array().is_some_and(|hs| {
                hs.iter().any(|h| {
                    h[0].as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case("authorization"))
                        && h[1] == format!("Bearer {tok}")
                })
            })
    })
}

/// HTTP/1.1 `Upgrade: h2c` with real peers: curl `--http2` on plain http (GET, and a
/// POST whose body rides in the upgrade request) and `nghttp -u` (two requests: the
/// upgraded stream 1, then stream 3 in HTTP/2), against a server that accepts the
/// upgrade. Each shows as the HTTP/1.1 exchange answered by 101, then the upgraded
/// request with its HTTP/2 response, on both sides.
#[test]
fn h2c_upgrade_curl_and_nghttp_both_sides() {
    // the trace first: a server already blocked in accept() when the probes attach
    // loses its next connection (the accept's entry was not seen)
    let trace = Trace::start(&[]);
    let (server, port) = h2c_upgrade_server();
    let base = format!("http://127.0.0.1:{port}");
    // curl: GET, then POST with a body
    let tok = token("h2cup");
    let (curl, out) = run(Command::new("curl")
        .args(["-sS", "--http2", "-w", " %{http_version}"])
        .arg(format!("{base}/up?x=1"))
        .args(["-H", &format!("Authorization: Bearer {tok}")]));
    assert_eq!(out, "h2c GET /up?x=1 2", "curl upgraded");
    let ptok = token("h2cpost");
    let (_, out) = run(Command::new("curl")
        .args(["-sS", "--http2", "-d", "upgrade-payload"])
        .arg(format!("{base}/post"))
        .args(["-H", &format!("Authorization: Bearer {ptok}")]));
    assert_eq!(out, "h2c POST /postupgrade-payload");
    for side in ["egress", "ingress"] {
        let h1 = upgraded_tx(&trace, side, "HTTP/1.1", &tok);
        assert_eq!(h1["response"]["status"], 101, "{side}: {h1:#}");
        assert_eq!(
            header(&h1["request"]["headers"], "Upgrade").as_deref(),
            Some("h2c")
        );
        assert_eq!(h1["request"]["path"], "/up?x=1");
        let t = upgraded_tx(&trace, side, "HTTP/2", &tok);
        assert_h2(&t, "GET", "/up?x=1", 200);
        assert_eq!(t["url"], format!("{base}/up?x=1"), "{t:#}");
        assert_eq!(t["request"]["authority"], format!("127.0.0.1:{port}"));
        assert_eq!(t["tls"], false);
        assert_eq!(t["response"]["body"]["text"], "h2c GET /up?x=1", "{t:#}");
        assert_eq!(
            header(&t["response"]["headers"], "x-upgraded").as_deref(),
            Some("yes")
        );
        let pid = if side == "egress" {
            curl
        } else {
            server.0.id()
        };
        assert_eq!(t["process"]["pid"], pid, "{t:#}");

        let p = upgraded_tx(&trace, side, "HTTP/2", &ptok);
        assert_h2(&p, "POST", "/post", 200);
        assert_eq!(p["request"]["body"]["text"], "upgrade-payload", "{p:#}");
        assert_eq!(
            p["response"]["body"]["text"],
            "h2c POST /postupgrade-payload"
        );
    }
    // nghttp -u: the first request upgrades, the second is stream 3
    let ntok = token("nghttpu");
    let (_, out) = run(Command::new("nghttp")
        .args(["-u", "-H", &format!("authorization: Bearer {ntok}")])
        .arg(format!("{base}/first"))
        .arg(format!("{base}/second")));
    assert_eq!(out, "h2c GET /firsth2c GET /second");
    for side in ["egress", "ingress"] {
        let on = |path: &'static str| {
            tx(&trace, side, |t| {
                t["request"]["http_version"] == "HTTP/2"
                    && t["request"]["path"] == path
                    && header(&t["request"]["headers"], "authorization")
                        == Some(format!("Bearer {ntok}"))
            })
        };
        let (first, second) = (on("/first"), on("/second"));
        assert_h2(&first, "GET", "/first", 200);
        assert_eq!(first["response"]["body"]["text"], "h2c GET /first");
        assert_h2(&second, "GET", "/second", 200);
        assert_eq!(
            header(&second["request"]["headers"], ":authority"),
            Some(format!("127.0.0.1:{port}"))
        );
        assert_eq!(second["response"]["body"]["text"], "h2c GET /second");
    }
}
