//! Go `crypto/tls` end to end, as root: `qtap trace` with real eBPF, Go programs built
//! here from `fixtures/go` with Debian's `golang-go` (stripped and not), real peers on
//! 127.0.0.1. Each test asserts what a user reads: the exact Authorization header,
//! status, body, exe and pid on the Go side, and the `go-tls` probe status.
//!
//! Run with `sudo -E cargo test --test gotls_e2e` (CI runs it as root).
mod harness;

use harness::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn exe_str(p: &Path) -> String {
    p.canonicalize().unwrap().display().to_string()
}

fn go_probe<'a>(connected: &'a Value, exe: &str) -> &'a Value {
    connected["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["library"] == "go-tls" && p["path"] == exe)
        .unwrap_or_else(|| panic!("no go-tls probe for {exe}: {connected:#}"))
}

/// The connection's TLS facts: the library that gave the plaintext, and the version
/// read from the handshake (whose records are still seen: only Read/Write ciphertext
/// is left out). Returns `connection.opened`.
fn assert_library(trace: &Trace, tx: &Value, library: &str) -> Value {
    let opened = trace.wait_for("connection.opened", Duration::from_secs(5), |d| {
        d["connection_id"] == tx["summary"]["connection_id"]
    });
    assert_eq!(opened["tls"]["library"], library, "{opened:#}");
    assert_eq!(opened["tls"]["version"], "TLSv1.3", "{opened:#}");
    assert_eq!(
        tx["transaction"]["network"]["tls_version"], "TLSv1.3",
        "{tx:#}"
    );
    opened
}

/// Starts the Go HTTPS server; returns it and its port.
fn go_server(exe: &Path, c: &Certs) -> (Proc, u16) {
    let child = Command::new(exe)
        .arg(&c.cert)
        .arg(&c.key)
        .stdout(Stdio::piped())
        .spawn()
        .expect("go server");
    port_line(child, "go server")
}

#[test]
fn go_client_to_python_tls_server() {
    let c = certs();
    let (_dir, exe) = go_build("client", false);
    let trace = Trace::start(&[]);
    let (_server, port) = python_server(Some(&c));
    let tok = token("goclient");
    // started after the trace: the probes attach at exec; the client waits a second
    // before its request, as a service started later would
    let (pid, out) = run(Command::new(&exe)
        .arg(format!("https://localhost:{port}/hello"))
        .arg(&tok)
        .arg("1000"));
    assert_eq!(out, "hello from python");
    let eg = trace.transaction("egress", &tok);
    assert_exchange(&eg, "GET", "/hello", 200, "hello from python");
    assert_eq!(eg["summary"]["process"]["pid"], pid);
    assert_eq!(eg["summary"]["process"]["exe"], exe_str(&exe));
    assert_eq!(eg["summary"]["tls"], true);
    assert_eq!(eg["transaction"]["request"]["http_version"], "HTTP/1.1");
    let opened = assert_library(&trace, &eg, "go-tls");
    assert_eq!(opened["tls"]["sni"], "localhost", "{opened:#}");
    assert_eq!(eg["transaction"]["network"]["sni"], "localhost", "{eg:#}");
    // and the python side, through OpenSSL
    let ing = trace.transaction("ingress", &tok);
    assert_exchange(&ing, "GET", "/hello", 200, "hello from python");
}

#[test]
fn stripped_go_client_running_before_the_trace() {
    let c = certs();
    let (_dir, exe) = go_build("client", true);
    let (_server, port) = python_server(Some(&c));
    let tok = token("gostripped");
    // already running when the probes attach: found by the scan of /proc at start
    let mut child = Command::new(&exe)
        .arg(format!("https://127.0.0.1:{port}/json"))
        .arg(&tok)
        .arg("stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("go client");
    let pid = child.id();
    let trace = Trace::start(&[]);
    let connected = &trace.all("system.connected")[0];
    let probe = go_probe(connected, &exe_str(&exe));
    let status = probe["status"].as_str().unwrap();
    assert!(status.starts_with("attached ("), "{probe:#}");
    assert!(status.contains("stripped"), "{probe:#}");
    assert!(status.contains("go1."), "{probe:#}");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    let mut out = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut out)
        .unwrap();
    assert_eq!(out.trim_end(), r#"{"items":[1,2,3],"ok":true}"#);
    let eg = trace.transaction("egress", &tok);
    assert_exchange(&eg, "GET", "/json", 200, r#"{"items":[1,2,3],"ok":true}"#);
    assert_eq!(eg["summary"]["process"]["pid"], pid);
    assert_eq!(eg["summary"]["process"]["exe"], exe_str(&exe));
    assert_eq!(eg["summary"]["content_type"], "application/json");
    assert_library(&trace, &eg, "go-tls");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn go_server_hit_by_curl() {
    let c = certs();
    let (_dir, exe) = go_build("server", false);
    let (server, port) = go_server(&exe, &c);
    let trace = Trace::start(&[]);
    // a second capture at once: the first one's breakpoints are in every mapping of
    // the executable, the second must still find the code's RETs (read, not mapped)
    let second = Trace::start(&[]);
    for t in [&trace, &second] {
        let connected = &t.all("system.connected")[0];
        let probe = go_probe(connected, &exe_str(&exe));
        assert!(
            probe["status"].as_str().unwrap().starts_with("attached ("),
            "{probe:#}"
        );
    }
    let tok = token("goserver");
    let (_, out) = run(Command::new("curl").args([
        "-sSk",
        "--http1.1",
        &format!("https://127.0.0.1:{port}/hello?q=1"),
        "-H",
        &format!("Authorization: Bearer {tok}"),
    ]));
    assert_eq!(out, "hello from go");
    let ing = trace.transaction("ingress", &tok);
    assert_exchange(&ing, "GET", "/hello?q=1", 200, "hello from go");
    assert_eq!(ing["summary"]["process"]["pid"], server.0.id());
    assert_eq!(ing["summary"]["process"]["exe"], exe_str(&exe));
    assert_eq!(ing["summary"]["tls"], true);
    assert_eq!(
        ing["transaction"]["network"]["local"],
        format!("127.0.0.1:{port}")
    );
    assert_library(&trace, &ing, "go-tls");
    let ing2 = second.transaction("ingress", &tok);
    assert_exchange(&ing2, "GET", "/hello?q=1", 200, "hello from go");
    // curl's side, through OpenSSL
    let eg = trace.transaction("egress", &tok);
    assert_exchange(&eg, "GET", "/hello?q=1", 200, "hello from go");
}

#[test]
fn go_to_go_post_of_300_kib_both_sides() {
    let c = certs();
    let (_sdir, server_exe) = go_build("server", true);
    let (_cdir, client_exe) = go_build("client", false);
    let (server, port) = go_server(&server_exe, &c);
    let trace = Trace::start(&[]);
    let tok = token("gogo");
    let n = 300 * 1024;
    let (pid, out) = run(Command::new(&client_exe)
        .arg(format!("https://127.0.0.1:{port}/upload"))
        .arg(&tok)
        .arg("1000")
        .arg(n.to_string()));
    let want = format!("got {n} bytes");
    assert_eq!(out, want);
    for (side, who, exe) in [
        ("egress", pid, &client_exe),
        ("ingress", server.0.id(), &server_exe),
    ] {
        let tx = trace.transaction(side, &tok);
        assert_exchange(&tx, "POST", "/upload", 200, &want);
        assert_eq!(tx["summary"]["process"]["pid"], who, "{side}");
        assert_eq!(tx["summary"]["process"]["exe"], exe_str(exe), "{side}");
        let body = &tx["transaction"]["request"]["body"];
        assert_eq!(body["size"], n, "{side}: {body:#}");
        assert_eq!(body["truncated"], false, "{side}");
        assert_eq!(body["text"].as_str().unwrap().len(), n, "{side}");
        assert_library(&trace, &tx, "go-tls");
    }
}

/// Starts `fixtures/go/h2.go` as an HTTPS server (HTTP/2 by ALPN); returns it and its port.
fn go_h2_server(exe: &Path, c: &Certs) -> (Proc, u16) {
    let child = Command::new(exe)
        .arg("server")
        .arg(&c.cert)
        .arg(&c.key)
        .stdout(Stdio::piped())
        .spawn()
        .expect("go h2 server");
    port_line(child, "go h2 server")
}

fn header<'a>(headers: &'a Value, name: &str) -> Option<&'a str> {
    headers
        .as_array()?
        .iter()
        .find(|h| h[0] == name)
        .and_then(|h| h[1].as_str())
}

/// Go's net/http client and server negotiate HTTP/2 by ALPN (nothing configured but
/// `ForceAttemptHTTP2`): several requests at once share one connection, so both
/// processes' TLS reads and writes come from different goroutines (a reader loop, the
/// callers or handlers, frame writers) and the streams' frames interleave.
#[test]
fn go_http2_client_to_go_http2_server_concurrent_streams_both_sides() {
    let c = certs();
    let (_dir, exe) = go_build("h2", false);
    let (server, port) = go_h2_server(&exe, &c);
    let trace = Trace::start(&[]);
    let tok = token("goh2");
    // up to 100 kB per request: larger than a stream's initial window, so DATA frames of
    // the streams interleave and both sides write while they read
    let n = 6;
    let (pid, out) = run(Command::new(&exe)
        .arg("client")
        .arg(format!("https://localhost:{port}/echo"))
        .arg(&tok)
        .arg(n.to_string())
        .arg("1000"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), n, "{out}");
    for (i, l) in lines.iter().enumerate() {
        assert!(
            l.starts_with("HTTP/2.0 201 "),
            "request {i} was not HTTP/2: {l}"
        );
    }
    for i in 0..n {
        let req_body = format!("req-{i}-{}", "x".repeat(20000 * i));
        let resp_body = format!("echo:{req_body}");
        let tok_i = format!("{tok}-{i}");
        for (side, who) in [("egress", pid), ("ingress", server.0.id())] {
            let tx = trace.transaction(side, &tok_i);
            let s = &tx["summary"];
            let t = &tx["transaction"];
            let ctx = format!("{side} #{i}: {tx:#}");
            assert_eq!(s["process"]["pid"], who, "{ctx}");
            assert_eq!(s["process"]["exe"], exe_str(&exe), "{ctx}");
            assert_eq!(s["process"]["name"], "go-h2", "{ctx}");
            assert_eq!(s["tls"], true, "{ctx}");
            assert_eq!(t["request"]["http_version"], "HTTP/2", "{ctx}");
            assert_eq!(t["response"]["http_version"], "HTTP/2", "{ctx}");
            assert_eq!(t["request"]["method"], "POST", "{ctx}");
            assert_eq!(t["request"]["path"], format!("/echo?i={i}"), "{ctx}");
            assert_eq!(
                t["request"]["authority"],
                format!("localhost:{port}"),
                "{ctx}"
            );
            assert_eq!(
                t["url"],
                format!("https://localhost:{port}/echo?i={i}"),
                "{ctx}"
            );
            assert_eq!(
                header(&t["request"]["headers"], ":authority"),
                Some(format!("localhost:{port}").as_str()),
                "{ctx}"
            );
            assert_eq!(
                header(&t["request"]["headers"], "authorization"),
                Some(format!("Bearer {tok_i}").as_str()),
                "{ctx}"
            );
            assert_eq!(t["response"]["status"], 201, "{ctx}");
            assert_eq!(header(&t["response"]["headers"], ":status"), Some("201"));
            assert_eq!(
                header(&t["response"]["headers"], "x-echo-len"),
                Some(req_body.len().to_string().as_str()),
                "{ctx}"
            );
            assert_eq!(t["request"]["body"]["text"], req_body, "{ctx}");
            assert_eq!(t["response"]["body"]["text"], resp_body, "{ctx}");
            assert_eq!(t["content_type"], "text/plain", "{ctx}");
            assert!(t["error"].is_null(), "{ctx}");
            let opened = assert_library(&trace, &tx, "go-tls");
            assert_eq!(opened["tls"]["sni"], "localhost", "{opened:#}");
            // ALPN: Go's offer is in the ClientHello, both sides read it; the choice
            // travels encrypted in TLS 1.3, so it is not stated
            assert_eq!(
                opened["tls"]["alpn_offered"],
                serde_json::json!(["h2", "http/1.1"]),
                "{opened:#}"
            );
            assert!(opened["tls"].get("alpn").is_none(), "{opened:#}");
        }
    }
}
