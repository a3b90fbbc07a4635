//! One HTTP/2 stream: both halves as they arrive, then the [`Exchange`] they make.
use super::grpc;
use crate::events::{Body, Headers, Timestamp};
use crate::http::{BodyCapture, BodyLimits, Exchange, HttpRequest, HttpResponse, Side};

/// What one side sent on a stream.
#[derive(Debug, Default)]
pub(super) struct Half {
    /// The header block, pseudo-header fields first as sent; `None` until seen.
    pub headers: Option<Headers>,
    pub trailers: Headers,
    pub body: BodyCapture,
    /// END_STREAM seen (or the half is known to be over).
    pub ended: bool,
    /// Frame bytes on the wire (frame headers included).
    pub wire: u64,
    /// Header fields that could not be decoded.
    pub undecodable: usize,
    /// Header or trailer fields were left out (the stream's header budget was spent).
    pub headers_truncated: bool,
}

impl Half {
    fn new(limits: BodyLimits) -> Half {
        Half {
            body: BodyCapture::new(limits.max_body_bytes, None),
            ..Half::default()
        }
    }

    /// Anything of this half was seen.
    pub fn seen(&self) -> bool {
        self.headers.is_some() || self.body.size() > 0 || !self.trailers.is_empty()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        field(self.headers.as_deref().unwrap_or_default(), name)
    }
}

/// The first value of `name` (lower case, as HTTP/2 sends names).
pub(super) fn field<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Interim (1xx) response codes listed per stream at most.
pub(super) const MAX_INFORMATIONAL: usize = 16;

#[derive(Debug)]
pub(super) struct Stream {
    pub start: Timestamp,
    pub req: Half,
    pub resp: Half,
    /// Codes of interim (1xx) responses before the final one (at most
    /// [`MAX_INFORMATIONAL`]).
    pub informational: Vec<u16>,
    /// HPACK output (RFC 7541 sizes) kept for this stream so far, both sides, every block.
    pub header_bytes: usize,
    pub request_sent: Option<Timestamp>,
    pub response_start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    /// The request body when the request came in HTTP/1.1 (an `Upgrade: h2c` request,
    /// stream 1), already decoded by the HTTP/1.x parser.
    pub h1_body: Option<Body>,
    errors: Vec<String>,
}

impl Stream {
    pub fn new(ts: Timestamp, limits: BodyLimits) -> Stream {
        Stream {
            start: ts,
            req: Half::new(limits),
            resp: Half::new(limits),
            informational: Vec::new(),
            header_bytes: 0,
            request_sent: None,
            response_start: None,
            end: None,
            h1_body: None,
            errors: Vec::new(),
        }
    }

    pub fn half(&mut self, side: Side) -> &mut Half {
        match side {
            Side::Client => &mut self.req,
            Side::Server => &mut self.resp,
        }
    }

    pub fn error(&mut self, why: impl Into<String>) {
        let why = why.into();
        if self.errors.len() < 6 && !self.errors.contains(&why) {
            self.errors.push(why);
        }
    }

    /// END_STREAM from `side` at `ts`.
    pub fn end_half(&mut self, side: Side, ts: Timestamp) {
        self.half(side).ended = true;
        match side {
            Side::Client => self.request_sent = Some(ts),
            Side::Server => self.end = Some(ts),
        }
    }

    /// Both halves are over (a request never seen counts as over once the response is).
    pub fn complete(&self) -> bool {
        self.resp.ended && (self.req.ended || !self.req.seen())
    }

    /// Ends the stream early (reset, refused, connection closed) with `why`.
    pub fn cut(&mut self, why: &str, ts: Timestamp) {
        if self.end.is_none() {
            self.end = Some(ts);
        }
        if !self.resp.seen() {
            self.error(format!("{why} before the response"));
        } else if !self.resp.ended {
            self.resp.body.note(format!("body incomplete: {why}"));
            self.error(format!("{why} before the response was complete"));
        }
    }

    pub fn into_exchange(self, max_body_bytes: usize) -> Exchange {
        let mut errors = self.errors;
        for (what, h) in [("request", &self.req), ("response", &self.resp)] {
            if h.undecodable > 0 {
                errors.push(format!(
                    "{} {what} header field(s) could not be decoded",
                    h.undecodable
                ));
            }
        }
        let grpc = grpc::call(&self.req, &self.resp, max_body_bytes);
        // joined mid-way: the request's header block went by before the capture started
        let request_not_captured = self.req.headers.is_none();
        let request = self.req.seen().then(|| {
            let headers = self.req.headers.unwrap_or_default();
            let method = field(&headers, ":method").unwrap_or_default().to_string();
            let target = if method == "CONNECT" {
                field(&headers, ":authority")
            } else {
                field(&headers, ":path")
            }
            .unwrap_or_default()
            .to_string();
            let enc = field(&headers, "content-encoding").map(str::to_string);
            HttpRequest {
                method,
                target,
                version: "HTTP/2".into(),
                body: match self.h1_body {
                    Some(b) => b,
                    None => self.req.body.into_body(enc.as_deref(), max_body_bytes),
                },
                headers,
                trailers: self.req.trailers,
                headers_truncated: self.req.headers_truncated,
            }
        });
        let resp_enc = self.resp.header("content-encoding").map(str::to_string);
        let informational = self.informational;
        let response = self.resp.seen().then(|| {
            let headers = self.resp.headers.unwrap_or_default();
            let status = field(&headers, ":status").and_then(|s| s.parse().ok());
            if status.is_none() {
                errors.push("response status not seen".into());
            }
            HttpResponse {
                status: status.unwrap_or(0),
                reason: String::new(),
                version: "HTTP/2".into(),
                headers,
                trailers: self.resp.trailers,
                informational,
                body: self
                    .resp
                    .body
                    .into_body(resp_enc.as_deref(), max_body_bytes),
                headers_truncated: self.resp.headers_truncated,
            }
        });
        let end = self
            .end
            .or(self.response_start)
            .or(self.request_sent)
            .unwrap_or(self.start);
        Exchange {
            request,
            response,
            start: self.start,
            request_sent: self.request_sent,
            response_start: self.response_start,
            end,
            request_wire_bytes: self.req.wire,
            response_wire_bytes: self.resp.wire,
            error: (!errors.is_empty()).then(|| errors.join("; ")),
            request_not_captured,
            grpc,
        }
    }
}
