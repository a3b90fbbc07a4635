//! [`H2Conn`] under hostile header blocks: the decoded-bytes budget per block and per
//! stream, bounded interim responses, and a table size update above the peer's limit
//! ending the connection's decoding (reported, not obeyed).
use super::frame::*;
use super::hpack::field_size;
use super::hpack::tests::bomb;
use super::tests::{GET, Peer, frame, ok, ts};
use super::*;
use crate::events::Body;
use crate::http::{BodyLimits, Exchange, HttpRequest, Side};

fn conn_with(max_header_bytes: usize) -> H2Conn {
    H2Conn::new(BodyLimits {
        max_header_bytes,
        ..BodyLimits::default()
    })
}

fn kept(h: &[(String, String)]) -> usize {
    h.iter().map(|(n, v)| field_size(n, v)).sum()
}

#[test]
fn the_header_budget_spans_a_streams_blocks() {
    let mut c = conn_with(1000);
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    let big = "a".repeat(400);
    // headers (about 600 bytes), a DATA frame, then trailers of 800: they do not fit
    let mut fields = GET.to_vec();
    fields.push(("x-big", &big));
    cl.headers(1, &fields, false).data(1, b"x", false).headers(
        1,
        &[("x-t1", &big), ("x-t2", &big)],
        true,
    );
    c.feed(Side::Client, &cl.take(), ts(1));
    let out = c.feed(
        Side::Server,
        &sv.headers(1, &ok("text/plain"), true).take(),
        ts(2),
    );
    let rq = out[0].request.as_ref().unwrap();
    assert_eq!(rq.target, "/v1/items?x=1");
    assert!(rq.headers_truncated);
    assert!(kept(&rq.headers) + kept(&rq.trailers) <= 1000);
    assert!(rq.trailers.is_empty(), "{:?}", rq.trailers);
    let err = out[0].error.as_deref().unwrap();
    assert!(err.contains("not kept"), "{err}");
    // the response had its own room in the stream's budget, and is not marked
    assert!(!out[0].response.as_ref().unwrap().headers_truncated);
    // the next stream starts with a whole budget
    cl.headers(3, GET, true);
    c.feed(Side::Client, &cl.take(), ts(3));
    let out = c.feed(
        Side::Server,
        &sv.headers(3, &ok("text/plain"), true).take(),
        ts(4),
    );
    assert!(!out[0].request.as_ref().unwrap().headers_truncated);
    assert_eq!(out[0].error, None);
}

#[test]
fn the_reference_bomb_within_the_limit_is_cut_and_marked() {
    let mut c = conn_with(256 * 1024);
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    // the server allows a 64 KiB table: the update is legal, the amplification is not
    sv.raw(frame(SETTINGS, 0, 0, &[0, 1, 0, 1, 0, 0]));
    c.feed(Side::Server, &sv.take(), ts(1));
    c.feed(Side::Client, &cl.take(), ts(1));
    let mut block = sv_block_prefix();
    block.extend(bomb(60_000, Some(65536), 8000));
    c.feed(
        Side::Client,
        &frame(HEADERS, END_HEADERS | END_STREAM, 1, &block),
        ts(2),
    );
    let out = c.feed(
        Side::Server,
        &sv.headers(1, &ok("text/plain"), true).take(),
        ts(3),
    );
    let rq = out[0].request.as_ref().unwrap();
    assert_eq!((rq.method.as_str(), rq.target.as_str()), ("GET", "/"));
    assert!(rq.headers_truncated);
    assert!(kept(&rq.headers) <= 256 * 1024);
    assert_eq!(c.connection_error(), None);
}

/// `:method GET`, `:path /`, `:scheme http` from the static table.
fn sv_block_prefix() -> Vec<u8> {
    vec![0x82, 0x84, 0x86]
}

#[test]
fn a_size_update_above_settings_stops_the_connections_decoding() {
    let mut c = conn_with(256 * 1024);
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    c.feed(Side::Server, &sv.take(), ts(1));
    // stream 1 is in flight when stream 3 breaks the rule (no SETTINGS raised the 4096)
    c.feed(Side::Client, &cl.headers(1, GET, true).take(), ts(1));
    let mut block = sv_block_prefix();
    block.extend(bomb(60_000, Some(65536), 8000));
    let out = c.feed(
        Side::Client,
        &frame(HEADERS, END_HEADERS | END_STREAM, 3, &block),
        ts(2),
    );
    assert_eq!(out.len(), 2, "every open stream ends: {out:?}");
    for e in &out {
        let err = e.error.as_deref().unwrap();
        assert!(err.contains("decoding of the connection stopped"), "{err}");
        assert!(err.contains("above the 4096"), "{err}");
    }
    let three: &Exchange = &out[1];
    assert!(three.request.as_ref().unwrap().headers_truncated);
    assert!(c.connection_error().unwrap().contains("65536"));
    // nothing more of the connection is decoded (nor kept)
    assert!(
        c.feed(
            Side::Server,
            &sv.headers(1, &ok("text/plain"), true).take(),
            ts(3)
        )
        .is_empty()
    );
    assert!(
        c.feed(Side::Client, &cl.headers(5, GET, true).take(), ts(4))
            .is_empty()
    );
    assert!(c.gap(Side::Client, 10, ts(5)).is_empty());
    assert!(c.close(ts(6)).is_empty());
    assert_eq!(c.open_streams(), 0);
}

#[test]
fn interim_responses_are_bounded() {
    let mut c = conn_with(256 * 1024);
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    c.feed(Side::Client, &cl.headers(1, GET, true).take(), ts(1));
    for _ in 0..40 {
        sv.headers(1, &[(":status", "103")], false);
    }
    sv.headers(1, &ok("text/plain"), true);
    let out = c.feed(Side::Server, &sv.take(), ts(2));
    let rs = out[0].response.as_ref().unwrap();
    assert_eq!((rs.status, rs.informational.len()), (200, 16));
    assert!(out[0].error.as_deref().unwrap().contains("interim"));
}

#[test]
fn h2c_http2_settings_header_sets_the_servers_limit() {
    let req = |settings: Option<&str>| HttpRequest {
        method: "GET".into(),
        target: "/".into(),
        version: "HTTP/1.1".into(),
        headers: settings
            .map(|s| vec![("HTTP2-Settings".to_string(), s.to_string())])
            .unwrap_or_default(),
        trailers: Vec::new(),
        body: Body::empty(),
        headers_truncated: false,
    };
    // SETTINGS_HEADER_TABLE_SIZE = 65536, base64url
    for (settings, ok_) in [(Some("AAEAAQAA"), true), (None, false)] {
        let mut c = H2Conn::upgraded(BodyLimits::default(), &req(settings), ts(1));
        let mut sv = Peer::server();
        let mut block = vec![0x3f, 0xe1, 0xff, 0x03]; // size update to 65536
        block.push(0x88); // :status 200
        sv.raw(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
        let out = c.feed(Side::Server, &sv.take(), ts(2));
        assert_eq!(out.len(), 1);
        assert_eq!(c.connection_error().is_none(), ok_, "{settings:?}: {out:?}");
        assert_eq!(out[0].error.is_none(), ok_, "{:?}", out[0].error);
    }
}
