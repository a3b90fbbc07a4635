//! [`H2Conn`] joined mid-way and with bytes lost in capture: what can be decoded is,
//! the rest is said to be missing, nothing is wrong.
use super::frame::*;
use super::tests::{GET, Peer, conn, frame, ok, ts};
use crate::http::{Exchange, Side};

/// A conversation of `n` requests on streams 1, 3, 5, ...: per stream, the client's and
/// the server's bytes, and the true request headers.
#[allow(clippy::type_complexity)]
fn conversation(n: u32) -> (Vec<(Vec<u8>, Vec<u8>)>, Vec<Vec<(String, String)>>) {
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    let mut chunks = vec![(cl.take(), sv.take())];
    let mut truth = vec![Vec::new()];
    for i in 0..n {
        let id = 2 * i + 1;
        let path = format!("/items/{i}");
        let rid = format!("r{}", i % 3);
        let fields = [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "api.test"),
            (":path", path.as_str()),
            ("x-request-id", rid.as_str()),
        ];
        cl.headers(id, &fields, true);
        sv.headers(id, &ok("text/plain"), false)
            .data(id, path.as_bytes(), true);
        chunks.push((cl.take(), sv.take()));
        truth.push(
            fields
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        );
    }
    (chunks, truth)
}

fn check_never_wrong(out: &[Exchange], truth: &[Vec<(String, String)>]) {
    for e in out {
        let rs = e.response.as_ref().expect("response");
        let path = String::from_utf8(rs.body.text.clone().into_bytes()).unwrap();
        let i: usize = path.trim_start_matches("/items/").parse().unwrap();
        let want = &truth[i + 1];
        let rq = e.request.as_ref().expect("request");
        assert!(!e.request_not_captured, "{e:?}");
        for h in &rq.headers {
            assert!(want.contains(h), "{h:?} is not among {want:?}");
        }
        if rq.headers.len() < want.len() {
            let err = e.error.as_deref().unwrap_or_default();
            assert!(err.contains("could not be decoded"), "{e:?}");
            assert!(err.contains("joined mid-way"), "{e:?}");
        }
    }
}

#[test]
fn joined_at_any_stream_decodes_what_it_can_and_never_guesses() {
    let (chunks, truth) = conversation(12);
    let mut full = 0;
    for start in 1..chunks.len() {
        let mut c = conn();
        let mut out = Vec::new();
        for (cb, sb) in &chunks[start..] {
            out.extend(c.feed(Side::Client, cb, ts(1)));
            out.extend(c.feed(Side::Server, sb, ts(2)));
        }
        assert!(!c.is_not_http2(), "start {start}");
        assert_eq!(out.len(), chunks.len() - start, "start {start}");
        check_never_wrong(&out, &truth);
        full += out.iter().filter(|e| e.error.is_none()).count();
    }
    // joined before the one insertion the encoder makes (x-request-id), all is decoded
    assert!(full >= chunks.len() - 1, "{full}");
}

#[test]
fn joined_inside_a_frame_waits_for_the_next_frame() {
    let (chunks, truth) = conversation(4);
    let mut c = conn();
    let mut out = Vec::new();
    // the server side starts 3 bytes into stream 3's response
    out.extend(c.feed(Side::Client, &chunks[2].0, ts(1)));
    out.extend(c.feed(Side::Server, &chunks[2].1[3..], ts(1)));
    for (cb, sb) in &chunks[3..] {
        out.extend(c.feed(Side::Client, cb, ts(1)));
        out.extend(c.feed(Side::Server, sb, ts(2)));
    }
    out.extend(c.close(ts(3)));
    let (done, cut): (Vec<Exchange>, Vec<Exchange>) =
        out.into_iter().partition(|e| e.response.is_some());
    assert_eq!(done.len(), 2, "{done:?}");
    check_never_wrong(&done, &truth);
    // stream 3, whose response began before the server side was in step
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0].request.as_ref().unwrap().target, "/items/1");
    assert!(
        cut[0]
            .error
            .as_ref()
            .unwrap()
            .contains("closed before the response")
    );
}

#[test]
fn stream_begun_before_the_capture_says_so() {
    let mut c = conn();
    let mut sv = Peer::server();
    sv.take();
    // only the tail of stream 5's response: a DATA frame
    let out = c.feed(Side::Server, &frame(DATA, END_STREAM, 5, b"tail"), ts(1));
    assert_eq!(out.len(), 1);
    let e = &out[0];
    assert!(e.request.is_none());
    assert_eq!(e.response.as_ref().unwrap().body.text, "tail");
    let err = e.error.as_deref().unwrap();
    assert!(err.contains("began before the capture"), "{err}");
    assert!(err.contains("status not seen"), "{err}");
    assert!(e.request_not_captured);
}

#[test]
fn stream_joined_after_its_request_headers_is_flagged_not_captured() {
    let mut c = conn();
    let mut sv = Peer::server();
    sv.take();
    // the tail of stream 7's request body, then its whole response
    let mut out = c.feed(
        Side::Client,
        &frame(DATA, END_STREAM, 7, b"body-tail"),
        ts(1),
    );
    sv.headers(
        7,
        &[(":status", "200"), ("content-type", "text/plain")],
        false,
    );
    sv.data(7, b"warm", true);
    out.extend(c.feed(Side::Server, &sv.take(), ts(2)));
    assert_eq!(out.len(), 1, "{out:?}");
    let e = &out[0];
    assert!(e.request_not_captured, "{e:?}");
    assert_eq!(e.request.as_ref().map(|r| r.target.as_str()), Some(""));
    assert_eq!(e.response.as_ref().unwrap().status, 200);
    assert_eq!(e.response.as_ref().unwrap().body.text, "warm");
}

#[test]
fn gap_inside_data_is_counted_in_the_body() {
    let mut c = conn();
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    c.feed(
        Side::Client,
        &cl.headers(1, GET, true).headers(3, GET, true).take(),
        ts(1),
    );
    sv.headers(1, &ok("text/plain"), false)
        .data(1, b"0123456789", true)
        .headers(3, &ok("text/plain"), false)
        .data(3, b"fine", true);
    let b = sv.take();
    let at = b.windows(4).position(|w| w == b"0123").unwrap();
    let mut out = c.feed(Side::Server, &b[..at + 3], ts(2));
    out.extend(c.gap(Side::Server, 4, ts(3)));
    out.extend(c.feed(Side::Server, &b[at + 7..], ts(4)));
    assert_eq!(out.len(), 2);
    let body = &out[0].response.as_ref().unwrap().body;
    assert_eq!(
        (body.size, body.captured, body.text.as_str()),
        (10, 3, "012")
    );
    assert!(out[0].error.as_ref().unwrap().contains("4 bytes lost"));
    assert_eq!(out[1].response.as_ref().unwrap().body.text, "fine");
    assert_eq!(out[1].error, None);
}

#[test]
fn gap_across_frames_resynchronises_and_resets_hpack() {
    let mut c = conn();
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    let mut fields = GET.to_vec();
    fields.push(("x-new", "1"));
    let first = cl.headers(1, &fields, true).take();
    out_ok(c.feed(Side::Client, &first, ts(1)));
    // stream 3's request is lost whole; stream 5 reuses x-new from the table
    let lost = cl.headers(3, &fields, true).take();
    let later = cl.headers(5, &fields, true).take();
    out_ok(c.gap(Side::Client, lost.len() as u64, ts(2)));
    out_ok(c.feed(Side::Client, &later, ts(3)));
    sv.headers(1, &[(":status", "200")], true)
        .headers(5, &[(":status", "200")], true);
    let out = c.feed(Side::Server, &sv.take(), ts(4));
    assert_eq!(out.len(), 2);
    let rq = out[1].request.as_ref().unwrap();
    assert_eq!(rq.target, "/v1/items?x=1");
    assert!(!rq.headers.iter().any(|h| h.0 == "x-new"));
    assert!(
        out[1]
            .error
            .as_ref()
            .unwrap()
            .contains("could not be decoded")
    );
}

fn out_ok(v: Vec<Exchange>) {
    assert!(v.is_empty(), "{v:?}");
}

#[test]
fn grpc_call_with_trailers_and_messages() {
    let mut c = conn();
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    let req = [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "localhost:50051"),
        (":path", "/helloworld.Greeter/SayHello"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ];
    cl.headers(1, &req, false)
        .data(1, b"\0\0\0\0\x07\x0a\x05world", true);
    c.feed(Side::Client, &cl.take(), ts(1));
    sv.headers(1, &ok("application/grpc"), false)
        .data(1, b"\0\0\0\0\x0d\x0a\x0bhello world", false)
        .headers(
            1,
            &[("grpc-status", "5"), ("grpc-message", "no%20such thing")],
            true,
        );
    let out = c.feed(Side::Server, &sv.take(), ts(2));
    let g = out[0].grpc.as_ref().expect("grpc");
    assert_eq!(
        (g.service.as_str(), g.method.as_str()),
        ("helloworld.Greeter", "SayHello")
    );
    assert_eq!(
        (g.status, g.status_name.as_deref()),
        (Some(5), Some("NOT_FOUND"))
    );
    assert_eq!(g.message.as_deref(), Some("no such thing"));
    assert_eq!(g.messages.len(), 2);
    assert_eq!(g.messages[0].from, "request");
    assert_eq!(g.messages[0].dump.as_deref(), Some("1: \"world\"\n"));
    assert_eq!(g.messages[1].dump.as_deref(), Some("1: \"hello world\"\n"));
    assert_eq!(g.note, None);
    // trailers-only response: grpc-status in the only header block
    let mut c = conn();
    let (mut cl, mut sv) = (Peer::client(), Peer::server());
    c.feed(Side::Client, &cl.headers(3, &req, true).take(), ts(1));
    let mut h = ok("application/grpc");
    h.push(("grpc-status", "12"));
    let out = c.feed(Side::Server, &sv.headers(3, &h, true).take(), ts(2));
    let g = out[0].grpc.as_ref().unwrap();
    assert_eq!(
        (g.status, g.status_name.as_deref()),
        (Some(12), Some("UNIMPLEMENTED"))
    );
}
