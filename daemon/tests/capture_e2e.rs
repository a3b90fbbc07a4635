//! End to end, as root: `qtap trace` with real eBPF on this kernel, real servers and real
//! clients on 127.0.0.1. Each test asserts what a user reads in the stream: the exact
//! Authorization header, method, path, status, body, exe and pid, on both sides.
//!
//! These tests need root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN); run them with
//! `sudo -E cargo test --test capture_e2e` (CI runs them as root). Without root they fail.
mod harness;

use harness::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn plaintext_curl_and_python_server_both_sides() {
    let trace = Trace::start(&[]);
    let (server, port) = python_server(None);
    let tok = token("plain");
    let (pid, out) = run(Command::new("curl").args([
        "-sS",
        &format!("http://127.0.0.1:{port}/hello?x=1"),
        "-H",
        &format!("Authorization: Bearer {tok}"),
    ]));
    assert_eq!(out, "hello from python");
    let eg = trace.transaction("egress", &tok);
    assert_exchange(&eg, "GET", "/hello?x=1", 200, "hello from python");
    assert_eq!(eg["summary"]["process"]["exe"], "/usr/bin/curl");
    assert_eq!(eg["summary"]["process"]["pid"], pid);
    assert_eq!(eg["summary"]["tls"], false);
    let ing = trace.transaction("ingress", &tok);
    assert_exchange(&ing, "GET", "/hello?x=1", 200, "hello from python");
    assert_eq!(ing["summary"]["process"]["pid"], server.0.id());
    assert!(
        ing["summary"]["process"]["exe"]
            .as_str()
            .unwrap()
            .contains("python3"),
        "{ing:#}"
    );
    assert_eq!(
        ing["transaction"]["network"]["local"],
        format!("127.0.0.1:{port}")
    );
}

fn nginx_tls(c: &Certs) -> (Proc, u16, tempdir::Dir) {
    let dir = tempdir::Dir::new("nginx");
    let port = free_port();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log stderr warn;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
           server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {cert}; ssl_certificate_key {key};\n\
             location / {{ default_type text/plain; return 200 \"hello from nginx\"; }} }} }}\n",
        d = dir.0.display(),
        cert = c.cert.display(),
        key = c.key.display()
    );
    let path = dir.0.join("nginx.conf");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(conf.as_bytes())
        .unwrap();
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(&dir.0)
        .spawn()
        .expect("nginx");
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "nginx did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Proc(child), port, dir)
}

#[test]
fn tls_curl_and_nginx_both_sides() {
    let c = certs();
    let (_nginx, port, _dir) = nginx_tls(&c);
    let trace = Trace::start(&[]);
    let tok = token("tls");
    let (pid, out) = run(Command::new("curl").args([
        "-sSk",
        "--http1.1",
        "--resolve",
        &format!("localhost:{port}:127.0.0.1"),
        &format!("https://localhost:{port}/x"),
        "-H",
        &format!("Authorization: Bearer {tok}"),
    ]));
    assert_eq!(out, "hello from nginx");
    let eg = trace.transaction("egress", &tok);
    assert_exchange(&eg, "GET", "/x", 200, "hello from nginx");
    assert_eq!(eg["summary"]["process"]["exe"], "/usr/bin/curl");
    assert_eq!(eg["summary"]["process"]["pid"], pid);
    assert_eq!(eg["summary"]["tls"], true);
    assert_eq!(
        eg["transaction"]["request"]["url"],
        format!("https://localhost:{port}/x")
    );
    let ing = trace.transaction("ingress", &tok);
    // what the handshake tells, on both sides
    for tx in [&eg, &ing] {
        assert_eq!(tx["transaction"]["network"]["sni"], "localhost", "{tx:#}");
        let v = tx["transaction"]["network"]["tls_version"]
            .as_str()
            .unwrap_or_default();
        assert!(v.starts_with("TLSv1."), "{tx:#}");
    }
    assert_exchange(&ing, "GET", "/x", 200, "hello from nginx");
    assert!(
        ing["summary"]["process"]["exe"]
            .as_str()
            .unwrap()
            .ends_with("nginx"),
        "{ing:#}"
    );
    assert_eq!(ing["summary"]["tls"], true);
}

#[test]
fn tls_python_client_and_python_server() {
    let c = certs();
    let trace = Trace::start(&[]);
    let (server, port) = python_server(Some(&c));
    let tok = token("pytls");
    let (pid, out) = run(Command::new("python3")
        .arg(fixtures().join("client.py"))
        .arg(format!("https://127.0.0.1:{port}/json"))
        .arg(&tok));
    assert_eq!(out, r#"{"items":[1,2,3],"ok":true}"#);
    let eg = trace.transaction("egress", &tok);
    assert_exchange(&eg, "GET", "/json", 200, r#"{"items":[1,2,3],"ok":true}"#);
    assert_eq!(eg["summary"]["process"]["pid"], pid);
    assert_eq!(eg["summary"]["tls"], true);
    let ing = trace.transaction("ingress", &tok);
    assert_eq!(ing["summary"]["process"]["pid"], server.0.id());
    assert_eq!(ing["summary"]["content_type"], "application/json");
}

#[test]
fn tls_node_client() {
    let c = certs();
    let trace = Trace::start(&[]);
    let (_server, port) = python_server(Some(&c));
    let tok = token("node");
    // Node carries OpenSSL in its executable: the probes attach to it when it execs
    // (within a second); the client waits that second, as a service started later would.
    let (pid, out) = run(Command::new("node")
        .arg(fixtures().join("client.js"))
        .arg(format!("https://127.0.0.1:{port}/hello"))
        .arg(&tok)
        .arg("1000"));
    assert_eq!(out, "hello from python");
    let eg = trace.transaction("egress", &tok);
    assert_exchange(&eg, "GET", "/hello", 200, "hello from python");
    assert_eq!(eg["summary"]["process"]["pid"], pid);
    assert!(
        eg["summary"]["process"]["exe"]
            .as_str()
            .unwrap()
            .contains("node"),
        "{eg:#}"
    );
    trace.transaction("ingress", &tok);
}

#[test]
fn one_mib_post_arrives_whole() {
    let trace = Trace::start(&[]);
    let (_server, port) = python_server(None);
    let dir = tempdir::Dir::new("post");
    let body: Vec<u8> = (0..1_048_576u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(dir.0.join("body"), &body).unwrap();
    let tok = token("post");
    let (_, out) = run(Command::new("curl")
        .args([
            "-sS",
            &format!("http://127.0.0.1:{port}/upload"),
            "-H",
            &format!("Authorization: Bearer {tok}"),
            "-H",
            "Content-Type: text/plain",
            "--data-binary",
        ])
        .arg(format!("@{}", dir.0.join("body").display())));
    assert_eq!(out, "got 1048576 bytes");
    for side in ["egress", "ingress"] {
        let tx = trace.transaction(side, &tok);
        let b = &tx["transaction"]["request"]["body"];
        assert_eq!(b["size"], 1_048_576, "{side}");
        assert_eq!(b["captured"], 1_048_576, "{side}");
        assert_eq!(b["truncated"], false, "{side}");
        assert!(
            b["text"].as_str().unwrap().as_bytes() == body.as_slice(),
            "{side}: body differs"
        );
        assert_eq!(
            tx["transaction"]["response"]["body"]["text"],
            "got 1048576 bytes"
        );
    }
}

#[test]
fn three_requests_on_one_keepalive_connection() {
    let trace = Trace::start(&[]);
    let (_server, port) = python_server(None);
    let tok = token("ka");
    let urls: Vec<String> = (1..=3)
        .map(|i| format!("http://127.0.0.1:{port}/hello?n={i}"))
        .collect();
    run(Command::new("curl")
        .args(["-sS", "-H", &format!("Authorization: Bearer {tok}")])
        .args(&urls));
    trace.wait_for("request.http_transaction", Duration::from_secs(15), |d| {
        d["summary"]["direction"] == "egress" && d["summary"]["path"] == "/hello?n=3"
    });
    let mine: Vec<Value> = trace
        .all("request.http_transaction")
        .into_iter()
        .filter(|d| {
            d["summary"]["direction"] == "egress"
                && has_header(
                    &d["transaction"]["request"]["headers"],
                    "authorization",
                    &format!("Bearer {tok}"),
                )
        })
        .collect();
    let paths: Vec<&str> = mine
        .iter()
        .map(|d| d["summary"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/hello?n=1", "/hello?n=2", "/hello?n=3"]);
    let conns: std::collections::HashSet<&str> = mine
        .iter()
        .map(|d| d["summary"]["connection_id"].as_str().unwrap())
        .collect();
    assert_eq!(conns.len(), 1, "one keep-alive connection");
}

#[test]
fn server_dying_mid_response_loses_nothing_sent() {
    let trace = Trace::start(&[]);
    let (server, port) = python_server(None);
    let spid = server.0.id();
    let tok = token("die");
    // curl fails (the response is cut short): that is the point
    let _ = Command::new("curl")
        .args([
            "-sS",
            &format!("http://127.0.0.1:{port}/die"),
            "-H",
            &format!("Authorization: Bearer {tok}"),
        ])
        .output();
    let ing = trace.transaction("ingress", &tok);
    assert_eq!(ing["summary"]["process"]["pid"], spid);
    assert_eq!(ing["transaction"]["response"]["status"], 200);
    assert!(
        ing["transaction"]["response"]["body"]["text"]
            .as_str()
            .unwrap()
            .starts_with("partial-body-xxxx"),
        "{ing:#}"
    );
    assert!(
        ing["summary"]["error"].is_string(),
        "an incomplete exchange says so: {ing:#}"
    );
    let eg = trace.transaction("egress", &tok);
    assert!(
        eg["transaction"]["response"]["body"]["text"]
            .as_str()
            .unwrap()
            .starts_with("partial-body-"),
        "{eg:#}"
    );
    // the dead server's connection is closed and the process reported stopped
    let cid = ing["summary"]["connection_id"]
        .as_str()
        .unwrap()
        .to_string();
    trace.wait_for("connection.closed", Duration::from_secs(10), |d| {
        d["connection_id"] == cid.as_str()
    });
    trace.wait_for("process.stopped", Duration::from_secs(10), |d| {
        d["pid"] == spid
    });
}

#[test]
fn ipv6_loopback_both_sides() {
    let trace = Trace::start(&[]);
    let mut child = Command::new("python3")
        .arg(fixtures().join("server.py"))
        .arg("--v6")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server = Proc(child);
    let port: u16 = line.trim().parse().unwrap();
    let tok = token("v6");
    let (_, out) = run(Command::new("curl").args([
        "-sS",
        "-g",
        &format!("http://[::1]:{port}/hello"),
        "-H",
        &format!("Authorization: Bearer {tok}"),
    ]));
    assert_eq!(out, "hello from python");
    let eg = trace.transaction("egress", &tok);
    assert_eq!(
        eg["transaction"]["network"]["remote"],
        format!("[::1]:{port}")
    );
    assert!(
        eg["transaction"]["network"]["local"]
            .as_str()
            .unwrap()
            .starts_with("[::1]:"),
        "{eg:#}"
    );
    let ing = trace.transaction("ingress", &tok);
    assert_eq!(
        ing["transaction"]["network"]["local"],
        format!("[::1]:{port}")
    );
    assert_exchange(&ing, "GET", "/hello", 200, "hello from python");
}

/// A server that was blocked in accept(2) when the probes attached (the syscall's entry
/// was never seen): its next connection is captured all the same, on the server's side
/// with its address from /proc.
#[test]
fn server_blocked_in_accept_before_the_trace_keeps_its_next_connection() {
    let child = Command::new("python3")
        .arg(fixtures().join("blocking_server.py"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let (server, port) = port_line(child, "blocking_server.py");
    // the server is now inside accept(); attach while it waits there
    std::thread::sleep(Duration::from_millis(200));
    let trace = Trace::start(&[]);
    let tok = token("blocked-accept");
    let (_, out) = run(Command::new("curl").args([
        "-sS",
        &format!("http://127.0.0.1:{port}/first"),
        "-H",
        &format!("Authorization: Bearer {tok}"),
    ]));
    assert_eq!(out, "hello from a blocking accept");
    let ing = trace.transaction("ingress", &tok);
    assert_exchange(&ing, "GET", "/first", 200, "hello from a blocking accept");
    assert_eq!(ing["summary"]["process"]["pid"], server.0.id());
    assert_eq!(
        ing["transaction"]["network"]["local"],
        format!("127.0.0.1:{port}")
    );
    let remote = ing["transaction"]["network"]["remote"]
        .as_str()
        .unwrap_or("");
    assert!(remote.starts_with("127.0.0.1:"), "{ing:#}");
}
