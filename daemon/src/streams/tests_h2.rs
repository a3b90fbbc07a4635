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
