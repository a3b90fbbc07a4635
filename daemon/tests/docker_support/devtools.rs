//! The serving daemon (`qtap --enable-dev-tools`) on a free loopback port, with one SSE
//! client (curl) whose `data:` lines are collected, and `/devtools/api/health` read on
//! demand: what a test needs to wait for a probe to be attached before traffic is made.
use super::{Proc, require_root};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Devtools {
    _daemon: Proc,
    _sse: Proc,
    addr: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Devtools {
    /// Starts the daemon and connects one event-stream client (which attaches the probes).
    pub fn start() -> Devtools {
        require_root();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let daemon = Proc(
            Command::new(env!("CARGO_BIN_EXE_qtap"))
                .args(["--enable-dev-tools", "--listen", &addr])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start qtap --enable-dev-tools"),
        );
        let end = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < end,
                "qtap did not listen on {addr} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut sse = Command::new("curl")
            .args(["-sSN", &format!("http://{addr}/devtools/api/events")])
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl for the event stream");
        let out = sse.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(d) = line.strip_prefix("data: ") {
                    l2.lock().unwrap().push(d.to_string());
                }
            }
        });
        let d = Devtools {
            _daemon: daemon,
            _sse: Proc(sse),
            addr,
            lines,
        };
        // the first frame (system.connected) comes once the probes are attached
        d.wait_data(Duration::from_secs(20), "probes", |v| {
            v["probes"].is_array()
        });
        d
    }

    /// `/devtools/api/health` as JSON.
    pub fn health(&self) -> Value {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                &format!("http://{}/devtools/api/health", self.addr),
            ])
            .output()
            .expect("curl health");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "health is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Polls health (bounded) until a probe `pred` accepts is listed; returns it.
    pub fn wait_probe(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let end = Instant::now() + timeout;
        loop {
            let h = self.health();
            if let Some(p) = h["probes"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| pred(p)))
            {
                return p.clone();
            }
            assert!(
                Instant::now() < end,
                "no such probe ({what}) within {timeout:?}: {h:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `data` of the first frame whose line holds `needle` and that `pred` accepts.
    pub fn wait_data(
        &self,
        timeout: Duration,
        needle: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let end = Instant::now() + timeout;
        let mut from = 0;
        loop {
            let fresh: Vec<String> = {
                let l = self.lines.lock().unwrap();
                let new = l[from..]
                    .iter()
                    .filter(|s| s.contains(needle))
                    .cloned()
                    .collect();
                from = l.len();
                new
            };
            for line in fresh {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("a non-JSON data line ({e}): {line}"));
                if pred(&v["data"]) {
                    return v["data"].clone();
                }
            }
            assert!(
                Instant::now() < end,
                "no frame with {needle:?} matching within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The egress transaction whose request carries `Authorization: Bearer <token>`.
    pub fn egress(&self, token: &str) -> Value {
        let want = format!("Bearer {token}");
        self.wait_data(Duration::from_secs(20), token, |d| {
            d["summary"]["direction"] == "egress"
                && d["transaction"]["request"]["headers"]
                    .as_array()
                    .is_some_and(|hs| {
                        hs.iter().any(|h| {
                            h[0].as_str()
                                .is_some_and(|n| n.eq_ignore_ascii_case("authorization"))
                                && h[1] == want.as_str()
                        })
                    })
        })
    }
}
