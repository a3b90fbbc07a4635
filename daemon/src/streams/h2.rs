//! The tracker's HTTP/2 path: a connection whose first bytes are HTTP/2 (see
//! [`Tracker::feed`]) is parsed by [`crate::http2::H2Conn`] instead of the HTTP/1.x parser.
use super::{ConnKey, Tracker};
use crate::events::Timestamp;
use crate::http::Side;

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
        if lost > 0 {
            self.lost_stream_bytes += lost;
            done.extend(h.gap(side, lost, ts));
        }
        if !fresh.is_empty() {
            done.extend(h.feed(side, fresh, ts));
        }
        let not_h2 = h.is_not_http2();
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
        not_h2
    }
}

#[cfg(test)]
#[path = "tests_h2.rs"]
mod tests;
