//! The tracker picks the HTTP/2 parser from a connection's first bytes.
use crate::capture::{Dir, Record, Source};
use crate::events::Event;
use crate::streams::tests::{FakeKernel, data, tracker, transactions, wall};

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    v.push(kind);
    v.push(flags);
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    loona_hpack::Encoder::new().encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
}

fn connect(t: &mut super::Tracker, k: &mut FakeKernel, fd: i32, remote: &str) {
    let me = std::process::id();
    t.handle(
        Record::Connect {
            pid: me,
            tid: me,
            fd,
            ts_ns: 1,
            local: Some("127.0.0.1:40000".parse().unwrap()),
            remote: Some(remote.parse().unwrap()),
            sk: 5,
            comm: "t".into(),
        },
        &wall,
        k,
    );
}

#[test]
fn h2c_prior_knowledge_becomes_an_http2_transaction() {
    let me = std::process::id();
    let (mut t, mut k) = (tracker(), FakeKernel::default());
    connect(&mut t, &mut k, 7, "127.0.0.1:8080");
    // the server's SETTINGS first: the preface is not always seen first
    let mut sv = frame(4, 0, 0, &[]);
    let mut cl = crate::http2::PREFACE.to_vec();
    cl.extend(frame(4, 0, 0, &[]));
    let req = [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "localhost:8080"),
        (":path", "/pkg.Svc/Get"),
        ("content-type", "application/grpc"),
    ];
    cl.extend(frame(1, 4, 1, &block(&req)));
    cl.extend(frame(0, 1, 1, b"\0\0\0\0\x02\x08\x07"));
    let resp_block = block(&[(":status", "200"), ("content-type", "application/grpc")]);
    t.handle(
        data(me, 7, 0, Dir::Recv, Source::Syscall, 0, &sv, 2),
        &wall,
        &mut k,
    );
    t.handle(
        data(me, 7, 0, Dir::Send, Source::Syscall, 0, &cl, 3),
        &wall,
        &mut k,
    );
    let pos = sv.len() as u64;
    sv = frame(1, 4, 1, &resp_block);
    sv.extend(frame(0, 0, 1, b"\0\0\0\0\x02\x08\x2a"));
    sv.extend(frame(1, 5, 1, &block(&[("grpc-status", "0")])));
    t.handle(
        data(me, 7, pos, Dir::Recv, Source::Syscall, 0, &sv, 4),
        &wall,
        &mut k,
    );
    let evs = t.drain();
    let txs = transactions(&evs);
    assert_eq!(txs.len(), 1, "{evs:#?}");
    let tx = &txs[0].transaction;
    assert_eq!(tx.request.http_version, "HTTP/2");
    assert_eq!(tx.request.url, "http://localhost:8080/pkg.Svc/Get");
    assert_eq!(tx.summary.host, "localhost");
    assert_eq!(tx.summary.status, Some(200));
    assert_eq!(tx.summary.content_type.as_deref(), Some("application/grpc"));
    let g = tx.grpc.as_ref().unwrap();
    assert_eq!(
        (g.service.as_str(), g.method.as_str(), g.status),
        ("pkg.Svc", "Get", Some(0))
    );
    assert_eq!(g.messages[1].dump.as_deref(), Some("1: 42\n"));
    assert!(
        k.calls.is_empty(),
        "an HTTP/2 connection is not muted: {:?}",
        k.calls
    );
}

#[test]
fn h2_over_tls_library_plaintext() {
    let me = std::process::id();
    let (mut t, mut k) = (tracker(), FakeKernel::default());
    connect(&mut t, &mut k, 8, "127.0.0.1:8443");
    let mut cl = crate::http2::PREFACE.to_vec();
    cl.extend(frame(
        1,
        5,
        1,
        &block(&[(":method", "GET"), (":path", "/x")]),
    ));
    t.handle(
        data(me, 8, 0, Dir::Send, Source::OpenSsl, 0xab, &cl, 2),
        &wall,
        &mut k,
    );
    let sv = frame(1, 5, 1, &block(&[(":status", "404")]));
    t.handle(
        data(me, 8, 0, Dir::Recv, Source::OpenSsl, 0xab, &sv, 3),
        &wall,
        &mut k,
    );
    let evs = t.drain();
    let txs = transactions(&evs);
    assert_eq!(txs.len(), 1, "{evs:#?}");
    assert!(txs[0].summary.tls);
    assert_eq!(txs[0].transaction.request.url, "https://127.0.0.1:8443/x");
    assert_eq!(txs[0].summary.status, Some(404));
}

#[test]
fn binary_that_is_not_http2_is_still_muted() {
    let me = std::process::id();
    let (mut t, mut k) = (tracker(), FakeKernel::default());
    connect(&mut t, &mut k, 9, "127.0.0.1:5432");
    // first bytes that pass for HTTP/2 frames, then nonsense
    let mut b = frame(4, 0, 0, &[]);
    b.extend(frame(6, 0, 0, &[0; 8]));
    t.handle(
        data(me, 9, 0, Dir::Send, Source::Syscall, 0, &b, 2),
        &wall,
        &mut k,
    );
    assert!(k.calls.is_empty());
    let junk = [0xff; 40];
    t.handle(
        data(
            me,
            9,
            b.len() as u64,
            Dir::Send,
            Source::Syscall,
            0,
            &junk,
            3,
        ),
        &wall,
        &mut k,
    );
    assert!(
        k.calls
            .contains(&(me, 9, Some(qtap_common::sock_state::MUTE))),
        "{:?}",
        k.calls
    );
    let evs = t.drain();
    assert!(transactions(&evs).is_empty());
    assert!(evs.iter().any(|e| matches!(e, Event::ConnectionOpened(_))));
}

#[test]
fn http1_upgrade_to_h2c_goes_on_in_http2() {
    let me = std::process::id();
    let (mut t, mut k) = (tracker(), FakeKernel::default());
    connect(&mut t, &mut k, 10, "127.0.0.1:8080");
    let req =
        b"GET /up HTTP/1.1\r\nHost: localhost:8080\r\nConnection: Upgrade, HTTP2-Settings\r\n\
                Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n";
    t.handle(
        data(me, 10, 0, Dir::Send, Source::Syscall, 0, req, 2),
        &wall,
        &mut k,
    );
    let mut sv =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    sv.extend(frame(4, 0, 0, &[]));
    sv.extend(frame(
        1,
        4,
        1,
        &block(&[(":status", "200"), ("content-type", "text/plain")]),
    ));
    sv.extend(frame(0, 1, 1, b"upgraded"));
    t.handle(
        data(me, 10, 0, Dir::Recv, Source::Syscall, 0, &sv, 3),
        &wall,
        &mut k,
    );
    let mut cl = crate::http2::PREFACE.to_vec();
    cl.extend(frame(4, 0, 0, &[]));
    cl.extend(frame(
        1,
        5,
        3,
        &block(&[(":method", "GET"), (":path", "/next")]),
    ));
    t.handle(
        data(
            me,
            10,
            req.len() as u64,
            Dir::Send,
            Source::Syscall,
            0,
            &cl,
            4,
        ),
        &wall,
        &mut k,
    );
    let sv2 = frame(1, 5, 3, &block(&[(":status", "204")]));
    t.handle(
        data(
            me,
            10,
            sv.len() as u64,
            Dir::Recv,
            Source::Syscall,
            0,
            &sv2,
            5,
        ),
        &wall,
        &mut k,
    );
    let evs = t.drain();
    let txs = transactions(&evs);
    let got: Vec<(&str, &str, Option<u16>, &str)> = txs
        .iter()
        .map(|x| {
            let t = &x.transaction;
            let body = t.response.as_ref().map_or("", |r| r.body.text.as_str());
            (
                t.request.http_version.as_str(),
                t.summary.path.as_str(),
                t.summary.status,
                body,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("HTTP/1.1", "/up", Some(101), ""),
            ("HTTP/2", "/up", Some(200), "upgraded"),
            ("HTTP/2", "/next", Some(204), ""),
        ],
        "{evs:#?}"
    );
    assert_eq!(txs[1].transaction.request.url, "http://localhost:8080/up");
    assert!(k.calls.is_empty(), "not muted: {:?}", k.calls);
}

/// A TLS handshake record of type `hs_type` whose extensions are `exts`.
fn hello(hs_type: u8, exts: &[(u16, Vec<u8>)], tls13: bool) -> Vec<u8> {
    let mut ext = Vec::new();
    for (ty, body) in exts {
        ext.extend_from_slice(&ty.to_be_bytes());
        ext.extend_from_slice(&(body.len() as u16).to_be_bytes());
        ext.extend_from_slice(body);
    }
    if tls13 {
        ext.extend_from_slice(&[0, 43, 0, 2, 3, 4]);
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    if hs_type == 1 {
        body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
    } else {
        body.extend_from_slice(&[0x13, 0x01, 0]);
    }
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![hs_type, 0, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1, (hs.len() >> 8) as u8, hs.len() as u8];
    rec.extend_from_slice(&hs);
    rec
}

fn alpn(names: &[&str]) -> (u16, Vec<u8>) {
    let mut list = Vec::new();
    for n in names {
        list.push(n.len() as u8);
        list.extend_from_slice(n.as_bytes());
    }
    let mut body = (list.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(&list);
    (16, body)
}

/// A TLS connection: handshake records on the socket (ClientHello split over two
/// writes), then the library's plaintext `cl` / `sv`. Returns the events.
fn tls_conn(server_hello: Vec<u8>, cl: &[u8], sv: &[u8]) -> Vec<Event> {
    let me = std::process::id();
    let (mut t, mut k) = (tracker(), FakeKernel::default());
    connect(&mut t, &mut k, 11, "127.0.0.1:8443");
    let ch = hello(1, &[alpn(&["h2", "http/1.1"])], false);
    let raw = [
        (0, Dir::Send, &ch[..20]),
        (20, Dir::Send, &ch[20..]),
        (0, Dir::Recv, &server_hello[..]),
    ];
    for (i, (pos, dir, bytes)) in raw.into_iter().enumerate() {
        t.handle(
            data(me, 11, pos, dir, Source::Syscall, 0, bytes, 2 + i as u64),
            &wall,
            &mut k,
        );
    }
    t.handle(
        data(me, 11, 0, Dir::Send, Source::OpenSsl, 0xab, cl, 10),
        &wall,
        &mut k,
    );
    t.handle(
        data(me, 11, 0, Dir::Recv, Source::OpenSsl, 0xab, sv, 11),
        &wall,
        &mut k,
    );
    t.drain()
}

fn opened_tls(evs: &[Event]) -> crate::events::TlsInfo {
    evs.iter()
        .find_map(|e| match e {
            Event::ConnectionOpened(o) => o.tls.clone(),
            _ => None,
        })
        .expect("connection.opened with tls")
}

fn h2_exchange() -> (Vec<u8>, Vec<u8>) {
    let mut cl = crate::http2::PREFACE.to_vec();
    cl.extend(frame(4, 0, 0, &[]));
    cl.extend(frame(
        1,
        5,
        1,
        &block(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "a.test"),
            (":path", "/alpn"),
        ]),
    ));
    let mut sv = frame(4, 0, 0, &[]);
    sv.extend(frame(1, 4, 1, &block(&[(":status", "200")])));
    sv.extend(frame(0, 1, 1, b"ok"));
    (cl, sv)
}

#[test]
fn alpn_offer_and_tls12_choice_on_connection_opened() {
    let (cl, sv) = h2_exchange();
    let evs = tls_conn(hello(2, &[alpn(&["h2"])], false), &cl, &sv);
    let tls = opened_tls(&evs);
    assert_eq!(
        tls.alpn_offered,
        Some(vec!["h2".to_string(), "http/1.1".to_string()])
    );
    assert_eq!(tls.alpn.as_deref(), Some("h2"));
    assert_eq!(tls.version.as_deref(), Some("TLSv1.2"));
    let txs = transactions(&evs);
    assert_eq!(txs.len(), 1, "{evs:#?}");
    assert_eq!(txs[0].transaction.request.http_version, "HTTP/2");
    assert_eq!(txs[0].transaction.request.url, "https://a.test/alpn");
}

/// TLS 1.3 hides the server's choice: not guessed from the offer; the plaintext decides
/// the protocol (the preface here, HTTP/1.1 when the server declined `h2`).
#[test]
fn tls13_alpn_choice_unknown_the_plaintext_decides() {
    let (cl, sv) = h2_exchange();
    let evs = tls_conn(hello(2, &[], true), &cl, &sv);
    let tls = opened_tls(&evs);
    assert_eq!(tls.version.as_deref(), Some("TLSv1.3"));
    assert_eq!(tls.alpn, None);
    assert_eq!(tls.alpn_offered.as_ref().map(Vec::len), Some(2));
    assert_eq!(
        transactions(&evs)[0].transaction.request.http_version,
        "HTTP/2"
    );

    let evs = tls_conn(
        hello(2, &[], true),
        b"GET /h1 HTTP/1.1\r\nHost: a.test\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    let txs = transactions(&evs);
    assert_eq!(txs.len(), 1, "{evs:#?}");
    assert_eq!(txs[0].transaction.request.http_version, "HTTP/1.1");
    assert_eq!(txs[0].transaction.request.path, "/h1");
    assert_eq!(opened_tls(&evs).alpn, None);
}

/// An upgrade request with a body (curl `--http2 -d` on plain http): the body was sent in
/// HTTP/1.1, and belongs to stream 1 as well.
#[test]
fn h2c_upgrade_request_body_goes_to_stream_1() {
    let me = std::process::id();
    let (mut t, mut k) = (tracker(), FakeKernel::default());
    connect(&mut t, &mut k, 12, "127.0.0.1:8080");
    let req = b"POST /post HTTP/1.1\r\nHost: localhost:8080\r\nConnection: Upgrade, HTTP2-Settings\r\n\
                Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nContent-Length: 7\r\n\r\npayload";
    t.handle(
        data(me, 12, 0, Dir::Send, Source::Syscall, 0, req, 2),
        &wall,
        &mut k,
    );
    // the 101 head alone, the frames in a later read
    let head = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    t.handle(
        data(me, 12, 0, Dir::Recv, Source::Syscall, 0, head, 3),
        &wall,
        &mut k,
    );
    let mut sv = frame(4, 0, 0, &[]);
    sv.extend(frame(1, 4, 1, &block(&[(":status", "200")])));
    sv.extend(frame(0, 1, 1, b"got payload"));
    t.handle(
        data(
            me,
            12,
            head.len() as u64,
            Dir::Recv,
            Source::Syscall,
            0,
            &sv,
            4,
        ),
        &wall,
        &mut k,
    );
    let evs = t.drain();
    let txs = transactions(&evs);
    assert_eq!(txs.len(), 2, "{evs:#?}");
    let (h1, h2) = (&txs[0].transaction, &txs[1].transaction);
    assert_eq!(
        (h1.request.http_version.as_str(), h1.summary.status),
        ("HTTP/1.1", Some(101))
    );
    assert_eq!(h1.request.body.text, "payload");
    assert_eq!(h2.request.http_version, "HTTP/2");
    assert_eq!(h2.request.method, "POST");
    assert_eq!(h2.request.body.text, "payload");
    assert_eq!(h2.request.body.size, 7);
    assert_eq!(h2.response.as_ref().unwrap().body.text, "got payload");
    assert!(h2.summary.error.is_none(), "{h2:#?}");
}
