//! [`H2Conn`]: both directions of one HTTP/2 connection, frame by frame, into exchanges.
use super::frame::{self, HEAD_LEN, Head};
use super::hpack::Hpack;
use super::stream::Stream;
use crate::events::Timestamp;
use crate::http::{BodyLimits, Exchange, HttpRequest, Side};
use std::collections::{BTreeMap, VecDeque};

#[path = "conn_frames.rs"]
mod frames;
#[path = "conn_mem.rs"]
mod mem;

/// Most streams followed at once on one connection; past it the oldest is given up.
pub const MAX_STREAMS: usize = 128;
/// Largest header block (HEADERS or PUSH_PROMISE with its CONTINUATIONs) decoded.
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// Largest payload kept for other frames read whole (SETTINGS, GOAWAY, RST_STREAM).
const MAX_CONTROL: u32 = 16 * 1024;
/// Frames that must parse before a connection not seen from its preface is taken for
/// HTTP/2 for good (until then, an invalid frame means "not HTTP/2").
const TRIAL_FRAMES: u64 = 4;

#[derive(Debug)]
enum Rx {
    /// Nothing seen yet on this side.
    Start,
    /// Inside the client preface: bytes matched so far.
    Preface(usize),
    /// Reading a frame header (`DirState::hbuf`).
    Head,
    /// Inside a DATA frame.
    Data {
        stream: u32,
        end_stream: bool,
        need_pad: bool,
        data_left: u32,
        pad_left: u32,
    },
    /// Reading a whole frame's payload into `DirState::buf`.
    Payload { head: Head, left: u32 },
    /// Skipping a frame's payload.
    Skip { left: u32 },
    /// Out of step (bytes lost): waiting for a feed that starts with a frame header.
    Lost,
}

/// A header block waiting for its CONTINUATION frames.
#[derive(Debug)]
struct Pending {
    stream: u32,
    promised: Option<u32>,
    end_stream: bool,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct DirState {
    rx: Rx,
    hbuf: [u8; HEAD_LEN],
    hn: usize,
    buf: Vec<u8>,
    hpack: Hpack,
    block: Option<Pending>,
}

impl DirState {
    fn new() -> DirState {
        DirState {
            rx: Rx::Start,
            hbuf: [0; HEAD_LEN],
            hn: 0,
            buf: Vec::new(),
            hpack: Hpack::new(false),
            block: None,
        }
    }
}

fn idx(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Server => 1,
    }
}

fn other(side: Side) -> Side {
    match side {
        Side::Client => Side::Server,
        Side::Server => Side::Client,
    }
}

fn name(side: Side) -> &'static str {
    match side {
        Side::Client => "client",
        Side::Server => "server",
    }
}

/// HTTP/2 state of one connection (TCP, or the plaintext of a TLS connection).
#[derive(Debug)]
pub struct H2Conn {
    limits: BodyLimits,
    dirs: [DirState; 2],
    streams: BTreeMap<u32, Stream>,
    closed: VecDeque<u32>,
    /// Highest stream id opened, per parity (0: even, server-initiated; 1: odd).
    max_id: [u32; 2],
    /// The client preface was seen.
    from_start: bool,
    frames_ok: u64,
    desyncs: u64,
    not_h2: bool,
    /// A connection error stopped the decoding (why).
    stopped: Option<String>,
    out: Vec<Exchange>,
}

impl H2Conn {
    pub fn new(limits: BodyLimits) -> Self {
        H2Conn {
            limits,
            dirs: [DirState::new(), DirState::new()],
            streams: BTreeMap::new(),
            closed: VecDeque::new(),
            max_id: [0; 2],
            from_start: false,
            frames_ok: 0,
            desyncs: 0,
            not_h2: false,
            stopped: None,
            out: Vec::new(),
        }
    }

    /// A connection switched from HTTP/1.1 by `Upgrade: h2c`: `req` (the upgrade request)
    /// is stream 1, whose response comes in HTTP/2; the client preface comes next.
    pub fn upgraded(limits: BodyLimits, req: &HttpRequest, ts: Timestamp) -> Self {
        let mut c = H2Conn::new(limits);
        c.from_start = true;
        c.max_id[1] = 1;
        let mut s = Stream::new(ts, limits);
        let mut headers = vec![
            (":method".to_string(), req.method.clone()),
            (":path".to_string(), req.target.clone()),
        ];
        headers.extend(req.headers.iter().cloned());
        s.req.headers = Some(headers);
        s.h1_body = Some(req.body.clone());
        s.end_half(Side::Client, ts);
        c.streams.insert(1, s);
        // the client's SETTINGS came in the HTTP2-Settings header (base64url)
        let settings = req
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("http2-settings"));
        if let Some(Ok(p)) = settings.map(|(_, v)| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v.trim().trim_end_matches('='))
        }) {
            let h = Head {
                len: u32::try_from(p.len()).unwrap_or(0),
                kind: frame::SETTINGS,
                flags: 0,
                stream: 0,
                reserved: false,
            };
            c.on_frame(Side::Client, h, &p, ts);
        }
        c
    }

    /// The bytes turned out not to be HTTP/2 (a wrong preface, or invalid frames before
    /// any had parsed): the caller stops feeding; state has been dropped.
    pub fn is_not_http2(&self) -> bool {
        self.not_h2
    }

    /// Streams being followed.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Bytes one side sent, in order, observed at `ts`. Returns the exchanges (one per
    /// stream) that completed, in completion order.
    pub fn feed(&mut self, side: Side, mut data: &[u8], ts: Timestamp) -> Vec<Exchange> {
        let i = idx(side);
        while !data.is_empty() && !self.not_h2 && self.stopped.is_none() {
            let d = &mut self.dirs[i];
            match &mut d.rx {
                Rx::Start if side == Side::Client && data[0] == frame::PREFACE[0] => {
                    d.rx = Rx::Preface(0);
                    d.hpack.restart();
                    self.from_start = true;
                }
                Rx::Start if d.hn == 0 && data.len() >= HEAD_LEN => {
                    if side == Side::Server && frame::is_server_preface(data) {
                        // a server's SETTINGS opens the connection
                        d.hpack.restart();
                        d.rx = Rx::Head;
                    } else if frame::looks_like_h2(data) {
                        // frames of a connection joined mid-way
                        d.rx = Rx::Head;
                    } else {
                        self.not_in_step(side);
                        break;
                    }
                }
                Rx::Start => {
                    // fewer bytes than a frame header: decide on the header alone
                    let k = (HEAD_LEN - d.hn).min(data.len());
                    d.hbuf[d.hn..d.hn + k].copy_from_slice(&data[..k]);
                    d.hn += k;
                    data = &data[k..];
                    if d.hn == HEAD_LEN {
                        d.hn = 0;
                        let server_preface =
                            side == Side::Server && frame::is_server_preface(&d.hbuf);
                        if server_preface {
                            d.hpack.restart();
                        }
                        if server_preface || frame::looks_like_h2(&d.hbuf) {
                            d.rx = Rx::Head;
                            let h = Head::parse(&d.hbuf);
                            self.on_head(side, h, ts);
                        } else {
                            self.not_in_step(side);
                            break;
                        }
                    }
                }
                Rx::Preface(n) => {
                    let want = &frame::PREFACE[*n..];
                    let k = want.len().min(data.len());
                    if data[..k] != want[..k] {
                        self.give_up();
                        break;
                    }
                    *n += k;
                    data = &data[k..];
                    if *n == frame::PREFACE.len() {
                        d.rx = Rx::Head;
                    }
                }
                Rx::Head => {
                    let k = (HEAD_LEN - d.hn).min(data.len());
                    d.hbuf[d.hn..d.hn + k].copy_from_slice(&data[..k]);
                    d.hn += k;
                    data = &data[k..];
                    if d.hn == HEAD_LEN {
                        d.hn = 0;
                        let h = Head::parse(&d.hbuf);
                        self.on_head(side, h, ts);
                    }
                }
                Rx::Data { .. } => {
                    let k = self.on_data(side, data, ts);
                    data = &data[k..];
                }
                Rx::Payload { head, left } => {
                    let (head, left) = (*head, *left as usize);
                    if d.buf.is_empty() && data.len() >= left {
                        // the whole payload is here: no copy
                        d.rx = Rx::Head;
                        let (p, rest) = data.split_at(left);
                        data = rest;
                        self.on_frame(side, head, p, ts);
                    } else {
                        let k = left.min(data.len());
                        d.buf.extend_from_slice(&data[..k]);
                        data = &data[k..];
                        if k == left {
                            d.rx = Rx::Head;
                            let p = std::mem::take(&mut d.buf);
                            self.on_frame(side, head, &p, ts);
                            let d = &mut self.dirs[i];
                            if d.buf.is_empty() {
                                d.buf = p;
                                d.buf.clear();
                            }
                        } else {
                            d.rx = Rx::Payload {
                                head,
                                left: (left - k) as u32,
                            };
                        }
                    }
                }
                Rx::Skip { left } => {
                    let k = (*left as usize).min(data.len());
                    *left -= k as u32;
                    data = &data[k..];
                    if *left == 0 {
                        d.rx = Rx::Head;
                    }
                }
                Rx::Lost => {
                    // feeds tend to start where the peer's writes did: at a frame header
                    if frame::looks_like_h2(data) {
                        d.rx = Rx::Head;
                    } else {
                        break;
                    }
                }
            }
        }
        std::mem::take(&mut self.out)
    }

    /// `lost` bytes of `side`'s stream were never seen. Inside a frame of known length
    /// the parser stays in step (a DATA frame's body counts them as lost); otherwise it
    /// waits for a feed that starts with a frame header, and the HPACK table is reset.
    pub fn gap(&mut self, side: Side, lost: u64, ts: Timestamp) -> Vec<Exchange> {
        let i = idx(side);
        if self.stopped.is_some() {
            return Vec::new();
        }
        let msg = format!("{lost} bytes lost in capture");
        let small = u32::try_from(lost).ok();
        match (&mut self.dirs[i].rx, small) {
            (
                Rx::Data {
                    stream,
                    data_left,
                    pad_left,
                    need_pad: false,
                    ..
                },
                Some(n),
            ) if n <= *data_left + *pad_left => {
                let in_data = n.min(*data_left);
                *data_left -= in_data;
                *pad_left -= n - in_data;
                let id = *stream;
                if let Some(s) = self.streams.get_mut(&id) {
                    s.half(side).body.lose(u64::from(in_data));
                    s.error(msg);
                }
                if let Rx::Data {
                    data_left: 0,
                    pad_left: 0,
                    ..
                } = self.dirs[i].rx
                {
                    self.end_data(side, ts);
                }
            }
            (Rx::Skip { left }, Some(n)) if n <= *left => {
                *left -= n;
                if *left == 0 {
                    self.dirs[i].rx = Rx::Head;
                }
            }
            (Rx::Payload { head, left }, Some(n)) if n <= *left => {
                let (head, rest) = (*head, *left - n);
                let d = &mut self.dirs[i];
                d.buf.clear();
                d.rx = if rest == 0 {
                    Rx::Head
                } else {
                    Rx::Skip { left: rest }
                };
                if matches!(
                    head.kind,
                    frame::HEADERS | frame::CONTINUATION | frame::PUSH_PROMISE
                ) {
                    self.drop_block(side, head.stream, &format!("header block lost: {msg}"));
                }
            }
            (Rx::Start, _) => {
                self.dirs[i].rx = Rx::Lost;
                self.desyncs += 1;
            }
            _ => self.lose_sync(side, &msg),
        }
        std::mem::take(&mut self.out)
    }

    /// The connection closed (or its process died): every stream still open ends, with
    /// an error when its response was not complete.
    pub fn close(&mut self, ts: Timestamp) -> Vec<Exchange> {
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            if let Some(s) = self.streams.get_mut(&id) {
                s.cut("connection closed", ts);
            }
            self.finish(id);
        }
        std::mem::take(&mut self.out)
    }

    /// A side's first bytes are not at a frame boundary: if nothing was HTTP/2 so far,
    /// it is not; otherwise wait for a feed that starts with a frame.
    fn not_in_step(&mut self, side: Side) {
        if self.frames_ok == 0 && !self.from_start {
            self.give_up();
        } else {
            self.dirs[idx(side)].rx = Rx::Lost;
            self.desyncs += 1;
        }
    }

    /// Times a side fell out of step with the frames (bytes lost, invalid frame headers,
    /// first bytes not at a frame boundary); while zero, how the bytes were split into
    /// feeds does not change the exchanges.
    pub fn desyncs(&self) -> u64 {
        self.desyncs
    }

    fn give_up(&mut self) {
        self.not_h2 = true;
        self.streams.clear();
        self.dirs = [DirState::new(), DirState::new()];
    }

    /// The side's byte stream is out of step: wait for a frame header, forget HPACK state.
    fn lose_sync(&mut self, side: Side, why: &str) {
        self.desyncs += 1;
        let d = &mut self.dirs[idx(side)];
        d.rx = Rx::Lost;
        d.hn = 0;
        d.buf.clear();
        d.block = None;
        d.hpack.desync();
        for s in self.streams.values_mut() {
            if !s.half(side).ended {
                s.error(format!("{} stream: {why}", name(side)));
            }
        }
    }

    /// A header block could not be decoded: its table insertions are unknown.
    fn drop_block(&mut self, side: Side, stream: u32, why: &str) {
        let d = &mut self.dirs[idx(side)];
        d.block = None;
        d.hpack.desync();
        if let Some(s) = self.streams.get_mut(&stream) {
            s.error(why.to_string());
            s.half(side).undecodable += 1;
        }
    }

    fn on_head(&mut self, side: Side, h: Head, ts: Timestamp) {
        let i = idx(side);
        // until a few frames have parsed, a connection not seen from its preface must
        // look like HTTP/2 strictly
        let trial = !self.from_start && self.frames_ok < TRIAL_FRAMES;
        if trial && !h.plausible() {
            self.give_up();
            return;
        }
        if !h.valid() {
            self.lose_sync(side, "invalid frame header");
            return;
        }
        self.frames_ok += 1;
        if let Some(b) = &self.dirs[i].block
            && (h.kind != frame::CONTINUATION || h.stream != b.stream)
        {
            let id = b.stream;
            self.drop_block(side, id, "header block interrupted by another frame");
        }
        let opens = matches!(h.kind, frame::HEADERS | frame::DATA);
        if let Some(s) = self.stream(side, h.stream, opens, ts) {
            s.half(side).wire += HEAD_LEN as u64 + u64::from(h.len);
        }
        let next = match h.kind {
            frame::DATA => Rx::Data {
                stream: h.stream,
                end_stream: h.has(frame::END_STREAM),
                need_pad: h.has(frame::PADDED) && h.len > 0,
                data_left: h.len,
                pad_left: 0,
            },
            frame::HEADERS | frame::PUSH_PROMISE | frame::CONTINUATION => {
                let pending = self.dirs[i].block.as_ref().map(|b| b.buf.len());
                if pending.unwrap_or(0) + h.len as usize > MAX_HEADER_BLOCK {
                    let why = format!("header block larger than {MAX_HEADER_BLOCK} bytes");
                    self.drop_block(side, h.stream, &why);
                    Rx::Skip { left: h.len }
                } else if h.kind == frame::CONTINUATION && pending.is_none() {
                    // the rest of a block whose start was not seen
                    self.dirs[i].hpack.desync();
                    Rx::Skip { left: h.len }
                } else {
                    Rx::Payload {
                        head: h,
                        left: h.len,
                    }
                }
            }
            frame::SETTINGS | frame::GOAWAY | frame::RST_STREAM if h.len <= MAX_CONTROL => {
                Rx::Payload {
                    head: h,
                    left: h.len,
                }
            }
            _ => Rx::Skip { left: h.len },
        };
        self.dirs[i].rx = next;
        // frames without payload end here
        match &self.dirs[i].rx {
            Rx::Payload { left: 0, .. } => {
                self.dirs[i].rx = Rx::Head;
                self.on_frame(side, h, &[], ts);
            }
            Rx::Data {
                need_pad: false,
                data_left: 0,
                ..
            } => self.end_data(side, ts),
            Rx::Skip { left: 0 } => self.dirs[i].rx = Rx::Head,
            _ => {}
        }
    }

    /// Consumes DATA payload bytes from `data`; returns how many.
    fn on_data(&mut self, side: Side, data: &[u8], ts: Timestamp) -> usize {
        let i = idx(side);
        let Rx::Data {
            stream,
            need_pad,
            data_left,
            pad_left,
            ..
        } = &mut self.dirs[i].rx
        else {
            return 0;
        };
        let mut used = 0;
        let mut bad_pad = false;
        if *need_pad {
            // the first payload byte is the pad length
            *need_pad = false;
            used = 1;
            let rest = *data_left - 1;
            let pad = u32::from(data[0]);
            bad_pad = pad > rest;
            *pad_left = pad.min(rest);
            *data_left = rest - *pad_left;
        }
        let k = (*data_left as usize).min(data.len() - used);
        let piece = &data[used..used + k];
        *data_left -= k as u32;
        used += k;
        let p = (*pad_left as usize).min(data.len() - used);
        if *data_left == 0 {
            *pad_left -= p as u32;
            used += p;
        }
        let (id, done) = (*stream, *data_left == 0 && *pad_left == 0);
        if let Some(s) = self.streams.get_mut(&id) {
            s.half(side).body.push(piece);
            if bad_pad {
                s.error(format!(
                    "{} DATA frame padding longer than the frame",
                    name(side)
                ));
            }
        }
        if done {
            self.end_data(side, ts);
        }
        used
    }

    fn end_data(&mut self, side: Side, ts: Timestamp) {
        let i = idx(side);
        if let Rx::Data {
            stream, end_stream, ..
        } = self.dirs[i].rx
        {
            self.dirs[i].rx = Rx::Head;
            if end_stream {
                self.end_half(side, stream, ts);
            }
        }
    }

    fn end_half(&mut self, side: Side, id: u32, ts: Timestamp) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.end_half(side, ts);
            if s.complete() {
                self.finish(id);
            }
        }
    }
}
