//! Frame-level tests of [`H2Conn`]: a conversation built frame by frame, fed whole or in
//! pieces, checked as the exchanges a user would read.
use super::frame::*;
use super::*;
use crate::events::{BodyEncoding, Timestamp};
use crate::http::{BodyLimits, Exchange, Side};

pub(super) fn ts(n: u64) -> Timestamp {
    Timestamp(1_700_000_000_000_000_000 + n)
}

pub(super) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    v.push(kind);
    v.push(flags);
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// One side's HPACK encoder and frame writer.
pub(super) struct Peer {
    pub enc: loona_hpack::Encoder<'static>,
    pub bytes: Vec<u8>,
}

impl Peer {
    pub fn client() -> Peer {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0xff, 0xff]));
        Peer {
            enc: loona_hpack::Encoder::new(),
            bytes,
        }
    }

    pub fn server() -> Peer {
        Peer {
            enc: loona_hpack::Encoder::new(),
            bytes: frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]),
        }
    }

    pub fn block(&mut self, fields: &[(&str, &str)]) -> Vec<u8> {
        self.enc
            .encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    pub fn headers(&mut self, stream: u32, fields: &[(&str, &str)], end: bool) -> &mut Self {
        let b = self.block(fields);
        let flags = END_HEADERS | if end { END_STREAM } else { 0 };
        self.bytes.extend(frame(HEADERS, flags, stream, &b));
        self
    }

    pub fn data(&mut self, stream: u32, d: &[u8], end: bool) -> &mut Self {
        let flags = if end { END_STREAM } else { 0 };
        self.bytes.extend(frame(DATA, flags, stream, d));
        self
    }

    pub fn raw(&mut self, f: Vec<u8>) -> &mut Self {
        self.bytes.extend(f);
        self
    }

    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }
}

pub(super) fn conn() -> H2Conn {
    H2Conn::new(BodyLimits {
        max_body_bytes: 1 << 20,
        ..BodyLimits::default()
    })
}

pub(super) const GET: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "api.test"),
    (":path", "/v1/items?x=1"),
    ("authorization", "Bearer abc"),
];

pub(super) fn ok(ctype: &str) -> Vec<(&str, &str)> {
    vec![(":status", "200"), ("content-type", ctype)]
}

fn text(e: &Exchange) -> (&str, &str, u16, &str) {
    let rq = e.request.as_ref().unwrap();
    let rs = e.response.as_ref().unwrap();
    (&rq.method, &rq.target, rs.status, &rs.body.text)
}

#[test]
fn get_with_body_in_two_data_frames() {
    let mut c = conn();
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    let mut out = c.feed(Side::Client, &cl.headers(1, GET, true).take(), ts(1));
    out.extend(c.feed(Side::Server, &sv.take(), ts(2)));
    sv.headers(1, &ok("application/json"), false)
        .data(1, b"{\"items\":", false)
        .data(1, b"[]}", true);
    let bytes = sv.take();
    out.extend(c.feed(Side::Server, &bytes, ts(3)));
    assert_eq!(out.len(), 1);
    let e = &out[0];
    assert_eq!(text(e), ("GET", "/v1/items?x=1", 200, "{\"items\":[]}"));
    let rq = e.request.as_ref().unwrap();
    assert_eq!(rq.version, "HTTP/2");
    assert_eq!(rq.headers[2], (":authority".into(), "api.test".into()));
    assert_eq!(rq.headers[4], ("authorization".into(), "Bearer abc".into()));
    assert_eq!(e.response.as_ref().unwrap().headers[0].0, ":status");
    assert_eq!(e.error, None);
    assert_eq!(
        (e.start, e.request_sent, e.response_start, e.end),
        (ts(1), Some(ts(1)), Some(ts(3)), ts(3))
    );
    // the response's frames: everything after the server's SETTINGS
    assert_eq!(e.response_wire_bytes, bytes.len() as u64);
    assert_eq!(c.open_streams(), 0);
}

#[test]
fn any_split_of_the_bytes_gives_the_same_exchanges() {
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    cl.headers(1, GET, true)
        .headers(3, GET, false)
        .data(3, b"posted", true);
    sv.headers(3, &ok("text/plain"), false)
        .headers(1, &ok("text/plain"), false)
        .data(1, b"one", true)
        .data(3, b"three", true);
    let (cb, sb) = (cl.take(), sv.take());
    let whole = {
        let mut c = conn();
        let mut o = c.feed(Side::Client, &cb, ts(1));
        o.extend(c.feed(Side::Server, &sb, ts(1)));
        o
    };
    assert_eq!(whole.len(), 2);
    for step in [1, 2, 5, 9, 10, 31] {
        let mut c = conn();
        let mut o = Vec::new();
        for p in cb.chunks(step) {
            o.extend(c.feed(Side::Client, p, ts(1)));
        }
        for p in sb.chunks(step) {
            o.extend(c.feed(Side::Server, p, ts(1)));
        }
        assert_eq!(o, whole, "feeds of {step} bytes");
    }
}

#[test]
fn continuation_frames_make_one_header_block() {
    let mut c = conn();
    let mut cl = Peer::client();
    let big = "v".repeat(100);
    let mut fields = GET.to_vec();
    fields.push(("x-big", &big));
    let b = cl.block(&fields);
    let (a, rest) = b.split_at(7);
    let (m, z) = rest.split_at(50);
    cl.raw(frame(HEADERS, END_STREAM, 1, a))
        .raw(frame(CONTINUATION, 0, 1, m))
        .raw(frame(CONTINUATION, END_HEADERS, 1, z));
    let mut sv = Peer::server();
    sv.headers(1, &[(":status", "204")], true);
    let mut out = c.feed(Side::Client, &cl.take(), ts(1));
    out.extend(c.feed(Side::Server, &sv.take(), ts(2)));
    assert_eq!(out.len(), 1, "{out:?}");
    let rq = out[0].request.as_ref().unwrap();
    assert_eq!(rq.headers.last().unwrap().1, big);
    assert_eq!(out[0].response.as_ref().unwrap().status, 204);
}

#[test]
fn header_block_interrupted_is_reported_not_guessed() {
    let mut c = conn();
    let mut cl = Peer::client();
    let b = cl.block(GET);
    cl.raw(frame(HEADERS, END_STREAM, 1, &b[..4]))
        .raw(frame(PING, 0, 0, &[0; 8]))
        .headers(3, GET, true);
    let mut sv = Peer::server();
    sv.headers(3, &ok("text/plain"), false).data(3, b"x", true);
    let mut out = c.feed(Side::Client, &cl.take(), ts(1));
    out.extend(c.feed(Side::Server, &sv.take(), ts(2)));
    out.extend(c.close(ts(3)));
    let s3 = out.iter().find(|e| e.response.is_some()).unwrap();
    // stream 3's block refers to entries stream 1's lost block added: undecodable
    let rq = s3.request.as_ref().unwrap();
    assert!(
        rq.headers
            .iter()
            .all(|h| GET.contains(&(h.0.as_str(), h.1.as_str())))
    );
    let s1 = out.iter().find(|e| e.response.is_none()).unwrap();
    assert!(s1.error.as_ref().unwrap().contains("interrupted"), "{s1:?}");
}

#[test]
fn padded_data_and_headers_with_priority() {
    let mut c = conn();
    let mut cl = Peer::client();
    let b = cl.block(GET);
    // PADDED | PRIORITY: pad length 3, 5 bytes of priority, block, 3 bytes of padding
    let mut p = vec![3, 0, 0, 0, 0, 16];
    p.extend_from_slice(&b);
    p.extend_from_slice(&[0; 3]);
    cl.raw(frame(HEADERS, END_HEADERS | PADDED | PRIORITY_FLAG, 1, &p));
    cl.raw(frame(DATA, PADDED | END_STREAM, 1, b"\x04body\0\0\0\0"));
    let mut sv = Peer::server();
    sv.headers(1, &ok("text/plain"), false)
        .raw(frame(DATA, PADDED, 1, b"\x00abc"))
        .raw(frame(DATA, PADDED | END_STREAM, 1, b"\x02de\0\0"));
    let mut out = c.feed(Side::Client, &cl.take(), ts(1));
    let sb = sv.take();
    for piece in sb.chunks(3) {
        out.extend(c.feed(Side::Server, piece, ts(2)));
    }
    assert_eq!(out.len(), 1);
    assert_eq!(text(&out[0]), ("GET", "/v1/items?x=1", 200, "abcde"));
    assert_eq!(out[0].request.as_ref().unwrap().body.text, "body");
    assert_eq!(out[0].error, None);
}

#[test]
fn reset_mid_body_keeps_what_came_and_says_why() {
    let mut c = conn();
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    c.feed(Side::Client, &cl.headers(1, GET, true).take(), ts(1));
    let bytes = sv
        .headers(1, &ok("text/plain"), false)
        .data(1, b"partial", false)
        .take();
    assert!(c.feed(Side::Server, &bytes, ts(2)).is_empty());
    let rst = frame(RST_STREAM, 0, 1, &8u32.to_be_bytes());
    let out = c.feed(Side::Client, &rst, ts(3));
    assert_eq!(out.len(), 1);
    let e = &out[0];
    assert_eq!(e.response.as_ref().unwrap().body.text, "partial");
    let err = e.error.as_deref().unwrap();
    assert!(err.contains("reset by the client (CANCEL)"), "{err}");
    assert_eq!(e.end, ts(3));
    // late frames of the reset stream open nothing
    assert!(
        c.feed(Side::Server, &frame(DATA, END_STREAM, 1, b"late"), ts(4))
            .is_empty()
    );
    assert_eq!(c.open_streams(), 0);
}

#[test]
fn rst_no_error_after_a_complete_response_is_not_an_error() {
    let mut c = conn();
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    c.feed(
        Side::Client,
        &cl.headers(1, GET, false).data(1, b"up", false).take(),
        ts(1),
    );
    sv.headers(1, &ok("text/plain"), false)
        .data(1, b"done", true)
        .raw(frame(RST_STREAM, 0, 1, &[0; 4]));
    let out = c.feed(Side::Server, &sv.take(), ts(2));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].error, None);
}

#[test]
fn table_size_change_mid_connection() {
    let mut c = conn();
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    let mut out = c.feed(Side::Client, &cl.headers(1, GET, true).take(), ts(1));
    // the server asks for no dynamic table; the client's next block says so first
    sv.raw(frame(SETTINGS, 0, 0, &[0, 1, 0, 0, 0, 0]));
    sv.headers(1, &[(":status", "200")], true);
    out.extend(c.feed(Side::Server, &sv.take(), ts(2)));
    cl.enc.set_max_table_size(0);
    let mut b = vec![0x20];
    b.extend(cl.block(&[(":method", "GET"), (":path", "/2"), ("x-new", "n")]));
    out.extend(c.feed(
        Side::Client,
        &frame(HEADERS, END_HEADERS | END_STREAM, 3, &b),
        ts(3),
    ));
    out.extend(c.feed(
        Side::Server,
        &sv.headers(3, &[(":status", "200")], true).take(),
        ts(4),
    ));
    assert_eq!(out.len(), 2);
    let rq = out[1].request.as_ref().unwrap();
    assert_eq!((rq.target.as_str(), out[1].error.as_deref()), ("/2", None));
    assert_eq!(rq.headers[2], ("x-new".into(), "n".into()));
}

#[test]
fn gzip_body_and_binary_body() {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"decoded text").unwrap();
    let z = gz.finish().unwrap();
    let mut c = conn();
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    c.feed(
        Side::Client,
        &cl.headers(1, GET, true).headers(3, GET, true).take(),
        ts(1),
    );
    let mut h = ok("text/plain");
    h.push(("content-encoding", "gzip"));
    sv.headers(1, &h, false).data(1, &z, true);
    sv.headers(3, &ok("application/octet-stream"), false)
        .data(3, &[0xff, 0, 1], true);
    let out = c.feed(Side::Server, &sv.take(), ts(2));
    let b = &out[0].response.as_ref().unwrap().body;
    assert_eq!(
        (b.text.as_str(), b.content_encoding.as_deref()),
        ("decoded text", Some("gzip"))
    );
    assert_eq!(b.size, z.len() as u64);
    let b = &out[1].response.as_ref().unwrap().body;
    assert_eq!(
        (b.encoding, b.text.as_str()),
        (BodyEncoding::Base64, "/wAB")
    );
}

#[test]
fn body_cap_counts_everything() {
    let mut c = H2Conn::new(BodyLimits {
        max_body_bytes: 4,
        ..BodyLimits::default()
    });
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    c.feed(Side::Client, &cl.headers(1, GET, true).take(), ts(1));
    sv.headers(1, &ok("text/plain"), false)
        .data(1, b"abcdef", false)
        .data(1, b"gh", true);
    let out = c.feed(Side::Server, &sv.take(), ts(2));
    let b = &out[0].response.as_ref().unwrap().body;
    assert_eq!(
        (b.size, b.captured, b.truncated, b.text.as_str()),
        (8, 4, true, "abcd")
    );
}

#[test]
fn informational_and_trailers() {
    let mut c = conn();
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    cl.headers(1, GET, false)
        .data(1, b"x", false)
        .headers(1, &[("x-req-trailer", "t")], true);
    c.feed(Side::Client, &cl.take(), ts(1));
    sv.headers(1, &[(":status", "103"), ("link", "</a>")], false)
        .headers(1, &ok("text/plain"), false)
        .data(1, b"y", false)
        .headers(1, &[("x-checksum", "abc")], true);
    let out = c.feed(Side::Server, &sv.take(), ts(2));
    let rs = out[0].response.as_ref().unwrap();
    assert_eq!((rs.status, rs.informational.as_slice()), (200, &[103][..]));
    assert_eq!(rs.trailers, vec![("x-checksum".into(), "abc".into())]);
    let rq = out[0].request.as_ref().unwrap();
    assert_eq!(rq.trailers, vec![("x-req-trailer".into(), "t".into())]);
}

#[test]
fn goaway_ends_streams_it_did_not_process() {
    let mut c = conn();
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    c.feed(
        Side::Client,
        &cl.headers(1, GET, true).headers(3, GET, true).take(),
        ts(1),
    );
    let mut p = 1u32.to_be_bytes().to_vec();
    p.extend(7u32.to_be_bytes()); // REFUSED_STREAM... any code
    sv.raw(frame(GOAWAY, 0, 0, &p));
    let out = c.feed(Side::Server, &sv.take(), ts(2));
    assert_eq!(out.len(), 1);
    assert!(
        out[0]
            .error
            .as_ref()
            .unwrap()
            .contains("not processed: the server sent GOAWAY")
    );
    assert_eq!(out[0].request.as_ref().unwrap().method, "GET");
    let out = c.feed(
        Side::Server,
        &sv.headers(1, &[(":status", "200")], true).take(),
        ts(3),
    );
    assert_eq!((out.len(), out[0].error.as_deref()), (1, None));
}

#[test]
fn close_before_the_response() {
    let mut c = conn();
    let mut cl = Peer::client();
    c.feed(Side::Client, &cl.headers(1, GET, true).take(), ts(1));
    let out = c.close(ts(5));
    assert_eq!(out.len(), 1);
    assert!(out[0].response.is_none());
    assert_eq!(
        out[0].error.as_deref(),
        Some("connection closed before the response")
    );
    assert_eq!(out[0].end, ts(5));
}

#[test]
fn streams_tracked_are_bounded() {
    let mut c = conn();
    let mut cl = Peer::client();
    for i in 0..(MAX_STREAMS as u32 + 10) {
        cl.headers(2 * i + 1, GET, true);
    }
    let out = c.feed(Side::Client, &cl.take(), ts(1));
    assert_eq!(out.len(), 10);
    assert_eq!(c.open_streams(), MAX_STREAMS);
    assert!(out[0].error.as_ref().unwrap().contains("streams in flight"));
}

#[test]
fn wrong_preface_is_not_http2() {
    let mut c = conn();
    c.feed(Side::Client, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", ts(1));
    assert!(c.is_not_http2());
    // frames that looked right, then nonsense before a few parsed
    let mut c = conn();
    let mut b = frame(SETTINGS, 0, 0, &[]);
    b.extend(frame(PING, 0, 3, &[0; 8])); // PING on a stream: invalid
    c.feed(Side::Server, &b, ts(1));
    assert!(c.is_not_http2());
}

#[test]
fn server_push_is_its_own_exchange() {
    let mut c = conn();
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    c.feed(Side::Client, &cl.headers(1, GET, true).take(), ts(1));
    let mut p = 2u32.to_be_bytes().to_vec();
    p.extend(sv.block(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "api.test"),
        (":path", "/style.css"),
    ]));
    sv.raw(frame(PUSH_PROMISE, END_HEADERS, 1, &p))
        .headers(1, &ok("text/html"), false)
        .data(1, b"<html>", true)
        .headers(2, &ok("text/css"), false)
        .data(2, b"body{}", true);
    let out = c.feed(Side::Server, &sv.take(), ts(2));
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(text(&out[0]), ("GET", "/v1/items?x=1", 200, "<html>"));
    assert_eq!(text(&out[1]), ("GET", "/style.css", 200, "body{}"));
    assert_eq!(out[1].error, None);
}
