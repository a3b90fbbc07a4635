//! [`H2Conn`], continued: streams opened and finished, and whole frames (header blocks,
//! RST_STREAM, SETTINGS, GOAWAY).
use super::frame::{self, Head};
use super::{DirState, H2Conn, MAX_STREAMS, Pending, idx, name, other};
use crate::events::Timestamp;
use crate::http::Side;
use crate::http2::stream::{MAX_INFORMATIONAL, Stream, field};

/// Finished stream ids remembered, so that late frames do not open them again.
const CLOSED_IDS: usize = 256;

impl H2Conn {
    /// The open stream `id`, opened now when `opens` and it is new.
    pub(super) fn stream(
        &mut self,
        side: Side,
        id: u32,
        opens: bool,
        ts: Timestamp,
    ) -> Option<&mut Stream> {
        if id == 0 {
            return None;
        }
        if !self.streams.contains_key(&id) {
            let parity = (id & 1) as usize;
            if !opens || self.closed.contains(&id) || (self.from_start && id <= self.max_id[parity])
            {
                return None;
            }
            if self.streams.len() >= MAX_STREAMS
                && let Some((&oldest, _)) = self.streams.iter().next()
            {
                if let Some(s) = self.streams.get_mut(&oldest) {
                    s.error(format!(
                        "given up: more than {MAX_STREAMS} streams in flight"
                    ));
                    s.end = Some(ts);
                }
                self.finish(oldest);
            }
            self.max_id[parity] = self.max_id[parity].max(id);
            let mut s = Stream::new(ts, self.limits);
            let initiator = if id & 1 == 1 {
                Side::Client
            } else {
                Side::Server
            };
            if side != initiator && !self.from_start {
                s.error("stream began before the capture: its request was not seen");
            }
            self.streams.insert(id, s);
        }
        self.streams.get_mut(&id)
    }

    pub(super) fn finish(&mut self, id: u32) {
        if let Some(s) = self.streams.remove(&id) {
            self.closed.push_back(id);
            if self.closed.len() > CLOSED_IDS {
                self.closed.pop_front();
            }
            self.out.push(s.into_exchange(self.limits.max_body_bytes));
        }
    }

    /// A whole non-DATA frame.
    pub(super) fn on_frame(&mut self, side: Side, h: Head, p: &[u8], ts: Timestamp) {
        let i = idx(side);
        match h.kind {
            frame::HEADERS | frame::PUSH_PROMISE => {
                let Some(mut frag) = frame::unpad(&h, p) else {
                    self.drop_block(side, h.stream, "header block padding longer than the frame");
                    return;
                };
                let mut promised = None;
                if h.kind == frame::PUSH_PROMISE {
                    let Some((id, rest)) = frag.split_first_chunk::<4>() else {
                        self.drop_block(side, h.stream, "PUSH_PROMISE too short");
                        return;
                    };
                    promised = Some(u32::from_be_bytes(*id) & 0x7fff_ffff);
                    frag = rest;
                }
                let b = Pending {
                    stream: h.stream,
                    promised,
                    end_stream: h.kind == frame::HEADERS && h.has(frame::END_STREAM),
                    buf: frag.to_vec(),
                };
                if h.has(frame::END_HEADERS) {
                    self.on_block(side, b, ts);
                } else {
                    self.dirs[i].block = Some(b);
                }
            }
            frame::CONTINUATION => {
                let Some(mut b) = self.dirs[i].block.take() else {
                    return;
                };
                b.buf.extend_from_slice(p);
                if h.has(frame::END_HEADERS) {
                    self.on_block(side, b, ts);
                } else {
                    self.dirs[i].block = Some(b);
                }
            }
            frame::RST_STREAM => {
                let code = p.first_chunk::<4>().map_or(0, |c| u32::from_be_bytes(*c));
                if let Some(s) = self.streams.get_mut(&h.stream) {
                    if code != 0 || !s.resp.ended {
                        let why = format!(
                            "stream reset by the {} ({})",
                            name(side),
                            frame::error_name(code)
                        );
                        s.cut(&why, ts);
                        if s.resp.ended {
                            s.error(why);
                        }
                    }
                    s.end.get_or_insert(ts);
                    self.finish(h.stream);
                }
            }
            frame::SETTINGS if !h.has(frame::ACK) => {
                for s in p.chunks_exact(6) {
                    let id = u16::from_be_bytes([s[0], s[1]]);
                    let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
                    if id == frame::SETTINGS_HEADER_TABLE_SIZE {
                        // limits the encoder of the other direction
                        self.dirs[idx(other(side))].hpack.set_settings_max(v);
                    }
                }
            }
            frame::GOAWAY => {
                let Some((last, rest)) = p.split_first_chunk::<4>() else {
                    return;
                };
                let last = u32::from_be_bytes(*last) & 0x7fff_ffff;
                let code = rest
                    .first_chunk::<4>()
                    .map_or(0, |c| u32::from_be_bytes(*c));
                // streams the sender's peer opened above `last` were not processed
                let parity = u32::from(side == Side::Server);
                let refused: Vec<u32> = self
                    .streams
                    .keys()
                    .copied()
                    .filter(|id| id & 1 == parity && *id > last)
                    .collect();
                for id in refused {
                    if let Some(s) = self.streams.get_mut(&id) {
                        let why = format!(
                            "not processed: the {} sent GOAWAY ({})",
                            name(side),
                            frame::error_name(code)
                        );
                        s.cut(&why, ts);
                    }
                    self.finish(id);
                }
            }
            _ => {}
        }
    }

    /// A complete header block from `side`, decoded within what is left of its stream's
    /// header budget (`max_header_bytes` per block and per stream).
    pub(super) fn on_block(&mut self, side: Side, b: Pending, ts: Timestamp) {
        // a pushed stream's promised request is sent by the server
        let (owner, id) = match b.promised {
            Some(pid) => (Side::Server, pid),
            None => (side, b.stream),
        };
        let max = self.limits.max_header_bytes;
        let budget = self
            .stream(owner, id, true, ts)
            .map_or(0, |s| max.saturating_sub(s.header_bytes));
        let block = self.dirs[idx(side)].hpack.decode_within(&b.buf, budget);
        if let Some(why) = block.fatal {
            // whose header list it was: the request's for a push, else the sender's
            let half = if b.promised.is_some() {
                Side::Client
            } else {
                side
            };
            if let Some(s) = self.streams.get_mut(&id) {
                let h = s.half(half);
                h.headers_truncated = true;
                h.headers.get_or_insert_with(Vec::new);
            }
            self.stop(&why, ts);
            return;
        }
        let problems = block.problems.join("; ");
        let mut fields = block.fields;
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        s.header_bytes += block.decoded;
        if !problems.is_empty() {
            s.error(problems);
        }
        if b.promised.is_some() {
            s.req.headers = Some(fields);
            s.req.undecodable += block.undecodable;
            s.req.headers_truncated |= block.cut > 0;
            s.end_half(Side::Client, ts);
            return;
        }
        if side == Side::Server && s.resp.headers.is_none() {
            let status: Option<u16> = field(&fields, ":status").and_then(|v| v.parse().ok());
            if let Some(c @ 100..=199) = status {
                if s.informational.len() < MAX_INFORMATIONAL {
                    s.informational.push(c);
                } else {
                    s.error(format!(
                        "more than {MAX_INFORMATIONAL} interim (1xx) responses; not listed"
                    ));
                }
                return;
            }
            s.response_start = Some(ts);
        }
        let h = s.half(side);
        h.undecodable += block.undecodable;
        h.headers_truncated |= block.cut > 0;
        if h.headers.is_none() && h.body.size() == 0 {
            h.headers = Some(fields);
        } else {
            h.trailers.append(&mut fields);
        }
        if b.end_stream {
            self.end_half(side, b.stream, ts);
        }
    }

    /// A connection error for the capture (the peer broke a rule the decoding relies on):
    /// every open stream ends with `why`, and nothing more of the connection is decoded.
    pub(super) fn stop(&mut self, why: &str, ts: Timestamp) {
        let msg = format!("HTTP/2 decoding of the connection stopped: {why}");
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            if let Some(s) = self.streams.get_mut(&id) {
                s.error(msg.clone());
                s.cut("connection decoding stopped", ts);
            }
            self.finish(id);
        }
        // frees the buffers and tables; `feed` and `gap` do nothing from now on
        self.dirs = [DirState::new(), DirState::new()];
        self.stopped = Some(why.to_string());
    }

    /// Why the connection's decoding stopped (see [`H2Conn::stop`]), if it did.
    pub fn connection_error(&self) -> Option<&str> {
        self.stopped.as_deref()
    }
}
