//! [`HttpConn`]: drives the two side parsers and pairs their messages into exchanges.
//!
//! Pairing is first-in first-out: each request head opens a slot; each final response
//! fills the oldest slot still waiting for one. A response head that arrives while no
//! request waits (the server's bytes were delivered before the client's) is held, bounded,
//! until a request arrives or the connection closes, then paired as a response without a
//! request. Bytes the client sends after asking to switch protocols are held likewise until
//! the response says whether the switch happened.
use super::head::{Framing, Kind, ParsedHead, has_header, request_framing, response_framing};
use super::parser::{Closed, ErrKind, Ev, SideParser};
use super::slots::{Msg, Slot};
use super::{BodyLimits, Exchange, Side};
use crate::events::Timestamp;
use std::collections::VecDeque;

#[path = "conn_gaps.rs"]
mod gaps;
#[path = "conn_mem.rs"]
mod mem;

/// Most exchanges in flight (requests awaiting responses) on one connection; past it the
/// connection is given up (it reports `is_not_http`).
pub const MAX_PENDING: usize = 32;
/// Most bytes held while one side waits for the other (see the module documentation).
const MAX_HELD: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Http,
    /// Not HTTP/1.x, switched protocols, or given up: nothing is parsed any more.
    NotHttp,
    Closed,
}

/// A response head with no request to pair with yet, and the server bytes after it.
#[derive(Debug)]
struct Stalled {
    head: ParsedHead,
    first_ts: Timestamp,
    bytes: Vec<u8>,
    ts: Timestamp,
}

/// Client bytes after a request that asked to switch protocols.
#[derive(Debug)]
struct Hold {
    slot: u64,
    bytes: Vec<u8>,
    /// Bytes were dropped (over the bound, or lost in capture): resynchronise on release.
    broken: bool,
    ts: Timestamp,
}

impl Hold {
    fn push(&mut self, data: &[u8]) {
        // Keeps exactly the first MAX_HELD bytes, whatever the feed sizes.
        let room = MAX_HELD.saturating_sub(self.bytes.len());
        self.broken |= data.len() > room;
        self.bytes
            .extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
    }
}

/// HTTP/1.x state of one TCP (or TLS) connection.
#[derive(Debug)]
pub struct HttpConn {
    limits: BodyLimits,
    client: SideParser,
    server: SideParser,
    slots: VecDeque<Slot>,
    next_id: u64,
    /// Slot of the request being parsed.
    client_cur: Option<u64>,
    /// Slot of the response being parsed, and whether it is an interim 1xx.
    server_cur: Option<(u64, bool)>,
    stalled: Option<Stalled>,
    hold: Option<Hold>,
    /// Response heads with no waiting request become exchanges without a request.
    orphan_ok: bool,
    state: State,
    out: Vec<Exchange>,
}

fn lost_msg(n: u64) -> String {
    format!("{n} bytes lost in capture")
}

impl HttpConn {
    pub fn new(limits: BodyLimits) -> Self {
        HttpConn {
            limits,
            client: SideParser::new(Kind::Request),
            server: SideParser::new(Kind::Response),
            slots: VecDeque::new(),
            next_id: 0,
            client_cur: None,
            server_cur: None,
            stalled: None,
            hold: None,
            orphan_ok: false,
            state: State::Http,
            out: Vec::new(),
        }
    }

    /// Not HTTP/1.x (the client's first bytes are not a request line, or the server's not
    /// a status line), or no longer parsed (protocol switched by 101 or CONNECT, too many
    /// requests in flight). Once true, the caller stops feeding; state has been dropped.
    pub fn is_not_http(&self) -> bool {
        self.state == State::NotHttp
    }

    /// Bytes one side sent, in stream order, observed at `ts`. Returns exchanges that
    /// completed, in request order.
    pub fn feed(&mut self, side: Side, data: &[u8], ts: Timestamp) -> Vec<Exchange> {
        if self.state == State::Http && !data.is_empty() {
            match side {
                Side::Client => self.drive_client(data, ts),
                Side::Server => self.feed_server(data, ts),
            }
            self.try_unstall();
        }
        self.finish()
    }

    /// `lost` bytes of `side`'s stream were never seen. The message in progress is ended
    /// with an error (or, inside a body of known length, continues with the bytes counted
    /// as lost) and the side resynchronises at the next valid start line.
    pub fn gap(&mut self, side: Side, lost: u64, ts: Timestamp) -> Vec<Exchange> {
        if self.state == State::Http && lost > 0 {
            match side {
                Side::Client => self.client_gap(lost, ts),
                Side::Server => self.server_gap(lost, ts),
            }
            self.try_unstall();
        }
        self.finish()
    }

    /// The connection closed (or its process died): a close-delimited response completes,
    /// everything else unfinished is returned with an error.
    pub fn close(&mut self, ts: Timestamp) -> Vec<Exchange> {
        if self.state != State::Http {
            return self.finish();
        }
        self.unstall(true);
        self.hold = None;
        if self.client.close() == Closed::InHead {
            self.placeholder(
                ts,
                "connection closed before the request head was complete".into(),
            );
        }
        match self.server.close() {
            Closed::End { wire } => {
                let last = self.cur_server_slot().and_then(|s| s.end).unwrap_or(ts);
                self.server_end(wire, Vec::new(), last);
            }
            Closed::InHead => {
                if let Some(s) = self.awaiting_slot() {
                    s.error("connection closed in the middle of the response head");
                }
            }
            Closed::InBody | Closed::Clean => {}
        }
        self.cut_all("connection closed", ts);
        self.state = State::Closed;
        self.finish()
    }

    fn finish(&mut self) -> Vec<Exchange> {
        self.check_hold();
        self.drain();
        std::mem::take(&mut self.out)
    }

    /// Moves finished exchanges, oldest first, to the output.
    fn drain(&mut self) {
        while self.slots.front().is_some_and(Slot::ready) {
            if let Some(s) = self.slots.pop_front() {
                self.out.push(s.into_exchange(self.limits.max_body_bytes));
            }
        }
    }

    /// Ends every slot (`why` says why) and returns them all.
    fn cut_all(&mut self, why: &str, ts: Timestamp) {
        for s in &mut self.slots {
            s.cut(why, ts);
        }
        self.client_cur = None;
        self.server_cur = None;
        self.drain();
    }

    /// Stops parsing the connection for good, after returning what is in flight (unless
    /// the connection turned out not to be HTTP at all).
    fn give_up(&mut self, why: &str, ts: Timestamp) {
        if self.client.seen_head() || self.server.seen_head() {
            self.cut_all(why, ts);
        }
        self.state = State::NotHttp;
        self.slots = VecDeque::new();
        self.stalled = None;
        self.hold = None;
        self.client.stop();
        self.server.stop();
    }

    fn slot(&mut self, id: Option<u64>) -> Option<&mut Slot> {
        let id = id?;
        self.slots.iter_mut().find(|s| s.id == id)
    }

    fn cur_server_slot(&mut self) -> Option<&mut Slot> {
        self.slot(self.server_cur.map(|(id, _)| id))
    }

    /// The oldest slot still waiting for its response.
    fn awaiting_slot(&mut self) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| !s.resp_done)
    }

    fn new_slot(&mut self, slot: impl FnOnce(u64) -> Slot) -> Option<&mut Slot> {
        let id = self.next_id;
        self.next_id += 1;
        self.slots.push_back(slot(id));
        self.slots.back_mut()
    }

    /// A request that was never seen (lost or malformed), so its response pairs with it.
    fn placeholder(&mut self, ts: Timestamp, why: String) {
        if self.slots.len() < MAX_PENDING {
            self.new_slot(|id| Slot::placeholder(id, ts, why));
        }
    }

    // ---- client side -------------------------------------------------------------

    fn drive_client(&mut self, data: &[u8], ts: Timestamp) {
        let mut input = data;
        while self.state == State::Http {
            if let Some(h) = &mut self.hold {
                h.push(input);
                return;
            }
            match self.client.next(&mut input, ts) {
                Ev::NeedMore => return,
                Ev::Head { head, first_ts } => self.client_head(head, first_ts, ts),
                Ev::Body(b) => {
                    if let Some(r) = self.slot(self.client_cur).and_then(|s| s.req.as_mut()) {
                        r.body.push(b);
                    }
                }
                Ev::End { wire, trailers } => {
                    let cur = self.client_cur.take();
                    let Some(s) = self.slot(cur) else { continue };
                    s.req_done = true;
                    s.request_sent = Some(ts);
                    s.req_wire = wire;
                    if let Some(r) = &mut s.req {
                        r.trailers = trailers;
                    }
                    if s.upgrade && !s.resp_done {
                        self.hold = Some(Hold {
                            slot: s.id,
                            bytes: Vec::new(),
                            broken: false,
                            ts,
                        });
                    }
                    self.drain();
                }
                Ev::Error { msg, kind } => self.client_error(msg, kind, ts),
            }
        }
    }

    fn client_head(&mut self, head: ParsedHead, first_ts: Timestamp, ts: Timestamp) {
        let ParsedHead::Request { line, headers } = head else {
            return;
        };
        if self.slots.len() >= MAX_PENDING {
            let why =
                format!("parsing stopped: more than {MAX_PENDING} requests awaiting responses");
            return self.give_up(&why, ts);
        }
        let framing = request_framing(&headers);
        let upgrade = line.method == "CONNECT" || has_header(&headers, "upgrade");
        let expected = match framing {
            Ok(Framing::Length(n)) => Some(n),
            _ => None,
        };
        let cap = self.limits.max_body_bytes;
        let wire = self.client.wire();
        let Some(s) = self.new_slot(|id| Slot::new(id, first_ts)) else {
            return;
        };
        s.req = Some(Msg::new(line, headers, cap, expected));
        s.upgrade = upgrade;
        let id = s.id;
        match framing {
            Ok(f) => {
                self.client.set_framing(f);
                self.client_cur = Some(id);
            }
            Err(e) => {
                s.error(e);
                s.req_done = true;
                s.request_sent = Some(ts);
                s.req_wire = wire;
                self.client.resync();
            }
        }
    }

    fn client_error(&mut self, msg: String, kind: ErrKind, ts: Timestamp) {
        if kind == ErrKind::StartLine && !self.client.seen_head() {
            return self.give_up("not HTTP/1.x", ts);
        }
        match kind {
            // Not a request at all: skipped; the parser resynchronises.
            ErrKind::StartLine => {}
            // A request line the server probably answers: keep its place in the queue.
            ErrKind::Head => self.placeholder(ts, format!("malformed request: {msg}")),
            ErrKind::Body => {
                let wire = self.client.wire();
                let cur = self.client_cur.take();
                if let Some(s) = self.slot(cur) {
                    s.req_done = true;
                    s.request_sent = Some(ts);
                    s.req_wire = wire;
                    s.error(format!("malformed request body: {msg}"));
                }
            }
        }
    }

    // ---- server side -------------------------------------------------------------

    fn feed_server(&mut self, data: &[u8], ts: Timestamp) {
        if let Some(s) = &mut self.stalled {
            if s.bytes.len() + data.len() <= MAX_HELD {
                s.bytes.extend_from_slice(data);
                return;
            }
            // Waited long enough: the response has no request to pair with.
            self.unstall(true);
        }
        self.drive_server(data, ts);
    }

    fn drive_server(&mut self, data: &[u8], ts: Timestamp) {
        let mut input = data;
        while self.state == State::Http {
            match self.server.next(&mut input, ts) {
                Ev::NeedMore => return,
                Ev::Head { head, first_ts } => {
                    if self.awaiting_slot().is_none() && !self.orphan_ok && input.len() <= MAX_HELD
                    {
                        let bytes = input.to_vec();
                        self.stalled = Some(Stalled {
                            head,
                            first_ts,
                            bytes,
                            ts,
                        });
                        return;
                    }
                    self.server_head(head, first_ts, ts);
                }
                Ev::Body(b) => {
                    if let Some(s) = self.cur_server_slot() {
                        s.end = Some(ts);
                        if let Some(r) = &mut s.resp {
                            r.body.push(b);
                        }
                    }
                }
                Ev::End { wire, trailers } => self.server_end(wire, trailers, ts),
                Ev::Error { msg, kind } => self.server_error(msg, kind, ts),
            }
            // Before the next response: its request may be among the held bytes.
            self.check_hold();
        }
    }

    /// Releases held client bytes once their request's response is settled another way
    /// than by [`Self::server_end`] (lost, malformed): they are parsed, resynchronising.
    fn check_hold(&mut self) {
        let Some(h) = &self.hold else { return };
        let slot = h.slot;
        if self.slots.iter().any(|s| s.id == slot && !s.resp_done) || self.state != State::Http {
            return;
        }
        if let Some(h) = self.hold.take() {
            self.client.resync();
            self.drive_client(&h.bytes, h.ts);
        }
    }

    fn try_unstall(&mut self) {
        if self.stalled.is_some() && self.awaiting_slot().is_some() {
            self.unstall(false);
        }
    }

    /// Pairs the held response head (with a request without response, or, `orphan_ok`,
    /// with no request at all) and parses the bytes held after it.
    fn unstall(&mut self, orphan_ok: bool) {
        let Some(st) = self.stalled.take() else {
            return;
        };
        self.orphan_ok = orphan_ok;
        self.server_head(st.head, st.first_ts, st.ts);
        self.drive_server(&st.bytes, st.ts);
        self.orphan_ok = false;
    }

    /// Makes sure the oldest slot awaiting a response is the one a response whose first
    /// byte was captured at `first_ts` answers. With no request waiting, it answers one the
    /// capture did not see. Nor does it answer a request first captured after it (sent, on
    /// the client side; read, on the server side): it belongs to an earlier request, in
    /// flight when the capture started (or lost), and gets a slot of its own before that
    /// request, which waits for its own response.
    fn slot_for_response(&mut self, first_ts: Timestamp) {
        let why = match self.slots.iter().position(|s| !s.resp_done) {
            None => "response without a captured request",
            Some(i) if self.slots[i].req.is_some() && first_ts < self.slots[i].start => {
                if self.slots.len() >= MAX_PENDING {
                    return;
                }
                let id = self.next_id;
                self.next_id += 1;
                let why = "request not captured: the response began before the next \
                           captured request was sent (its request was in flight when the \
                           capture started)";
                let mut s = Slot::placeholder(id, first_ts, why.into());
                s.request_not_captured = true;
                self.slots.insert(i, s);
                return;
            }
            Some(_) => return,
        };
        if let Some(s) = self.new_slot(|id| Slot::placeholder(id, first_ts, why.into())) {
            s.request_not_captured = true;
        }
    }

    fn server_head(&mut self, head: ParsedHead, first_ts: Timestamp, ts: Timestamp) {
        let ParsedHead::Response { line, headers } = head else {
            return;
        };
        let wire = self.server.wire();
        let cap = self.limits.max_body_bytes;
        self.slot_for_response(first_ts);
        let Some(slot) = self.awaiting_slot() else {
            return;
        };
        let id = slot.id;
        if (100..200).contains(&line.status) && line.status != 101 {
            slot.informational(line.status);
            self.server_cur = Some((id, true));
            return self.server.set_framing(Framing::None);
        }
        slot.response_start = Some(first_ts);
        let method = slot.method();
        let tunnel =
            line.status == 101 || (method == Some("CONNECT") && (200..300).contains(&line.status));
        let framing = if tunnel {
            Ok(Framing::None)
        } else {
            response_framing(line.status, &headers, method)
        };
        let expected = match framing {
            Ok(Framing::Length(n)) => Some(n),
            _ => None,
        };
        slot.tunnel = tunnel;
        slot.resp = Some(Msg::new(line, headers, cap, expected));
        match framing {
            Ok(f) => {
                self.server_cur = Some((id, false));
                self.server.set_framing(f);
            }
            Err(e) => {
                slot.error(format!("{e} in the response"));
                slot.resp_done = true;
                slot.end = Some(ts);
                slot.resp_wire += wire;
                self.server.resync();
            }
        }
    }

    fn server_end(&mut self, wire: u64, trailers: crate::events::Headers, ts: Timestamp) {
        let Some((id, interim)) = self.server_cur.take() else {
            return;
        };
        let Some(s) = self.slot(Some(id)) else { return };
        s.resp_wire += wire;
        if interim {
            return;
        }
        s.resp_done = true;
        s.end = Some(ts);
        if let Some(r) = &mut s.resp {
            r.trailers = trailers;
        }
        if s.tunnel {
            // The rest of the connection is another protocol.
            self.drain();
            return self.give_up("connection switched protocols", ts);
        }
        if let Some(h) = self.hold.take_if(|h| h.slot == id) {
            // The switch was refused: what the client sent meanwhile is HTTP again.
            if h.broken {
                self.client.resync();
            }
            self.drive_client(&h.bytes, h.ts);
        }
        self.drain();
    }

    fn server_error(&mut self, msg: String, kind: ErrKind, ts: Timestamp) {
        if kind == ErrKind::StartLine && !self.server.seen_head() && !self.client.seen_head() {
            return self.give_up("not HTTP/1.x", ts);
        }
        let wire = self.server.wire();
        match kind {
            // Not a response at all: skipped; the parser resynchronises.
            ErrKind::StartLine => {}
            ErrKind::Head => {
                if let Some(s) = self.awaiting_slot() {
                    s.resp_done = true;
                    s.end = Some(ts);
                    s.error(format!("malformed response: {msg}"));
                }
            }
            ErrKind::Body => {
                let cur = self.server_cur.take().map(|(id, _)| id);
                if let Some(s) = self.slot(cur) {
                    s.resp_done = true;
                    s.end = Some(ts);
                    s.resp_wire += wire;
                    s.error(format!("malformed response body: {msg}"));
                }
            }
        }
    }
}
