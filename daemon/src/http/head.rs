//! Message heads: cheap start-line plausibility checks (used to tell HTTP from other
//! protocols and to resynchronise after a gap), the `httparse` wrapper, and the framing
//! rules of RFC 9112 §6 (Content-Length, Transfer-Encoding, bodiless responses).
use crate::events::Headers;

/// Largest header section (start line + fields + blank line) accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Longest start line accepted while resynchronising.
pub(crate) const MAX_START_LINE: usize = 16 * 1024;
/// Most header fields parsed in one head (httparse needs a fixed array: start small, grow).
pub(crate) const MAX_HEADERS: usize = 8192;
const FIRST_HEADERS: usize = 64;
const MAX_METHOD: usize = 32;

/// Which message kind a side sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Request,
    Response,
}

/// Outcome of checking the first bytes of a message against the start-line grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LineCheck {
    /// The bytes contradict the grammar.
    No,
    /// A valid prefix; `past_method` once a request's method and its space were seen.
    Partial { past_method: bool },
    /// A complete, valid start line (ending in LF) begins the bytes.
    Line,
}

pub(crate) fn check_start_line(kind: Kind, b: &[u8]) -> LineCheck {
    match kind {
        Kind::Request => check_request_line(b),
        Kind::Response => check_status_line(b),
    }
}

fn is_method_byte(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'-' || c == b'_'
}

fn is_target_byte(c: u8) -> bool {
    matches!(c, b'!'..=0x7e | 0x80..=0xff)
}

/// Matches `pat` progressively at `b[i..]`: `Ok(i + pat.len())`, or the verdict.
fn expect(b: &[u8], i: usize, pat: &[u8], past_method: bool) -> Result<usize, LineCheck> {
    for (k, want) in pat.iter().enumerate() {
        match b.get(i + k) {
            None => return Err(LineCheck::Partial { past_method }),
            Some(c) if c == want => {}
            Some(_) => return Err(LineCheck::No),
        }
    }
    Ok(i + pat.len())
}

/// `HTTP/1.0` or `HTTP/1.1` at `i`.
fn expect_version(b: &[u8], i: usize, past_method: bool) -> Result<usize, LineCheck> {
    let i = expect(b, i, b"HTTP/1.", past_method)?;
    match b.get(i) {
        None => Err(LineCheck::Partial { past_method }),
        Some(b'0' | b'1') => Ok(i + 1),
        Some(_) => Err(LineCheck::No),
    }
}

/// Optional CR then LF at `i`.
fn expect_eol(b: &[u8], mut i: usize, past_method: bool) -> LineCheck {
    if b.get(i) == Some(&b'\r') {
        i += 1;
    }
    match b.get(i) {
        None => LineCheck::Partial { past_method },
        Some(b'\n') => LineCheck::Line,
        Some(_) => LineCheck::No,
    }
}

/// `METHOD SP target SP HTTP/1.x CRLF`, methods in upper case (`GET`, `M-SEARCH`).
pub(crate) fn check_request_line(b: &[u8]) -> LineCheck {
    let method_len = b.iter().take_while(|&&c| is_method_byte(c)).count();
    if method_len > MAX_METHOD || b.first().is_some_and(|c| !c.is_ascii_uppercase()) {
        return LineCheck::No;
    }
    let mut i = method_len;
    match b.get(i) {
        None => return LineCheck::Partial { past_method: false },
        Some(b' ') if method_len > 0 => i += 1,
        Some(_) => return LineCheck::No,
    }
    let target_len = b
        .get(i..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&c| is_target_byte(c))
        .count();
    i += target_len;
    match b.get(i) {
        None => return LineCheck::Partial { past_method: true },
        Some(b' ') if target_len > 0 => i += 1,
        Some(_) => return LineCheck::No,
    }
    match expect_version(b, i, true) {
        Ok(i) => expect_eol(b, i, true),
        Err(v) => v,
    }
}

/// `HTTP/1.x SP 3DIGIT [SP reason] CRLF`.
pub(crate) fn check_status_line(b: &[u8]) -> LineCheck {
    let partial = LineCheck::Partial { past_method: false };
    let mut i = match expect_version(b, 0, false).and_then(|i| expect(b, i, b" ", false)) {
        Ok(i) => i,
        Err(v) => return v,
    };
    for _ in 0..3 {
        match b.get(i) {
            None => return partial,
            Some(c) if c.is_ascii_digit() => i += 1,
            Some(_) => return LineCheck::No,
        }
    }
    match b.get(i) {
        None => partial,
        Some(b' ') => {
            let reason = b.get(i + 1..).unwrap_or_default();
            let n = reason
                .iter()
                .take_while(|&&c| c == b'\t' || (c >= b' ' && c != 0x7f))
                .count();
            expect_eol(b, i + 1 + n, false)
        }
        Some(_) => expect_eol(b, i, false),
    }
}

/// The request line of a parsed head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestLine {
    pub method: String,
    pub target: String,
    pub version: String,
}

/// The status line of a parsed head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusLine {
    pub status: u16,
    pub reason: String,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ParsedHead {
    Request { line: RequestLine, headers: Headers },
    Response { line: StatusLine, headers: Headers },
}

fn version(minor: Option<u8>) -> String {
    match minor.unwrap_or(1) {
        1 => "HTTP/1.1".to_string(),
        0 => "HTTP/1.0".to_string(),
        m => format!("HTTP/1.{m}"),
    }
}

fn headers_of(h: &[httparse::Header<'_>]) -> Headers {
    let mut out = Vec::with_capacity(h.len());
    for h in h.iter().filter(|h| !h.name.is_empty()) {
        let value = match std::str::from_utf8(h.value) {
            Ok(v) => v.to_string(),
            Err(_) => String::from_utf8_lossy(h.value).into_owned(),
        };
        out.push((h.name.to_string(), value));
    }
    out
}

fn config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_responses(true);
    c
}

/// Parses a complete head (start line through the blank line) with `httparse`, growing the
/// header array on `TooManyHeaders` up to [`MAX_HEADERS`].
pub(crate) fn parse_head(kind: Kind, bytes: &[u8]) -> Result<ParsedHead, String> {
    let cfg = config();
    let mut n = FIRST_HEADERS;
    // the usual case on the stack; a larger array on the heap when that is too small
    let mut first = [httparse::EMPTY_HEADER; FIRST_HEADERS];
    let mut more = Vec::new();
    loop {
        let hdrs: &mut [httparse::Header<'_>] = if n == FIRST_HEADERS {
            &mut first
        } else {
            more.resize(n, httparse::EMPTY_HEADER);
            &mut more
        };
        let res = match kind {
            Kind::Request => {
                let mut r = httparse::Request::new(hdrs);
                match cfg.parse_request(&mut r, bytes) {
                    Ok(httparse::Status::Complete(_)) => Ok(Some(ParsedHead::Request {
                        line: RequestLine {
                            method: r.method.unwrap_or_default().to_string(),
                            target: r.path.unwrap_or_default().to_string(),
                            version: version(r.version),
                        },
                        headers: headers_of(r.headers),
                    })),
                    Ok(httparse::Status::Partial) => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Kind::Response => {
                let mut r = httparse::Response::new(hdrs);
                match cfg.parse_response(&mut r, bytes) {
                    Ok(httparse::Status::Complete(_)) => Ok(Some(ParsedHead::Response {
                        line: StatusLine {
                            status: r.code.unwrap_or_default(),
                            reason: r.reason.unwrap_or_default().to_string(),
                            version: version(r.version),
                        },
                        headers: headers_of(r.headers),
                    })),
                    Ok(httparse::Status::Partial) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        };
        return match res {
            Ok(Some(h)) => Ok(h),
            Ok(None) => Err("incomplete message head".to_string()),
            Err(httparse::Error::TooManyHeaders) if n < MAX_HEADERS => {
                n = (n * 4).min(MAX_HEADERS);
                continue;
            }
            Err(httparse::Error::TooManyHeaders) => {
                Err(format!("more than {MAX_HEADERS} header fields"))
            }
            Err(e) => Err(format!("malformed message head: {e}")),
        };
    }
}

/// How a message body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Response body delimited by the connection closing.
    Close,
}

/// Values of every `name` field, comma-split, trimmed, empty items dropped.
pub(crate) fn list_values<'a>(
    headers: &'a Headers,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

pub(crate) fn has_header(headers: &Headers, name: &str) -> bool {
    headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// The agreed Content-Length, `Ok(None)` when absent, `Err` when invalid or conflicting.
pub(crate) fn content_length(headers: &Headers) -> Result<Option<u64>, String> {
    let mut found: Option<u64> = None;
    for v in list_values(headers, "content-length") {
        let n = if v.len() <= 19 && v.bytes().all(|c| c.is_ascii_digit()) {
            v.parse::<u64>().ok()
        } else {
            None
        };
        match (n, found) {
            (None, _) => return Err("invalid Content-Length".to_string()),
            (Some(n), Some(f)) if n != f => {
                return Err("conflicting Content-Length values".to_string());
            }
            (Some(n), _) => found = Some(n),
        }
    }
    // A header present with an empty value is invalid too.
    if found.is_none() && has_header(headers, "content-length") {
        return Err("invalid Content-Length".to_string());
    }
    Ok(found)
}

/// `Some(true)` when Transfer-Encoding ends in `chunked`, `Some(false)` when it is present
/// but does not, `None` when absent.
fn transfer_chunked(headers: &Headers) -> Option<bool> {
    if !has_header(headers, "transfer-encoding") {
        return None;
    }
    Some(
        list_values(headers, "transfer-encoding")
            .last()
            .is_some_and(|c| c.eq_ignore_ascii_case("chunked")),
    )
}

pub(crate) fn request_framing(headers: &Headers) -> Result<Framing, String> {
    match transfer_chunked(headers) {
        Some(true) => return Ok(Framing::Chunked),
        Some(false) => return Err("request Transfer-Encoding does not end in chunked".to_string()),
        None => {}
    }
    Ok(match content_length(headers)? {
        Some(0) | None => Framing::None,
        Some(n) => Framing::Length(n),
    })
}

/// `method` is the request's, when known.
pub(crate) fn response_framing(
    status: u16,
    headers: &Headers,
    method: Option<&str>,
) -> Result<Framing, String> {
    if method == Some("HEAD") || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::None);
    }
    match transfer_chunked(headers) {
        Some(true) => return Ok(Framing::Chunked),
        Some(false) => return Ok(Framing::Close),
        None => {}
    }
    Ok(match content_length(headers)? {
        Some(0) => Framing::None,
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_line_checks() {
        assert_eq!(
            check_request_line(b""),
            LineCheck::Partial { past_method: false }
        );
        assert_eq!(
            check_request_line(b"GE"),
            LineCheck::Partial { past_method: false }
        );
        assert_eq!(
            check_request_line(b"GET "),
            LineCheck::Partial { past_method: true }
        );
        assert_eq!(
            check_request_line(b"GET /a?b HTTP/1."),
            LineCheck::Partial { past_method: true }
        );
        assert_eq!(
            check_request_line(b"GET /a?b HTTP/1.1\r\nHost"),
            LineCheck::Line
        );
        assert_eq!(
            check_request_line(b"M-SEARCH * HTTP/1.1\n"),
            LineCheck::Line
        );
        assert_eq!(check_request_line(b"PRI * HTTP/2.0\r\n"), LineCheck::No);
        assert_eq!(check_request_line(b"get / HTTP/1.1\r\n"), LineCheck::No);
        assert_eq!(check_request_line(b"\x16\x03\x01\x02\x00"), LineCheck::No);
        assert_eq!(check_request_line(b"SSH-2.0-OpenSSH_9.6 "), LineCheck::No);
        assert_eq!(check_request_line(b"GET /\x00 HTTP/1.1"), LineCheck::No);
        assert_eq!(check_request_line(b"GET / HTTP/1.1 \r\n"), LineCheck::No);
        assert_eq!(check_request_line(b" GET"), LineCheck::No);
    }

    #[test]
    fn status_line_checks() {
        assert_eq!(
            check_status_line(b"HTT"),
            LineCheck::Partial { past_method: false }
        );
        assert_eq!(check_status_line(b"HTTP/1.1 200 OK\r\n"), LineCheck::Line);
        assert_eq!(check_status_line(b"HTTP/1.0 404\r\n"), LineCheck::Line);
        assert_eq!(check_status_line(b"HTTP/1.1 20x"), LineCheck::No);
        assert_eq!(check_status_line(b"HTTP/2 200\r\n"), LineCheck::No);
        assert_eq!(
            check_status_line(b"220 smtp.example ESMTP\r\n"),
            LineCheck::No
        );
    }

    #[test]
    fn lengths_and_framing() {
        let h = |v: &[(&str, &str)]| -> Headers {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            content_length(&h(&[("Content-Length", "5, 5")])),
            Ok(Some(5))
        );
        assert!(content_length(&h(&[("Content-Length", "5"), ("content-length", "6")])).is_err());
        assert!(content_length(&h(&[("Content-Length", "-1")])).is_err());
        assert!(content_length(&h(&[("Content-Length", "99999999999999999999999")])).is_err());
        assert!(content_length(&h(&[("Content-Length", "")])).is_err());
        let te = h(&[
            ("Transfer-Encoding", "gzip, chunked"),
            ("Content-Length", "3"),
        ]);
        assert_eq!(request_framing(&te), Ok(Framing::Chunked));
        assert_eq!(
            response_framing(200, &h(&[("Transfer-Encoding", "gzip")]), None),
            Ok(Framing::Close)
        );
        assert_eq!(
            response_framing(200, &h(&[("Content-Length", "3")]), Some("HEAD")),
            Ok(Framing::None)
        );
        assert_eq!(
            response_framing(304, &h(&[("Content-Length", "3")]), None),
            Ok(Framing::None)
        );
        assert_eq!(response_framing(200, &h(&[]), None), Ok(Framing::Close));
    }

    #[test]
    fn many_headers_grow_the_array() {
        let mut head = String::from("GET / HTTP/1.1\r\n");
        for i in 0..1000 {
            head.push_str(&format!("X-H{i}: {i}\r\n"));
        }
        head.push_str("\r\n");
        match parse_head(Kind::Request, head.as_bytes()) {
            Ok(ParsedHead::Request { headers, .. }) => assert_eq!(headers.len(), 1000),
            other => panic!("unexpected {other:?}"),
        }
    }
}
