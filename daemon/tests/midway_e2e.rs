//! End to end, as root: the capture starts while a keep-alive connection's first request
//! is in flight. curl asks `/warm-up` (the server holds its answer until the test says),
//! the trace starts and its probes are attached, the server answers "warm", then curl
//! sends `/json` on the same connection (`--next`). Both sides, plaintext and TLS, must
//! show `/json` with its own `application/json` response, and the warm-up's response on
//! its own, flagged `request_not_captured` — never a response for the wrong request.
mod harness;

use harness::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const JSON: &str = r#"{"items":[1,2,3],"ok":true}"#;

/// Lines of a child's stdout, through a channel (read with a bound).
fn lines(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

fn next_line(rx: &mpsc::Receiver<String>, what: &str) -> String {
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{what}: no line within 20 s ({e})"))
}

fn midway(tls: bool) {
    require_root();
    let certs = tls.then(certs);
    let mut cmd = Command::new("python3");
    cmd.arg(fixtures().join("midway_server.py"));
    if let Some(c) = &certs {
        cmd.arg("--tls").arg(&c.cert).arg(&c.key);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut release = child.stdin.take().unwrap();
    let said = lines(child.stdout.take().unwrap());
    let server = Proc(child);
    let port: u16 = next_line(&said, "midway_server.py port")
        .trim()
        .parse()
        .expect("a port");
    let tok = token(if tls { "midway-tls" } else { "midway" });
    let (base, opts): (String, Vec<String>) = if tls {
        (
            format!("https://localhost:{port}"),
            vec![
                "-k".into(),
                "--resolve".into(),
                format!("localhost:{port}:127.0.0.1"),
            ],
        )
    } else {
        (format!("http://127.0.0.1:{port}"), Vec::new())
    };
    // one connection (curl reuses it after --next), the first request in flight
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--http1.1"])
        .args(&opts)
        .arg(format!("{base}/warm-up"))
        .args(["--next", "-sS", "--http1.1"])
        .args(&opts)
        .args(["-H", &format!("Authorization: Bearer {tok}")])
        .arg(format!("{base}/json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let curl = curl.spawn().expect("curl");
    assert_eq!(next_line(&said, "the server got /warm-up"), "warm-up");

    // the capture starts now: `qtap trace` has attached its probes when it prints
    // system.connected (the first line), TLS libraries included
    let trace = Trace::start(&[]);
    let connected = trace.wait_for("system.connected", Duration::from_secs(1), |_| true);
    let probes = connected["probes"].as_array().cloned().unwrap_or_default();
    let attached = |lib: &str, path: &str| {
        probes.iter().any(|p| {
            p["library"] == lib
                && p["path"].as_str().is_some_and(|p| p.contains(path))
                && p["status"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("attached"))
        })
    };
    assert!(attached("syscalls", "kernel"), "{connected:#}");
    if tls {
        // the libssl curl and python use
        assert!(attached("openssl", "libssl"), "{connected:#}");
    }
    release.write_all(b"go\n").unwrap();
    let out = curl.wait_with_output_bounded();
    assert_eq!(out, format!("warm{JSON}"));

    for side in ["egress", "ingress"] {
        let json = trace.transaction(side, &tok);
        assert_exchange(&json, "GET", "/json", 200, JSON);
        assert_eq!(
            json["summary"]["content_type"], "application/json",
            "{side}: {json:#}"
        );
        assert!(
            json["summary"].get("request_not_captured").is_none(),
            "{json:#}"
        );
        let conn = json["summary"]["connection_id"].clone();
        let warm = trace.wait_for("request.http_transaction", Duration::from_secs(15), |d| {
            d["summary"]["connection_id"] == conn && d["summary"]["request_not_captured"] == true
        });
        let s = &warm["summary"];
        assert_eq!(s["direction"], side, "{warm:#}");
        assert_eq!(
            (&s["path"], &s["method"]),
            (&Value::from(""), &Value::from("")),
            "{warm:#}"
        );
        assert_eq!(s["content_type"], "text/plain", "{warm:#}");
        assert_eq!(
            warm["transaction"]["response"]["body"]["text"], "warm",
            "{warm:#}"
        );
        assert!(
            s["error"]
                .as_str()
                .unwrap_or_default()
                .contains("request not captured"),
            "{warm:#}"
        );
        // nothing else on the connection: no third, mispaired exchange
        let on_conn: Vec<Value> = trace
            .all("request.http_transaction")
            .into_iter()
            .filter(|d| d["summary"]["connection_id"] == conn)
            .collect();
        assert_eq!(on_conn.len(), 2, "{side}: {on_conn:#?}");
    }
    if tls {
        let ing = trace.transaction("ingress", &tok);
        assert_eq!(ing["summary"]["process"]["pid"], server.0.id(), "{ing:#}");
        assert_eq!(ing["summary"]["tls"], true, "{ing:#}");
    }
}

trait Bounded {
    fn wait_with_output_bounded(self) -> String;
}

impl Bounded for std::process::Child {
    /// Waits for the client (20 s at most) and returns its stdout.
    fn wait_with_output_bounded(mut self) -> String {
        let end = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.try_wait().unwrap() {
                let mut out = String::new();
                let mut err = String::new();
                self.stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut out)
                    .unwrap();
                self.stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                assert!(st.success(), "curl failed: {err}");
                return out;
            }
            if std::time::Instant::now() > end {
                let _ = self.kill();
                panic!("curl did not finish within 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn keep_alive_request_in_flight_at_attach_plaintext_both_sides() {
    midway(false);
}

#[test]
fn keep_alive_request_in_flight_at_attach_tls_both_sides() {
    midway(true);
}
