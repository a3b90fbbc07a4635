//! HTTP/2 frame headers (RFC 9113 section 4): parsing, the checks that keep a
//! parser in step with the peer, and the stricter ones that recognise HTTP/2 in the
//! first bytes of a connection joined mid-way.

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const HEAD_LEN: usize = 9;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

/// SETTINGS_HEADER_TABLE_SIZE
pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    /// The reserved bit of the stream identifier (ignored, but never set by a sender).
    pub reserved: bool,
}

impl Head {
    pub fn parse(b: &[u8; HEAD_LEN]) -> Head {
        let sid = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
        Head {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream: sid & 0x7fff_ffff,
            reserved: sid & 0x8000_0000 != 0,
        }
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Structure a peer in step with us always respects (RFC 9113 section 6): the stream
    /// (zero or not) and the fixed lengths of each known type. Unknown types pass (they
    /// are skipped, as the RFC says).
    pub fn valid(&self) -> bool {
        let on_stream = self.stream != 0;
        match self.kind {
            DATA | HEADERS | CONTINUATION | PUSH_PROMISE => on_stream,
            PRIORITY => on_stream && self.len == 5,
            RST_STREAM => on_stream && self.len == 4,
            SETTINGS => {
                !on_stream && self.len.is_multiple_of(6) && !(self.has(ACK) && self.len != 0)
            }
            PING => !on_stream && self.len == 8,
            GOAWAY => !on_stream && self.len >= 8,
            WINDOW_UPDATE => self.len == 4,
            _ => true,
        }
    }

    /// Stricter than [`Head::valid`], to recognise HTTP/2 among other protocols: a known
    /// type, only its defined flags, the reserved bit clear.
    pub fn plausible(&self) -> bool {
        let flags = match self.kind {
            DATA => END_STREAM | PADDED,
            HEADERS => END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG,
            SETTINGS | PING => ACK,
            PUSH_PROMISE => END_HEADERS | PADDED,
            CONTINUATION => END_HEADERS,
            PRIORITY | RST_STREAM | GOAWAY | WINDOW_UPDATE => 0,
            _ => return false,
        };
        self.valid() && !self.reserved && self.flags & !flags == 0
    }
}

/// The frame size every peer accepts (SETTINGS_MAX_FRAME_SIZE's initial value).
pub const DEFAULT_MAX_FRAME: u32 = 16_384;

/// Whether `data`, the first bytes the tool saw of one side of a connection, are HTTP/2:
/// the client preface (whole, or the start of it), or frame headers that are all
/// plausible, chained by their lengths through `data` (at least one). A frame that runs
/// past `data` is weaker evidence, so it must also fit the default frame size.
pub fn looks_like_h2(data: &[u8]) -> bool {
    if starts_with_preface(data) {
        return true;
    }
    let mut rest = data;
    let mut seen = 0;
    while let Some(h) = rest.first_chunk::<HEAD_LEN>() {
        let h = Head::parse(h);
        if !h.plausible() {
            return false;
        }
        seen += 1;
        match rest.get(HEAD_LEN + h.len as usize..) {
            Some(r) => rest = r,
            None => return h.len <= DEFAULT_MAX_FRAME,
        }
    }
    seen > 0
}

/// `data` starts with the client preface, or is a start of it at least 4 bytes long.
pub fn starts_with_preface(data: &[u8]) -> bool {
    let n = data.len().min(PREFACE.len());
    n >= 4 && data[..n] == PREFACE[..n]
}

/// Whether `data` opens with a server's connection preface (a SETTINGS frame, not an ACK).
pub fn is_server_preface(data: &[u8]) -> bool {
    data.first_chunk::<HEAD_LEN>().is_some_and(|h| {
        let h = Head::parse(h);
        h.kind == SETTINGS && !h.has(ACK) && h.plausible()
    })
}

/// RFC 9113 section 7 error codes.
pub fn error_name(code: u32) -> String {
    let n = match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => return format!("error code {code:#x}"),
    };
    n.to_string()
}

/// Removes padding (and, for HEADERS with the PRIORITY flag, the priority fields) from a
/// HEADERS or PUSH_PROMISE payload. `None`: the padding is longer than the payload.
pub fn unpad<'a>(h: &Head, payload: &'a [u8]) -> Option<&'a [u8]> {
    let mut p = payload;
    let mut pad = 0usize;
    if h.has(PADDED) {
        let (&n, rest) = p.split_first()?;
        pad = usize::from(n);
        p = rest;
    }
    if h.kind == HEADERS && h.has(PRIORITY_FLAG) {
        p = p.get(5..)?;
    }
    p.get(..p.len().checked_sub(pad)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(len: u32, kind: u8, flags: u8, stream: u32) -> Vec<u8> {
        let mut v = len.to_be_bytes()[1..].to_vec();
        v.push(kind);
        v.push(flags);
        v.extend_from_slice(&stream.to_be_bytes());
        v
    }

    #[test]
    fn recognises_h2_starts_and_not_others() {
        assert!(looks_like_h2(PREFACE));
        assert!(looks_like_h2(b"PRI * HT"));
        let mut settings = head(12, SETTINGS, 0, 0);
        settings.extend_from_slice(&[0, 3, 0, 0, 0, 100, 0, 4, 0, 0, 0xff, 0xff]);
        assert!(looks_like_h2(&settings));
        assert!(is_server_preface(&settings));
        settings.extend(head(4, WINDOW_UPDATE, 0, 0));
        assert!(looks_like_h2(&settings));
        let mut data = head(3, DATA, END_STREAM, 1);
        data.extend_from_slice(b"abc");
        data.extend(head(0, HEADERS, 0xff, 1)); // undefined flags
        assert!(!looks_like_h2(&data));
        for other in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"\x00\x00\x00\x08\x04\xd2\x16\x2f", // postgres SSLRequest
            b"*1\r\n$4\r\nPING\r\n",
            b"SSH-2.0-OpenSSH_9.2\r\n",
            b"short",
        ] {
            assert!(!looks_like_h2(other), "{other:?}");
        }
    }

    #[test]
    fn unpad_strips_padding_and_priority() {
        let h = Head {
            len: 0,
            kind: HEADERS,
            flags: PADDED | PRIORITY_FLAG,
            stream: 1,
            reserved: false,
        };
        assert_eq!(unpad(&h, b"\x02PPPPPabc\0\0"), Some(&b"abc"[..]));
        assert_eq!(unpad(&h, b"\x09PPPPPabc"), None);
    }
}
