//! HTTP/2 and gRPC end to end, as root: `qtap trace` with real eBPF on this kernel, real
//! HTTP/2 peers on 127.0.0.1 (nginx with `http2`, nghttpd, nghttp, curl, Python grpcio).
//! Each test asserts what a user reads in the stream on both sides of the connection:
//! the exact headers, method, path, status, bodies, and gRPC status and messages.
//!
//! Needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN), nginx, nghttp2-client,
//! nghttp2-server and Python grpcio (all installed by `.ci/setup`):
//! `sudo -E cargo test --test http2_e2e`.
use base64::Engine as _;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A running `qtap trace`, its lines collected in the background.
struct Trace {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Trace {
    fn start() -> Trace {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(
            root,
            "HTTP/2 capture tests load eBPF programs: run them as root"
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_qtap"))
            .arg("trace")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start qtap trace");
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("trace printed a non-JSON line ({e}): {line}"));
                l2.lock().unwrap().push(v);
            }
        });
        let t = Trace { child, lines };
        t.wait(Duration::from_secs(20), |v| {
            v["topic"] == "system.connected"
        });
        t
    }

    fn wait(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + timeout;
        loop {
            if let Some(v) = self.lines.lock().unwrap().iter().find(|v| pred(v)) {
                return v.clone();
            }
            if Instant::now() > end {
                let seen: Vec<String> = self
                    .lines
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|v| v["topic"] == "request.http_transaction")
                    .map(|v| v.to_string().chars().take(600).collect())
                    .collect();
                let dropped: Vec<String> = self
                    .lines
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|v| v["topic"] == "system.dropped")
                    .map(|v| v["data"].to_string())
                    .collect();
                panic!(
                    "no matching event within {timeout:?}; dropped (other load on the host?): \
                     {dropped:?}; transactions seen:\n{}",
                    seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The transaction on `side` ("egress"/"ingress") that `pred` picks.
    fn tx(&self, side: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait(Duration::from_secs(15), |v| {
            v["topic"] == "request.http_transaction"
                && v["data"]["summary"]["direction"] == side
                && pred(&v["data"]["transaction"])
        })["data"]["transaction"]
            .clone()
    }

    /// The transaction on `side` whose request carries `Authorization: Bearer token`.
    fn with_token(&self, side: &str, token: &str) -> Value {
        self.tx(side, |t| {
            header(&t["request"]["headers"], "authorization") == Some(format!("Bearer {token}"))
        })
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header(headers: &Value, name: &str) -> Option<String> {
    headers.as_array()?.iter().find_map(|h| {
        (h[0].as_str()? == name).then(|| h[1].as_str().unwrap_or_default().to_string())
    })
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A temporary directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!(
            "qtap-h2-{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
    fn file(&self, name: &str, body: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::File::create(&p).unwrap().write_all(body).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for localhost in `d`: (cert, key).
fn certs(d: &Dir) -> (PathBuf, PathBuf) {
    let (cert, key) = (d.0.join("cert.pem"), d.0.join("key.pem"));
    let st = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(st.success());
    (cert, key)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn wait_port(port: u16, what: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "{what} did not start on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a client to completion; returns (pid, stdout).
fn run(cmd: &mut Command) -> (u32, String) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("client");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (pid, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn token(tag: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}-{}-{t}", std::process::id())
}

/// The body's bytes (text, or base64-decoded).
fn body(b: &Value) -> Vec<u8> {
    let text = b["text"].as_str().unwrap_or_default();
    if b["encoding"] == "base64" {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap()
    } else {
        text.as_bytes().to_vec()
    }
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

fn nginx(d: &Dir, cert: &Path, key: &Path) -> (Proc, u16) {
    let port = free_port();
    let www = d.0.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let text: String = (0..4000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(www.join("big.txt"), text).unwrap();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log stderr warn;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
           gzip on; gzip_types text/plain; gzip_min_length 10;\n\
           server {{ listen 127.0.0.1:{port} ssl http2; ssl_certificate {cert}; ssl_certificate_key {key}; ssl_protocols TLSv1.2;\n\
             location = /hello {{ default_type text/plain; return 200 \"hello from nginx\"; }}\n\
             location /static/ {{ alias {www}/; default_type text/plain; }} }} }}\n",
        d = d.0.display(),
        cert = cert.display(),
        key = key.display(),
        www = www.display(),
    );
    let path = d.file("nginx.conf", conf.as_bytes());
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(&d.0)
        .spawn()
        .expect("nginx");
    wait_port(port, "nginx");
    (Proc(child), port)
}

/// How the issue is checked: curl's default request (HTTP/2 over TLS via ALPN) to nginx.
#[test]
fn curl_default_is_http2_to_nginx_tls_both_sides() {
    let d = Dir::new("nginx");
    let (cert, key) = certs(&d);
    let (_nginx, port) = nginx(&d, &cert, &key);
    let trace = Trace::start();
    let tok = token("h2nginx");
    let auth = format!("Authorization: Bearer {tok}");
    let (pid, out) = run(Command::new("curl")
        .args(["-sSk", "-w", " %{http_version}"])
        .arg(format!("https://127.0.0.1:{port}/hello"))
        .args(["-H", &auth]));
    assert_eq!(out, "hello from nginx 2", "curl negotiated HTTP/2");
    for side in ["egress", "ingress"] {
        let t = trace.with_token(side, &tok);
        assert_h2(&t, "GET", "/hello", 200);
        assert_eq!(t["url"], format!("https://127.0.0.1:{port}/hello"));
        assert_eq!(t["request"]["authority"], format!("127.0.0.1:{port}"));
        assert_eq!(t["response"]["body"]["text"], "hello from nginx");
        assert_eq!(t["content_type"], "text/plain");
        assert_eq!(t["tls"], true);
        // curl offers h2 then http/1.1 by ALPN; over TLS 1.2 (pinned in the nginx
        // config) nginx's choice is in clear in its ServerHello
        let opened = trace.wait(Duration::from_secs(5), |v| {
            v["topic"] == "connection.opened" && v["data"]["connection_id"] == t["connection_id"]
        });
        let tls = &opened["data"]["tls"];
        assert_eq!(
            tls["alpn_offered"],
            serde_json::json!(["h2", "http/1.1"]),
            "{opened:#}"
        );
        assert_eq!(tls["version"], "TLSv1.2", "{opened:#}");
        assert_eq!(tls["alpn"], "h2", "{opened:#}");
        let exe = t["process"]["exe"].as_str().unwrap();
        if side == "egress" {
            assert_eq!(
                (exe, t["process"]["pid"].as_u64()),
                ("/usr/bin/curl", Some(u64::from(pid)))
            );
        } else {
            assert!(exe.ends_with("nginx"), "{t:#}");
        }
    }
    // a gzip-encoded static file over many DATA frames
    let tok = token("h2gzip");
    let auth = format!("Authorization: Bearer {tok}");
    let (_, out) = run(Command::new("curl")
        .args(["-sSk", "--compressed"])
        .arg(format!("https://127.0.0.1:{port}/static/big.txt"))
        .args(["-H", &auth]));
    assert!(out.starts_with("line 0\nline 1\n") && out.ends_with("line 3999\n"));
    for side in ["egress", "ingress"] {
        let t = trace.with_token(side, &tok);
        assert_h2(&t, "GET", "/static/big.txt", 200);
        let b = &t["response"]["body"];
        assert_eq!(b["content_encoding"], "gzip", "{b:#}");
        assert_eq!(b["text"], out.as_str(), "{side}: decoded body");
        assert!(
            b["size"].as_u64().unwrap() < out.len() as u64 / 4,
            "gzip on the wire"
        );
    }
}

fn nghttpd(d: &Dir, tls: Option<(&Path, &Path)>) -> (Proc, u16) {
    let port = free_port();
    let www = d.0.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.txt"), "hello from nghttpd\n").unwrap();
    let mut cmd = Command::new("nghttpd");
    cmd.args(["--echo-upload", "-a", "127.0.0.1", "-d"])
        .arg(&www);
    match tls {
        Some((cert, key)) => cmd.arg(port.to_string()).arg(key).arg(cert),
        None => cmd.arg("--no-tls").arg(port.to_string()),
    };
    let child = cmd.stdout(Stdio::null()).spawn().expect("nghttpd");
    wait_port(port, "nghttpd");
    (Proc(child), port)
}

#[test]
fn nghttp_and_nghttpd_over_tls_with_an_uploaded_body() {
    let d = Dir::new("nghttpd");
    let (cert, key) = certs(&d);
    let (server, port) = nghttpd(&d, Some((&cert, &key)));
    let trace = Trace::start();
    let tok = token("nghttp");
    let upload: Vec<u8> = (0..50_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let data = d.file("upload.bin", &upload);
    let (pid, out) = run(Command::new("nghttp")
        .arg("-d")
        .arg(&data)
        .args(["-H", &format!("authorization: Bearer {tok}")])
        .arg(format!("https://127.0.0.1:{port}/echo")));
    assert_eq!(
        out.as_bytes(),
        upload.as_slice(),
        "nghttpd echoes the upload"
    );
    for side in ["egress", "ingress"] {
        let t = trace.with_token(side, &tok);
        assert_h2(&t, "POST", "/echo", 200);
        assert_eq!(body(&t["request"]["body"]), upload, "{side}: request body");
        assert_eq!(
            body(&t["response"]["body"]),
            upload,
            "{side}: response body"
        );
        assert_eq!(t["request"]["body"]["size"], 50_000);
        let want = if side == "egress" { pid } else { server.0.id() };
        assert_eq!(t["process"]["pid"], want, "{t:#}");
    }
}

#[test]
fn h2c_prior_knowledge_curl_to_nghttpd() {
    let d = Dir::new("h2c");
    let (_server, port) = nghttpd(&d, None);
    let trace = Trace::start();
    let tok = token("h2c");
    let (_, out) = run(Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge"])
        .arg(format!("http://127.0.0.1:{port}/index.txt"))
        .args(["-H", &format!("Authorization: Bearer {tok}")]));
    assert_eq!(out, "hello from nghttpd\n");
    for side in ["egress", "ingress"] {
        let t = trace.with_token(side, &tok);
        assert_h2(&t, "GET", "/index.txt", 200);
        assert_eq!(t["tls"], false);
        assert_eq!(t["url"], format!("http://127.0.0.1:{port}/index.txt"));
        assert_eq!(t["response"]["body"]["text"], "hello from nghttpd\n");
        assert!(header(&t["response"]["headers"], "content-length").is_some());
    }
}

fn grpc_server() -> (Proc, u16) {
    let mut child = Command::new("python3")
        .arg(fixtures().join("grpc_peer.py"))
        .arg("server")
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().unwrap_or_else(|_| {
        panic!("grpc_peer.py printed {line:?}: is grpcio installed (.ci/setup)?")
    });
    (Proc(child), port)
}

fn grpc_client(port: u16, tok: &str, names: &[&str]) -> Command {
    let mut c = Command::new("python3");
    c.arg(fixtures().join("grpc_peer.py"))
        .args(["client", &port.to_string(), tok])
        .args(names);
    c
}

/// How the issue is checked: a gRPC call is a complete transaction with its headers,
/// bodies and gRPC status, on both sides.
#[test]
fn grpc_calls_status_messages_and_compression_both_sides() {
    let (_server, port) = grpc_server();
    let trace = Trace::start();
    let tok = token("grpc");
    let gz = format!("gz{}", "a".repeat(300));
    let (_, out) = run(&mut grpc_client(port, &tok, &["world", "missing", &gz]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..2],
        ["OK hello world", "NOT_FOUND no such greeting: missing"]
    );
    for side in ["egress", "ingress"] {
        let calls: Vec<Value> = ["world", "missing", gz.as_str()]
            .iter()
            .map(|name| {
                trace.tx(side, |t| {
                    header(&t["request"]["headers"], "authorization")
                        == Some(format!("Bearer {tok}"))
                        && t["grpc"]["messages"][0]["dump"] == format!("1: \"{name}\"\n")
                })
            })
            .collect();
        for t in &calls {
            assert_h2(t, "POST", "/helloworld.Greeter/SayHello", 200);
            assert_eq!(t["content_type"], "application/grpc");
            let g = &t["grpc"];
            assert_eq!(
                (g["service"].as_str(), g["method"].as_str()),
                (Some("helloworld.Greeter"), Some("SayHello"))
            );
        }
        let ok = &calls[0]["grpc"];
        assert_eq!(
            (ok["status"].as_u64(), ok["status_name"].as_str()),
            (Some(0), Some("OK"))
        );
        assert_eq!(ok["messages"][1]["from"], "response");
        assert_eq!(ok["messages"][1]["dump"], "1: \"hello world\"\n");
        assert_eq!(
            header(&calls[0]["response"]["headers"], "x-served-by").as_deref(),
            Some("grpc_peer"),
            "trailers are kept"
        );
        let nf = &calls[1]["grpc"];
        assert_eq!(
            (nf["status"].as_u64(), nf["status_name"].as_str()),
            (Some(5), Some("NOT_FOUND"))
        );
        assert_eq!(nf["message"], "no such greeting: missing");
        assert_eq!(nf["messages"].as_array().unwrap().len(), 1);
        // gzip per message (grpc-encoding), flagged in the 5-byte prefix
        let z = &calls[2]["grpc"]["messages"];
        assert_eq!(z[0]["compressed"], true, "{z:#}");
        assert!(
            z[0]["size"].as_u64().unwrap() < 300,
            "compressed on the wire"
        );
        assert_eq!(z[1]["dump"], format!("1: \"hello {gz}\"\n"));
    }
}

/// A connection open before the capture started: what can be decoded is shown, headers
/// that refer to HPACK state the tool never saw are said to be missing, never guessed.
#[test]
fn grpc_connection_joined_mid_way() {
    let (_server, port) = grpc_server();
    let tok = token("joined");
    let mut client = grpc_client(port, &tok, &["first", "second", "third"]);
    let mut child = client
        .arg("--wait-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("client");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "OK hello first\n");
    let mut go = child.stdin.take().unwrap();
    let _client = Proc(child);
    // the connection is open and its HPACK tables filled: now the capture starts
    let trace = Trace::start();
    go.write_all(b"go\n").unwrap();
    drop(go);
    for name in ["second", "third"] {
        let want = format!("hello {name}");
        let t = trace.tx("egress", |t| {
            body(&t["response"]["body"])
                .windows(want.len())
                .any(|w| w == want.as_bytes())
        });
        // every header shown is one the client really sent
        let sent = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/helloworld.Greeter/SayHello"),
            (":authority", &format!("127.0.0.1:{port}")),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("authorization", &format!("Bearer {tok}")),
        ];
        for h in t["request"]["headers"].as_array().unwrap() {
            let (n, v) = (h[0].as_str().unwrap(), h[1].as_str().unwrap());
            if let Some((_, want)) = sent.iter().find(|(sn, _)| *sn == n) {
                assert_eq!(v, *want, "{n} decoded wrongly: {t:#}");
            }
        }
        // static-table fields decode; grpc-core indexed the rest on the first call,
        // before the capture: they are reported, not shown
        assert_eq!(
            header(&t["request"]["headers"], ":method").as_deref(),
            Some("POST")
        );
        let err = t["error"].as_str().unwrap_or_default();
        assert!(
            err.contains("request header field(s) could not be decoded"),
            "{t:#}"
        );
        assert!(err.contains("joined mid-way"), "{t:#}");
        assert_eq!(t["response"]["status"], 200, "{t:#}");
    }
}
