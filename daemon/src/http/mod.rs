//! HTTP/1.0 and HTTP/1.1 over one connection: the bytes each side sent, in order, become
//! request/response exchanges ([`HttpConn`]).
//!
//! - Heads are parsed with `httparse` (lenient where browsers are), split across any number
//!   of feeds, at most [`MAX_HEAD_BYTES`] each.
//! - Bodies: Content-Length, chunked (extensions ignored, trailers kept in `trailers`, not
//!   merged into `headers`), close-delimited responses, bodiless HEAD/1xx/204/304 responses.
//!   The first `max_body_bytes` are kept, everything is counted, and Content-Encoding
//!   (gzip, deflate, br, zstd, lists) is decoded with a bounded output.
//! - Keep-alive and pipelining (responses pair with requests first-in first-out, but never
//!   with a request captured after the response began: that response answers a request
//!   the capture did not see, see [`Exchange::request_not_captured`]); interim
//!   1xx responses are skipped (their codes are listed in `informational`); 101 and 2xx to
//!   CONNECT end the exchange and HTTP parsing of the connection.
//! - Capture gaps and parse errors end the message in progress with an error and the parser
//!   resynchronises at the next complete, valid start line.
//!
//! Memory per connection is bounded: at most [`MAX_PENDING`] exchanges in flight, each with
//! a head of at most [`MAX_HEAD_BYTES`] and a body of at most `max_body_bytes` per side.
mod body;
mod chunked;
mod conn;
mod decode;
mod head;
mod parser;
mod slots;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_body;
#[cfg(test)]
mod tests_gaps;
#[cfg(test)]
mod tests_pairing;

use crate::events::{Body, Headers, Timestamp};
pub(crate) use body::{BodyCapture, headers_bytes};
pub use conn::{HttpConn, MAX_PENDING};
pub use decode::MAX_DECODED_BYTES;
pub(crate) use decode::decode;
pub use head::MAX_HEAD_BYTES;

/// Who sent the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Client,
    Server,
}

/// Capture limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// Body bytes kept per message (after transfer decoding, before content decoding).
    /// Decoded output is capped at 8× this, at most [`MAX_DECODED_BYTES`], for each body
    /// (all its content codings, or all its gRPC messages, together).
    pub max_body_bytes: usize,
    /// HTTP/2 header fields decoded per header block and per stream (HPACK output, in
    /// RFC 7541 sizes: name + value + 32 per field); the rest are left out and the header
    /// list is marked truncated.
    pub max_header_bytes: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            max_body_bytes: 1_048_576,
            max_header_bytes: crate::http2::hpack::DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// A request as sent.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    /// The request target as sent (origin form with query, absolute form, `*`, authority).
    pub target: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: String,
    /// In order, case kept, duplicates kept.
    pub headers: Headers,
    /// Chunked trailer fields, in order (empty without chunked or trailers).
    pub trailers: Headers,
    pub body: Body,
    /// Header or trailer fields were left out (HTTP/2: past `max_header_bytes`).
    pub headers_truncated: bool,
}

/// A final (non-1xx, or 101) response.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    pub version: String,
    pub headers: Headers,
    pub trailers: Headers,
    /// Codes of the interim responses skipped before this one (`100`, `103`, ...).
    pub informational: Vec<u16>,
    pub body: Body,
    /// Header or trailer fields were left out (HTTP/2: past `max_header_bytes`).
    pub headers_truncated: bool,
}

impl HttpRequest {
    /// Headers followed by trailers, the list an event's `headers` shows.
    pub fn all_headers(&self) -> Headers {
        self.headers.iter().chain(&self.trailers).cloned().collect()
    }
}

impl HttpResponse {
    /// Headers followed by trailers, the list an event's `headers` shows.
    pub fn all_headers(&self) -> Headers {
        self.headers.iter().chain(&self.trailers).cloned().collect()
    }
}

/// One request and its response, either possibly missing (see `error`).
#[derive(Clone, Debug, PartialEq)]
pub struct Exchange {
    /// `None` when the request was lost in capture or malformed.
    pub request: Option<HttpRequest>,
    /// `None` when no response was seen (connection closed, lost, malformed).
    pub response: Option<HttpResponse>,
    /// First byte of the request (or when its loss was noticed).
    pub start: Timestamp,
    /// Last byte of the request.
    pub request_sent: Option<Timestamp>,
    /// First byte of the final response (interim 1xx responses excluded).
    pub response_start: Option<Timestamp>,
    /// Last byte of the response, or when the exchange was cut short.
    pub end: Timestamp,
    /// Head, framing and body bytes on the wire (bytes lost in capture included).
    pub request_wire_bytes: u64,
    /// Same for the response side, interim 1xx responses included.
    pub response_wire_bytes: u64,
    /// Why the exchange is incomplete or suspect, e.g. "connection closed before the
    /// response", "12 bytes lost in capture".
    pub error: Option<String>,
    /// The response answers a request the capture never saw (sent before the capture
    /// started, or a stream joined mid-way): `request` is `None` (HTTP/2: no request
    /// header block), and the exchange must not be read as belonging to any other request.
    pub request_not_captured: bool,
    /// gRPC call details (HTTP/2 streams with `content-type: application/grpc*`).
    pub grpc: Option<crate::events::Grpc>,
}

/// Whether `data`, the first bytes of a stream, plausibly starts an HTTP/1.x request: an
/// upper-case method token and a space, and if the whole line is there, a target and
/// `HTTP/1.0` or `HTTP/1.1`. Used to tell which side of a connection is the client.
pub fn looks_like_request(data: &[u8]) -> bool {
    matches!(
        head::check_request_line(data),
        head::LineCheck::Line | head::LineCheck::Partial { past_method: true }
    )
}
