//! Capture gaps, closes mid-message, hostile and random input.
use super::tests::{req, resp, run, ts};
use super::*;
use Side::{Client, Server};

#[test]
fn gap_mid_body_errors_and_the_next_exchange_parses() {
    let mut c = HttpConn::new(BodyLimits::default());
    c.feed(
        Client,
        b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123",
        ts(1),
    );
    assert!(c.gap(Client, 3, ts(2)).is_empty());
    c.feed(Client, b"789GET /b HTTP/1.1\r\n\r\n", ts(3));
    let ex = c.feed(Server, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb", ts(4));
    assert_eq!(ex.len(), 2);
    let b = &req(&ex[0]).body;
    assert_eq!(
        (b.size, b.captured, b.truncated, b.text.as_str()),
        (10, 4, true, "0123")
    );
    assert_eq!(ex[0].error.as_deref(), Some("3 bytes lost in capture"));
    assert_eq!(ex[0].request_wire_bytes, 40 + 10);
    assert_eq!(
        (
            req(&ex[1]).target.as_str(),
            resp(&ex[1]).body.text.as_str(),
            ex[1].error.clone()
        ),
        ("/b", "b", None)
    );
}

#[test]
fn gap_breaking_chunked_framing_resyncs_at_next_request() {
    let mut c = HttpConn::new(BodyLimits::default());
    c.feed(
        Client,
        b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        ts(1),
    );
    // Loses the rest of the chunk and the size line after it.
    c.gap(Client, 20, ts(2));
    c.feed(
        Client,
        b"xyz\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n",
        ts(3),
    );
    let ex = c.feed(Server, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nn", ts(4));
    assert_eq!(ex.len(), 2);
    assert_eq!(req(&ex[0]).body.text, "ab");
    assert!(
        req(&ex[0])
            .body
            .note
            .as_deref()
            .unwrap()
            .contains("incomplete")
    );
    assert_eq!(ex[0].error.as_deref(), Some("20 bytes lost in capture"));
    assert_eq!(
        (req(&ex[1]).target.as_str(), resp(&ex[1]).body.text.as_str()),
        ("/next", "n")
    );
}

#[test]
fn gap_swallowing_a_whole_request_keeps_pairing_aligned() {
    let mut c = HttpConn::new(BodyLimits::default());
    c.feed(Client, b"GET /1 HTTP/1.1\r\n\r\n", ts(1));
    c.gap(Client, 18, ts(2));
    c.feed(Client, b"GET /3 HTTP/1.1\r\n\r\n", ts(3));
    let rs = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2\
HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3";
    let ex = c.feed(Server, rs, ts(4));
    let got: Vec<_> = ex
        .iter()
        .map(|e| {
            (
                e.request.as_ref().map(|r| r.target.as_str()),
                resp(e).body.text.as_str(),
            )
        })
        .collect();
    assert_eq!(got, [(Some("/1"), "1"), (None, "2"), (Some("/3"), "3")]);
    assert!(
        ex[1]
            .error
            .as_deref()
            .unwrap()
            .contains("request lost in capture (18 bytes lost)")
    );
}

#[test]
fn server_gaps() {
    // Inside a known length: exact, next response fine.
    let mut c = HttpConn::new(BodyLimits::default());
    c.feed(
        Client,
        b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
        ts(1),
    );
    c.feed(
        Server,
        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nab",
        ts(2),
    );
    c.gap(Server, 2, ts(3));
    let ex = c.feed(
        Server,
        b"efHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
        ts(4),
    );
    assert_eq!(ex.len(), 2);
    assert_eq!(
        (resp(&ex[0]).body.size, ex[0].error.as_deref()),
        (6, Some("2 bytes lost in capture"))
    );
    assert_eq!(
        (resp(&ex[1]).body.text.as_str(), ex[1].error.clone()),
        ("z", None)
    );
    // Past the end of a body: the next response is lost, the one after pairs.
    let mut c = HttpConn::new(BodyLimits::default());
    c.feed(
        Client,
        b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n",
        ts(1),
    );
    c.feed(
        Server,
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab",
        ts(2),
    );
    let ex = c.gap(Server, 30, ts(3));
    assert_eq!(ex.len(), 2);
    assert!(ex[1].response.is_none() && ex[1].error.as_deref().unwrap().contains("response lost"));
    let ex = c.feed(
        Server,
        b"nt-Length: 1\r\n\r\n2HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3",
        ts(4),
    );
    assert_eq!(
        (req(&ex[0]).target.as_str(), resp(&ex[0]).body.text.as_str()),
        ("/3", "3")
    );
}

#[test]
fn close_mid_response_keeps_the_partial_response() {
    let mut c = HttpConn::new(BodyLimits::default());
    c.feed(Client, b"GET /big HTTP/1.1\r\n\r\n", ts(1));
    c.feed(
        Server,
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial",
        ts(2),
    );
    let ex = c.close(ts(3));
    assert_eq!(ex.len(), 1);
    let b = &resp(&ex[0]).body;
    assert_eq!((b.size, b.captured, b.text.as_str()), (7, 7, "partial"));
    assert!(b.note.as_deref().unwrap().contains("incomplete"));
    assert_eq!(
        ex[0].error.as_deref(),
        Some("connection closed before the response was complete")
    );
    assert_eq!(ex[0].end, ts(3));
}

#[test]
fn close_mid_request() {
    let ex = run(
        &[(Client, b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")],
        true,
    );
    assert_eq!(req(&ex[0]).body.text, "abc");
    assert!(
        ex[0]
            .error
            .as_deref()
            .unwrap()
            .contains("before the request was complete")
    );
    let ex = run(&[(Client, b"GET /a HTTP/1.1\r\nHost: ex")], true);
    assert!(ex[0].request.is_none());
    assert!(ex[0].error.as_deref().unwrap().contains("request head"));
}

#[test]
fn hostile_lengths_and_chunk_sizes() {
    // Absurd Content-Length: counted, never allocated.
    let ex = run(
        &[
            (Client, b"GET / HTTP/1.1\r\n\r\n"),
            (
                Server,
                b"HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999999\r\n\r\nabc",
            ),
        ],
        true,
    );
    assert_eq!((resp(&ex[0]).body.size, resp(&ex[0]).body.captured), (3, 3));
    // Invalid and overflowing lengths and chunk sizes: errors, no panic.
    for rs in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 184467440737095516160\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let ex = run(&[(Client, b"GET / HTTP/1.1\r\n\r\n"), (Server, rs)], true);
        assert_eq!(ex.len(), 1, "{}", String::from_utf8_lossy(rs));
        assert!(ex[0].error.is_some(), "{}", String::from_utf8_lossy(rs));
    }
}

#[test]
fn header_injection_does_not_split_headers() {
    let rq =
        b"GET / HTTP/1.1\r\nX-A: one\rX-Injected: yes\r\nX-B: two\x00three\r\nX-C: fine\r\n\r\n";
    let ex = run(
        &[
            (Client, rq),
            (Server, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ],
        true,
    );
    for e in &ex {
        if let Some(r) = &e.request {
            assert!(
                r.headers
                    .iter()
                    .all(|(n, v)| n != "X-Injected" && !v.contains('\0') && !v.contains('\r'))
            );
        }
    }
    assert!(ex.iter().all(|e| e.request.is_some() || e.error.is_some()));
}

/// Deterministic pseudo-random splits, gaps and junk over valid traffic: no panic,
/// bounded output, every exchange has a request, a response or an error.
#[test]
fn random_schedules_never_panic() {
    let client = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
PUT /c HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello";
    let server = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 100 Continue\r\n\r\n\
HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nT: 1\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
    let mut x = 0x2545_f491_u64;
    let mut rnd = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    for round in 0..300 {
        let mut c = HttpConn::new(BodyLimits {
            max_body_bytes: 1 + rnd(64),
            ..BodyLimits::default()
        });
        let (mut ci, mut si) = (0, 0);
        let mut out = Vec::new();
        while ci < client.len() || si < server.len() {
            let t = ts(ci as u64 + si as u64);
            match rnd(10) {
                0 => out.extend(c.gap(
                    if rnd(2) == 0 { Client } else { Server },
                    1 + rnd(30) as u64,
                    t,
                )),
                1 => out.extend(c.feed(Client, &[rnd(256) as u8; 3], t)),
                2..=5 if ci < client.len() => {
                    let n = (1 + rnd(40)).min(client.len() - ci);
                    out.extend(c.feed(Client, &client[ci..ci + n], t));
                    ci += n;
                }
                _ if si < server.len() => {
                    let n = (1 + rnd(40)).min(server.len() - si);
                    out.extend(c.feed(Server, &server[si..si + n], t));
                    si += n;
                }
                _ => ci = client.len(),
            }
        }
        out.extend(c.close(ts(10_000)));
        assert!(out.len() <= 16, "round {round}: {}", out.len());
        for e in &out {
            assert!(
                e.request.is_some() || e.response.is_some() || e.error.is_some(),
                "round {round}: {e:?}"
            );
            for b in e
                .request
                .iter()
                .map(|r| &r.body)
                .chain(e.response.iter().map(|r| &r.body))
            {
                assert!(b.captured <= b.size && b.truncated == (b.size > b.captured));
            }
        }
    }
}

/// Feeds each side whole and in `pieces` (client first, then server): same exchanges.
pub(super) fn assert_split_invariant(client: &[&[u8]], server: &[&[u8]]) {
    let run = |client: &[&[u8]], server: &[&[u8]]| {
        let mut c = HttpConn::new(BodyLimits::default());
        let mut out = Vec::new();
        for d in client {
            out.extend(c.feed(Client, d, ts(1)));
        }
        for d in server {
            out.extend(c.feed(Server, d, ts(1)));
        }
        let not_http = c.is_not_http();
        out.extend(c.close(ts(1)));
        (out, not_http)
    };
    let (cw, sw) = (client.concat(), server.concat());
    assert_eq!(run(client, server), run(&[&cw], &[&sw]));
}

/// Fuzzer find: a refused CONNECT whose response head was malformed released the held
/// client bytes only at the end of the feed, so pairing depended on the feed sizes.
#[test]
fn fuzz_held_bytes_released_before_the_next_response() {
    assert_split_invariant(
        &[
            b"CONNECT h:443 HTTP/1.1\r\n\r\n",
            b"\x16\x03",
            b"\x01",
            b"\x00\x00\x00\x001 HTTP/\ngth: ",
            b":",
            b"\n\r\r\n\r\n\x16\x03th: :\n\r\r\n\r\n\x16\x03\x16\x03th:",
            b" :",
            b"\n",
            b"ET /1 HTTP/1.1\nHE",
            b"A",
            b"/1.1\r\n\r\nength: :\n\r\r\n\r\n\x16\x03th",
            b": ",
            b":",
        ],
        &[
            b"HTTP/1.1 407 Auth\r\nCoContHEAD enth: \x8a",
            b"\x83G",
            b"\r\r\n\r\n\x16\x03HTTP/1.1 407 ContHEAD ength: \x8a",
            b"\x83G",
            b"\n\r\r\n\n\x16\x03",
        ],
    );
}
