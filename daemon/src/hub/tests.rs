use super::*;
use crate::events::{Dropped, ProcessStarted, ProcessStopped};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

/// Records attach/detach calls and keeps the sink so the test can publish.
#[derive(Default)]
struct Double {
    attaches: AtomicUsize,
    detaches: AtomicUsize,
    sink: Mutex<Option<Publisher>>,
    fail: Mutex<Option<String>>,
    snapshot: Vec<Event>,
    /// what `probes()` reports after attach, if set
    later_probes: Mutex<Option<Vec<ProbeStatus>>>,
    /// while set, `attach` waits until it is cleared (an engine busy with JVMs)
    hold: Mutex<bool>,
    held: Condvar,
}

impl ProbeControl for Double {
    fn attach(&self, sink: Publisher) -> Result<Vec<ProbeStatus>, String> {
        self.attaches.fetch_add(1, SeqCst);
        let mut hold = self.hold.lock().unwrap();
        while *hold {
            hold = self.held.wait(hold).unwrap();
        }
        drop(hold);
        if let Some(e) = self.fail.lock().unwrap().clone() {
            return Err(e);
        }
        *self.sink.lock().unwrap() = Some(sink);
        Ok(vec![ProbeStatus {
            library: "syscalls".into(),
            path: "tracepoints".into(),
            status: "attached".into(),
        }])
    }
    fn detach(&self) {
        self.detaches.fetch_add(1, SeqCst);
        *self.sink.lock().unwrap() = None;
    }
    fn snapshot(&self) -> Vec<Event> {
        self.snapshot.clone()
    }
    fn probes(&self) -> Option<Vec<ProbeStatus>> {
        self.later_probes.lock().unwrap().clone()
    }
}

impl Double {
    fn publish(&self, e: Event) {
        self.sink
            .lock()
            .unwrap()
            .as_ref()
            .expect("not attached")
            .publish(e);
    }
    fn counts(&self) -> (usize, usize) {
        (self.attaches.load(SeqCst), self.detaches.load(SeqCst))
    }
    fn release(&self) {
        *self.hold.lock().unwrap() = false;
        self.held.notify_all();
    }
}

fn stopped(pid: u32) -> Event {
    Event::ProcessStopped(ProcessStopped::from_raw(pid, Some(0)))
}

fn hub(grace_ms: u64, queue: usize) -> (Arc<Double>, Hub) {
    hub_with(Double::default(), grace_ms, queue)
}

fn hub_with(d: Double, grace_ms: u64, queue: usize) -> (Arc<Double>, Hub) {
    let d = Arc::new(d);
    let cfg = HubConfig {
        grace: Duration::from_millis(grace_ms),
        client_queue: queue,
        ..HubConfig::default()
    };
    (d.clone(), Hub::new(d, cfg))
}

fn drain(s: &mut Subscription) -> Vec<Frame> {
    std::iter::from_fn(|| s.try_next()).collect()
}

/// Polls `f` until true, for at most 5 s (the bound is generous; the event comes much sooner).
fn eventually(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "timed out waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn stream_starts_with_connected_then_snapshot_then_live_with_ids_by_one() {
    let started = Event::ProcessStarted(ProcessStarted {
        pid: 42,
        ppid: 1,
        exe: "/usr/bin/curl".into(),
        cmdline: vec!["curl".into()],
        user: "root".into(),
        uid: 0,
        container: None,
    });
    let (d, hub) = hub_with(
        Double {
            snapshot: vec![started],
            ..Double::default()
        },
        1000,
        16,
    );
    let mut s = hub.subscribe(None).unwrap();
    d.publish(stopped(1));
    let frames = drain(&mut s);
    let topics: Vec<_> = frames.iter().map(Frame::topic).collect();
    assert_eq!(
        topics,
        ["system.connected", "process.started", "process.stopped"]
    );
    assert_eq!(frames.iter().map(|f| f.id).collect::<Vec<_>>(), [1, 2, 3]);
    match frames[0].event() {
        Event::Connected(c) => {
            assert_eq!(c.version, env!("CARGO_PKG_VERSION"));
            assert_eq!(c.probes[0].status, "attached");
            assert_eq!(c.limits.client_queue, 16);
            assert!(!c.kernel.is_empty() && !c.hostname.is_empty());
        }
        e => panic!("first frame is {e:?}"),
    }
    let sse = frames[2].to_sse();
    assert!(
        sse.starts_with("id: 3\nevent: process.stopped\ndata: {\"ts\":\""),
        "{sse}"
    );
    assert!(
        sse.ends_with("}\n\n") && sse.matches('\n').count() == 4,
        "{sse}"
    );
}

#[test]
fn attach_on_first_client_detach_after_grace() {
    let (d, hub) = hub(150, 16);
    assert_eq!(d.counts(), (0, 0));
    let a = hub.subscribe(None).unwrap();
    let b = hub.subscribe(None).unwrap();
    assert_eq!(d.counts(), (1, 0), "one attach for two clients");
    assert!(hub.is_attached());
    drop(a);
    drop(b);
    assert_eq!(hub.clients(), 0);
    assert_eq!(d.counts(), (1, 0), "still attached during the grace period");
    eventually("detach after grace", || d.counts() == (1, 1));
    assert!(!hub.is_attached());
    // a new client attaches again
    let _c = hub.subscribe(None).unwrap();
    assert_eq!(d.counts(), (2, 1));
}

#[test]
fn resubscribe_within_grace_cancels_detach() {
    let (d, hub) = hub(400, 16);
    drop(hub.subscribe(None).unwrap());
    std::thread::sleep(Duration::from_millis(50));
    let s = hub.subscribe(None).unwrap();
    // well past the first deadline: nothing was detached, nothing re-attached
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(d.counts(), (1, 0));
    drop(s);
    eventually("detach after the second client left", || {
        d.counts() == (1, 1)
    });
}

#[test]
fn stalled_client_misses_frames_fast_one_gets_all() {
    let (d, hub) = hub(1000, 4);
    let mut fast = hub.subscribe(None).unwrap();
    let mut slow = hub.subscribe(None).unwrap();
    let mut fast_got = drain(&mut fast).len(); // system.connected
    // slow already holds system.connected: 3 more fit, 7 are missed
    for pid in 0..10 {
        d.publish(stopped(pid));
        fast_got += drain(&mut fast).len();
    }
    assert_eq!(fast_got, 11);
    let frames = drain(&mut slow);
    let topics: Vec<_> = frames.iter().map(Frame::topic).collect();
    assert_eq!(
        topics,
        [
            "system.connected",
            "process.stopped",
            "process.stopped",
            "process.stopped",
            "system.dropped"
        ]
    );
    match frames[4].event() {
        Event::Dropped(x) => assert_eq!((x.events, x.reason.as_str()), (7, "slow-client")),
        e => panic!("{e:?}"),
    }
    assert!(frames.iter().zip(1..).all(|(f, i)| f.id == i));
    // the stream goes on after the gap
    d.publish(stopped(99));
    let next = slow.try_next().unwrap();
    assert_eq!((next.id, next.topic()), (6, "process.stopped"));
    let st = hub.status();
    assert_eq!(
        (st.events, st.drops, st.drops_by_reason.slow_client_events),
        (11, 7, 7)
    );
}

#[test]
fn capture_drops_reach_every_client_whatever_the_filter() {
    let (d, hub) = hub(1000, 16);
    let mut s = hub
        .subscribe(Some(vec!["request.http_transaction".into()]))
        .unwrap();
    d.publish(stopped(1)); // filtered out
    d.publish(Event::Dropped(Dropped {
        events: 3,
        bytes: 300,
        reason: "ringbuf-full".into(),
    }));
    let topics: Vec<_> = drain(&mut s).iter().map(Frame::topic).collect();
    assert_eq!(topics, ["system.connected", "system.dropped"]);
    let st = hub.status();
    assert_eq!((st.drops, st.drops_by_reason.capture_bytes), (3, 300));
}

#[test]
fn unknown_topic_is_refused() {
    let (d, hub) = hub(1000, 16);
    let e = hub
        .subscribe(Some(vec!["request.http".into()]))
        .err()
        .unwrap();
    assert!(e.contains("unknown topic `request.http`"), "{e}");
    assert_eq!((d.counts(), hub.clients()), ((0, 0), 0));
}

#[test]
fn failed_attach_is_reported_and_retried() {
    let (d, hub) = hub_with(
        Double {
            fail: Mutex::new(Some("no CAP_BPF".into())),
            ..Double::default()
        },
        50,
        16,
    );
    let mut s = hub.subscribe(None).unwrap();
    assert_eq!(s.attach_error(), Some("no CAP_BPF"));
    match s.try_next().unwrap().event() {
        Event::Connected(c) => assert_eq!(c.probes[0].status, "failed: no CAP_BPF"),
        e => panic!("{e:?}"),
    }
    assert!(s.try_next().is_none(), "the stream stays open, empty");
    assert_eq!(hub.status().attach_error.as_deref(), Some("no CAP_BPF"));
    *d.fail.lock().unwrap() = None;
    let s2 = hub.subscribe(None).unwrap();
    assert_eq!(s2.attach_error(), None);
    assert_eq!(d.counts(), (2, 0));
    assert!(hub.is_attached());
}

#[tokio::test]
async fn shutdown_says_goodbye_ends_streams_and_detaches() {
    let (d, hub) = hub(60_000, 16);
    let mut s = hub.subscribe(None).unwrap();
    let h = hub.clone();
    tokio::task::spawn_blocking(move || h.shutdown("daemon stopping"))
        .await
        .unwrap();
    assert_eq!(d.counts(), (1, 1));
    let first = s.next().await.unwrap();
    assert_eq!(first.topic(), "system.connected");
    let last = s.next().await.unwrap();
    match last.event() {
        Event::Disconnected(x) => assert_eq!(x.reason, "daemon stopping"),
        e => panic!("{e:?}"),
    }
    assert_eq!(last.id, 2);
    assert!(s.next().await.is_none());
    assert!(hub.subscribe(None).is_err());
    drop(s);
    assert_eq!(d.counts(), (1, 1), "no second detach");
}

#[test]
fn status_line_reads_well() {
    let (_d, hub) = hub(1000, 16);
    let _s = hub.subscribe(None).unwrap();
    let st = hub.status();
    assert_eq!(st.clients, 1);
    assert_eq!(
        st.line(),
        "1 client, probes attached, 0 events/s, 0 dropped"
    );
    let v = serde_json::to_value(&st).unwrap();
    for k in [
        "version",
        "probes",
        "attached",
        "clients",
        "events",
        "events_per_second",
        "drops",
        "uptime_s",
    ] {
        assert!(v.get(k).is_some(), "health lacks {k}: {v}");
    }
}

#[test]
fn dropping_the_hub_detaches() {
    let (d, hub) = hub(60_000, 16);
    drop(hub.subscribe(None).unwrap());
    drop(hub);
    eventually("detach when the hub goes away", || d.counts() == (1, 1));
}

#[test]
fn publish_from_many_threads_without_clients_or_with() {
    let (d, hub) = hub(1000, 100_000);
    let mut s = hub.subscribe(None).unwrap();
    let p = d.sink.lock().unwrap().clone().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || (0..1000).for_each(|i| p.publish(stopped(t * 1000 + i))))
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(drain(&mut s).len(), 4001);
}

#[test]
fn probe_list_follows_the_engine_while_attached() {
    let (d, hub) = hub(1000, 16);
    let _a = hub.subscribe(None).unwrap();
    assert_eq!(hub.status().probes.len(), 1);
    let more = vec![
        ProbeStatus {
            library: "syscalls".into(),
            path: "tracepoints".into(),
            status: "attached".into(),
        },
        ProbeStatus {
            library: "openssl".into(),
            path: "/usr/lib/libssl.so.3".into(),
            status: "attached".into(),
        },
    ];
    *d.later_probes.lock().unwrap() = Some(more.clone());
    assert_eq!(hub.status().probes, more);
    let mut b = hub.subscribe(None).unwrap();
    match b.try_next().unwrap().event() {
        Event::Connected(c) => assert_eq!(c.probes, more),
        e => panic!("{e:?}"),
    }
}

/// The `qtap trace` line is the same bytes whether it is serialised for it alone or
/// spliced from the JSON an SSE client already made.
#[test]
fn ndjson_line_same_direct_or_spliced_from_shared_json() {
    let mk = || {
        let e = Envelope {
            ts: crate::events::Timestamp(1_795_600_000_123_456_789),
            data: Event::Dropped(Dropped {
                events: 3,
                bytes: 49152,
                reason: "ringbuf-full".into(),
            }),
        };
        Frame {
            id: 7,
            entry: Arc::new(Entry::new(e)),
        }
    };
    let (direct, shared) = (mk(), mk());
    let _ = shared.entry.json(); // an SSE client made the JSON
    let (mut a, mut b) = (Vec::new(), Vec::new());
    direct.write_ndjson(&mut a);
    shared.write_ndjson(&mut b);
    assert_eq!(
        String::from_utf8(a.clone()).unwrap(),
        String::from_utf8(b).unwrap()
    );
    assert_eq!(
        String::from_utf8(a).unwrap(),
        r#"{"topic":"system.dropped","ts":"2026-11-25T09:46:40.123456789Z","data":{"events":3,"bytes":49152,"reason":"ringbuf-full"}}"#
    );
    assert_eq!(direct.to_ndjson(), shared.to_ndjson());
}

/// A batch reaches the client in order, and a full queue (system.connected takes one
/// of the 5 places) counts what it missed.
#[test]
fn publish_all_delivers_in_order_and_counts_drops() {
    let d = Arc::new(Double::default());
    let hub = Hub::new(
        d.clone(),
        HubConfig {
            client_queue: 5,
            ..HubConfig::default()
        },
    );
    let mut sub = hub.subscribe(None).unwrap();
    let sink = d.sink.lock().unwrap().clone().unwrap();
    sink.publish_all((1..=8).map(stopped));
    let mut got = Vec::new();
    while let Some(f) = sub.try_next() {
        got.push(match f.event() {
            Event::ProcessStopped(p) => format!("stopped {}", p.pid),
            Event::Dropped(x) => format!("dropped {} {}", x.events, x.reason),
            e => e.topic().to_string(),
        });
    }
    assert_eq!(
        got,
        [
            "system.connected",
            "stopped 1",
            "stopped 2",
            "stopped 3",
            "stopped 4",
            "dropped 4 slow-client"
        ]
    );
    assert_eq!(hub.status().drops_by_reason.slow_client_events, 4);
}

/// An attach that takes long (JVMs to attach to) holds no lock: status answers meanwhile; a
/// second client waits for the same attach (one attach in all); shutting down during it
/// detaches once it is done.
#[test]
fn slow_attach_holds_no_lock() {
    let (d, hub) = hub_with(
        Double {
            hold: Mutex::new(true),
            ..Double::default()
        },
        60_000,
        16,
    );
    let h1 = hub.clone();
    let first = std::thread::spawn(move || h1.subscribe(None).map(|_| ()));
    eventually("the attach started", || d.counts() == (1, 0));
    let t = Instant::now();
    let st = hub.status();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(!st.attached);
    assert_eq!(st.clients, 1);
    let h2 = hub.clone();
    let second = std::thread::spawn(move || h2.subscribe(None).map(|s| s.attach_error().is_none()));
    eventually("the second client counted", || hub.clients() == 2);
    assert!(
        !second.is_finished(),
        "the second client waits for the attach"
    );
    d.release();
    assert!(first.join().unwrap().is_ok());
    assert_eq!(second.join().unwrap(), Ok(true));
    assert_eq!(d.counts(), (1, 0), "one attach for both");

    // shutdown while an attach runs: it waits for it, then detaches
    let (d, hub) = hub_with(
        Double {
            hold: Mutex::new(true),
            ..Double::default()
        },
        60_000,
        16,
    );
    let h1 = hub.clone();
    let sub = std::thread::spawn(move || h1.subscribe(None).map(|_| ()));
    eventually("the attach started", || d.counts() == (1, 0));
    let h2 = hub.clone();
    let stop = std::thread::spawn(move || h2.shutdown("stopping"));
    eventually("shutdown began", || {
        hub.inner.fanout.clients.read().unwrap().closed
    });
    assert!(hub.status().clients <= 1);
    d.release();
    stop.join().unwrap();
    assert!(sub.join().unwrap().is_err(), "the daemon stopped meanwhile");
    assert_eq!(d.counts(), (1, 1));
    assert_eq!(hub.clients(), 0);
}
