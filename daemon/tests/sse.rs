//! The event stream over real TCP: frame format, ids, topic filter, keep-alive, slow
//! clients, probe lifecycle, shutdown.
mod common;

use common::{Double, Sse, TestServer, eventually, get, request_head};
use qtap::events::{Dropped, Event, ProcessStarted, ProcessStopped};
use qtap::hub::HubConfig;
use std::io::Write;
use std::time::Duration;

fn stopped(pid: u32) -> Event {
    Event::ProcessStopped(ProcessStopped::from_raw(pid, Some(0)))
}

fn started(pid: u32, filler: usize) -> Event {
    Event::ProcessStarted(ProcessStarted {
        pid,
        ppid: 1,
        exe: "/usr/bin/test".into(),
        cmdline: vec!["x".repeat(filler)],
        user: "root".into(),
        uid: 0,
        container: None,
    })
}

fn cfg(grace_ms: u64, queue: usize) -> HubConfig {
    HubConfig {
        grace: Duration::from_millis(grace_ms),
        client_queue: queue,
        ..HubConfig::default()
    }
}

#[test]
fn frames_are_exact_with_ids_by_one() {
    let s = TestServer::start(cfg(1000, 64), Duration::from_secs(15));
    let mut sse = Sse::connect(s.addr, "/devtools/api/events");
    assert_eq!(sse.status, 200);
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    assert_eq!(sse.header("cache-control"), Some("no-cache"));
    assert_eq!(sse.header("access-control-allow-origin"), None);
    let first = sse.next_frame().unwrap();
    assert_eq!((first.id, first.event.as_str()), (1, "system.connected"));
    assert!(
        first
            .raw
            .starts_with("id: 1\nevent: system.connected\ndata: {\"ts\":\""),
        "{:?}",
        first.raw
    );
    let c = &first.data["data"];
    assert_eq!(c["version"], env!("CARGO_PKG_VERSION"));
    assert!(c["hostname"].is_string() && c["kernel"].is_string());
    assert_eq!(c["probes"][0]["status"], "attached");
    assert_eq!(c["limits"]["client_queue"], 64);
    for pid in 0..20 {
        s.double.publish(stopped(pid));
    }
    for (i, pid) in (2..22).zip(0..) {
        let f = sse.next_frame().unwrap();
        assert_eq!((f.id, f.event.as_str()), (i, "process.stopped"));
        assert_eq!(f.data["data"]["pid"], pid);
    }
    // a newline inside a value stays escaped: one data line per frame
    s.double.publish(Event::ProcessStarted(ProcessStarted {
        pid: 5,
        ppid: 1,
        exe: "/bin/sh".into(),
        cmdline: vec!["sh".into(), "-c".into(), "echo a\necho b".into()],
        user: "root".into(),
        uid: 0,
        container: None,
    }));
    let f = sse.next_frame().unwrap();
    assert_eq!(f.data["data"]["cmdline"][2], "echo a\necho b");
}

#[test]
fn topics_filter_and_unknown_topic_is_400() {
    let s = TestServer::start(cfg(1000, 64), Duration::from_secs(15));
    let mut sse = Sse::connect(
        s.addr,
        "/devtools/api/events?topics=process.stopped%2Crequest.http_transaction",
    );
    assert_eq!(
        sse.next_frame().unwrap().event,
        "system.connected",
        "system frames are never filtered"
    );
    s.double.publish(started(1, 0));
    s.double.publish(stopped(2));
    s.double.publish(Event::Dropped(Dropped {
        events: 4,
        bytes: 400,
        reason: "ringbuf-full".into(),
    }));
    let f = sse.next_frame().unwrap();
    assert_eq!(
        (f.id, f.event.as_str(), &f.data["data"]["pid"]),
        (2, "process.stopped", &serde_json::json!(2))
    );
    let f = sse.next_frame().unwrap();
    assert_eq!((f.id, f.event.as_str()), (3, "system.dropped"));
    assert_eq!(f.data["data"]["reason"], "ringbuf-full");

    let r = get(
        s.addr,
        "/devtools/api/events?topics=request.http,process.started",
        &[],
    );
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("unknown topic `request.http`")
            && r.text().contains("request.http_transaction"),
        "{}",
        r.text()
    );
}

#[test]
fn keep_alive_comment_when_idle() {
    let s = TestServer::start(cfg(1000, 64), Duration::from_millis(200));
    let mut sse = Sse::connect(s.addr, "/devtools/api/events");
    sse.next_frame().unwrap();
    assert_eq!(sse.next_block().unwrap(), ": keep-alive\n\n");
    assert_eq!(sse.next_block().unwrap(), ": keep-alive\n\n");
    // events still flow, numbering unaffected by comments
    s.double.publish(stopped(1));
    assert_eq!(sse.next_frame().unwrap().id, 2);
}

#[test]
fn stalled_client_next_to_fast_one() {
    const N: u32 = 1500;
    let s = TestServer::start(cfg(1000, 64), Duration::from_secs(15));
    let mut fast = Sse::connect(s.addr, "/devtools/api/events");
    // the stalled client sends its request and then reads nothing
    let mut stalled = std::net::TcpStream::connect(s.addr).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stalled
        .write_all(request_head(s.addr, "GET", "/devtools/api/events", &[], false).as_bytes())
        .unwrap();
    eventually(10, "both clients subscribed", || s.hub.clients() == 2);
    assert_eq!(fast.next_frame().unwrap().event, "system.connected");
    // 24 MiB in total: far more than the socket buffers and the 64-frame queue hold
    for pid in 0..N {
        s.double.publish(started(pid, 16 * 1024));
        let f = fast.next_frame().unwrap();
        assert_eq!(
            (f.id, f.event.as_str()),
            (u64::from(pid) + 2, "process.started"),
            "the fast client gets every event"
        );
    }

    // now the stalled one reads: the events that were buffered or queued, then the count of
    // what it missed
    let mut slow = Sse::read_response(stalled);
    let mut expect_id = 1;
    let (mut got, mut last_pid) = (0u64, None);
    let missed = loop {
        let f = slow.next_frame().unwrap();
        assert_eq!(f.id, expect_id, "ids go up by one");
        expect_id += 1;
        match f.event.as_str() {
            "system.connected" => assert_eq!(f.id, 1),
            "process.started" => {
                let pid = f.data["data"]["pid"].as_u64().unwrap();
                assert!(
                    last_pid.is_none_or(|p| pid == p + 1),
                    "in order, no hole before the gap"
                );
                last_pid = Some(pid);
                got += 1;
            }
            "system.dropped" => {
                let d = &f.data["data"];
                assert_eq!(d["reason"], "slow-client");
                let events = d["events"].as_u64().unwrap();
                // `bytes` counts the HTTP bodies the missed frames carried: process
                // events carry none (however large their cmdline)
                assert_eq!(d["bytes"], 0, "{d}");
                break events;
            }
            other => panic!("unexpected {other}"),
        }
    };
    assert!(missed > 0, "the stalled client missed nothing? got {got}");
    assert_eq!(
        got + missed,
        u64::from(N),
        "every event is either received or counted"
    );
    assert_eq!(s.hub.status().drops_by_reason.slow_client_events, missed);

    // and both go on with the next event
    s.double.publish(stopped(424242));
    for (c, id) in [(&mut fast, u64::from(N) + 2), (&mut slow, expect_id)] {
        let f = c.next_frame().unwrap();
        assert_eq!(
            (f.id, f.event.as_str(), &f.data["data"]["pid"]),
            (id, "process.stopped", &serde_json::json!(424242))
        );
    }
}

#[test]
fn probes_attach_with_first_client_and_detach_after_grace() {
    let s = TestServer::start(cfg(300, 64), Duration::from_millis(100));
    assert_eq!(s.double.counts(), (0, 0), "no probe without a client");
    let a = Sse::connect(s.addr, "/devtools/api/events");
    let mut b = Sse::connect(s.addr, "/devtools/api/events");
    b.next_frame().unwrap();
    assert_eq!(s.double.counts(), (1, 0), "attached once for two clients");
    drop(a);
    drop(b);
    // the server notices the closed sockets at the next keep-alive write, then waits `grace`
    eventually(10, "detach after the last client left", || {
        s.double.counts() == (1, 1)
    });
    assert_eq!(s.hub.clients(), 0);
    let mut c = Sse::connect(s.addr, "/devtools/api/events");
    c.next_frame().unwrap();
    assert_eq!(s.double.counts(), (2, 1), "a new client attaches again");
}

#[test]
fn reconnecting_within_grace_keeps_probes_attached() {
    let s = TestServer::start(cfg(1500, 64), Duration::from_millis(50));
    let mut a = Sse::connect(s.addr, "/devtools/api/events");
    a.next_frame().unwrap();
    drop(a);
    eventually(10, "the server saw the first client leave", || {
        s.hub.clients() == 0
    });
    let mut b = Sse::connect(s.addr, "/devtools/api/events"); // like a page reload
    b.next_frame().unwrap();
    std::thread::sleep(Duration::from_millis(2500)); // past the first grace deadline
    assert_eq!(
        s.double.counts(),
        (1, 0),
        "never detached, never re-attached"
    );
    s.double.publish(stopped(1));
    assert_eq!(b.next_frame().unwrap().event, "process.stopped");
}

#[test]
fn failed_attach_is_in_system_connected_and_stream_stays_open() {
    let d = Double::default();
    *d.fail.lock().unwrap() = Some("permission denied — run as root".into());
    let s = TestServer::start_with(d, cfg(1000, 64), Duration::from_millis(100));
    let mut sse = Sse::connect(s.addr, "/devtools/api/events");
    assert_eq!(sse.status, 200);
    let f = sse.next_frame().unwrap();
    assert_eq!(
        f.data["data"]["probes"][0]["status"],
        "failed: permission denied — run as root"
    );
    assert_eq!(sse.next_block().unwrap(), ": keep-alive\n\n", "still open");
    let v: serde_json::Value =
        serde_json::from_slice(&get(s.addr, "/devtools/api/health", &[]).body).unwrap();
    assert_eq!(v["attach_error"], "permission denied — run as root");
}

#[test]
fn shutdown_sends_disconnected_and_ends_the_stream() {
    let mut s = TestServer::start(cfg(60_000, 64), Duration::from_secs(15));
    let mut sse = Sse::connect(s.addr, "/devtools/api/events");
    sse.next_frame().unwrap();
    s.stop("daemon stopping");
    let f = sse.next_frame().unwrap();
    assert_eq!((f.id, f.event.as_str()), (2, "system.disconnected"));
    assert_eq!(f.data["data"]["reason"], "daemon stopping");
    assert!(sse.next_frame().is_none(), "the body ends");
    assert_eq!(s.double.counts(), (1, 1), "probes detached at shutdown");
}
