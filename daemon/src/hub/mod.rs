//! Fan-out of events to clients, and the probe lifecycle.
//!
//! The capture engine publishes through a [`Publisher`] (any thread; never waits). Every
//! client (an SSE stream or `qtap trace`) holds a [`Subscription`] with its own bounded
//! queue, so a stalled client costs only its own frames (counted, then reported to it as
//! `system.dropped {reason: "slow-client"}`) and never slows capture or other clients.
//!
//! Probes are attached when the first client subscribes and detached `grace` after the last
//! one leaves, unless another subscribes in between. No lock is held while the engine
//! attaches or detaches (an attach may wait seconds for JVMs): health and status answer
//! meanwhile, and other subscribers wait on a condition variable for the outcome.
mod queue;
mod stats;

use crate::events::{Connected, Disconnected, Envelope, Event, Limits, ProbeStatus, TOPICS};
use queue::{ClientQueue, Pop};
use serde::Serialize;
use stats::Stats;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

/// The capture engine, as the hub drives it.
pub trait ProbeControl: Send + Sync + 'static {
    /// Load and attach the kernel programs; start publishing into `sink`. Returns the probe list for system.connected.
    fn attach(&self, sink: Publisher) -> Result<Vec<ProbeStatus>, String>;
    /// Detach and unload everything (no program of ours stays in the kernel).
    fn detach(&self);
    /// Snapshot for a new client: process.started events for processes with open connections.
    fn snapshot(&self) -> Vec<Event> {
        Vec::new()
    }
    /// The limits announced in `system.connected`; the engine may fill in what it knows
    /// (chunk size, per-call cap). `client_queue` is the hub's and is overwritten.
    fn limits(&self, configured: Limits) -> Limits {
        configured
    }
    /// The current probe list while attached, when it changes after `attach` (libraries of
    /// new processes); `None` keeps the list `attach` returned.
    fn probes(&self) -> Option<Vec<ProbeStatus>> {
        None
    }
    /// What the capture holds now (for health), while attached.
    fn capture_stats(&self) -> Option<CaptureStats> {
        None
    }
}

/// What the capture holds in memory, for `/devtools/api/health`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CaptureStats {
    /// connections the capture follows now
    pub connections: u64,
    /// bytes counted against `--max-buffer-bytes` now
    pub buffered_bytes: u64,
    /// the budget
    pub max_buffer_bytes: u64,
}

/// Defaults announced in `system.connected` when the engine does not say otherwise.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// `--max-header-bytes` unless given.
pub const DEFAULT_MAX_HEADER_BYTES: u64 = crate::http2::hpack::DEFAULT_MAX_HEADER_BYTES as u64;
pub const DEFAULT_CHUNK_BYTES: u64 = 16 * 1024;
pub const DEFAULT_MAX_BYTES_PER_CALL: u64 = 256 * 1024;
/// Bytes queued per client by default: a quarter of the default memory budget.
pub const DEFAULT_CLIENT_QUEUE_BYTES: usize = 64 << 20;

/// The per-client queue bound for a memory budget of `max_buffer_bytes`: a quarter of
/// it, at least 1 MiB.
pub fn client_queue_bytes(max_buffer_bytes: usize) -> usize {
    (max_buffer_bytes / 4).max(1 << 20)
}

#[derive(Clone, Debug)]
pub struct HubConfig {
    /// how long probes stay attached after the last client left
    pub grace: Duration,
    /// frames queued per client before it starts missing some
    pub client_queue: usize,
    /// bytes (see [`Entry::weight`]) queued per client before it starts missing some
    pub client_queue_bytes: usize,
    pub limits: Limits,
    /// `system.connected.version` and health
    pub version: String,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            grace: Duration::from_secs(5),
            client_queue: 4096,
            client_queue_bytes: DEFAULT_CLIENT_QUEUE_BYTES,
            limits: Limits {
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                chunk_bytes: DEFAULT_CHUNK_BYTES,
                max_bytes_per_call: DEFAULT_MAX_BYTES_PER_CALL,
                client_queue: 4096,
                client_queue_bytes: DEFAULT_CLIENT_QUEUE_BYTES as u64,
                max_buffer_bytes: 0,
                max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            },
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// An event with its time, shared by every client it goes to; serialised at most once.
#[derive(Debug)]
pub struct Entry {
    envelope: Envelope,
    json: OnceLock<String>,
    weight: usize,
}

/// Heap bytes of an event's strings that can be large (bodies, headers, gRPC messages).
fn event_bytes(e: &Event) -> usize {
    let headers = |h: &crate::events::Headers| -> usize {
        h.iter().map(|(n, v)| n.len() + v.len() + 48).sum()
    };
    match e {
        Event::HttpTransaction(t) => {
            let tx = &t.transaction;
            let mut n = headers(&tx.request.headers) + tx.request.body.text.len();
            n += tx.request.url.len() + tx.request.path.len();
            if let Some(r) = &tx.response {
                n += headers(&r.headers) + r.body.text.len();
            }
            if let Some(g) = &tx.grpc {
                n += g
                    .messages
                    .iter()
                    .map(|m| m.data.len() + m.dump.as_ref().map_or(0, String::len) + 64)
                    .sum::<usize>();
            }
            n + 1024
        }
        Event::Connected(c) => 512 + c.probes.len() * 256,
        _ => 512,
    }
}

impl Entry {
    pub fn new(envelope: Envelope) -> Self {
        let weight = 2 * event_bytes(&envelope.data);
        Entry {
            envelope,
            json: OnceLock::new(),
            weight,
        }
    }
    /// What this entry holds in memory, approximately: the event and its JSON text
    /// (twice the event's strings). Client queues are bounded by it.
    pub fn weight(&self) -> usize {
        self.weight
    }
    pub fn topic(&self) -> &'static str {
        self.envelope.data.topic()
    }
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }
    /// `{"ts":…,"data":…}` on one line.
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| self.envelope.to_json())
    }
}

/// One frame of one stream: `id` counts from 1, by one, per subscription.
#[derive(Clone, Debug)]
pub struct Frame {
    pub id: u64,
    pub entry: Arc<Entry>,
}

impl Frame {
    pub fn topic(&self) -> &'static str {
        self.entry.topic()
    }
    pub fn event(&self) -> &Event {
        &self.entry.envelope.data
    }
    /// `id: N\nevent: <topic>\ndata: <json>\n\n`
    pub fn to_sse(&self) -> String {
        let mut s = String::new();
        self.write_sse(&mut s);
        s
    }
    /// Appends [`Frame::to_sse`] to `out`; the JSON is the entry's, shared by every client.
    pub fn write_sse(&self, out: &mut String) {
        use std::fmt::Write as _;
        let json = self.entry.json();
        out.reserve(json.len() + 64);
        let _ = write!(out, "id: {}\nevent: {}\ndata: ", self.id, self.topic());
        out.push_str(json);
        out.push_str("\n\n");
    }
    /// The `qtap trace` line (no trailing newline).
    pub fn to_ndjson(&self) -> String {
        self.entry.envelope.to_ndjson()
    }
    /// Appends the `qtap trace` line (no trailing newline) to `out`: serialised straight
    /// into it, or spliced from the entry's JSON when another client already made it.
    pub fn write_ndjson(&self, out: &mut Vec<u8>) {
        match self.entry.json.get() {
            Some(json) if json.starts_with('{') && json.len() > 2 => {
                out.extend_from_slice(b"{\"topic\":\"");
                out.extend_from_slice(self.topic().as_bytes());
                out.extend_from_slice(b"\",");
                out.extend_from_slice(&json.as_bytes()[1..]);
            }
            _ => self.entry.envelope.write_ndjson(out),
        }
    }
}

/// Where capture puts events. Cheap to clone; `publish` never waits for a client.
#[derive(Clone)]
pub struct Publisher {
    fanout: Arc<Fanout>,
}

impl Publisher {
    pub fn publish(&self, event: Event) {
        self.publish_envelope(Envelope::new(event));
    }

    /// For an engine that has its own timestamp for the event.
    pub fn publish_envelope(&self, envelope: Envelope) {
        self.publish_envelopes(vec![envelope]);
    }

    /// Several events at once, in order: one pass over the clients, and each client's
    /// reader woken once for all of them.
    pub fn publish_all(&self, events: impl IntoIterator<Item = Event>) {
        let envelopes: Vec<Envelope> = events.into_iter().map(Envelope::new).collect();
        if !envelopes.is_empty() {
            self.publish_envelopes(envelopes);
        }
    }

    fn publish_envelopes(&self, envelopes: Vec<Envelope>) {
        let st = &self.fanout.stats;
        Stats::add(&st.published, envelopes.len() as u64);
        for e in &envelopes {
            if let Event::Dropped(d) = &e.data {
                Stats::add(&st.capture_events, d.events);
                Stats::add(&st.capture_bytes, d.bytes);
            }
        }
        let clients = self
            .fanout
            .clients
            .read()
            .unwrap_or_else(|p| p.into_inner());
        if clients.list.is_empty() {
            return;
        }
        let entries: Vec<Arc<Entry>> = envelopes
            .into_iter()
            .map(|e| Arc::new(Entry::new(e)))
            .collect();
        for c in clients.list.iter() {
            let dropped = c.offer_all(&entries);
            if dropped > 0 {
                Stats::add(&st.slow_client_events, dropped);
            }
        }
    }
}

#[derive(Default)]
struct Clients {
    list: Vec<Arc<ClientQueue>>,
    closed: bool,
}

#[derive(Default)]
struct Fanout {
    clients: RwLock<Clients>,
    stats: Stats,
}

#[derive(Default)]
struct Life {
    clients: usize,
    attached: bool,
    probes: Vec<ProbeStatus>,
    attach_error: Option<String>,
    detach_at: Option<Instant>,
    shut_down: bool,
    /// an attach or a detach is running (without the lock); others wait on `Inner::idle`
    busy: bool,
}

struct Inner {
    control: Arc<dyn ProbeControl>,
    cfg: HubConfig,
    fanout: Arc<Fanout>,
    life: Mutex<Life>,
    wake: Condvar,
    /// signalled when `Life::busy` ends
    idle: Condvar,
    started: Instant,
    hostname: String,
    kernel: String,
}

impl Inner {
    fn life(&self) -> MutexGuard<'_, Life> {
        self.life.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits (the lock released meanwhile) until no attach or detach runs.
    fn wait_idle<'a>(&'a self, mut life: MutexGuard<'a, Life>) -> MutexGuard<'a, Life> {
        while life.busy {
            life = self.idle.wait(life).unwrap_or_else(|p| p.into_inner());
        }
        life
    }

    /// Detaches with the lock released (`busy` meanwhile); returns it re-taken.
    fn detach_unlocked<'a>(&'a self, mut life: MutexGuard<'a, Life>) -> MutexGuard<'a, Life> {
        life.attached = false;
        life.busy = true;
        drop(life);
        self.control.detach();
        let mut life = self.life();
        life.busy = false;
        self.idle.notify_all();
        life
    }

    /// Takes the engine's current probe list, while attached, if it keeps one.
    fn refresh_probes(&self, life: &mut Life) {
        match self.control.probes() {
            Some(now) if life.attached => life.probes = now,
            _ => {}
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let life = self.life.get_mut().unwrap_or_else(|p| p.into_inner());
        if life.attached {
            life.attached = false;
            self.control.detach();
        }
    }
}

/// The fan-out point. Clone freely; all clones are the same hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// Counters for `/devtools/api/health` and `STATUS=`.
#[derive(Clone, Debug, Serialize)]
pub struct HubStatus {
    pub version: String,
    pub probes: Vec<ProbeStatus>,
    pub attached: bool,
    /// why the last attach failed, while no probe is attached
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach_error: Option<String>,
    pub clients: usize,
    /// events published by capture since start
    pub events: u64,
    pub events_per_second: f64,
    /// events lost, whatever the reason (sum of `drops_by_reason` events)
    pub drops: u64,
    pub drops_by_reason: DropCounts,
    pub uptime_s: u64,
    /// present while the probes are attached
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureStats>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DropCounts {
    /// reported by capture (`system.dropped` it published: ring buffer full, …)
    pub capture_events: u64,
    pub capture_bytes: u64,
    /// frames slow clients missed (counted once per client)
    pub slow_client_events: u64,
}

impl Hub {
    pub fn new(control: Arc<dyn ProbeControl>, cfg: HubConfig) -> Hub {
        let (hostname, kernel) = uname();
        let inner = Arc::new(Inner {
            control,
            cfg,
            fanout: Arc::default(),
            life: Mutex::default(),
            wake: Condvar::new(),
            idle: Condvar::new(),
            started: Instant::now(),
            hostname,
            kernel,
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("qtap-hub".into())
            .spawn(move || housekeeping(weak))
            .expect("cannot start the hub's housekeeping thread");
        Hub { inner }
    }

    pub fn publisher(&self) -> Publisher {
        Publisher {
            fanout: self.inner.fanout.clone(),
        }
    }

    /// Adds a client. May block while the probes attach (call it off the async runtime).
    /// `topics`: `None` for all; names are checked against `events::TOPICS`. Fails only for
    /// an unknown topic or once the hub is shutting down; a failed attach is reported in
    /// the stream's `system.connected` (probe status `failed: …`) and by `attach_error`.
    pub fn subscribe(&self, topics: Option<Vec<String>>) -> Result<Subscription, String> {
        if let Some(t) = topics
            .iter()
            .flatten()
            .find(|t| !TOPICS.contains(&t.as_str()))
        {
            return Err(format!(
                "unknown topic `{t}`; known topics: {}",
                TOPICS.join(", ")
            ));
        }
        let inner = &self.inner;
        let (probes, attach_error, attached) = {
            let mut life = inner.life();
            if life.shut_down {
                return Err("the daemon is stopping".into());
            }
            life.clients += 1;
            life.detach_at = None;
            // another client's attach, or a detach, runs: its outcome first
            life = inner.wait_idle(life);
            if !life.attached && !life.shut_down {
                // attached without the lock: status and health answer meanwhile
                life.busy = true;
                drop(life);
                let r = inner.control.attach(self.publisher());
                life = inner.life();
                life.busy = false;
                inner.idle.notify_all();
                match r {
                    Ok(probes) => {
                        tracing::info!(probes = probes.len(), "probes attached");
                        life.attached = true;
                        life.probes = probes;
                        life.attach_error = None;
                    }
                    Err(e) => {
                        tracing::error!("cannot attach probes: {e}");
                        life.probes = vec![ProbeStatus {
                            library: "capture".into(),
                            path: String::new(),
                            status: format!("failed: {e}"),
                        }];
                        life.attach_error = Some(e);
                    }
                }
            }
            if life.shut_down {
                // shutdown came during the attach: it detaches (it waited for us)
                life.clients = life.clients.saturating_sub(1);
                return Err("the daemon is stopping".into());
            }
            inner.refresh_probes(&mut life);
            (
                life.probes.clone(),
                life.attach_error.clone(),
                life.attached,
            )
        };
        // From here on, `Subscription::drop` undoes the count above.
        let queue = Arc::new(ClientQueue::new(
            inner.cfg.client_queue,
            inner.cfg.client_queue_bytes,
            topics,
        ));
        let sub = Subscription {
            inner: inner.clone(),
            queue: queue.clone(),
            next_id: 1,
            attach_error,
        };
        {
            let mut clients = inner
                .fanout
                .clients
                .write()
                .unwrap_or_else(|p| p.into_inner());
            if clients.closed {
                return Err("the daemon is stopping".into());
            }
            clients.list.push(queue.clone());
        }
        let mut limits = inner.control.limits(inner.cfg.limits.clone());
        limits.client_queue = inner.cfg.client_queue as u64;
        limits.client_queue_bytes = inner.cfg.client_queue_bytes as u64;
        let connected = Event::Connected(Connected {
            version: inner.cfg.version.clone(),
            hostname: inner.hostname.clone(),
            kernel: inner.kernel.clone(),
            probes,
            limits,
        });
        let snapshot = if attached {
            inner.control.snapshot()
        } else {
            Vec::new()
        };
        let first = std::iter::once(connected)
            .chain(snapshot)
            .map(|e| Arc::new(Entry::new(Envelope::new(e))))
            .collect();
        queue.push_front_all(first);
        Ok(sub)
    }

    /// Sends `system.disconnected {reason}` to every client, ends their streams, refuses
    /// new ones and detaches the probes. Blocks while they detach.
    pub fn shutdown(&self, reason: &str) {
        let inner = &self.inner;
        let mut life = inner.life();
        if life.shut_down {
            return;
        }
        life.shut_down = true;
        life.detach_at = None;
        let last = Arc::new(Entry::new(Envelope::new(Event::Disconnected(
            Disconnected {
                reason: reason.to_string(),
            },
        ))));
        let list = {
            let mut clients = inner
                .fanout
                .clients
                .write()
                .unwrap_or_else(|p| p.into_inner());
            clients.closed = true;
            std::mem::take(&mut clients.list)
        };
        for q in list {
            q.close_with(last.clone());
        }
        // an attach running now finishes first, then is undone here
        life = inner.wait_idle(life);
        if life.attached {
            life = inner.detach_unlocked(life);
            tracing::info!("probes detached ({reason})");
        }
        drop(life);
        inner.wake.notify_all();
    }

    pub fn clients(&self) -> usize {
        self.inner.life().clients
    }

    pub fn is_attached(&self) -> bool {
        self.inner.life().attached
    }

    pub fn status(&self) -> HubStatus {
        let inner = &self.inner;
        let (probes, attached, attach_error, clients) = {
            let mut life = inner.life();
            inner.refresh_probes(&mut life);
            (
                life.probes.clone(),
                life.attached,
                life.attach_error.clone(),
                life.clients,
            )
        };
        let st = &inner.fanout.stats;
        let drops_by_reason = DropCounts {
            capture_events: Stats::get(&st.capture_events),
            capture_bytes: Stats::get(&st.capture_bytes),
            slow_client_events: Stats::get(&st.slow_client_events),
        };
        HubStatus {
            version: inner.cfg.version.clone(),
            probes,
            attached,
            attach_error,
            clients,
            events: Stats::get(&st.published),
            events_per_second: st.events_per_second(Instant::now()),
            drops: drops_by_reason.capture_events + drops_by_reason.slow_client_events,
            drops_by_reason,
            uptime_s: inner.started.elapsed().as_secs(),
            capture: if attached {
                inner.control.capture_stats()
            } else {
                None
            },
        }
    }
}

impl HubStatus {
    /// One line for systemd's `STATUS=` (shown by `systemctl status`).
    pub fn line(&self) -> String {
        let probes = if self.attached {
            "probes attached".to_string()
        } else if let Some(e) = &self.attach_error {
            format!("probes failed: {e}")
        } else {
            "probes detached".to_string()
        };
        format!(
            "{} client{}, {probes}, {:.0} events/s, {} dropped",
            self.clients,
            if self.clients == 1 { "" } else { "s" },
            self.events_per_second,
            self.drops
        )
    }
}

/// One client's stream. Dropping it unsubscribes.
pub struct Subscription {
    inner: Arc<Inner>,
    queue: Arc<ClientQueue>,
    next_id: u64,
    attach_error: Option<String>,
}

impl Subscription {
    /// The next frame; `None` once the hub has shut down and the last frame
    /// (`system.disconnected`) was returned. Cancel-safe.
    pub async fn next(&mut self) -> Option<Frame> {
        let entry = self.queue.pop().await?;
        Some(self.number(entry))
    }

    /// The next frame if one is ready, without waiting.
    pub fn try_next(&mut self) -> Option<Frame> {
        match self.queue.try_pop() {
            Pop::Entry(e) => Some(self.number(e)),
            Pop::Empty | Pop::Closed => None,
        }
    }

    /// Why the probes could not be attached for this subscription, if they could not.
    pub fn attach_error(&self) -> Option<&str> {
        self.attach_error.as_deref()
    }

    fn number(&mut self, entry: Arc<Entry>) -> Frame {
        let id = self.next_id;
        self.next_id += 1;
        Frame { id, entry }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let inner = &self.inner;
        {
            let mut clients = inner
                .fanout
                .clients
                .write()
                .unwrap_or_else(|p| p.into_inner());
            clients.list.retain(|q| !Arc::ptr_eq(q, &self.queue));
        }
        let mut life = inner.life();
        life.clients = life.clients.saturating_sub(1);
        if life.clients == 0 && !life.shut_down && life.attached {
            life.detach_at = Some(Instant::now() + inner.cfg.grace);
            tracing::debug!(grace = ?inner.cfg.grace, "last client left; detaching after the grace period");
        }
        drop(life);
        inner.wake.notify_all();
    }
}

/// Detaches after the grace period and samples the event rate; ends with the hub.
fn housekeeping(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let now = Instant::now();
        inner.fanout.stats.sample(now);
        let mut life = inner.life();
        if life.shut_down {
            return;
        }
        if life.detach_at.is_some_and(|at| now >= at) {
            life.detach_at = None;
            if life.clients == 0 && life.attached && !life.busy {
                for p in &mut life.probes {
                    p.status = "detached".into();
                }
                life = inner.detach_unlocked(life);
                tracing::info!("probes detached (no client)");
            }
        }
        let wait = life
            .detach_at
            .map_or(Duration::from_secs(1), |at| {
                at.saturating_duration_since(now)
            })
            .min(Duration::from_secs(1));
        let guard = inner
            .wake
            .wait_timeout(life, wait)
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0);
        drop(guard);
    }
}

/// (hostname, kernel release) from uname(2).
fn uname() -> (String, String) {
    // SAFETY: utsname is plain arrays of c_char, for which all-zero is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname writes into the struct we own and NUL-terminates every field.
    if unsafe { libc::uname(&mut u) } != 0 {
        return ("unknown".into(), "unknown".into());
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (field(&u.nodename), field(&u.release))
}

#[cfg(test)]
mod tests;
