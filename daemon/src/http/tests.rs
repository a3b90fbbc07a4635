//! Connection-level tests: framing, pairing, keep-alive, pipelining, protocol switches,
//! not-HTTP detection. Body decoding is in `tests_body`, gaps and robustness in `tests_gaps`.
use super::*;
use crate::events::BodyEncoding;

pub(super) fn ts(n: u64) -> Timestamp {
    Timestamp(n)
}

/// Feeds `steps` in order (timestamps 1, 2, ...), then closes when `close` (at 1000).
pub(super) fn run_with(limits: BodyLimits, steps: &[(Side, &[u8])], close: bool) -> Vec<Exchange> {
    let mut c = HttpConn::new(limits);
    let mut out = Vec::new();
    for (i, (side, data)) in steps.iter().enumerate() {
        out.extend(c.feed(*side, data, ts(i as u64 + 1)));
    }
    if close {
        out.extend(c.close(ts(1000)));
    }
    out
}

pub(super) fn run(steps: &[(Side, &[u8])], close: bool) -> Vec<Exchange> {
    run_with(BodyLimits::default(), steps, close)
}

pub(super) fn req(e: &Exchange) -> &HttpRequest {
    e.request.as_ref().expect("a request")
}

pub(super) fn resp(e: &Exchange) -> &HttpResponse {
    e.response.as_ref().expect("a response")
}

pub(super) fn h(list: &[(&str, &str)]) -> Headers {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

use Side::{Client, Server};

#[test]
fn simple_get_fields_timing_and_sizes() {
    let rq = b"GET /search?q=a%20b&x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n";
    let rs = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
    let ex = run(
        &[(Client, rq), (Server, &rs[..20]), (Server, &rs[20..])],
        false,
    );
    assert_eq!(ex.len(), 1);
    let e = &ex[0];
    let r = req(e);
    assert_eq!(
        (r.method.as_str(), r.target.as_str(), r.version.as_str()),
        ("GET", "/search?q=a%20b&x=1", "HTTP/1.1")
    );
    assert_eq!(
        r.headers,
        h(&[
            ("Host", "example.com"),
            ("Accept", "*/*"),
            ("X-Dup", "1"),
            ("x-dup", "2")
        ])
    );
    assert_eq!(r.body.size, 0);
    let s = resp(e);
    assert_eq!(
        (s.status, s.reason.as_str(), s.body.text.as_str()),
        (200, "OK", "hello")
    );
    assert_eq!(
        (
            s.body.encoding,
            s.body.size,
            s.body.captured,
            s.body.truncated
        ),
        (BodyEncoding::Utf8, 5, 5, false)
    );
    assert_eq!(
        (e.start, e.request_sent, e.response_start, e.end),
        (ts(1), Some(ts(1)), Some(ts(2)), ts(3))
    );
    assert_eq!(
        (e.request_wire_bytes, e.response_wire_bytes),
        (rq.len() as u64, rs.len() as u64)
    );
    assert_eq!(e.error, None);
}

const CHUNKED_REQ: &[u8] = b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Checksum: abc\r\n\r\n";
const CHUNKED_RESP: &[u8] =
    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n\
7\r\n{\"ok\":1\r\n1\r\n}\r\n0\r\nServer-Timing: db;dur=53\r\nX-Two: 2\r\n\r\n";

#[test]
fn chunked_with_extensions_and_trailers() {
    let ex = run(&[(Client, CHUNKED_REQ), (Server, CHUNKED_RESP)], false);
    assert_eq!(ex.len(), 1);
    let r = req(&ex[0]);
    assert_eq!(r.body.text, "Wikipedia in\r\n\r\nchunks.");
    assert_eq!(r.body.size, 23);
    assert_eq!(r.trailers, h(&[("X-Checksum", "abc")]));
    let s = resp(&ex[0]);
    assert_eq!(s.body.text, "{\"ok\":1}");
    assert_eq!(
        s.trailers,
        h(&[("Server-Timing", "db;dur=53"), ("X-Two", "2")])
    );
    assert_eq!(s.all_headers().len(), s.headers.len() + 2);
    assert_eq!(ex[0].response_wire_bytes, CHUNKED_RESP.len() as u64);
}

/// Feeding a request+response pair split at any byte boundary, or byte by byte, gives the
/// same exchange as feeding each whole.
#[test]
fn split_at_every_byte_boundary() {
    let feed = |c: &mut HttpConn, side: Side, pieces: &[&[u8]]| -> Vec<Exchange> {
        pieces.iter().flat_map(|p| c.feed(side, p, ts(7))).collect()
    };
    let whole = {
        let mut c = HttpConn::new(BodyLimits::default());
        let mut out = feed(&mut c, Client, &[CHUNKED_REQ]);
        out.extend(feed(&mut c, Server, &[CHUNKED_RESP]));
        out
    };
    assert_eq!(whole.len(), 1);
    for i in 0..=CHUNKED_REQ.len() {
        let mut c = HttpConn::new(BodyLimits::default());
        let mut out = feed(&mut c, Client, &[&CHUNKED_REQ[..i], &CHUNKED_REQ[i..]]);
        out.extend(feed(&mut c, Server, &[CHUNKED_RESP]));
        assert_eq!(out, whole, "request split at {i}");
    }
    for i in 0..=CHUNKED_RESP.len() {
        let mut c = HttpConn::new(BodyLimits::default());
        let mut out = feed(&mut c, Client, &[CHUNKED_REQ]);
        out.extend(feed(
            &mut c,
            Server,
            &[&CHUNKED_RESP[..i], &CHUNKED_RESP[i..]],
        ));
        assert_eq!(out, whole, "response split at {i}");
    }
    let mut c = HttpConn::new(BodyLimits::default());
    let bytes = |m: &'static [u8]| m.chunks(1).collect::<Vec<_>>();
    let mut out = feed(&mut c, Client, &bytes(CHUNKED_REQ));
    out.extend(feed(&mut c, Server, &bytes(CHUNKED_RESP)));
    assert_eq!(out, whole, "byte by byte");
}

#[test]
fn pipelined_requests_pair_fifo() {
    let rq = b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nPOST /3 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    let rs = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n\
HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    let ex = run(&[(Client, rq), (Server, rs)], false);
    let got: Vec<(String, u16, String)> = ex
        .iter()
        .map(|e| {
            (
                req(e).target.clone(),
                resp(e).status,
                resp(e).body.text.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("/1".into(), 200, "a".into()),
            ("/2".into(), 404, "".into()),
            ("/3".into(), 201, "ok".into())
        ]
    );
    assert_eq!(req(&ex[2]).body.text, "abc");
    assert!(ex.iter().all(|e| e.error.is_none()));
}

#[test]
fn keep_alive_three_exchanges_in_order() {
    let mut c = HttpConn::new(BodyLimits::default());
    let mut got = Vec::new();
    for i in 0..3u64 {
        let rq = format!("GET /item/{i} HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n");
        assert!(c.feed(Client, rq.as_bytes(), ts(10 * i)).is_empty());
        let rs = format!("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nitem {i}");
        let ex = c.feed(Server, rs.as_bytes(), ts(10 * i + 5));
        assert_eq!(ex.len(), 1);
        got.push((
            req(&ex[0]).target.clone(),
            resp(&ex[0]).body.text.clone(),
            ex[0].start,
            ex[0].end,
        ));
    }
    assert_eq!(
        got[2],
        ("/item/2".to_string(), "item 2".to_string(), ts(20), ts(25))
    );
    assert_eq!(
        got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(),
        ["/item/0", "/item/1", "/item/2"]
    );
    assert!(c.close(ts(99)).is_empty());
}

#[test]
fn expect_100_continue_is_skipped_not_paired() {
    let head = b"PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    let ex = run(
        &[
            (Client, head),
            (Server, b"HTTP/1.1 100 Continue\r\n\r\n"),
            (Client, b"data"),
            (Server, b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ],
        false,
    );
    assert_eq!(ex.len(), 1);
    let s = resp(&ex[0]);
    assert_eq!(
        (s.status, s.informational.clone(), s.body.text.as_str()),
        (200, vec![100, 103], "ok")
    );
    assert_eq!(req(&ex[0]).body.text, "data");
    assert_eq!(
        (ex[0].request_sent, ex[0].response_start),
        (Some(ts(3)), Some(ts(4)))
    );
}

#[test]
fn head_204_304_have_no_body() {
    let rq = b"HEAD /big HTTP/1.1\r\n\r\nGET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nIf-None-Match: \"x\"\r\n\r\nGET /c HTTP/1.1\r\n\r\n";
    let rs = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n\
HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n\
HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast";
    let ex = run(&[(Client, rq), (Server, rs)], false);
    let st: Vec<(u16, u64)> = ex
        .iter()
        .map(|e| (resp(e).status, resp(e).body.size))
        .collect();
    assert_eq!(st, [(200, 0), (204, 0), (304, 0), (200, 4)]);
    assert_eq!(resp(&ex[3]).body.text, "last");
}

#[test]
fn response_delimited_by_close() {
    let ex = run(
        &[
            (Client, b"GET / HTTP/1.0\r\n\r\n"),
            (
                Server,
                b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\npart one, ",
            ),
            (Server, b"part two"),
        ],
        false,
    );
    assert!(ex.is_empty(), "not complete until the close");
    let mut c = HttpConn::new(BodyLimits::default());
    c.feed(Client, b"GET / HTTP/1.1\r\n\r\n", ts(1));
    c.feed(
        Server,
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one, ",
        ts(2),
    );
    c.feed(Server, b"part two", ts(3));
    let ex = c.close(ts(9));
    assert_eq!(ex.len(), 1);
    assert_eq!(resp(&ex[0]).body.text, "part one, part two");
    assert_eq!((ex[0].error.clone(), ex[0].end), (None, ts(3)));
}

#[test]
fn connection_close_with_length_completes_before_close() {
    let ex = run(
        &[
            (Client, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
            (
                Server,
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
            ),
        ],
        false,
    );
    assert_eq!(resp(&ex[0]).body.text, "hi");
}

#[test]
fn switching_protocols_ends_http() {
    let mut c = HttpConn::new(BodyLimits::default());
    let up = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    assert!(c.feed(Client, up, ts(1)).is_empty());
    // A frame the client sends before the 101 is seen: held, never parsed as HTTP.
    assert!(
        c.feed(
            Client,
            b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
            ts(2)
        )
        .is_empty()
    );
    let ex = c.feed(Server, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello", ts(3));
    assert_eq!(ex.len(), 1);
    assert_eq!((resp(&ex[0]).status, ex[0].error.clone()), (101, None));
    assert!(c.is_not_http());
    assert!(c.feed(Client, b"GET / HTTP/1.1\r\n\r\n", ts(4)).is_empty());
    assert!(c.close(ts(5)).is_empty());
}

#[test]
fn connect_tunnel_ends_http() {
    let mut c = HttpConn::new(BodyLimits::default());
    c.feed(
        Client,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        ts(1),
    );
    c.feed(
        Client,
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
        ts(2),
    );
    let ex = c.feed(
        Server,
        b"HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x03\x00\x7a",
        ts(3),
    );
    assert_eq!(
        (req(&ex[0]).target.as_str(), resp(&ex[0]).status),
        ("example.com:443", 200)
    );
    assert!(c.is_not_http());
}

#[test]
fn refused_upgrade_resumes_http() {
    let ex = run(
        &[
            (Client, b"GET /a HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
            (Server, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"),
        ],
        false,
    );
    let got: Vec<_> = ex
        .iter()
        .map(|e| (req(e).target.as_str(), resp(e).body.text.as_str()))
        .collect();
    assert_eq!(got, [("/a", "a"), ("/b", "b")]);
}

#[test]
fn not_http_is_detected_from_first_bytes() {
    let tls = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    let cases: [(Side, &[u8]); 6] = [
        (Client, tls),
        (Client, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        (Client, b"SSH-2.0-OpenSSH_9.6\r\n"),
        (Client, b"\x00\x00\x00\x10binary-rpc\xff\xfe"),
        (Client, b"GET / HTTP/1.1 extra\r\n\r\n"),
        (Server, b"220 mail.example.com ESMTP\r\n"),
    ];
    for (side, bytes) in cases {
        let mut c = HttpConn::new(BodyLimits::default());
        assert!(c.feed(side, bytes, ts(1)).is_empty());
        assert!(c.is_not_http(), "{:?}", String::from_utf8_lossy(bytes));
        assert!(c.close(ts(2)).is_empty(), "no exchange from non-HTTP bytes");
    }
    // Decided on the first byte that cannot be HTTP, without waiting for a whole line.
    let mut c = HttpConn::new(BodyLimits::default());
    c.feed(Client, b"\x16", ts(1));
    assert!(c.is_not_http());
}

#[test]
fn looks_like_request_guesses_the_client() {
    assert!(looks_like_request(b"GET / HTTP/1.1\r\n"));
    assert!(looks_like_request(b"POST "));
    assert!(looks_like_request(b"PROPFIND /dav HTTP/1.1\r\n"));
    assert!(!looks_like_request(b"GET"));
    assert!(!looks_like_request(b"HTTP/1.1 200 OK\r\n"));
    assert!(!looks_like_request(b"\x16\x03\x01"));
    assert!(!looks_like_request(b"PRI * HTTP/2.0\r\n"));
    assert!(!looks_like_request(b""));
}

#[test]
fn close_before_response_returns_request_with_error() {
    let ex = run(
        &[(
            Client,
            b"GET /slow HTTP/1.1\r\n\r\nGET /slower HTTP/1.1\r\n\r\n",
        )],
        true,
    );
    assert_eq!(ex.len(), 2);
    for e in &ex {
        assert!(e.response.is_none());
        assert_eq!(
            e.error.as_deref(),
            Some("connection closed before the response")
        );
        assert_eq!(e.end, ts(1000));
    }
}

#[test]
fn too_many_in_flight_gives_up_cleanly() {
    let many = "GET / HTTP/1.1\r\n\r\n".repeat(MAX_PENDING + 5);
    let mut c = HttpConn::new(BodyLimits::default());
    let ex = c.feed(Client, many.as_bytes(), ts(1));
    assert_eq!(ex.len(), MAX_PENDING);
    assert!(
        ex.iter()
            .all(|e| e.error.as_deref().unwrap_or("").contains("parsing stopped"))
    );
    assert!(c.is_not_http());
}

#[test]
fn many_headers_and_oversized_heads() {
    let mut big = String::from("GET /many HTTP/1.1\r\n");
    for i in 0..2000 {
        big.push_str(&format!("X-{i}: v\r\n"));
    }
    big.push_str("\r\n");
    let ex = run(
        &[
            (Client, big.as_bytes()),
            (Server, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ],
        false,
    );
    assert_eq!(req(&ex[0]).headers.len(), 2000);
    // Over 64 KiB: an error exchange, and the next request still parses.
    let mut huge = String::from("GET /huge HTTP/1.1\r\n");
    huge.push_str(&format!("X-Big: {}\r\n\r\n", "a".repeat(70_000)));
    huge.push_str("GET /next HTTP/1.1\r\n\r\n");
    let ex = run(
        &[
            (Client, b"GET /first HTTP/1.1\r\n\r\n"),
            (Server, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            (Client, huge.as_bytes()),
            (Server, b"HTTP/1.1 431 Too Large\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ],
        false,
    );
    assert_eq!(ex.len(), 3);
    assert!(ex[1].request.is_none());
    assert!(
        ex[1]
            .error
            .as_deref()
            .unwrap()
            .contains("larger than 65536")
    );
    assert_eq!(resp(&ex[1]).status, 431);
    assert_eq!(req(&ex[2]).target, "/next");
}
