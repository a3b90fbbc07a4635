//! What an [`HttpConn`] holds in memory, for the daemon's global budget
//! (`--max-buffer-bytes`, see `streams::budget`).
use super::super::body::headers_bytes;
use super::super::head::ParsedHead;
use super::super::slots::{Msg, Slot};
use super::HttpConn;
use std::mem::size_of;

fn msg_bytes<L>(m: &Msg<L>) -> usize {
    headers_bytes(&m.headers) + headers_bytes(&m.trailers) + m.body.held_bytes()
}

fn slot_bytes(s: &Slot) -> usize {
    // errors and informational codes: a few short strings at most
    128 + s.req.as_ref().map_or(0, |m| {
        msg_bytes(m) + m.line.method.capacity() + m.line.target.capacity()
    }) + s
        .resp
        .as_ref()
        .map_or(0, |m| msg_bytes(m) + m.line.reason.capacity())
}

impl HttpConn {
    /// Heap bytes held beyond the struct itself: heads in progress, exchanges in flight
    /// (headers, bodies), and bytes held while one side waits for the other. Cheap: one
    /// pass over the exchanges in flight (at most [`super::MAX_PENDING`]).
    pub fn buffered_bytes(&self) -> usize {
        let mut n = self.client.held_bytes() + self.server.held_bytes();
        n += self.slots.capacity() * size_of::<Slot>();
        n += self.slots.iter().map(slot_bytes).sum::<usize>();
        if let Some(s) = &self.stalled {
            n += s.bytes.capacity()
                + match &s.head {
                    ParsedHead::Request { headers, .. } | ParsedHead::Response { headers, .. } => {
                        headers_bytes(headers)
                    }
                };
        }
        if let Some(h) = &self.hold {
            n += h.bytes.capacity();
        }
        n
    }

    /// Exchanges in flight (requests seen whose exchange is not complete), for reports of
    /// what an eviction dropped.
    pub fn in_flight(&self) -> usize {
        self.slots.len() + usize::from(self.stalled.is_some())
    }
}

impl HttpConn {
    /// Nothing in flight: no exchange waiting, no message in progress on either side.
    pub fn is_idle(&self) -> bool {
        self.slots.is_empty()
            && self.stalled.is_none()
            && self.hold.is_none()
            && self.client.at_boundary()
            && self.server.at_boundary()
    }

    /// A parser to go on with once this one's state is dropped (the memory budget evicted
    /// it). Each request dropped before its response began keeps its place as a request
    /// "not captured", so the responses still to come pair as they would have; a side that
    /// was inside a message resynchronises at its next start line, as after bytes lost in
    /// capture.
    pub fn restart(&self, ts: crate::events::Timestamp) -> HttpConn {
        let mut h = HttpConn::new(self.limits);
        if self.state != super::State::Http {
            h.state = self.state;
            h.client.stop();
            h.server.stop();
            return h;
        }
        let why = "request dropped: the daemon's memory budget (--max-buffer-bytes) was reached";
        let answering = self.server_cur.map(|(id, _)| id);
        for s in &self.slots {
            if !s.resp_done && s.resp.is_none() && Some(s.id) != answering {
                h.placeholder(ts, why.into());
            }
        }
        if !self.client.at_boundary() {
            if self.client_cur.is_none() {
                // a request head in progress
                h.placeholder(ts, why.into());
            }
            h.client.resync();
        }
        if self.hold.is_some() {
            h.client.resync();
        }
        if !self.server.at_boundary() || self.stalled.is_some() {
            h.server.resync();
        }
        h
    }
}
