//! The global memory budget: what the tracker buffers is counted, stays under the budget
//! however many connections stall, and what is evicted is reported and does not break
//! the connection's later exchanges.
use super::tests::{FakeKernel, data, transactions, wall};
use super::*;
use crate::capture::Record;
use crate::events::Event;
use std::path::Path;

fn tracker(max_buffer_bytes: usize) -> Tracker {
    Tracker::new(
        TrackerConfig {
            limits: BodyLimits {
                max_body_bytes: 1 << 20,
                ..BodyLimits::default()
            },
            max_buffer_bytes,
        },
        Processes::new(Path::new("/proc")),
    )
}

fn connect(t: &mut Tracker, k: &mut FakeKernel, pid: u32, fd: i32, ts: u64) {
    t.handle(
        Record::Connect {
            pid,
            tid: pid,
            fd,
            ts_ns: ts,
            local: Some(format!("127.0.0.1:{}", 20_000 + fd).parse().unwrap()),
            remote: Some("127.0.0.1:8080".parse().unwrap()),
            sk: fd as u64,
            comm: "t".into(),
        },
        &wall,
        k,
    );
}

fn close(t: &mut Tracker, k: &mut FakeKernel, pid: u32, fd: i32, ts: u64) {
    t.handle(
        Record::Close {
            pid,
            fd,
            ts_ns: ts,
            bytes_sent: 0,
            bytes_recv: 0,
        },
        &wall,
        k,
    );
}

fn send(t: &mut Tracker, k: &mut FakeKernel, pid: u32, fd: i32, pos: u64, b: &[u8], ts: u64) {
    t.handle(
        data(pid, fd, pos, Dir::Send, Source::Syscall, 0, b, ts),
        &wall,
        k,
    );
}

fn recv(t: &mut Tracker, k: &mut FakeKernel, pid: u32, fd: i32, pos: u64, b: &[u8], ts: u64) {
    t.handle(
        data(pid, fd, pos, Dir::Recv, Source::Syscall, 0, b, ts),
        &wall,
        k,
    );
}

fn budget_drops(evs: &[Event]) -> (u64, u64) {
    evs.iter()
        .filter_map(|e| match e {
            Event::Dropped(d) if d.reason == MEMORY_BUDGET => Some((d.events, d.bytes)),
            _ => None,
        })
        .fold((0, 0), |(a, b), (e, by)| (a + e, b + by))
}

/// A request head of about `n` bytes, never ended.
fn unfinished_head(n: usize) -> Vec<u8> {
    let mut h = b"GET /slow HTTP/1.1\r\nHost: a\r\nX-Pad: ".to_vec();
    h.resize(n, b'a');
    h
}

#[test]
fn stalled_connections_stay_under_the_budget_and_are_reported() {
    const MAX: usize = 4 << 20;
    let me = std::process::id();
    let mut t = tracker(MAX);
    let mut k = FakeKernel::default();
    let head = unfinished_head(4096);
    let mut peak = 0;
    let mut evs = Vec::new();
    // 3,000 connections × 4 KiB heads never ended: about 3× the budget
    for fd in 0..3000 {
        connect(&mut t, &mut k, me, fd, 10 + fd as u64);
        send(&mut t, &mut k, me, fd, 0, &head, 10 + fd as u64);
        peak = peak.max(t.buffered_bytes());
        evs.extend(t.drain());
    }
    assert!(peak <= MAX, "counted {peak} bytes, budget {MAX}");
    let (events, bytes) = budget_drops(&evs);
    assert!(events >= 1000, "only {events} exchanges reported dropped");
    assert!(
        bytes >= 2 * MAX as u64,
        "only {bytes} bytes reported dropped"
    );
    // everything counted is given back when the connections close
    for fd in 0..3000 {
        close(&mut t, &mut k, me, fd, 100_000);
    }
    evs = t.drain();
    assert_eq!(t.open_connections(), 0);
    assert_eq!(t.buffered_bytes(), 0, "the count must return to zero");
    // the requests that were still held end as usual, cut by the close
    assert!(!transactions(&evs).is_empty());
}

#[test]
fn idle_connections_are_bounded_too() {
    // connections with nothing in flight still cost their entry: past the budget the
    // ones idle the longest are forgotten, so the map cannot grow without bound
    const MAX: usize = 4 << 20;
    let me = std::process::id();
    let mut t = tracker(MAX);
    let mut k = FakeKernel::default();
    let per_conn = {
        connect(&mut t, &mut k, me, 0, 1);
        t.buffered_bytes()
    };
    let n = (2 * MAX / per_conn) as i32;
    for fd in 1..n {
        connect(&mut t, &mut k, me, fd, 1 + fd as u64);
        send(
            &mut t,
            &mut k,
            me,
            fd,
            0,
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            2 + fd as u64,
        );
        recv(
            &mut t,
            &mut k,
            me,
            fd,
            0,
            b"HTTP/1.1 204 No Content\r\n\r\n",
            3 + fd as u64,
        );
        assert!(t.buffered_bytes() <= MAX);
    }
    assert!(t.open_connections() < n as usize);
    let (events, _) = budget_drops(&t.drain());
    assert!(events > 0);
}

#[test]
fn the_oldest_exchange_goes_first_and_its_connection_goes_on() {
    const MAX: usize = 4 << 20;
    let me = std::process::id();
    let mut t = tracker(MAX);
    let mut k = FakeKernel::default();
    // connection 1: a request whose 1.5 MiB body is still arriving (1 MiB kept)
    connect(&mut t, &mut k, me, 1, 10);
    let req = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1572864\r\n\r\n";
    send(&mut t, &mut k, me, 1, 0, req, 11);
    let chunk = vec![b'x'; 256 * 1024];
    let mut pos = req.len() as u64;
    for i in 0..5 {
        send(&mut t, &mut k, me, 1, pos, &chunk, 12 + i);
        pos += chunk.len() as u64;
    }
    // then other connections fill the budget with younger exchanges
    for fd in 2..6 {
        connect(&mut t, &mut k, me, fd, 100);
        let req = b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n";
        send(&mut t, &mut k, me, fd, 0, req, 101);
        let mut p = req.len() as u64;
        for _ in 0..4 {
            send(&mut t, &mut k, me, fd, p, &chunk, 102);
            p += chunk.len() as u64;
        }
    }
    assert!(t.buffered_bytes() <= MAX);
    let evs = t.drain();
    let (events, bytes) = budget_drops(&evs);
    assert!(events >= 1 && bytes >= 1 << 20, "{events} {bytes}");
    // connection 1 was the oldest: its upload was dropped, and it keeps its place
    let c1 = &t.conns[&ConnKey::Fd(me, 1)];
    assert!(c1.busy_since.is_none() || c1.mem < 64 * 1024);
    // the rest of its body, its response, then a new exchange on the same connection
    send(&mut t, &mut k, me, 1, pos, &vec![b'x'; 256 * 1024], 200);
    let created = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    recv(&mut t, &mut k, me, 1, 0, created, 201);
    let pos = pos + 256 * 1024;
    send(
        &mut t,
        &mut k,
        me,
        1,
        pos,
        b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n",
        202,
    );
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext";
    recv(&mut t, &mut k, me, 1, created.len() as u64, resp, 203);
    let evs = t.drain();
    let txs = transactions(&evs);
    let dropped = txs
        .iter()
        .find(|t| t.summary.status == Some(201))
        .expect("the dropped upload's response is reported");
    assert_eq!(
        dropped.transaction.request.path, "",
        "its request was dropped"
    );
    let next = txs
        .iter()
        .find(|t| t.transaction.request.path == "/next")
        .expect("the next exchange is parsed");
    let r = next.transaction.response.as_ref().unwrap();
    assert_eq!((r.status, r.body.text.as_str()), (200, "next"));
}

#[test]
fn a_tls_library_count_that_restarts_loses_nothing() {
    // the kernel's per-`SSL*` table is an LRU: when it evicts a live `SSL*`, the next call
    // counts positions from 0 again; the bytes must still be parsed, not taken for repeats
    let me = std::process::id();
    let mut t = tracker(DEFAULT_MAX_BUFFER_BYTES);
    let mut k = FakeKernel::default();
    connect(&mut t, &mut k, me, 7, 1);
    let lib = |pos, dir, b: &[u8], ts| data(me, 7, pos, dir, Source::OpenSsl, 0xabc, b, ts);
    let req1 = b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n";
    let resp1 = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1";
    t.handle(lib(0, Dir::Send, req1, 10), &wall, &mut k);
    t.handle(lib(0, Dir::Recv, resp1, 11), &wall, &mut k);
    // evicted: both directions count from 0 again
    let req2 = b"GET /two HTTP/1.1\r\nHost: a\r\n\r\n";
    let resp2 = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2";
    t.handle(lib(0, Dir::Send, req2, 12), &wall, &mut k);
    t.handle(lib(0, Dir::Recv, resp2, 13), &wall, &mut k);
    let evs = t.drain();
    let paths: Vec<&str> = transactions(&evs)
        .iter()
        .map(|t| t.transaction.request.path.as_str())
        .collect();
    assert_eq!(paths, ["/one", "/two"]);
    assert!(!evs.iter().any(|e| matches!(e, Event::Dropped(_))));
}
