//! The capture engine: one thread that owns the kernel programs while someone watches,
//! turns records into events (streams → http → attribution) and hands them to a sink.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::attribution::Processes;
use crate::attribution::docker::{DockerConfig, DockerNames};
use crate::capture::java::{JavaHandle, JavaRecord};
use crate::capture::{Capture, CaptureConfig, CaptureError, Record};
use crate::events::{Dropped, Event, ProbeStatus, Timestamp};
use crate::http::BodyLimits;
use crate::streams::{KernelControl, Tracker, TrackerConfig};

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub capture: CaptureConfig,
    pub max_body_bytes: usize,
    /// the global memory budget (`--max-buffer-bytes`)
    pub max_buffer_bytes: usize,
    /// HTTP/2 header bytes decoded per header block and per stream
    pub max_header_bytes: usize,
    /// where to ask Docker for container names; `None`: containers by id only
    pub docker: Option<DockerConfig>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            capture: CaptureConfig::default(),
            max_body_bytes: 1 << 20,
            max_buffer_bytes: crate::streams::DEFAULT_MAX_BUFFER_BYTES,
            max_header_bytes: crate::http2::hpack::DEFAULT_MAX_HEADER_BYTES,
            docker: Some(DockerConfig::default()),
        }
    }
}

/// Where the engine puts events: each call gets what one turn of the loop produced, in order.
pub type Sink = Box<dyn FnMut(Vec<Event>) + Send>;

struct Running {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Starts and stops the capture; safe to share between threads.
pub struct Engine {
    cfg: EngineConfig,
    /// held by `start` and `stop` (one at a time) for their whole run; `running` only for
    /// a moment, so `is_running` and `probes` answer while probes attach
    transition: Mutex<()>,
    running: Mutex<Option<Running>>,
    /// probe list, updated as libraries of new processes are attached
    probes: Arc<Mutex<Vec<ProbeStatus>>>,
    /// process.started for processes with open connections (for new clients)
    snapshot: Arc<Mutex<Vec<Event>>>,
    /// (connections followed, bytes buffered), updated by the capture thread
    held: Arc<[AtomicU64; 2]>,
}

struct Ctl<'a>(&'a mut Capture);

impl KernelControl for Ctl<'_> {
    fn set_sock_state(&mut self, pid: u32, fd: i32, state: Option<u32>) {
        self.0.set_sock_state(pid, fd, state);
    }
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            cfg,
            transition: Mutex::new(()),
            running: Mutex::new(None),
            probes: Arc::default(),
            snapshot: Arc::default(),
            held: Arc::default(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn is_running(&self) -> bool {
        self.running.lock().map(|r| r.is_some()).unwrap_or(false)
    }

    pub fn probes(&self) -> Vec<ProbeStatus> {
        self.probes.lock().map(|p| p.clone()).unwrap_or_default()
    }

    pub fn snapshot(&self) -> Vec<Event> {
        self.snapshot.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Loads and attaches everything, then streams events into `sink` until `stop`.
    pub fn start(&self, sink: Sink) -> Result<Vec<ProbeStatus>, CaptureError> {
        let _one = self.transition.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_running() {
            return Ok(self.probes());
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let cfg = self.cfg.clone();
        let (stop2, probes, snapshot) = (stop.clone(), self.probes.clone(), self.snapshot.clone());
        let held = self.held.clone();
        let thread = std::thread::Builder::new()
            .name("qtap-capture".into())
            .spawn(move || {
                let mut cap = match Capture::start(cfg.capture.clone()) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                // every running JVM gets the Java agent, and has its status, before the
                // capture is announced (the work runs on the Java worker thread; this waits
                // a bounded time for the outcome)
                let mut java = JavaHandle::start(cap.proc_root());
                let mut all = cap.probes().to_vec();
                if let Some(java) = java.as_mut() {
                    java.start_all(
                        &crate::capture::libs::pids(cap.proc_root()),
                        Duration::from_secs(10),
                    );
                    all.extend(java.take_statuses());
                }
                if let Ok(mut p) = probes.lock() {
                    *p = all.clone();
                }
                // connections open before the attach are captured from here on: marked in
                // the kernel before the caller is told the capture runs, so a request made
                // right after `system.connected` on such a connection is never missed
                let existing = cap.prime_existing();
                let _ = tx.send(Ok(all));
                run(
                    cap, java, existing, cfg, sink, stop2, probes, snapshot, held,
                );
            })
            .map_err(|e| CaptureError::Load(format!("cannot start the capture thread: {e}")))?;
        match rx.recv() {
            Ok(Ok(p)) => {
                *self.running.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Running { stop, thread });
                tracing::info!(probes = p.len(), "probes attached");
                Ok(p)
            }
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(CaptureError::Load(
                    "the capture thread ended while starting".into(),
                ))
            }
        }
    }

    /// Detaches and unloads everything; returns when no program of ours is left.
    pub fn stop(&self) {
        let _one = self.transition.lock().unwrap_or_else(|e| e.into_inner());
        let r = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(r) = r {
            r.stop.store(true, Ordering::SeqCst);
            let _ = r.thread.join();
            if let Ok(mut s) = self.snapshot.lock() {
                s.clear();
            }
            tracing::info!("probes detached");
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    mut cap: Capture,
    mut java: Option<JavaHandle>,
    existing: Vec<(u32, i32, crate::capture::procnet::TcpEntry, bool)>,
    cfg: EngineConfig,
    mut sink: Sink,
    stop: Arc<AtomicBool>,
    probes: Arc<Mutex<Vec<ProbeStatus>>>,
    snapshot: Arc<Mutex<Vec<Event>>>,
    held: Arc<[AtomicU64; 2]>,
) {
    // the Docker client lives as long as the probes do
    let mut procs = Processes::new(cap.proc_root());
    if let Some(d) = cfg.docker.clone() {
        procs = procs.with_docker(DockerNames::start(d));
    }
    let mut tracker = Tracker::new(
        TrackerConfig {
            limits: BodyLimits {
                max_body_bytes: cfg.max_body_bytes,
                max_header_bytes: cfg.max_header_bytes,
            },
            max_buffer_bytes: cfg.max_buffer_bytes,
        },
        procs,
    );
    let now = Timestamp::now();
    for (pid, fd, t, ingress) in existing {
        tracker.add_existing(pid, fd, t.local, t.remote, ingress, now);
    }
    emit(&mut sink, tracker.drain());
    // pid → when to look at its maps again (the loader maps libraries after exec)
    let mut scans: BTreeMap<Instant, Vec<u32>> = BTreeMap::new();
    // pid → when to look whether it is a JVM ready for the agent (a JVM answers the
    // attach signal only once it is up; a short-lived tool is not worth an agent)
    let mut java_checks: BTreeMap<Instant, Vec<u32>> = BTreeMap::new();
    let mut java_records = Vec::new();
    let mut records = Vec::new();
    let mut last_tick = Instant::now();
    let mut bad_records = 0u64;
    let mut sweeper = crate::capture::sweep::Sweeper::new();
    let mut idle_polls = 0u32;
    while !stop.load(Ordering::Relaxed) {
        // read before the ring buffer: every kernel record of what a Java message
        // describes (the connect, the handshake) is then handled before the message
        if let Some(j) = java.as_mut() {
            j.poll(&mut java_records);
        }
        // Data records below the wake-up threshold wake nobody, so the reader polls on a
        // short timeout while traffic flows; after a second without any record it waits
        // longer (connects, accepts and execs still wake it at once), so an idle capture
        // costs 10 wake-ups a second, not 100.
        let timeout = if idle_polls >= IDLE_AFTER_POLLS {
            crate::capture::IDLE_POLL_INTERVAL
        } else {
            crate::capture::POLL_INTERVAL
        };
        if let Err(e) = cap.poll(timeout, &mut records) {
            tracing::error!(error = %e, "capture stopped");
            break;
        }
        if records.is_empty() {
            idle_polls = idle_polls.saturating_add(1);
        } else {
            idle_polls = 0;
        }
        let clock = cap.clock();
        let wall = move |k: u64| Timestamp(clock.wall_ns(k));
        for r in records.drain(..) {
            match r {
                Ok(rec) => {
                    if let Record::Exec { pid, .. } = rec {
                        // the executable is there at once (a static OpenSSL); libraries
                        // are mapped by the loader a little later
                        add_probes(&probes, cap.attach_libs_of(pid));
                        let t = Instant::now();
                        for d in [10, 30, 250, 900] {
                            scans
                                .entry(t + Duration::from_millis(d))
                                .or_default()
                                .push(pid);
                        }
                        for d in [2, 6] {
                            java_checks
                                .entry(t + Duration::from_secs(d))
                                .or_default()
                                .push(pid);
                        }
                    }
                    if let Record::Exit { pid, .. } = rec
                        && let Some(j) = java.as_mut()
                    {
                        j.exited(pid);
                    }
                    tracker.handle(rec, &wall, &mut Ctl(&mut cap));
                }
                Err(e) => {
                    bad_records += 1;
                    if bad_records == 1 {
                        tracing::warn!(error = %e, "malformed ring-buffer record (further ones are counted)");
                    }
                }
            }
        }
        for jr in java_records.drain(..) {
            match jr {
                JavaRecord::Open { pid, open } => tracker.java_open(pid, open),
                JavaRecord::Data {
                    pid,
                    id,
                    dir,
                    pos,
                    bytes,
                } => tracker.java_data(
                    pid,
                    id,
                    dir,
                    pos,
                    &bytes,
                    Timestamp::now(),
                    &mut Ctl(&mut cap),
                ),
                JavaRecord::Drops {
                    pid,
                    messages,
                    bytes,
                } => {
                    tracing::debug!(pid, messages, bytes, "Java agent dropped plaintext");
                    sink(vec![Event::Dropped(Dropped {
                        events: messages,
                        bytes,
                        reason: "java-agent-queue-full".into(),
                    })]);
                }
            }
        }
        let now = Instant::now();
        tracker.java_tick(now, Timestamp::now());
        for pid in take_due(&mut java_checks, now) {
            if let Some(j) = java.as_mut() {
                j.consider(pid);
            }
        }
        if let Some(j) = java.as_mut() {
            add_probes(&probes, j.take_statuses());
        }
        for pid in take_due(&mut scans, now) {
            add_probes(&probes, cap.attach_libs_of(pid));
        }
        if now.duration_since(last_tick) >= Duration::from_secs(1) {
            last_tick = now;
            let d = cap.take_drops();
            let mut drops = Vec::new();
            if d.ringbuf_events > 0 {
                drops.push((d.ringbuf_events, d.ringbuf_bytes, "ringbuf-full"));
            }
            if d.per_call_bytes > 0 {
                drops.push((0, d.per_call_bytes, "per-call-limit"));
            }
            if d.read_fault_bytes > 0 {
                drops.push((0, d.read_fault_bytes, "read-fault"));
            }
            if d.control_events > 0 {
                drops.push((d.control_events, 0, "ringbuf-full-control"));
            }
            if d.socket_table_full > 0 {
                drops.push((d.socket_table_full, 0, "socket-table-full"));
            }
            if d.thread_table_full > 0 {
                drops.push((d.thread_table_full, 0, "thread-table-full"));
            }
            let drops = drops
                .into_iter()
                .map(|(events, bytes, reason)| {
                    Event::Dropped(Dropped {
                        events,
                        bytes,
                        reason: reason.into(),
                    })
                })
                .collect();
            emit(&mut sink, drops);
            if let Ok(mut s) = snapshot.lock() {
                *s = tracker.snapshot();
            }
            // sockets closed without close(2) (exit, exec, dup2): their kernel entries
            // and connections go
            let idle = || tracker.idle_sockets(crate::capture::sweep::IDLE, Timestamp::now());
            if let Some(gone) = sweeper.due(now, d.socket_table_full > 0, &mut cap, idle) {
                tracker.sockets_gone(&gone, Timestamp::now(), &mut Ctl(&mut cap));
            }
        }
        emit(&mut sink, tracker.drain());
        held[0].store(tracker.open_connections() as u64, Ordering::Relaxed);
        held[1].store(tracker.buffered_bytes() as u64, Ordering::Relaxed);
    }
    tracker.close_all(Timestamp::now());
    emit(&mut sink, tracker.drain());
    held[0].store(0, Ordering::Relaxed);
    held[1].store(0, Ordering::Relaxed);
    drop(java);
    drop(cap);
}

impl crate::hub::ProbeControl for Engine {
    fn attach(&self, sink: crate::hub::Publisher) -> Result<Vec<ProbeStatus>, String> {
        self.start(Box::new(move |evs| sink.publish_all(evs)))
            .map_err(|e| e.to_string())
    }

    fn detach(&self) {
        self.stop();
    }

    fn snapshot(&self) -> Vec<Event> {
        Engine::snapshot(self)
    }

    fn probes(&self) -> Option<Vec<ProbeStatus>> {
        self.is_running().then(|| Engine::probes(self))
    }

    fn capture_stats(&self) -> Option<crate::hub::CaptureStats> {
        self.is_running().then(|| crate::hub::CaptureStats {
            connections: self.held[0].load(Ordering::Relaxed),
            buffered_bytes: self.held[1].load(Ordering::Relaxed),
            max_buffer_bytes: self.cfg.max_buffer_bytes as u64,
        })
    }

    fn limits(&self, configured: crate::events::Limits) -> crate::events::Limits {
        crate::events::Limits {
            max_body_bytes: self.config().max_body_bytes as u64,
            max_header_bytes: self.config().max_header_bytes as u64,
            chunk_bytes: qtap_common::CHUNK_SIZE as u64,
            max_bytes_per_call: (qtap_common::CHUNK_SIZE as u64)
                * u64::from(qtap_common::MAX_CHUNKS_PER_CALL),
            ..configured
        }
    }
}

/// The pids whose time in `timers` has come (at or before `now`), taken out in time order.
/// Empty polls in a row (a second's worth) after which the reader waits
/// [`crate::capture::IDLE_POLL_INTERVAL`].
const IDLE_AFTER_POLLS: u32 = 100;

fn take_due(timers: &mut BTreeMap<Instant, Vec<u32>>, now: Instant) -> Vec<u32> {
    let due: Vec<Instant> = timers.range(..=now).map(|(k, _)| *k).collect();
    due.iter()
        .flat_map(|k| timers.remove(k).unwrap_or_default())
        .collect()
}

fn emit(sink: &mut Sink, events: Vec<Event>) {
    if !events.is_empty() {
        sink(events);
    }
}

fn add_probes(probes: &Mutex<Vec<ProbeStatus>>, new: Vec<ProbeStatus>) {
    if !new.is_empty()
        && let Ok(mut p) = probes.lock()
    {
        p.extend(new);
    }
}
