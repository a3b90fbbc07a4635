use super::*;
use crate::capture::Record;
use crate::events::Event;
use std::path::Path;

#[derive(Default)]
pub(super) struct FakeKernel {
    pub(super) calls: Vec<(u32, i32, Option<u32>)>,
}

impl KernelControl for FakeKernel {
    fn set_sock_state(&mut self, pid: u32, fd: i32, state: Option<u32>) {
        self.calls.push((pid, fd, state));
    }
}

pub(super) fn tracker() -> Tracker {
    Tracker::new(
        TrackerConfig::new(BodyLimits {
            max_body_bytes: 1 << 20,
            ..BodyLimits::default()
        }),
        Processes::new(Path::new("/proc")),
    )
}

pub(super) fn wall(k: u64) -> Timestamp {
    Timestamp(1_700_000_000_000_000_000 + k)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn data(
    pid: u32,
    fd: i32,
    pos: u64,
    dir: Dir,
    source: Source,
    ssl: u64,
    bytes: &[u8],
    ts: u64,
) -> Record {
    Record::Data {
        pid,
        tid: pid,
        fd,
        ts_ns: ts,
        ssl,
        pos,
        dir,
        source,
        bytes: bytes.to_vec(),
        unseen: 0,
    }
}

pub(super) fn transactions(evs: &[Event]) -> Vec<&crate::events::HttpTransaction> {
    evs.iter()
        .filter_map(|e| {
            if let Event::HttpTransaction(t) = e {
                Some(&**t)
            } else {
                None
            }
        })
        .collect()
}

const REQ: &[u8] =
    b"GET /x?y=1 HTTP/1.1\r\nHost: api.test:8080\r\nAuthorization: Bearer abc\r\n\r\n";
const RESP: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";

#[test]
fn egress_plaintext_exchange() {
    let me = std::process::id();
    let mut t = tracker();
    let mut k = FakeKernel::default();
    let remote: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    t.handle(
        Record::Connect {
            pid: me,
            tid: me,
            fd: 9,
            ts_ns: 10,
            local: Some("127.0.0.1:0".parse().unwrap()),
            remote: Some(remote),
            sk: 77,
            comm: "t".into(),
        },
        &wall,
        &mut k,
    );
    t.handle(
        Record::Established {
            local: Some("127.0.0.1:40000".parse().unwrap()),
            remote: Some(remote),
            sk: 77,
            outgoing: true,
            ts_ns: 11,
        },
        &wall,
        &mut k,
    );
    t.handle(
        data(me, 9, 0, Dir::Send, Source::Syscall, 0, REQ, 20),
        &wall,
        &mut k,
    );
    t.handle(
        data(me, 9, 0, Dir::Recv, Source::Syscall, 0, &RESP[..30], 30),
        &wall,
        &mut k,
    );
    t.handle(
        data(me, 9, 30, Dir::Recv, Source::Syscall, 0, &RESP[30..], 40),
        &wall,
        &mut k,
    );
    t.handle(
        Record::Close {
            pid: me,
            fd: 9,
            ts_ns: 50,
            bytes_sent: REQ.len() as u64,
            bytes_recv: RESP.len() as u64,
        },
        &wall,
        &mut k,
    );
    let evs = t.drain();
    let txs = transactions(&evs);
    assert_eq!(txs.len(), 1, "{evs:#?}");
    let tx = &txs[0].transaction;
    assert_eq!(tx.request.method, "GET");
    assert_eq!(tx.request.url, "http://api.test:8080/x?y=1");
    assert!(
        tx.request
            .headers
            .contains(&("Authorization".into(), "Bearer abc".into()))
    );
    assert_eq!(tx.response.as_ref().unwrap().status, 200);
    assert_eq!(tx.response.as_ref().unwrap().body.text, "{\"ok\":true}");
    assert_eq!(tx.network.local, "127.0.0.1:40000");
    assert_eq!(tx.network.remote, "127.0.0.1:8080");
    assert_eq!(txs[0].summary.direction, Direction::Egress);
    assert_eq!(txs[0].summary.process.pid, me);
    // the tracker's events (one summary shared by both halves) encode as serde_json
    // encodes them
    assert!(std::sync::Arc::ptr_eq(&txs[0].summary, &tx.summary));
    for e in &evs {
        let env = crate::events::Envelope {
            ts: crate::events::Timestamp(1),
            data: e.clone(),
        };
        let mut want = serde_json::to_value(&env).unwrap();
        want["topic"] = e.topic().into();
        let got = env.to_ndjson();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&got).unwrap(),
            want
        );
        assert_eq!(env.to_json(), serde_json::to_string(&env).unwrap());
    }
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::ProcessStarted(p) if p.pid == me))
    );
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::ConnectionOpened(o) if o.direction == Direction::Egress))
    );
    let closed = evs
        .iter()
        .find_map(|e| {
            if let Event::ConnectionClosed(c) = e {
                Some(c)
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(closed.bytes_received, RESP.len() as u64);
}

/// accept(fd, NULL, NULL) (libuv, so Node.js) gives no peer address: the tracker reads
/// both ends from /proc, here for a socket this test process really accepted.
#[test]
fn accept_without_address_takes_both_ends_from_proc() {
    use std::os::fd::AsRawFd;
    let me = std::process::id();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (served, peer) = listener.accept().unwrap();
    let mut t = tracker();
    let mut k = FakeKernel::default();
    t.handle(
        Record::Accept {
            pid: me,
            tid: me,
            fd: served.as_raw_fd(),
            ts_ns: 2,
            remote: None,
            comm: "t".into(),
        },
        &wall,
        &mut k,
    );
    t.handle(
        data(
            me,
            served.as_raw_fd(),
            0,
            Dir::Recv,
            Source::Syscall,
            0,
            REQ,
            3,
        ),
        &wall,
        &mut k,
    );
    t.handle(
        data(
            me,
            served.as_raw_fd(),
            0,
            Dir::Send,
            Source::Syscall,
            0,
            RESP,
            4,
        ),
        &wall,
        &mut k,
    );
    let evs = t.drain();
    let txs = transactions(&evs);
    assert_eq!(txs.len(), 1, "{evs:#?}");
    assert_eq!(txs[0].summary.direction, Direction::Ingress);
    let net = &txs[0].transaction.network;
    assert_eq!(net.local, listener.local_addr().unwrap().to_string());
    assert_eq!(net.remote, peer.to_string());
    assert_eq!(peer, client.local_addr().unwrap());
}

/// accept(fd, NULL, NULL) of a connection closed before the record is read: /proc no
/// longer has it, the tuple remembered from its establishment on the process's listening
/// port gives both ends.
#[test]
fn accept_without_address_of_a_closed_socket_takes_the_listeners_oldest_tuple() {
    let me = std::process::id();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = listener.local_addr().unwrap();
    let peer = {
        let _client = std::net::TcpStream::connect(at).unwrap();
        listener.accept().unwrap().1
    };
    // its fd number is closed (one far above any this process opens: tests running
    // beside this one reuse freed numbers)
    let fd = 1_000_000;
    let mut t = tracker();
    let mut k = FakeKernel::default();
    let other: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    for (local, remote, sk) in [
        // another server's connection, established first: not ours
        (Some("127.0.0.1:1".parse().unwrap()), Some(other), 7),
        (Some(at), Some(peer), 8),
    ] {
        t.handle(
            Record::Established {
                local,
                remote,
                sk,
                outgoing: false,
                ts_ns: 1,
            },
            &wall,
            &mut k,
        );
    }
    t.handle(
        Record::Accept {
            pid: me,
            tid: me,
            fd,
            ts_ns: 2,
            remote: None,
            comm: "t".into(),
        },
        &wall,
        &mut k,
    );
    t.handle(
        data(me, fd, 0, Dir::Recv, Source::Syscall, 0, REQ, 3),
        &wall,
        &mut k,
    );
    t.handle(
        data(me, fd, 0, Dir::Send, Source::Syscall, 0, RESP, 4),
        &wall,
        &mut k,
    );
    let evs = t.drain();
    let txs = transactions(&evs);
    assert_eq!(txs.len(), 1, "{evs:#?}");
    assert_eq!(txs[0].summary.direction, Direction::Ingress);
    let net = &txs[0].transaction.network;
    assert_eq!(net.local, at.to_string());
    assert_eq!(net.remote, peer.to_string());
}

#[test]
fn ingress_and_gap_is_reported() {
    let me = std::process::id();
    let mut t = tracker();
    let mut k = FakeKernel::default();
    let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    t.handle(
        Record::Established {
            local: Some("127.0.0.1:8080".parse().unwrap()),
            remote: Some(peer),
            sk: 5,
            outgoing: false,
            ts_ns: 1,
        },
        &wall,
        &mut k,
    );
    t.handle(
        Record::Accept {
            pid: me,
            tid: me,
            fd: 4,
            ts_ns: 2,
            remote: Some(peer),
            comm: "t".into(),
        },
        &wall,
        &mut k,
    );
    t.handle(
        data(me, 4, 0, Dir::Recv, Source::Syscall, 0, REQ, 3),
        &wall,
        &mut k,
    );
    t.handle(
        data(me, 4, 0, Dir::Send, Source::Syscall, 0, RESP, 4),
        &wall,
        &mut k,
    );
    // a second request whose first 10 bytes were lost in the kernel
    t.handle(
        data(
            me,
            4,
            REQ.len() as u64 + 10,
            Dir::Recv,
            Source::Syscall,
            0,
            REQ,
            5,
        ),
        &wall,
        &mut k,
    );
    let evs = t.drain();
    let txs = transactions(&evs);
    assert_eq!(txs[0].summary.direction, Direction::Ingress);
    assert_eq!(txs[0].transaction.network.local, "127.0.0.1:8080");
    assert_eq!(txs[0].summary.status, Some(200));
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::Dropped(d) if d.reason == "stream-gap" && d.bytes == 10)),
        "{evs:#?}"
    );
}

#[test]
fn tls_handshake_then_library_plaintext() {
    let me = std::process::id();
    let mut t = tracker();
    let mut k = FakeKernel::default();
    t.handle(
        Record::Connect {
            pid: me,
            tid: me,
            fd: 6,
            ts_ns: 1,
            local: None,
            remote: Some("127.0.0.1:8443".parse().unwrap()),
            sk: 1,
            comm: "t".into(),
        },
        &wall,
        &mut k,
    );
    // ClientHello-looking record header: raw bytes are TLS, not HTTP
    t.handle(
        data(
            me,
            6,
            0,
            Dir::Send,
            Source::Syscall,
            0,
            &[0x16, 3, 1, 0, 5, 1, 0, 0, 1, 0],
            2,
        ),
        &wall,
        &mut k,
    );
    t.handle(
        data(me, 6, 0, Dir::Send, Source::OpenSsl, 0xabc, REQ, 3),
        &wall,
        &mut k,
    );
    t.handle(
        data(me, 6, 0, Dir::Recv, Source::OpenSsl, 0xabc, RESP, 4),
        &wall,
        &mut k,
    );
    let evs = t.drain();
    let txs = transactions(&evs);
    assert_eq!(txs.len(), 1, "{evs:#?}");
    assert!(txs[0].summary.tls);
    assert_eq!(
        txs[0].transaction.request.url,
        "https://api.test:8080/x?y=1"
    );
    assert!(
        k.calls
            .contains(&(me, 6, Some(qtap_common::sock_state::MUTE))),
        "{:?}",
        k.calls
    );
}

#[test]
fn process_exit_mid_response_flushes() {
    let me = std::process::id();
    let mut t = tracker();
    let mut k = FakeKernel::default();
    t.handle(
        Record::Connect {
            pid: me,
            tid: me,
            fd: 7,
            ts_ns: 1,
            local: None,
            remote: Some("127.0.0.1:80".parse().unwrap()),
            sk: 2,
            comm: "t".into(),
        },
        &wall,
        &mut k,
    );
    t.handle(
        data(me, 7, 0, Dir::Send, Source::Syscall, 0, REQ, 2),
        &wall,
        &mut k,
    );
    t.handle(
        data(
            me,
            7,
            0,
            Dir::Recv,
            Source::Syscall,
            0,
            &RESP[..RESP.len() - 4],
            3,
        ),
        &wall,
        &mut k,
    );
    t.handle(
        Record::Exit {
            pid: me,
            ts_ns: 4,
            comm: "test".into(),
            exit_code: Some(11 | 0x80),
        },
        &wall,
        &mut k,
    );
    let evs = t.drain();
    let txs = transactions(&evs);
    assert_eq!(txs.len(), 1, "{evs:#?}");
    assert!(txs[0].summary.error.is_some());
    assert_eq!(txs[0].summary.status, Some(200));
    assert_eq!(t.open_connections(), 0);
    assert!(k.calls.contains(&(me, 7, None)));
    assert!(evs.iter().any(|e| matches!(e, Event::ProcessStopped(p)
                if p.pid == me && p.signal.as_deref() == Some("SIGSEGV") && p.core_dumped)));
}

#[test]
fn three_keepalive_requests_in_order() {
    let me = std::process::id();
    let mut t = tracker();
    let mut k = FakeKernel::default();
    t.handle(
        Record::Connect {
            pid: me,
            tid: me,
            fd: 8,
            ts_ns: 1,
            local: None,
            remote: Some("127.0.0.1:80".parse().unwrap()),
            sk: 3,
            comm: "t".into(),
        },
        &wall,
        &mut k,
    );
    let (mut s, mut r) = (0u64, 0u64);
    for i in 0..3 {
        let req = format!("GET /n{i} HTTP/1.1\r\nHost: h\r\n\r\n");
        t.handle(
            data(
                me,
                8,
                s,
                Dir::Send,
                Source::Syscall,
                0,
                req.as_bytes(),
                10 + i * 10,
            ),
            &wall,
            &mut k,
        );
        s += req.len() as u64;
        t.handle(
            data(me, 8, r, Dir::Recv, Source::Syscall, 0, RESP, 15 + i * 10),
            &wall,
            &mut k,
        );
        r += RESP.len() as u64;
    }
    let evs = t.drain();
    let paths: Vec<&str> = transactions(&evs)
        .iter()
        .map(|t| t.summary.path.as_str())
        .collect();
    assert_eq!(paths, ["/n0", "/n1", "/n2"]);
}

#[test]
fn other_protocols_are_muted_in_the_kernel() {
    let me = std::process::id();
    let mut t = tracker();
    let mut k = FakeKernel::default();
    t.handle(
        Record::Connect {
            pid: me,
            tid: me,
            fd: 11,
            ts_ns: 1,
            local: None,
            remote: Some("127.0.0.1:6379".parse().unwrap()),
            sk: 9,
            comm: "t".into(),
        },
        &wall,
        &mut k,
    );
    t.handle(
        data(
            me,
            11,
            0,
            Dir::Send,
            Source::Syscall,
            0,
            b"*1\r\n$4\r\nPING\r\n",
            2,
        ),
        &wall,
        &mut k,
    );
    assert!(
        k.calls
            .contains(&(me, 11, Some(qtap_common::sock_state::MUTE))),
        "{:?}",
        k.calls
    );
    let evs = t.drain();
    assert!(transactions(&evs).is_empty());
    assert!(evs.iter().any(|e| matches!(e, Event::ConnectionOpened(_))));
}

#[test]
fn go_tls_plaintext_from_two_processes_at_one_heap_address() {
    // Go heap addresses repeat from one process to the next: the same `*tls.Conn`
    // value in two processes is two connections
    let me = std::process::id();
    let mut t = tracker();
    let mut k = FakeKernel::default();
    for (pid, ts) in [(me, 1), (me + 1, 10)] {
        t.handle(
            Record::Connect {
                pid,
                tid: pid,
                fd: 6,
                ts_ns: ts,
                local: None,
                remote: Some("127.0.0.1:8443".parse().unwrap()),
                sk: u64::from(pid),
                comm: "go".into(),
            },
            &wall,
            &mut k,
        );
        let conn = 0xc000_1a2000;
        t.handle(
            data(pid, 6, 0, Dir::Send, Source::GoTls, conn, REQ, ts + 1),
            &wall,
            &mut k,
        );
        t.handle(
            data(pid, 6, 0, Dir::Recv, Source::GoTls, conn, RESP, ts + 2),
            &wall,
            &mut k,
        );
    }
    let evs = t.drain();
    let txs = transactions(&evs);
    assert_eq!(txs.len(), 2, "{evs:#?}");
    assert_ne!(txs[0].summary.connection_id, txs[1].summary.connection_id);
    for tx in &txs {
        assert!(tx.summary.tls);
        assert_eq!(tx.transaction.response.as_ref().unwrap().status, 200);
    }
    let libs: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            Event::ConnectionOpened(o) => o.tls.as_ref()?.library.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(libs, ["go-tls", "go-tls"], "{evs:#?}");
    // the sockets' ciphertext is muted once plaintext flows
    assert!(
        k.calls
            .contains(&(me, 6, Some(qtap_common::sock_state::MUTE)))
    );
}

/// accept() that began before the probes attached reaches user space without an
/// address, like accept(fd, NULL, NULL): when /proc shows a unix socket behind the fd,
/// it is forgotten (in the kernel too) and its bytes make no transaction.
#[test]
fn an_accepted_unix_socket_without_address_is_dropped() {
    use std::os::fd::AsRawFd as _;
    let me = std::process::id();
    let mut t = tracker();
    let mut k = FakeKernel::default();
    // an Accept record without address, then a request in and a response out on `fd`
    let serve = |t: &mut Tracker, k: &mut FakeKernel, fd: i32, ts: u64| {
        let accept = Record::Accept {
            pid: me,
            tid: me,
            fd,
            ts_ns: ts,
            remote: None,
            comm: "t".into(),
        };
        t.handle(accept, &wall, k);
        for (dir, bytes) in [(Dir::Recv, REQ), (Dir::Send, RESP)] {
            t.handle(
                data(me, fd, 0, dir, Source::Syscall, 0, bytes, ts + 1),
                &wall,
                k,
            );
        }
        t.drain()
    };

    let dir = std::env::temp_dir().join(format!("qtap-unix-accept-{me}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s");
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let _c = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let (srv, _) = l.accept().unwrap();
    let fd = srv.as_raw_fd();
    let evs = serve(&mut t, &mut k, fd, 10);
    assert!(transactions(&evs).is_empty(), "{evs:#?}");
    assert!(
        !evs.iter().any(|e| matches!(e, Event::ConnectionOpened(_))),
        "{evs:#?}"
    );
    assert_eq!(k.calls, vec![(me, fd, None)]);
    let _ = std::fs::remove_dir_all(&dir);

    // a TCP socket accepted the same way is kept
    let tl = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let _tc = std::net::TcpStream::connect(tl.local_addr().unwrap()).unwrap();
    let (ts, _) = tl.accept().unwrap();
    let evs = serve(&mut t, &mut k, ts.as_raw_fd(), 40);
    let txs = transactions(&evs);
    assert_eq!(txs.len(), 1, "{evs:#?}");
    assert_eq!(txs[0].summary.direction, crate::events::Direction::Ingress);
    assert_eq!(
        txs[0].transaction.network.local,
        tl.local_addr().unwrap().to_string()
    );
}
