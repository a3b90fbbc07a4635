//! The global memory budget (`--max-buffer-bytes`): every byte the tracker buffers for
//! traffic — connections themselves, TLS handshakes being read, HTTP/1.x heads, exchanges
//! and bodies in flight, HTTP/2 frames, streams and HPACK tables — is counted in one total.
//! Past the budget, the oldest incomplete exchanges are dropped (their connection's
//! parser restarts, as after bytes lost in capture), then, if that is not enough, the
//! connections idle the longest are forgotten; each such loss is reported as
//! `system.dropped {reason: "memory-budget"}`.
//!
//! Cost on the hot path: after each record, the connection it fed recomputes what it
//! holds (one pass over its exchanges in flight, usually one) and the total moves by the
//! difference. Eviction, rare, sorts the connections once and frees down to 7/8 of the
//! budget, so a stream of records over the budget does not sort once per record.
use super::{Conn, ConnKey, KernelControl, Tracker};
use crate::events::{Dropped, Event, Timestamp};
use std::mem::size_of;

/// Default of `--max-buffer-bytes`.
pub const DEFAULT_MAX_BUFFER_BYTES: usize = 256 << 20;
/// The reason of the `system.dropped` events the budget causes.
pub const MEMORY_BUDGET: &str = "memory-budget";

#[derive(Debug)]
pub(super) struct Budget {
    pub max: usize,
    pub total: usize,
    /// exchanges (or connections) dropped since the last report, and the bytes they held
    pub dropped_events: u64,
    pub dropped_bytes: u64,
}

impl Budget {
    pub(super) fn new(max: usize) -> Self {
        Budget {
            max,
            total: 0,
            dropped_events: 0,
            dropped_bytes: 0,
        }
    }

    /// `system.dropped` for what was evicted since the last call.
    pub(super) fn report(&mut self) -> Option<Event> {
        (self.dropped_events > 0).then(|| {
            Event::Dropped(Dropped {
                events: std::mem::take(&mut self.dropped_events),
                bytes: std::mem::take(&mut self.dropped_bytes),
                reason: MEMORY_BUDGET.into(),
            })
        })
    }
}

impl Conn {
    /// What a connection costs even when it buffers nothing: itself, its map entry (hash
    /// maps keep up to twice their entries' room, see [`Tracker::compact`]), its id and
    /// its pid's set entry.
    pub(super) fn base_bytes(&self) -> usize {
        size_of::<Conn>()
            + 2 * size_of::<(ConnKey, Box<Conn>)>()
            + self.id.capacity()
            + self
                .h2
                .as_ref()
                .map_or(0, |_| size_of::<crate::http2::H2Conn>())
            + 64
    }

    /// Heap bytes held for this connection's traffic.
    pub(super) fn held_bytes(&self) -> usize {
        self.base_bytes()
            + self.hello.iter().map(Vec::capacity).sum::<usize>()
            + self.http.as_ref().map_or(0, |h| h.buffered_bytes())
            + self.h2.as_ref().map_or(0, |h| h.buffered_bytes())
    }

    /// Something is in flight: an exchange, a message, a handshake being read.
    fn busy(&self) -> bool {
        self.hello.iter().any(|h| !h.is_empty())
            || self.http.as_ref().is_some_and(|h| !h.is_idle())
            || self.h2.as_ref().is_some_and(|h| !h.is_idle())
    }
}

impl Tracker {
    /// Buffered bytes counted against the budget now.
    pub fn buffered_bytes(&self) -> usize {
        self.budget.total
    }

    /// Recounts what the connection `key` holds (after it was fed) and evicts when the
    /// total is over the budget.
    pub(super) fn account(&mut self, key: ConnKey, ts: Timestamp, k: &mut dyn KernelControl) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let now = c.held_bytes();
        self.budget.total = self.budget.total.saturating_sub(c.mem) + now;
        c.mem = now;
        c.active = ts.0;
        if c.busy() {
            c.busy_since.get_or_insert(ts.0);
        } else {
            c.busy_since = None;
        }
        if self.budget.total > self.budget.max {
            self.evict(ts, k);
        }
    }

    /// Gives back the room of the connection map when it holds far fewer connections than
    /// it grew to (a hash map never shrinks by itself). Cheap when there is nothing to do.
    pub(super) fn compact(&mut self) {
        let (len, cap) = (self.conns.len(), self.conns.capacity());
        if cap > 1024 && cap > 4 * len {
            self.conns.shrink_to(2 * len);
        }
    }

    /// A connection forgotten: its bytes leave the total.
    pub(super) fn account_gone(&mut self, c: &Conn) {
        self.budget.total = self.budget.total.saturating_sub(c.mem);
    }

    /// Frees down to 7/8 of the budget: first the oldest exchanges in flight (their
    /// connections' parsers restart), then the connections idle the longest.
    fn evict(&mut self, ts: Timestamp, k: &mut dyn KernelControl) {
        let target = self.budget.max - self.budget.max / 8;
        let mut busy: Vec<(u64, ConnKey)> = Vec::new();
        let mut idle: Vec<(u64, ConnKey)> = Vec::new();
        for (key, c) in self.conns.iter() {
            match c.busy_since {
                Some(t) => busy.push((t, *key)),
                None => idle.push((c.active, *key)),
            }
        }
        busy.sort_unstable_by_key(|(t, _)| *t);
        for (_, key) in busy {
            if self.budget.total <= target {
                return;
            }
            self.drop_in_flight(key, ts, k);
            if let Some(c) = self.conns.get(&key) {
                idle.push((c.active, key));
            }
        }
        idle.sort_unstable_by_key(|(t, _)| *t);
        for (_, key) in idle {
            if self.budget.total <= target {
                return;
            }
            if let Some(c) = self.forget(key) {
                self.budget.dropped_events += 1;
                self.budget.dropped_bytes += c.mem as u64;
            }
        }
    }

    /// Drops what connection `key` has in flight; the connection stays.
    fn drop_in_flight(&mut self, key: ConnKey, ts: Timestamp, k: &mut dyn KernelControl) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let before = c.mem;
        let mut lost = 0;
        if c.hello.iter().any(|h| !h.is_empty()) {
            // the handshake cannot be read any more: stop copying the ciphertext
            c.hello = [Vec::new(), Vec::new()];
            lost += 1;
            if c.fd >= 0 && !c.muted {
                c.muted = true;
                k.set_sock_state(c.pid, c.fd, Some(qtap_common::sock_state::MUTE));
            }
        }
        if let Some(h) = c.http.as_mut().filter(|h| !h.is_idle()) {
            lost += h.in_flight().max(1);
            *h = h.restart(ts);
        }
        if let Some(h) = c.h2.as_mut().filter(|h| !h.is_idle()) {
            lost += h.in_flight().max(1);
            **h = h.restart();
        }
        c.busy_since = None;
        let now = c.held_bytes();
        c.mem = now;
        self.budget.total = self.budget.total.saturating_sub(before) + now;
        self.budget.dropped_events += lost as u64;
        self.budget.dropped_bytes += before.saturating_sub(now) as u64;
    }
}
