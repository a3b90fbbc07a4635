//! One direction of a connection: a pull parser over the bytes one side sent. It finds
//! message heads, delimits bodies by the framing the caller sets after each head (the
//! response framing depends on the request), and resynchronises after errors and gaps by
//! looking for a complete, valid start line at the beginning of a line.
//!
//! Memory: only the head in progress is buffered (at most `MAX_HEAD_BYTES`); body bytes are
//! handed out as slices of the input.
use super::chunked::{Chunked, Step};
use super::head::{
    Framing, Kind, LineCheck, MAX_HEAD_BYTES, MAX_START_LINE, ParsedHead, check_start_line,
    parse_head,
};
use crate::events::{Headers, Timestamp};

/// What went wrong, which decides what the connection does about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrKind {
    /// The bytes do not start an HTTP/1.x message at all.
    StartLine,
    /// A valid start line, but the head is malformed or too large.
    Head,
    /// The body framing broke (chunked syntax).
    Body,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ev<'a> {
    NeedMore,
    /// A head was parsed; the parser waits for [`SideParser::set_framing`].
    Head {
        head: ParsedHead,
        first_ts: Timestamp,
    },
    Body(&'a [u8]),
    /// The message ended; `wire` counts its bytes (head, framing, body).
    End {
        wire: u64,
        trailers: Headers,
    },
    /// The parser skipped the message and now looks for the next start line.
    Error {
        msg: String,
        kind: ErrKind,
    },
}

/// Where a capture gap left the parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gap {
    /// The lost bytes fell inside a body whose length is known: parsing goes on exactly.
    InBody,
    /// The lost bytes finished the body (`body_lost` of them) and `extra` more were lost
    /// after it. The message is over; the parser resynchronises.
    Overran { body_lost: u64, extra: u64 },
    /// The message in progress (`Was`) cannot be delimited any more; the parser resynchronises.
    Cut(Was),
    /// Nothing in progress was affected (already resynchronising, or stopped).
    Ignored,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Was {
    /// Between messages: the lost bytes began a new one.
    Boundary,
    Head,
    Body,
}

/// What closing the stream means for the message in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closed {
    Clean,
    /// A close-delimited body ended normally.
    End {
        wire: u64,
    },
    InHead,
    InBody,
}

#[derive(Debug)]
enum St {
    Start,
    AwaitFraming,
    Length { remaining: u64 },
    Chunked(Chunked),
    Close,
    Resync { line_start: bool },
    Stopped,
}

#[derive(Debug)]
pub(crate) struct SideParser {
    kind: Kind,
    st: St,
    /// The head in progress (Start), or the line fragment being checked (Resync).
    buf: Vec<u8>,
    line_ok: bool,
    first_ts: Timestamp,
    wire: u64,
    seen_head: bool,
}

/// Methods recognised in the middle of a line when resynchronising (any method token is
/// accepted at the start of a line).
const KNOWN_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// Where a complete, valid start line begins in `line` (which ends in LF): at its start
/// (`line_start`: it begins a line) or, for a message glued to the end of an unparsed body,
/// at `HTTP/1.` or a well-known method.
fn find_start(kind: Kind, line: &[u8], line_start: bool) -> Option<usize> {
    (0..line.len()).find(|&p| {
        let at = line.get(p..).unwrap_or_default();
        let candidate = (p == 0 && line_start)
            || match kind {
                Kind::Response => at.starts_with(b"HTTP/1."),
                Kind::Request => KNOWN_METHODS.iter().any(|m| at.starts_with(m)),
            };
        candidate && check_start_line(kind, at) == LineCheck::Line
    })
}

/// Start lines are checked on every feed while at most this long, then once complete.
const EARLY_CHECK: usize = 256;

/// Appends `seg` to a line fragment, keeping at most `2 * MAX_START_LINE` bytes and at
/// least the last `MAX_START_LINE`. True when bytes were dropped from the front.
fn push_tail(buf: &mut Vec<u8>, seg: &[u8]) -> bool {
    if seg.len() >= MAX_START_LINE {
        buf.clear();
        buf.extend_from_slice(seg.get(seg.len() - MAX_START_LINE..).unwrap_or_default());
        return true;
    }
    buf.extend_from_slice(seg);
    if buf.len() > 2 * MAX_START_LINE {
        buf.drain(..buf.len() - MAX_START_LINE);
        buf.shrink_to(2 * MAX_START_LINE);
        return true;
    }
    false
}

/// Where the first LF of `b` is: eight bytes at a time, then byte by byte.
fn find_lf(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    let mut i = 0;
    while let Some(c) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(c.try_into().unwrap_or_default()) ^ (LO * u64::from(b'\n'));
        if w.wrapping_sub(LO) & !w & (LO << 7) != 0 {
            break;
        }
        i += 8;
    }
    b.get(i..)?.iter().position(|&c| c == b'\n').map(|p| i + p)
}

/// Splits off `input` up to and including the first LF (or all of it).
fn take_line<'a>(input: &mut &'a [u8]) -> &'a [u8] {
    let n = find_lf(input).map_or(input.len(), |p| p + 1);
    let (seg, rest) = input.split_at(n);
    *input = rest;
    seg
}

impl SideParser {
    /// Between messages (nothing of a message in progress), or not parsing any more.
    pub(crate) fn at_boundary(&self) -> bool {
        match self.st {
            St::Start => self.buf.is_empty(),
            St::Stopped => true,
            _ => false,
        }
    }

    /// Heap bytes held (the head or trailers in progress), for the memory budget.
    pub(crate) fn held_bytes(&self) -> usize {
        self.buf.capacity()
            + match &self.st {
                St::Chunked(c) => c.held_bytes(),
                _ => 0,
            }
    }

    pub(crate) fn new(kind: Kind) -> Self {
        SideParser {
            kind,
            st: St::Start,
            buf: Vec::new(),
            line_ok: false,
            first_ts: Timestamp::default(),
            wire: 0,
            seen_head: false,
        }
    }

    /// Whether a head was ever parsed on this side.
    pub(crate) fn seen_head(&self) -> bool {
        self.seen_head
    }

    /// Bytes of the current message so far.
    pub(crate) fn wire(&self) -> u64 {
        self.wire
    }

    /// Sets how the body after the last head is delimited.
    pub(crate) fn set_framing(&mut self, f: Framing) {
        self.st = match f {
            Framing::None => St::Length { remaining: 0 },
            Framing::Length(n) => St::Length { remaining: n },
            Framing::Chunked => St::Chunked(Chunked::new()),
            Framing::Close => St::Close,
        };
    }

    /// Abandons the message in progress and looks for the next start line.
    pub(crate) fn resync(&mut self) {
        self.buf = Vec::new();
        self.st = St::Resync { line_start: true };
    }

    /// Parses nothing more (protocol switched, connection given up).
    pub(crate) fn stop(&mut self) {
        self.buf = Vec::new();
        self.st = St::Stopped;
    }

    fn fail(&mut self, msg: String, kind: ErrKind, line_start: bool) -> Ev<'static> {
        self.buf = Vec::new();
        self.line_ok = false;
        self.st = St::Resync { line_start };
        Ev::Error { msg, kind }
    }

    fn end(&mut self, trailers: Headers) -> Ev<'static> {
        self.st = St::Start;
        self.buf.clear();
        self.line_ok = false;
        Ev::End {
            wire: self.wire,
            trailers,
        }
    }

    fn what(&self) -> &'static str {
        match self.kind {
            Kind::Request => "request",
            Kind::Response => "status",
        }
    }

    /// Consumes from `input` (advancing it) up to the next event.
    pub(crate) fn next<'a>(&mut self, input: &mut &'a [u8], ts: Timestamp) -> Ev<'a> {
        loop {
            match &mut self.st {
                St::Stopped | St::AwaitFraming => return Ev::NeedMore,
                St::Start => return self.head_step(input, ts),
                St::Length { remaining } => {
                    if *remaining == 0 {
                        return self.end(Vec::new());
                    }
                    if input.is_empty() {
                        return Ev::NeedMore;
                    }
                    let n = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    let (data, rest) = input.split_at(n);
                    *input = rest;
                    *remaining -= n as u64;
                    self.wire += n as u64;
                    return Ev::Body(data);
                }
                St::Close => {
                    if input.is_empty() {
                        return Ev::NeedMore;
                    }
                    self.wire += input.len() as u64;
                    return Ev::Body(std::mem::take(input));
                }
                St::Chunked(d) => {
                    let before = input.len();
                    let step = d.step(input);
                    self.wire += (before - input.len()) as u64;
                    return match step {
                        Step::Data(b) => Ev::Body(b),
                        Step::NeedMore => Ev::NeedMore,
                        Step::Done(trailers) => self.end(trailers),
                        Step::Error(e) => self.fail(e, ErrKind::Body, false),
                    };
                }
                St::Resync { line_start } => {
                    let line_start = *line_start;
                    if self.buf.last() == Some(&b'\n') {
                        // Only the last MAX_START_LINE bytes of a line can hold a start line.
                        let w = self.buf.len().saturating_sub(MAX_START_LINE);
                        let window = self.buf.get(w..).unwrap_or_default();
                        match find_start(self.kind, window, line_start && w == 0) {
                            Some(p) => {
                                self.buf.drain(..w + p);
                                self.st = St::Start;
                                self.line_ok = true;
                                self.first_ts = ts;
                                self.wire = self.buf.len() as u64;
                            }
                            None => {
                                self.buf.clear();
                                self.st = St::Resync { line_start: true };
                            }
                        }
                        continue;
                    }
                    if input.is_empty() {
                        return Ev::NeedMore;
                    }
                    if push_tail(&mut self.buf, take_line(input)) {
                        self.st = St::Resync { line_start: false };
                    }
                }
            }
        }
    }

    /// In `Start`: accumulate and check the start line, then the rest of the head.
    fn head_step<'a>(&mut self, input: &mut &'a [u8], ts: Timestamp) -> Ev<'a> {
        if self.buf.is_empty() {
            // Blank lines between messages are tolerated (RFC 9112 §2.2).
            let skip = input
                .iter()
                .take_while(|&&c| c == b'\r' || c == b'\n')
                .count();
            *input = input.get(skip..).unwrap_or_default();
            if input.is_empty() {
                return Ev::NeedMore;
            }
            self.first_ts = ts;
            self.wire = 0;
            self.line_ok = false;
        }
        if !self.line_ok {
            let seg = take_line(input);
            let ends_line = seg.last() == Some(&b'\n');
            self.wire += seg.len() as u64;
            let before = self.buf.len();
            let too_long = before + seg.len() > MAX_START_LINE;
            push_tail(&mut self.buf, seg);
            // The first EARLY_CHECK bytes are checked as they arrive (to tell non-HTTP
            // quickly, whatever the feed sizes), the whole line once complete.
            let verdict = if too_long {
                LineCheck::No
            } else if ends_line {
                check_start_line(self.kind, &self.buf)
            } else if before < EARLY_CHECK {
                check_start_line(
                    self.kind,
                    self.buf
                        .get(..EARLY_CHECK.min(self.buf.len()))
                        .unwrap_or_default(),
                )
            } else {
                LineCheck::Partial { past_method: true }
            };
            match verdict {
                LineCheck::Line => self.line_ok = true,
                LineCheck::Partial { .. } if !ends_line => return Ev::NeedMore,
                _ => {
                    let msg = if too_long {
                        format!("{} line longer than {MAX_START_LINE} bytes", self.what())
                    } else {
                        format!("not an HTTP/1.x {} line", self.what())
                    };
                    // A message may start later on this line (after a stray body byte).
                    let mut rest = std::mem::take(&mut self.buf);
                    rest.drain(..1.min(rest.len()));
                    let ev = self.fail(msg, ErrKind::StartLine, false);
                    self.buf = rest;
                    return ev;
                }
            }
        }
        while !input.is_empty() {
            let seg = take_line(input);
            self.wire += seg.len() as u64;
            if self.buf.len() + seg.len() > MAX_HEAD_BYTES {
                let msg = format!("message head larger than {MAX_HEAD_BYTES} bytes");
                // Resynchronise from the start of the current line, whatever the feed sizes.
                let line_at = self
                    .buf
                    .iter()
                    .rposition(|&c| c == b'\n')
                    .map_or(0, |p| p + 1);
                let mut line = self.buf.split_off(line_at);
                push_tail(&mut line, seg);
                let ev = self.fail(msg, ErrKind::Head, true);
                self.buf = line;
                return ev;
            }
            self.buf.extend_from_slice(seg);
            if self.buf.ends_with(b"\n\n") || self.buf.ends_with(b"\n\r\n") {
                let parsed = parse_head(self.kind, &self.buf);
                self.buf.clear();
                self.line_ok = false;
                return match parsed {
                    Ok(head) => {
                        self.seen_head = true;
                        self.st = St::AwaitFraming;
                        Ev::Head {
                            head,
                            first_ts: self.first_ts,
                        }
                    }
                    Err(msg) => self.fail(msg, ErrKind::Head, true),
                };
            }
        }
        Ev::NeedMore
    }

    /// `lost` bytes of this side's stream were never seen.
    pub(crate) fn gap(&mut self, lost: u64) -> Gap {
        let out = match &mut self.st {
            St::Stopped => return Gap::Ignored,
            St::Resync { .. } => Gap::Ignored,
            St::Length { remaining } if lost <= *remaining => {
                *remaining -= lost;
                self.wire = self.wire.saturating_add(lost);
                return Gap::InBody;
            }
            St::Length { remaining } => {
                let body_lost = *remaining;
                self.wire = self.wire.saturating_add(body_lost);
                Gap::Overran {
                    body_lost,
                    extra: lost - body_lost,
                }
            }
            St::Chunked(d) => {
                if d.absorb(lost) {
                    self.wire = self.wire.saturating_add(lost);
                    return Gap::InBody;
                }
                Gap::Cut(Was::Body)
            }
            St::Close => {
                self.wire = self.wire.saturating_add(lost);
                return Gap::InBody;
            }
            St::Start if self.buf.is_empty() => Gap::Cut(Was::Boundary),
            St::Start | St::AwaitFraming => Gap::Cut(Was::Head),
        };
        self.resync();
        self.line_ok = false;
        out
    }

    /// The stream ended. The parser stops.
    pub(crate) fn close(&mut self) -> Closed {
        let out = match &self.st {
            St::Close => Closed::End { wire: self.wire },
            St::Length { remaining: 0 } => Closed::End { wire: self.wire },
            St::Length { .. } | St::Chunked(_) => Closed::InBody,
            St::Start if !self.buf.is_empty() => Closed::InHead,
            St::AwaitFraming => Closed::InHead,
            St::Start | St::Resync { .. } | St::Stopped => Closed::Clean,
        };
        self.stop();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_lf_finds_the_first_lf_anywhere() {
        for len in 0..40 {
            for at in 0..=len {
                let mut b = vec![b'x'; len];
                // bytes around LF that a word test could confuse with it
                for (k, c) in b.iter_mut().enumerate() {
                    *c = [b'x', 0x0b, 0x09, 0x8a, 0x00][k % 5];
                }
                if at < len {
                    b[at] = b'\n';
                    if at + 3 < len {
                        b[at + 3] = b'\n';
                    }
                }
                let want = b.iter().position(|&c| c == b'\n');
                assert_eq!(find_lf(&b), want, "{b:?}");
            }
        }
    }

    fn events(p: &mut SideParser, mut input: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            match p.next(&mut input, Timestamp(1)) {
                Ev::NeedMore => return out,
                Ev::Head { .. } => {
                    out.push("head".to_string());
                    p.set_framing(Framing::Length(3));
                }
                Ev::Body(b) => out.push(format!("body {}", String::from_utf8_lossy(b))),
                Ev::End { wire, .. } => out.push(format!("end {wire}")),
                Ev::Error { kind, .. } => out.push(format!("error {kind:?}")),
            }
        }
    }

    #[test]
    fn resync_finds_the_next_request_line() {
        let mut p = SideParser::new(Kind::Request);
        let ev = events(
            &mut p,
            b"\x16\x03garbage\r\nmore junk\r\n}GET /x HTTP/1.1\r\n\r\nabc",
        );
        assert_eq!(ev, ["error StartLine", "head", "body abc", "end 22"]);
    }

    #[test]
    fn oversized_head_is_an_error_not_memory() {
        let mut p = SideParser::new(Kind::Request);
        let mut ev = events(&mut p, b"GET / HTTP/1.1\r\n");
        for _ in 0..100 {
            ev.extend(events(&mut p, &[b'X'; 1024]));
        }
        assert_eq!(ev, ["error Head"]);
        assert!(p.buf.capacity() <= MAX_START_LINE * 4);
    }

    #[test]
    fn gap_inside_a_known_length_is_absorbed() {
        let mut p = SideParser::new(Kind::Response);
        assert_eq!(
            events(&mut p, b"HTTP/1.1 200 OK\r\n\r\na"),
            ["head", "body a"]
        );
        assert_eq!(p.gap(1), Gap::InBody);
        assert_eq!(
            events(&mut p, b"cHTTP/1.1 200 OK\r\n\r\n"),
            ["body c", "end 22", "head"]
        );
        assert_eq!(
            p.gap(5),
            Gap::Overran {
                body_lost: 3,
                extra: 2
            }
        );
        assert_eq!(p.gap(5), Gap::Ignored);
    }
}
