//! The tracker with plaintext from the Java agent: engines and sockets tied to the
//! kernel's connections, a kernel close that comes before the agent's last bytes.
use super::tests::{FakeKernel, tracker, transactions, wall};
use super::*;
use crate::capture::java::JavaOpen;

const REQ: &[u8] = b"POST /hello HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nAuthorization: Bearer j\r\nContent-Length: 2\r\n\r\nhi";
const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn connect(
    t: &mut Tracker,
    k: &mut FakeKernel,
    pid: u32,
    fd: i32,
    local: &str,
    remote: &str,
    ts: u64,
) {
    t.handle(
        Record::Connect {
            pid,
            tid: pid,
            fd,
            ts_ns: ts,
            local: Some(local.parse().unwrap()),
            remote: Some(remote.parse().unwrap()),
            sk: u64::from(pid) << 8 | fd as u64,
            comm: "java".into(),
        },
        &wall,
        k,
    );
}

fn engine(id: u64, client: bool, peer: &str) -> JavaOpen {
    let peer: SocketAddr = peer.parse().unwrap();
    JavaOpen {
        id,
        client,
        socket: false,
        local: None,
        remote: None,
        peer_host: Some(peer.ip().to_string()),
        peer_port: peer.port(),
    }
}

#[test]
fn client_engine_takes_the_newest_egress_connection_to_its_peer() {
    let me = std::process::id();
    let mut t = tracker();
    let mut k = FakeKernel::default();
    connect(
        &mut t,
        &mut k,
        me,
        5,
        "127.0.0.1:40000",
        "127.0.0.1:8443",
        1,
    );
    connect(
        &mut t,
        &mut k,
        me,
        6,
        "127.0.0.1:40001",
        "127.0.0.1:8443",
        2,
    );
    connect(
        &mut t,
        &mut k,
        me,
        7,
        "127.0.0.1:40002",
        "127.0.0.1:9999",
        3,
    );
    t.java_open(me, engine(1, true, "127.0.0.1:8443"));
    t.java_data(me, 1, Dir::Send, 0, REQ, wall(4), &mut k);
    t.java_data(me, 1, Dir::Recv, 0, RESP, wall(5), &mut k);
    // a second engine to the same server gets the other connection
    t.java_open(me, engine(2, true, "127.0.0.1:8443"));
    t.java_data(me, 2, Dir::Send, 0, REQ, wall(6), &mut k);
    t.java_data(me, 2, Dir::Recv, 0, RESP, wall(7), &mut k);
    let evs = t.drain();
    let txs = transactions(&evs);
    assert_eq!(txs.len(), 2, "{evs:#?}");
    let locals: Vec<_> = txs
        .iter()
        .map(|x| x.transaction.network.local.clone())
        .collect();
    assert_eq!(locals, ["127.0.0.1:40001", "127.0.0.1:40000"]);
    for x in &txs {
        assert!(x.summary.tls);
        assert_eq!(x.summary.method, "POST");
        assert_eq!(x.transaction.response.as_ref().unwrap().status, 200);
    }
    // the sockets' ciphertext is muted
    for fd in [5, 6] {
        assert!(
            k.calls
                .contains(&(me, fd, Some(qtap_common::sock_state::MUTE)))
        );
    }
}

#[test]
fn socket_is_tied_by_its_addresses_and_survives_an_early_kernel_close() {
    let me = std::process::id();
    let mut t = tracker();
    let mut k = FakeKernel::default();
    connect(
        &mut t,
        &mut k,
        me,
        5,
        "127.0.0.1:40000",
        "127.0.0.1:8443",
        1,
    );
    connect(
        &mut t,
        &mut k,
        me,
        6,
        "127.0.0.1:40001",
        "127.0.0.1:8443",
        2,
    );
    t.java_open(
        me,
        JavaOpen {
            id: 9,
            client: true,
            socket: true,
            local: Some("127.0.0.1:40000".parse().unwrap()),
            remote: Some("127.0.0.1:8443".parse().unwrap()),
            peer_host: None,
            peer_port: 8443,
        },
    );
    t.java_data(me, 9, Dir::Send, 0, REQ, wall(3), &mut k);
    // the kernel's close is read before the agent's response bytes
    t.handle(
        Record::Close {
            pid: me,
            fd: 5,
            ts_ns: 4,
            bytes_sent: 300,
            bytes_recv: 400,
        },
        &wall,
        &mut k,
    );
    // and the fd is reused at once
    connect(
        &mut t,
        &mut k,
        me,
        5,
        "127.0.0.1:40002",
        "127.0.0.1:8080",
        5,
    );
    t.java_data(me, 9, Dir::Recv, 0, RESP, wall(6), &mut k);
    let evs = t.drain();
    let txs = transactions(&evs);
    assert_eq!(txs.len(), 1, "{evs:#?}");
    assert_eq!(txs[0].transaction.network.local, "127.0.0.1:40000");
    assert_eq!(txs[0].transaction.response.as_ref().unwrap().status, 200);
    assert!(!evs.iter().any(|e| matches!(e, Event::ConnectionClosed(_))));
    // closed once the grace is over, with the kernel's counters
    t.java_tick(
        std::time::Instant::now() + std::time::Duration::from_secs(5),
        wall(10),
    );
    let evs = t.drain();
    let closed: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            Event::ConnectionClosed(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(closed.len(), 1, "{evs:#?}");
    assert_eq!((closed[0].bytes_sent, closed[0].bytes_received), (300, 400));
}

#[test]
fn engine_without_a_known_socket_is_a_connection_of_its_own() {
    let me = std::process::id();
    let mut t = tracker();
    let mut k = FakeKernel::default();
    t.java_open(me, engine(3, false, "10.1.2.3:5555"));
    t.java_data(me, 3, Dir::Recv, 0, REQ, wall(1), &mut k);
    t.java_data(me, 3, Dir::Send, 0, RESP, wall(2), &mut k);
    let evs = t.drain();
    let txs = transactions(&evs);
    assert_eq!(txs.len(), 1, "{evs:#?}");
    assert_eq!(txs[0].summary.direction, Direction::Ingress);
    assert_eq!(txs[0].transaction.network.remote, "10.1.2.3:5555");
    assert!(k.calls.is_empty(), "no socket to mute: {:?}", k.calls);
}

#[test]
fn stream_ids_per_jvm_are_bounded_and_forgotten_with_their_connection() {
    use super::java::MAX_STREAMS_PER_JVM;
    let me = std::process::id();
    let mut t = tracker();
    let mut k = FakeKernel::default();
    // announced ids without bytes make room for new ones
    for id in 0..(MAX_STREAMS_PER_JVM as u64 + 100) {
        t.java_open(me, engine(id, false, "10.1.2.3:5555"));
    }
    assert!(t.java_dropped().is_none());
    // ids with a connection each fill the JVM's share ...
    for id in 0..MAX_STREAMS_PER_JVM as u64 {
        t.java_data(me, 10_000 + id, Dir::Recv, 0, b"x", wall(1), &mut k);
    }
    assert_eq!(t.open_connections(), MAX_STREAMS_PER_JVM);
    // ... past which a new id is dropped and counted, not a new connection
    t.java_open(me, engine(99_999, false, "10.1.2.3:5555"));
    t.java_data(me, 99_999, Dir::Recv, 0, REQ, wall(2), &mut k);
    assert_eq!(t.open_connections(), MAX_STREAMS_PER_JVM);
    let evs = t.drain();
    let dropped: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Dropped(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0].reason, "java-stream-limit");
    assert_eq!((dropped[0].events, dropped[0].bytes), (2, REQ.len() as u64));
    // another JVM has its own share
    t.java_data(me + 1, 1, Dir::Recv, 0, b"x", wall(3), &mut k);
    assert_eq!(t.open_connections(), MAX_STREAMS_PER_JVM + 1);
    // connections that close give their ids back
    t.close_all(wall(4));
    assert_eq!(t.open_connections(), 0);
    t.java_data(me, 99_999, Dir::Recv, 0, REQ, wall(5), &mut k);
    assert_eq!(t.open_connections(), 1);
    assert!(t.java_dropped().is_none());
}
