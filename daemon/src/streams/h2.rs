//! The tracker's HTTP/2 path: a connection whose first bytes are HTTP/2 (see
//! [`Tracker::feed`]), or that an HTTP/1.1 `Upgrade: h2c` switched, is parsed by
//! [`crate::http2::H2Conn`] instead of the HTTP/1.x parser.
use super::{ConnKey, Tracker};
use crate::events::{Dropped, Event, Timestamp};
use crate::http::{Exchange, Side};
use crate::http2::H2Conn;

impl Tracker {
    /// [`Tracker::feed`] for an HTTP/2 connection.
    pub(super) fn feed_h2(
        &mut self,
        key: ConnKey,
        side: Side,
        lost: u64,
        fresh: &[u8],
        ts: Timestamp,
    ) -> bool {
        let Some(h) = self.conns.get_mut(&key).and_then(|c| c.h2.as_mut()) else {
            return false;
        };
        let mut done = Vec::new();
        let was_stopped = h.connection_error().is_some();
        if lost > 0 {
            self.lost_stream_bytes += lost;
            done.extend(h.gap(side, lost, ts));
        }
        if !fresh.is_empty() {
            done.extend(h.feed(side, fresh, ts));
        }
        let not_h2 = h.is_not_http2();
        let stopped = !was_stopped && h.connection_error().is_some();
        if let Some(c) = self.conns.get_mut(&key) {
            c.fed |= !fresh.is_empty();
            if not_h2 {
                c.h2 = None;
            }
        }
        self.emit_opened(key);
        for ex in done {
            self.emit_exchange(key, ex);
        }
        if stopped {
            // its streams said why in their `error`; the rest of it is not decoded
            tracing::debug!("an HTTP/2 connection broke a decoding rule; its decoding stopped");
            self.out.push(Event::Dropped(Dropped {
                events: 1,
                bytes: 0,
                reason: "http2-connection-error".into(),
            }));
        }
        not_h2
    }

    /// After the HTTP/1.x parser stopped at a server's `fresh` bytes: when `done` holds an
    /// accepted `Upgrade: h2c` (101), the connection goes on as HTTP/2, stream 1 being the
    /// upgrade request, and the bytes after the 101 head are fed to it. Exchanges they
    /// complete are added to `done`. Returns whether the connection was switched.
    pub(super) fn h2c_upgrade(
        &mut self,
        key: ConnKey,
        fresh: &[u8],
        done: &mut Vec<Exchange>,
        ts: Timestamp,
    ) -> bool {
        let Some(req) = done.iter().find_map(|e| {
            let r = e.response.as_ref()?;
            let h2c = r.status == 101
                && r.headers.iter().any(|(n, v)| {
                    n.eq_ignore_ascii_case("upgrade") && v.trim().eq_ignore_ascii_case("h2c")
                });
            h2c.then_some(e.request.as_ref()?)
        }) else {
            return false;
        };
        let mut h2 = H2Conn::upgraded(self.limits, req, ts);
        // the 101 head ends at the first blank line after its status line
        let from = fresh
            .windows(12)
            .position(|w| w.starts_with(b"HTTP/1.1 101"))
            .unwrap_or(0);
        if let Some(end) = fresh[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            done.extend(h2.feed(Side::Server, &fresh[from + end + 4..], ts));
        }
        if let Some(c) = self.conns.get_mut(&key) {
            c.h2 = Some(Box::new(h2));
        }
        true
    }
}

#[cfg(test)]
#[path = "tests_h2.rs"]
mod tests;
