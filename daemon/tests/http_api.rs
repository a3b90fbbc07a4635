//! The HTTP API over real TCP: routes, security headers and refusals, health, the UI.
mod common;

use common::{TestServer, get, request};
use qtap::hub::HubConfig;
use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

fn server() -> TestServer {
    TestServer::start(HubConfig::default(), Duration::from_secs(15))
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

fn assert_secure(r: &common::Resp) {
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{r:?}");
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), None, "{r:?}");
}

#[test]
fn root_and_devtools_redirect_to_the_ui() {
    let s = server();
    let r = get(s.addr, "/", &[]);
    assert_eq!((r.status, r.header("location")), (302, Some("/devtools/")));
    let r = get(s.addr, "/devtools", &[]);
    assert_eq!((r.status, r.header("location")), (308, Some("/devtools/")));
    assert_secure(&r);
}

#[test]
fn ui_is_served_with_strict_csp_and_type() {
    let s = server();
    let r = get(s.addr, "/devtools/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.text().contains("<title>qtap devtools"));
    assert_eq!(r.header("content-security-policy"), Some(CSP));
    assert!(!CSP.contains("unsafe-inline"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_secure(&r);
    // same file by name; revalidation answers 304
    let etag = r.header("etag").unwrap().to_string();
    assert_eq!(
        get(s.addr, "/devtools/index.html", &[]).header("etag"),
        Some(etag.as_str())
    );
    assert_eq!(
        get(s.addr, "/devtools/", &[("If-None-Match", &etag)]).status,
        304
    );
    // HEAD: headers, no body
    let r = request(s.addr, "HEAD", "/devtools/", &[]);
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("text/html; charset=utf-8"))
    );
}

#[test]
fn unknown_paths_404_wrong_methods_405() {
    let s = server();
    for p in [
        "/nope",
        "/devtools/nope.js",
        "/devtools/api/nope",
        "/devtools/../Cargo.toml",
        "/devtools/tests/x",
    ] {
        let r = get(s.addr, p, &[]);
        assert_eq!(r.status, 404, "{p}");
        assert!(r.header("content-type").unwrap().starts_with("text/plain"));
        assert!(r.text().starts_with("404 Not Found"), "{}", r.text());
        assert_secure(&r);
    }
    for (m, p, allow) in [
        ("POST", "/devtools/api/events", "GET"),
        ("DELETE", "/devtools/api/health", "GET, HEAD"),
        ("PUT", "/devtools/", "GET, HEAD"),
    ] {
        let r = request(s.addr, m, p, &[("Content-Length", "0")]);
        assert_eq!((r.status, r.header("allow")), (405, Some(allow)), "{m} {p}");
    }
}

#[test]
fn foreign_host_is_refused_with_an_explanation() {
    let s = server();
    for host in [
        "evil.example",
        "evil.example:10001",
        "attacker.localhost.example",
        "10.0.0.1",
    ] {
        let r = get(s.addr, "/devtools/api/events", &[("Host", host)]);
        assert_eq!(r.status, 403, "{host}");
        let body = r.text();
        assert!(
            body.contains("DNS rebinding") && body.contains("ssh -L"),
            "{body}"
        );
        assert!(
            body.contains(&format!("http://localhost:{}/devtools/", s.addr.port())),
            "{body}"
        );
        assert_secure(&r);
    }
    assert_eq!(s.hub.clients(), 0, "a refused request never subscribes");
    assert_eq!(s.double.counts(), (0, 0), "nor attaches probes");
    for host in ["localhost", "127.0.0.1:9", "[::1]", &s.host()] {
        assert_eq!(
            get(s.addr, "/devtools/api/health", &[("Host", host)]).status,
            200,
            "{host}"
        );
    }
}

#[test]
fn cross_origin_is_refused_same_origin_allowed() {
    let s = server();
    let me = format!("http://{}", s.host());
    let r = get(
        s.addr,
        "/devtools/api/health",
        &[("Origin", "https://evil.example")],
    );
    assert_eq!(r.status, 403);
    assert!(
        r.text()
            .contains("cross-origin request from `https://evil.example`"),
        "{}",
        r.text()
    );
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = get(
        s.addr,
        "/devtools/api/health",
        &[("Origin", "http://localhost:3000")],
    );
    assert_eq!(r.status, 403, "another local port is another origin");
    assert_eq!(
        get(s.addr, "/devtools/api/health", &[("Origin", &me)]).status,
        200
    );
    let r = get(
        s.addr,
        "/devtools/api/health",
        &[
            ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Mode", "no-cors"),
        ],
    );
    assert_eq!(r.status, 403, "embedded by another site");
}

#[test]
fn other_sites_navigations_are_refused_a_typed_address_is_served() {
    let s = server();
    for site in ["cross-site", "same-site"] {
        for path in ["/devtools/api/events", "/devtools/api/health", "/devtools/"] {
            let r = get(
                s.addr,
                path,
                &[("Sec-Fetch-Site", site), ("Sec-Fetch-Mode", "navigate")],
            );
            assert_eq!(r.status, 403, "{site} navigation to {path}");
            assert!(r.text().contains("into the address bar"), "{}", r.text());
        }
    }
    assert_eq!(s.hub.clients(), 0, "a refused navigation never subscribes");
    assert_eq!(s.double.counts(), (0, 0), "nor attaches probes");
    // typed into the address bar (or a bookmark, a reload): Sec-Fetch-Site: none
    let typed = [("Sec-Fetch-Site", "none"), ("Sec-Fetch-Mode", "navigate")];
    let r = get(s.addr, "/devtools/", &typed);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("<title>qtap devtools"));
    assert_eq!(get(s.addr, "/devtools", &typed).status, 308);
    // the page's own requests: same-origin
    let mut sse = common::Sse::connect_with(
        s.addr,
        "/devtools/api/events",
        &[
            ("Sec-Fetch-Site", "same-origin"),
            ("Sec-Fetch-Mode", "cors"),
        ],
    );
    assert_eq!(sse.status, 200);
    assert_eq!(sse.next_frame().unwrap().event, "system.connected");
}

#[test]
fn health_reports_probes_clients_and_counters() {
    let s = server();
    let v: serde_json::Value =
        serde_json::from_slice(&get(s.addr, "/devtools/api/health", &[]).body).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        (
            v["attached"].as_bool(),
            v["clients"].as_u64(),
            v["events"].as_u64()
        ),
        (Some(false), Some(0), Some(0))
    );
    for k in ["probes", "events_per_second", "drops", "uptime_s"] {
        assert!(v.get(k).is_some(), "health lacks {k}: {v}");
    }
    let mut sse = common::Sse::connect(s.addr, "/devtools/api/events");
    sse.next_frame().unwrap();
    s.double.publish(qtap::events::Event::ProcessStopped(
        qtap::events::ProcessStopped::from_raw(1, None),
    ));
    let r = get(s.addr, "/devtools/api/health", &[]);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (
            v["attached"].as_bool(),
            v["clients"].as_u64(),
            v["events"].as_u64()
        ),
        (Some(true), Some(1), Some(1))
    );
    assert_eq!(v["probes"][0]["status"], "attached");
}

#[test]
fn connections_are_kept_alive() {
    let s = server();
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    for _ in 0..3 {
        c.write_all(
            common::request_head(s.addr, "GET", "/devtools/api/health", &[], false).as_bytes(),
        )
        .unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        let mut len = 0;
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
    }
}
