//! gRPC over HTTP/2: the call's service and method, its status from the trailers, and
//! its length-prefixed messages (decompressed per `grpc-encoding`) with a best-effort
//! protobuf field dump, since the schema is not known.
//!
//! Decompression is bounded per body, not per message: all the messages of one direction
//! share one budget, [`messages_budget`] (the body cap: the messages are a second view of
//! a body the event already carries), so many small compressed messages cannot each
//! expand to a cap. Once it is spent, later messages are shown compressed, with a note.
use super::stream::{Half, field};
use crate::events::{Grpc, GrpcMessage};
use crate::http::{MAX_DECODED_BYTES, decode};
use base64::Engine as _;

/// Decompressed bytes of all the messages of one direction together: the body cap
/// (`max_body_bytes`), at most [`MAX_DECODED_BYTES`].
pub fn messages_budget(max_body_bytes: usize) -> usize {
    max_body_bytes.clamp(1, MAX_DECODED_BYTES)
}

/// Messages listed per direction at most.
pub const MAX_MESSAGES: usize = 64;
/// Characters of one field dump at most.
const MAX_DUMP: usize = 64 * 1024;
/// Nesting followed in a field dump at most.
const MAX_DEPTH: usize = 16;

const STATUS: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

fn is_grpc(h: &Half) -> bool {
    h.header("content-type")
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/grpc"))
}

/// The gRPC view of a stream, when either side says `content-type: application/grpc*`.
pub(super) fn call(req: &Half, resp: &Half, max_body_bytes: usize) -> Option<Grpc> {
    if !is_grpc(req) && !is_grpc(resp) {
        return None;
    }
    let path = req.header(":path").unwrap_or_default();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default().to_string();
    let method = parts.next().unwrap_or_default().to_string();
    // trailers, or the headers of a trailers-only response
    let status_field = |name: &str| {
        field(&resp.trailers, name)
            .or_else(|| resp.header(name))
            .map(str::to_string)
    };
    let status: Option<u32> = status_field("grpc-status").and_then(|s| s.trim().parse().ok());
    let mut notes = Vec::new();
    let mut messages = Vec::new();
    for (from, h) in [("request", req), ("response", resp)] {
        let enc = h.header("grpc-encoding").unwrap_or("identity");
        let (mut list, note) = split(from, h.body.bytes(), h.body.size(), enc, max_body_bytes);
        messages.append(&mut list);
        notes.extend(note.map(|n| format!("{from}: {n}")));
    }
    Some(Grpc {
        service,
        method,
        status,
        status_name: status
            .and_then(|s| STATUS.get(s as usize))
            .map(|s| s.to_string()),
        message: status_field("grpc-message").map(|m| percent_decode(&m)),
        messages,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    })
}

/// Splits one direction's DATA bytes (`kept` of `size`) into length-prefixed messages.
fn split(
    from: &str,
    kept: &[u8],
    size: u64,
    encoding: &str,
    max_body_bytes: usize,
) -> (Vec<GrpcMessage>, Option<String>) {
    let mut out = Vec::new();
    let mut rest = kept;
    let mut more = 0usize;
    let mut cut = false;
    let budget = messages_budget(max_body_bytes);
    let mut left = budget;
    let mut undecompressed = 0usize;
    while let Some((prefix, body)) = rest.split_first_chunk::<5>() {
        let compressed = prefix[0] & 1 != 0;
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        let have = len.min(body.len());
        let raw = &body[..have];
        rest = &body[have..];
        cut |= have < len;
        if out.len() == MAX_MESSAGES {
            more += 1;
            continue;
        }
        let m = message(from, compressed, len, raw, encoding, &mut left);
        undecompressed += usize::from(m.is_none());
        out.push(m.unwrap_or_else(|| GrpcMessage {
            note: Some(format!(
                "not decompressed: the {budget}-byte decompression budget of this body's \
                 messages is spent; showing the compressed bytes"
            )),
            ..raw_message(from, compressed, len, raw)
        }));
    }
    let mut notes = Vec::new();
    if undecompressed > 0 {
        notes.push(format!(
            "decompression budget of {budget} bytes for these messages spent: \
             {undecompressed} later message(s) not decompressed"
        ));
    }
    if more > 0 {
        notes.push(format!("{more} more messages not listed"));
    }
    if cut || !rest.is_empty() || size > kept.len() as u64 {
        notes.push("body not fully captured: the last message is cut".to_string());
    }
    (out, (!notes.is_empty()).then(|| notes.join("; ")))
}

/// A message as captured, not decompressed.
fn raw_message(from: &str, compressed: bool, len: usize, raw: &[u8]) -> GrpcMessage {
    GrpcMessage {
        from: from.to_string(),
        compressed,
        size: len as u64,
        captured: raw.len() as u64,
        dump: None,
        data: base64::engine::general_purpose::STANDARD.encode(raw),
        note: None,
    }
}

/// One message, decompressed within `left` bytes (what remains of the body's budget,
/// reduced by its output). `None`: compressed, and the budget is spent.
fn message(
    from: &str,
    compressed: bool,
    len: usize,
    raw: &[u8],
    encoding: &str,
    left: &mut usize,
) -> Option<GrpcMessage> {
    let mut note = None;
    let cut = raw.len() < len;
    let mut data = raw.to_vec();
    if compressed {
        if *left == 0 && !raw.is_empty() {
            return None;
        }
        match decode(raw, encoding, *left) {
            Ok(Some(d)) => {
                *left -= d.bytes.len();
                data = d.bytes;
                note = d.note;
            }
            Ok(None) => {
                note = Some(format!(
                    "compressed flag set but grpc-encoding is `{encoding}`; showing the raw bytes"
                ));
            }
            Err(e) => note = Some(e),
        }
    }
    if cut {
        note = Some(format!(
            "only {} of {len} bytes captured{}",
            raw.len(),
            note.map(|n| format!("; {n}")).unwrap_or_default()
        ));
    }
    Some(GrpcMessage {
        from: from.to_string(),
        compressed,
        size: len as u64,
        captured: raw.len() as u64,
        dump: if cut { None } else { dump(&data) },
        data: base64::engine::general_purpose::STANDARD.encode(&data),
        note,
    })
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2, "Responses").
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|&c| hex(c)),
            b.get(i + 2).and_then(|&c| hex(c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

enum Val<'a> {
    Varint(u64),
    I64(u64),
    Len(&'a [u8]),
    I32(u32),
}

fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let (&c, rest) = b.split_first()?;
        *b = rest;
        if shift == 63 && c > 1 {
            return None;
        }
        v |= u64::from(c & 0x7f) << shift;
        if c & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// `b` read as a protobuf message: every field well formed, to the last byte.
fn parse(mut b: &[u8]) -> Option<Vec<(u64, Val<'_>)>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let tag = varint(&mut b)?;
        let num = tag >> 3;
        if num == 0 || num > 0x1fff_ffff {
            return None;
        }
        let v = match tag & 7 {
            0 => Val::Varint(varint(&mut b)?),
            1 => {
                let (x, r) = b.split_first_chunk::<8>()?;
                b = r;
                Val::I64(u64::from_le_bytes(*x))
            }
            2 => {
                let n = usize::try_from(varint(&mut b)?).ok()?;
                if n > b.len() {
                    return None;
                }
                let (x, r) = b.split_at(n);
                b = r;
                Val::Len(x)
            }
            5 => {
                let (x, r) = b.split_first_chunk::<4>()?;
                b = r;
                Val::I32(u32::from_le_bytes(*x))
            }
            _ => return None, // groups (deprecated) and invalid wire types
        };
        out.push((num, v));
    }
    Some(out)
}

/// A `protoc --decode_raw`-like dump of `b`; `None` when it is not a protobuf message.
/// Length-delimited fields show as a string when they are printable UTF-8, else as a
/// nested message when they parse as one, else as escaped bytes.
pub fn dump(b: &[u8]) -> Option<String> {
    let fields = parse(b)?;
    let mut out = String::new();
    render(&fields, 0, &mut out);
    if out.len() > MAX_DUMP {
        let mut cut = MAX_DUMP;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("\n…");
    }
    Some(out)
}

fn printable(b: &[u8]) -> Option<&str> {
    std::str::from_utf8(b).ok().filter(|s| {
        s.chars()
            .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
    })
}

fn render(fields: &[(u64, Val<'_>)], depth: usize, out: &mut String) {
    use std::fmt::Write as _;
    let pad = "  ".repeat(depth);
    for (num, v) in fields {
        if out.len() > MAX_DUMP {
            return;
        }
        let _ = match v {
            Val::Varint(x) => writeln!(out, "{pad}{num}: {x}"),
            Val::I64(x) => writeln!(out, "{pad}{num}: 0x{x:016x}"),
            Val::I32(x) => writeln!(out, "{pad}{num}: 0x{x:08x}"),
            Val::Len(b) => {
                if let Some(s) = printable(b) {
                    writeln!(out, "{pad}{num}: {s:?}")
                } else if let Some(inner) = (depth < MAX_DEPTH).then(|| parse(b)).flatten() {
                    let _ = writeln!(out, "{pad}{num} {{");
                    render(&inner, depth + 1, out);
                    writeln!(out, "{pad}}}")
                } else {
                    let esc: String = b.iter().map(|c| format!("\\x{c:02x}")).collect();
                    writeln!(out, "{pad}{num}: \"{esc}\"")
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_protobuf_fields() {
        // 1: "world", 2: 150, 3 { 1: 1 }, 4: fixed64 1, 5: fixed32 1, 6: bytes ff 00
        let msg = b"\x0a\x05world\x10\x96\x01\x1a\x02\x08\x01\x21\x01\0\0\0\0\0\0\0\x2d\x01\0\0\0\x32\x02\xff\x00";
        assert_eq!(
            dump(msg).unwrap(),
            "1: \"world\"\n2: 150\n3 {\n  1: 1\n}\n4: 0x0000000000000001\n5: 0x00000001\n6: \"\\xff\\x00\"\n"
        );
        assert_eq!(dump(b"").unwrap(), "");
        assert_eq!(dump(b"hello world"), None);
        assert_eq!(dump(b"\x0a\x09short"), None);
    }

    #[test]
    fn splits_messages_and_decompresses() {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"\x0a\x05hello").unwrap();
        let z = gz.finish().unwrap();
        let mut body = vec![0, 0, 0, 0, 2, 0x08, 0x2a];
        body.push(1);
        body.extend_from_slice(&(z.len() as u32).to_be_bytes());
        body.extend_from_slice(&z);
        body.extend_from_slice(&[0, 0, 0, 0, 9, 0x08]); // cut
        let (m, note) = split("response", &body, body.len() as u64, "gzip", 1 << 20);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].dump.as_deref(), Some("1: 42\n"));
        assert!(m[1].compressed);
        assert_eq!(m[1].dump.as_deref(), Some("1: \"hello\"\n"));
        assert_eq!(
            (m[2].size, m[2].captured, m[2].dump.as_deref()),
            (9, 1, None)
        );
        assert!(note.unwrap().contains("cut"));
    }

    #[test]
    fn messages_of_a_body_share_one_decompression_budget() {
        use std::io::Write as _;
        // 64 messages, each 3 MiB of zeros gzipped (about 3 KiB): 192 MiB if each had a
        // budget of its own; with a 4 MiB body cap, 4 MiB for them all
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&vec![0u8; 3 << 20]).unwrap();
        let z = gz.finish().unwrap();
        let mut body = Vec::new();
        for _ in 0..64 {
            body.push(1);
            body.extend_from_slice(&(z.len() as u32).to_be_bytes());
            body.extend_from_slice(&z);
        }
        let cap = 4 << 20;
        let (m, note) = split("response", &body, body.len() as u64, "gzip", cap);
        assert_eq!(m.len(), 64, "every message is listed");
        let b64 = base64::engine::general_purpose::STANDARD;
        let decoded: usize = m.iter().map(|x| b64.decode(&x.data).unwrap().len()).sum();
        // one whole message, the second cut at the budget, compressed copies of the rest
        assert_eq!(decoded, cap + 62 * z.len());
        assert_eq!(b64.decode(&m[0].data).unwrap().len(), 3 << 20);
        assert_eq!(b64.decode(&m[1].data).unwrap().len(), 1 << 20);
        assert!(m[1].note.as_deref().unwrap().contains("larger than"));
        let last = m[63].note.as_deref().unwrap();
        assert!(last.contains("not decompressed"), "{last}");
        assert_eq!(b64.decode(&m[63].data).unwrap(), z);
        let note = note.unwrap();
        assert!(note.contains("decompression budget"), "{note}");
    }

    #[test]
    fn grpc_message_is_percent_decoded() {
        assert_eq!(
            percent_decode("no%20such%3A user %E2%9C%93"),
            "no such: user ✓"
        );
        assert_eq!(percent_decode("100%"), "100%");
    }
}
