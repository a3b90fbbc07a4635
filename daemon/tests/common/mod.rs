//! Shared by the integration tests: a recording `ProbeControl` double, a server on an
//! ephemeral port, and small blocking HTTP/SSE clients over real TCP.
#![allow(dead_code)]

use qtap::events::{Event, ProbeStatus};
use qtap::hub::{Hub, HubConfig, ProbeControl, Publisher};
use qtap::server::{Activity, ServerConfig, serve};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records attach/detach calls and keeps the sink so the test can publish.
#[derive(Default)]
pub struct Double {
    attaches: AtomicUsize,
    detaches: AtomicUsize,
    sink: Mutex<Option<Publisher>>,
    pub fail: Mutex<Option<String>>,
}

impl ProbeControl for Double {
    fn attach(&self, sink: Publisher) -> Result<Vec<ProbeStatus>, String> {
        self.attaches.fetch_add(1, SeqCst);
        if let Some(e) = self.fail.lock().unwrap().clone() {
            return Err(e);
        }
        *self.sink.lock().unwrap() = Some(sink);
        Ok(vec![ProbeStatus {
            library: "syscalls".into(),
            path: "tracepoints".into(),
            status: "attached".into(),
        }])
    }
    fn detach(&self) {
        self.detaches.fetch_add(1, SeqCst);
        *self.sink.lock().unwrap() = None;
    }
}

impl Double {
    /// (attach calls, detach calls)
    pub fn counts(&self) -> (usize, usize) {
        (self.attaches.load(SeqCst), self.detaches.load(SeqCst))
    }
    pub fn publish(&self, e: Event) {
        self.sink
            .lock()
            .unwrap()
            .as_ref()
            .expect("publish while not attached")
            .publish(e);
    }
}

/// Polls `f` until true; fails after `secs` seconds (generous: the condition comes sooner).
pub fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out after {secs}s waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `qtap::server::serve` on 127.0.0.1:<ephemeral>, in its own runtime thread.
pub struct TestServer {
    pub addr: SocketAddr,
    pub hub: Hub,
    pub double: Arc<Double>,
    stop: Option<tokio::sync::oneshot::Sender<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(hub_cfg: HubConfig, keep_alive: Duration) -> Self {
        Self::start_with(Double::default(), hub_cfg, keep_alive)
    }

    pub fn start_with(double: Double, hub_cfg: HubConfig, keep_alive: Duration) -> Self {
        let double = Arc::new(double);
        let hub = Hub::new(double.clone(), hub_cfg);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        let h = hub.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                let cfg = ServerConfig {
                    keep_alive,
                    ..ServerConfig::new(addr, false)
                };
                serve(l, h, cfg, Arc::new(Activity::default()), async {
                    rx.await.unwrap_or_else(|_| "test over".into())
                })
                .await;
            });
        });
        TestServer {
            addr,
            hub,
            double,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Stops like SIGTERM does, and waits for the server to finish.
    pub fn stop(&mut self, reason: &str) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(reason.into());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    pub fn host(&self) -> String {
        format!("localhost:{}", self.addr.port())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop("test over");
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The request head; `Host: localhost:PORT` unless `headers` has a Host.
pub fn request_head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    close: bool,
) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req += &format!("Host: localhost:{}\r\n", addr.port());
    }
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    if close {
        req += "Connection: close\r\n";
    }
    req + "\r\n"
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads a status line and headers.
fn read_head(r: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("bad status line {line:?}"))
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    (status, headers)
}

/// One request on a new connection (`Connection: close`), body read to its end.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut s = connect(addr);
    s.write_all(request_head(addr, method, path, headers, true).as_bytes())
        .unwrap();
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r);
    let mut body = Vec::new();
    if method != "HEAD" {
        r.read_to_end(&mut body).unwrap();
    }
    Resp {
        status,
        headers,
        body,
    }
}

pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    request(addr, "GET", path, headers)
}

/// A parsed SSE frame.
#[derive(Debug, Clone)]
pub struct SseFrame {
    pub id: u64,
    pub event: String,
    pub data: serde_json::Value,
    pub raw: String,
}

/// An SSE client: reads the chunked body block by block (a block ends with a blank line).
pub struct Sse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    r: BufReader<TcpStream>,
    buf: String,
    ended: bool,
}

impl Sse {
    pub fn connect(addr: SocketAddr, path: &str) -> Sse {
        Self::connect_with(addr, path, &[])
    }

    /// With more request headers.
    pub fn connect_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut s = connect(addr);
        let mut h = vec![("Accept", "text/event-stream")];
        h.extend_from_slice(headers);
        s.write_all(request_head(addr, "GET", path, &h, false).as_bytes())
            .unwrap();
        Self::read_response(s)
    }

    /// Takes over a stream on which the request was already sent.
    pub fn read_response(s: TcpStream) -> Sse {
        let mut r = BufReader::new(s);
        let (status, headers) = read_head(&mut r);
        Sse {
            status,
            headers,
            r,
            buf: String::new(),
            ended: false,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Reads one chunk of the chunked body into `buf`; false at the end of the body.
    fn read_chunk(&mut self) -> bool {
        if self.ended {
            return false;
        }
        let mut size = String::new();
        if self.r.read_line(&mut size).unwrap() == 0 {
            self.ended = true;
            return false;
        }
        let n = usize::from_str_radix(size.trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
        let mut data = vec![0; n + 2];
        self.r.read_exact(&mut data).unwrap();
        if n == 0 {
            self.ended = true;
            return false;
        }
        self.buf.push_str(std::str::from_utf8(&data[..n]).unwrap());
        true
    }

    /// The next block, event or comment, with its blank line; `None` when the body ends.
    pub fn next_block(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block = self.buf[..i + 2].to_string();
                self.buf.drain(..i + 2);
                return Some(block);
            }
            if !self.read_chunk() {
                assert!(
                    self.buf.is_empty(),
                    "stream ended inside a frame: {:?}",
                    self.buf
                );
                return None;
            }
        }
    }

    /// The next event (comments skipped); `None` when the body ends.
    pub fn next_frame(&mut self) -> Option<SseFrame> {
        loop {
            let block = self.next_block()?;
            if block.starts_with(':') {
                continue;
            }
            return Some(parse_frame(&block));
        }
    }
}

/// Checks the exact frame shape `id: N\nevent: T\ndata: {ts,data}\n\n` and parses it.
pub fn parse_frame(block: &str) -> SseFrame {
    let lines: Vec<&str> = block.trim_end_matches('\n').split('\n').collect();
    assert_eq!(
        lines.len(),
        3,
        "frame is not exactly id/event/data: {block:?}"
    );
    let id = lines[0]
        .strip_prefix("id: ")
        .unwrap_or_else(|| panic!("no id line: {block:?}"))
        .parse()
        .unwrap();
    let event = lines[1]
        .strip_prefix("event: ")
        .unwrap_or_else(|| panic!("no event line: {block:?}"))
        .to_string();
    let json = lines[2]
        .strip_prefix("data: ")
        .unwrap_or_else(|| panic!("no data line: {block:?}"));
    let data: serde_json::Value = serde_json::from_str(json).unwrap();
    assert!(
        data["ts"].as_str().is_some_and(|t| t.ends_with('Z')),
        "no ts: {json}"
    );
    assert!(data.get("data").is_some(), "no data: {json}");
    assert_eq!(
        data.as_object().unwrap().len(),
        2,
        "data line has more than ts and data: {json}"
    );
    SseFrame {
        id,
        event,
        data,
        raw: block.to_string(),
    }
}
