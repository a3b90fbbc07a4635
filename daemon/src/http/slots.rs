//! An exchange being assembled: the request and response as they are parsed, their
//! timing and byte counts, and the conversion to the public [`Exchange`].
use super::body::BodyCapture;
use super::head::{RequestLine, StatusLine};
use super::{Exchange, HttpRequest, HttpResponse};
use crate::events::{Headers, Timestamp};

const MAX_ERRORS: usize = 4;
const MAX_INFORMATIONAL: usize = 16;

/// A message being assembled.
#[derive(Debug)]
pub(crate) struct Msg<L> {
    pub line: L,
    pub headers: Headers,
    pub trailers: Headers,
    pub body: BodyCapture,
}

impl<L> Msg<L> {
    pub(crate) fn new(line: L, headers: Headers, cap: usize, expected: Option<u64>) -> Self {
        Msg {
            line,
            headers,
            trailers: Vec::new(),
            body: BodyCapture::new(cap, expected),
        }
    }

    fn content_encoding(&self) -> Option<String> {
        let v: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-encoding"))
            .map(|(_, v)| v.as_str())
            .collect();
        (!v.is_empty()).then(|| v.join(", "))
    }

    fn into_parts(self, max_body_bytes: usize) -> (L, Headers, Headers, crate::events::Body) {
        let ce = self.content_encoding();
        let body = self.body.into_body(ce.as_deref(), max_body_bytes);
        (self.line, self.headers, self.trailers, body)
    }
}

#[derive(Debug)]
pub(crate) struct Slot {
    pub id: u64,
    pub req: Option<Msg<RequestLine>>,
    pub req_done: bool,
    pub resp: Option<Msg<StatusLine>>,
    pub resp_done: bool,
    pub informational: Vec<u16>,
    pub start: Timestamp,
    pub request_sent: Option<Timestamp>,
    pub response_start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub req_wire: u64,
    pub resp_wire: u64,
    errors: Vec<String>,
    /// The request asked to switch protocols (Upgrade header, or CONNECT).
    pub upgrade: bool,
    /// The response switched protocols (101, or 2xx to CONNECT).
    pub tunnel: bool,
    /// A response with no request: the request was sent before the capture started.
    pub request_not_captured: bool,
}

impl Slot {
    pub(crate) fn new(id: u64, start: Timestamp) -> Self {
        Slot {
            id,
            req: None,
            req_done: false,
            resp: None,
            resp_done: false,
            informational: Vec::new(),
            start,
            request_sent: None,
            response_start: None,
            end: None,
            req_wire: 0,
            resp_wire: 0,
            errors: Vec::new(),
            upgrade: false,
            tunnel: false,
            request_not_captured: false,
        }
    }

    /// A slot for a request that was never seen (lost or malformed).
    pub(crate) fn placeholder(id: u64, ts: Timestamp, why: String) -> Self {
        let mut s = Slot::new(id, ts);
        s.req_done = true;
        s.error(why);
        s
    }

    pub(crate) fn error(&mut self, why: impl Into<String>) {
        let why = why.into();
        if self.errors.len() < MAX_ERRORS && !self.errors.contains(&why) {
            self.errors.push(why);
        }
    }

    pub(crate) fn informational(&mut self, code: u16) {
        if self.informational.len() < MAX_INFORMATIONAL {
            self.informational.push(code);
        }
    }

    pub(crate) fn method(&self) -> Option<&str> {
        self.req.as_ref().map(|r| r.line.method.as_str())
    }

    pub(crate) fn ready(&self) -> bool {
        self.req_done && self.resp_done
    }

    /// Ends whatever is unfinished because of `why` ("connection closed", ...) at `ts`.
    pub(crate) fn cut(&mut self, why: &str, ts: Timestamp) {
        if !self.req_done {
            self.req_done = true;
            self.request_sent.get_or_insert(ts);
            self.error(format!("{why} before the request was complete"));
            if let Some(r) = &mut self.req {
                r.body.note(format!("body incomplete: {why}"));
            }
        }
        if !self.resp_done {
            self.resp_done = true;
            self.end = Some(ts);
            if let Some(r) = &mut self.resp {
                r.body.note(format!("body incomplete: {why}"));
                self.error(format!("{why} before the response was complete"));
            } else {
                self.error(format!("{why} before the response"));
            }
        }
    }

    pub(crate) fn into_exchange(self, max_body_bytes: usize) -> Exchange {
        let request = self.req.map(|m| {
            let (line, headers, trailers, body) = m.into_parts(max_body_bytes);
            HttpRequest {
                method: line.method,
                target: line.target,
                version: line.version,
                headers,
                trailers,
                body,
                // a head is bounded as a whole (MAX_HEAD_BYTES): past it, an error
                headers_truncated: false,
            }
        });
        let informational = self.informational;
        let response = self.resp.map(|m| {
            let (line, headers, trailers, body) = m.into_parts(max_body_bytes);
            HttpResponse {
                status: line.status,
                reason: line.reason,
                version: line.version,
                headers,
                trailers,
                informational,
                body,
                headers_truncated: false,
            }
        });
        Exchange {
            request,
            response,
            start: self.start,
            request_sent: self.request_sent,
            response_start: self.response_start,
            end: self
                .end
                .or(self.response_start)
                .or(self.request_sent)
                .unwrap_or(self.start),
            request_wire_bytes: self.req_wire,
            response_wire_bytes: self.resp_wire,
            error: (!self.errors.is_empty()).then(|| self.errors.join("; ")),
            request_not_captured: self.request_not_captured,
            grpc: None,
        }
    }
}
