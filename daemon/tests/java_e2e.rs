//! Java (JSSE) end to end, as root: JVMs started BEFORE `qtap trace` (no restart, no flag)
//! get the agent through the HotSpot attach mechanism; an HTTPS server
//! (com.sun.net.httpserver.HttpsServer, SSLEngine), a java.net.http.HttpClient client
//! (SSLEngine) and an HttpsURLConnection client (SSLSocket), compiled here from
//! `fixtures/java` with the JDK's javac, with a throwaway keystore made by keytool.
//! Each test asserts what a user reads: both sides' method, path, status, the exact
//! Authorization header, bodies, `tls: true`, process `java`, and the per-JVM probe status.
//!
//! Run with `sudo -E cargo test --test java_e2e` (CI runs it as root).
mod harness;

use harness::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The compiled fixtures and a PKCS12 keystore (password `qtap-test`), made once.
fn fixtures_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // the directory outlives the test process (a static): earlier runs' are removed here
        if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("qtap-test-java-")
                    && !std::path::Path::new("/proc").join(pid).exists()
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = std::env::temp_dir().join(format!("qtap-test-java-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("javac")
            .arg("-d")
            .arg(&dir)
            .arg(fixtures().join("java/Server.java"))
            .arg(fixtures().join("java/Client.java"))
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run javac ({e}): install openjdk-17-jdk-headless (.ci/setup does)")
            });
        assert!(
            out.status.success(),
            "javac: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("keytool")
            .args([
                "-genkeypair",
                "-keystore",
                "ks.p12",
                "-storetype",
                "PKCS12",
                "-storepass",
                "qtap-test",
                "-keyalg",
                "EC",
                "-alias",
                "k",
                "-dname",
                "CN=localhost",
                "-ext",
                "san=dns:localhost,ip:127.0.0.1",
                "-validity",
                "1",
            ])
            .current_dir(&dir)
            .output()
            .expect("keytool");
        assert!(
            out.status.success(),
            "keytool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // readable by a JVM running as nobody
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.join("ks.p12"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        dir
    })
}

/// The HTTPS server JVM and its port; as user `nobody` when `nobody` (setpriv execs java,
/// so the child's pid is the JVM's).
fn java_server(extra: &[&str], nobody: bool) -> (Proc, u16) {
    let dir = fixtures_dir();
    let mut cmd = if nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "java"]);
        c
    } else {
        Command::new("java")
    };
    let child = cmd
        .args(extra)
        .arg("-cp")
        .arg(dir)
        .arg("Server")
        .arg(dir.join("ks.p12"))
        .arg("qtap-test")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("java");
    port_line(child, "Server")
}

/// A client JVM waiting for requests on its stdin ("TOKEN BODY" per line).
struct JavaClient {
    proc: Proc,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl JavaClient {
    fn start(mode: &str, url: &str) -> JavaClient {
        let mut child = Command::new("java")
            .arg("-cp")
            .arg(fixtures_dir())
            .arg("Client")
            .arg(mode)
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("java");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        JavaClient {
            proc: Proc(child),
            stdin,
            stdout,
        }
    }

    fn pid(&self) -> u32 {
        self.proc.0.id()
    }

    /// One POST; returns the client's "STATUS BODY" line.
    fn post(&mut self, token: &str, body: &str) -> String {
        writeln!(self.stdin, "{token} {body}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim_end().to_string()
    }
}

fn java_probe(connected: &Value, pid: u32) -> &Value {
    connected["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["library"] == "java"
                && p["path"]
                    .as_str()
                    .is_some_and(|s| s.ends_with(&format!("(pid {pid})")))
        })
        .unwrap_or_else(|| panic!("no java probe for pid {pid}: {connected:#}"))
}

/// Everything a user reads of one side of the exchange.
fn assert_java_side(trace: &Trace, side: &str, token: &str, pid: u32, req_body: &str, resp: &str) {
    let tx = trace.transaction(side, token);
    assert_exchange(&tx, "POST", "/hello", 200, resp);
    let t = &tx["transaction"];
    assert_eq!(t["request"]["body"]["text"], req_body, "{side}: {tx:#}");
    assert!(
        has_header(
            &t["request"]["headers"],
            "Authorization",
            &format!("Bearer {token}")
        ),
        "{side}: {tx:#}"
    );
    assert!(
        has_header(&t["response"]["headers"], "Content-type", "text/plain"),
        "{side}: {tx:#}"
    );
    let s = &tx["summary"];
    assert_eq!(s["tls"], true, "{side}: {tx:#}");
    assert_eq!(s["process"]["pid"], pid, "{side}: {tx:#}");
    assert_eq!(s["process"]["name"], "java", "{side}: {tx:#}");
    assert!(
        s["process"]["exe"].as_str().unwrap().ends_with("/java"),
        "{side}: {tx:#}"
    );
    let opened = trace.wait_for("connection.opened", Duration::from_secs(5), |d| {
        d["connection_id"] == s["connection_id"]
    });
    assert_eq!(opened["tls"]["library"], "java", "{side}: {opened:#}");
    assert_eq!(opened["pid"], pid, "{side}: {opened:#}");
}

#[test]
fn httpclient_to_https_server_both_started_before_the_trace() {
    let (server, port) = java_server(&[], false);
    let mut client = JavaClient::start("httpclient", &format!("https://127.0.0.1:{port}/hello"));
    // a first request before any trace: the connection is open when the agent arrives
    assert!(client.post("before-trace", "x").starts_with("200 "));
    let trace = Trace::start(&[]);
    let connected = &trace.all("system.connected")[0];
    for pid in [server.0.id(), client.pid()] {
        let p = java_probe(connected, pid);
        let st = p["status"].as_str().unwrap();
        // "loaded earlier" when a capture running at the same time (another test) was first
        assert!(
            st.starts_with("attached (java agent") && st.contains("JDK 17"),
            "{p:#}"
        );
    }
    let tok = token("javaclient");
    let body = "ping from java.net.http";
    let resp = "hello from java: POST 23 bytes";
    assert_eq!(client.post(&tok, body), format!("200 {resp}"));
    assert_java_side(&trace, "egress", &tok, client.pid(), body, resp);
    assert_java_side(&trace, "ingress", &tok, server.0.id(), body, resp);
    drop(trace);

    // The daemon went away: the agents go quiet. A second capture finds them loaded (no
    // second load) and they connect back to it by themselves.
    std::thread::sleep(Duration::from_millis(300));
    let trace = Trace::start(&[]);
    let connected = &trace.all("system.connected")[0];
    for pid in [server.0.id(), client.pid()] {
        let p = java_probe(connected, pid);
        let st = p["status"].as_str().unwrap();
        assert!(
            st.starts_with("attached (java agent, loaded earlier; JDK 17"),
            "{p:#}"
        );
    }
    let tok = token("javaagain");
    assert_eq!(client.post(&tok, body), format!("200 {resp}"));
    assert_java_side(&trace, "egress", &tok, client.pid(), body, resp);
    assert_java_side(&trace, "ingress", &tok, server.0.id(), body, resp);
}

#[test]
fn https_url_connection_and_curl_to_https_server_run_by_nobody() {
    // the server JVM runs as another user: the attach connects with its uid and gid
    let (server, port) = java_server(&[], true);
    let mut client = JavaClient::start("url", &format!("https://127.0.0.1:{port}/hello"));
    let trace = Trace::start(&[]);
    let connected = &trace.all("system.connected")[0];
    for pid in [server.0.id(), client.pid()] {
        let p = java_probe(connected, pid);
        let st = p["status"].as_str().unwrap();
        assert!(st.starts_with("attached (java agent"), "{p:#}");
    }
    // HttpsURLConnection: SSLSocketImpl's streams
    let tok = token("javaurl");
    let body = "ping from HttpsURLConnection";
    let resp = "hello from java: POST 28 bytes";
    assert_eq!(client.post(&tok, body), format!("200 {resp}"));
    assert_java_side(&trace, "egress", &tok, client.pid(), body, resp);
    assert_java_side(&trace, "ingress", &tok, server.0.id(), body, resp);
    let ing = trace.transaction("ingress", &tok);
    assert_eq!(ing["summary"]["process"]["user"], "nobody", "{ing:#}");
    let eg = trace.transaction("egress", &tok);
    assert_eq!(
        eg["transaction"]["network"]["remote"],
        format!("127.0.0.1:{port}"),
        "{eg:#}"
    );
    // curl (OpenSSL) to the Java server: the server side through the agent
    let tok = token("curljava");
    let (_, out) = run(Command::new("curl").args([
        "-sSk",
        "--http1.1",
        &format!("https://127.0.0.1:{port}/hello"),
        "-H",
        &format!("Authorization: Bearer {tok}"),
        "-H",
        "Content-Type: text/plain",
        "--data-binary",
        "from curl",
    ]));
    assert_eq!(out, "hello from java: POST 9 bytes");
    assert_java_side(
        &trace,
        "ingress",
        &tok,
        server.0.id(),
        "from curl",
        "hello from java: POST 9 bytes",
    );
    let eg = trace.transaction("egress", &tok);
    assert_eq!(eg["summary"]["process"]["name"], "curl", "{eg:#}");
}

#[test]
fn jvm_with_attach_disabled_is_listed_with_the_reason() {
    let (server, port) = java_server(&["-XX:+DisableAttachMechanism"], false);
    let trace = Trace::start(&[]);
    let connected = &trace.all("system.connected")[0];
    let p = java_probe(connected, server.0.id());
    let st = p["status"].as_str().unwrap();
    assert!(st.starts_with("failed: "), "{p:#}");
    assert!(st.contains("-XX:+DisableAttachMechanism"), "{p:#}");
    // its own traffic still shows as TLS from the client side (curl, OpenSSL)
    let tok = token("noattach");
    let (_, out) = run(Command::new("curl").args([
        "-sSk",
        "--http1.1",
        &format!("https://127.0.0.1:{port}/hello"),
        "-H",
        &format!("Authorization: Bearer {tok}"),
    ]));
    assert_eq!(out, "hello from java: GET 0 bytes");
    let eg = trace.transaction("egress", &tok);
    assert_eq!(eg["transaction"]["response"]["status"], 200);
}

#[test]
fn jvm_started_during_the_capture_gets_the_agent() {
    let trace = Trace::start(&[]);
    let (server, port) = java_server(&[], false);
    // attached about 2 s after its exec (once it answers the attach signal); the agent's
    // hooks are in place when the daemon says so in its log, so poll with requests
    let mut seen = None;
    for i in 0..20 {
        std::thread::sleep(Duration::from_millis(500));
        let tok = token(&format!("latejvm{i}"));
        let (_, out) = run(Command::new("curl").args([
            "-sSk",
            "--http1.1",
            &format!("https://127.0.0.1:{port}/hello"),
            "-H",
            &format!("Authorization: Bearer {tok}"),
        ]));
        assert_eq!(out, "hello from java: GET 0 bytes");
        // the egress side (curl, OpenSSL) comes at once; the ingress side once attached
        trace.transaction("egress", &tok);
        std::thread::sleep(Duration::from_millis(200));
        let found = trace.all("request.http_transaction").into_iter().find(|d| {
            d["summary"]["direction"] == "ingress"
                && has_header(
                    &d["transaction"]["request"]["headers"],
                    "authorization",
                    &format!("Bearer {tok}"),
                )
        });
        if let Some(tx) = found {
            seen = Some(tx);
            break;
        }
    }
    let tx = seen.expect("no ingress transaction from the JVM started during the capture");
    assert_exchange(&tx, "GET", "/hello", 200, "hello from java: GET 0 bytes");
    assert_eq!(tx["summary"]["process"]["pid"], server.0.id(), "{tx:#}");
    assert_eq!(tx["summary"]["tls"], true, "{tx:#}");
}
