//! Body capture and decoding through a whole connection.
use super::tests::{req, resp, run, run_with, ts};
use super::*;
use crate::events::BodyEncoding;
use Side::{Client, Server};
use base64::Engine as _;
use std::io::Write;

fn response_with(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 200 OK\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

fn one_response(headers: &str, body: &[u8]) -> HttpResponse {
    let ex = run(
        &[
            (Client, b"GET / HTTP/1.1\r\n\r\n"),
            (Server, &response_with(headers, body)),
        ],
        false,
    );
    assert_eq!(ex.len(), 1);
    resp(&ex[0]).clone()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

const JSON: &str =
    r#"{"users":[{"id":1,"name":"Ada"},{"id":2,"name":"Grace"},{"id":3,"name":"Zoë"}]}"#;

#[test]
fn gzip_body_is_decoded() {
    let gz = gzip(JSON.as_bytes());
    let r = one_response(
        "Content-Type: application/json\r\nContent-Encoding: gzip\r\n",
        &gz,
    );
    assert_eq!(r.body.text, JSON);
    assert_eq!(r.body.encoding, BodyEncoding::Utf8);
    assert_eq!(r.body.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(
        (r.body.size, r.body.captured, r.body.truncated),
        (gz.len() as u64, gz.len() as u64, false)
    );
    assert_eq!(r.body.note, None);
}

#[test]
fn brotli_body_is_decoded() {
    let mut br = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut br, 4096, 9, 22);
        w.write_all(JSON.as_bytes()).unwrap();
    }
    let r = one_response("Content-Encoding: br\r\n", &br);
    assert_eq!(
        (r.body.text.as_str(), r.body.content_encoding.as_deref()),
        (JSON, Some("br"))
    );
}

#[test]
fn zstd_and_deflate_bodies_are_decoded() {
    let zs = zstd::encode_all(JSON.as_bytes(), 3).unwrap();
    let r = one_response("Content-Encoding: zstd\r\n", &zs);
    assert_eq!(
        (r.body.text.as_str(), r.body.content_encoding.as_deref()),
        (JSON, Some("zstd"))
    );
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(JSON.as_bytes()).unwrap();
    let r = one_response("Content-Encoding: deflate\r\n", &z.finish().unwrap());
    assert_eq!(r.body.text, JSON);
}

#[test]
fn gzip_request_body_in_chunks_is_decoded() {
    let gz = gzip(JSON.as_bytes());
    let (a, b) = gz.split_at(gz.len() / 2);
    let mut rq =
        b"POST /api HTTP/1.1\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for part in [a, b] {
        rq.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        rq.extend_from_slice(part);
        rq.extend_from_slice(b"\r\n");
    }
    rq.extend_from_slice(b"0\r\n\r\n");
    let ex = run(
        &[(Client, &rq), (Server, b"HTTP/1.1 204 No Content\r\n\r\n")],
        false,
    );
    assert_eq!(req(&ex[0]).body.text, JSON);
}

#[test]
fn one_mib_post_in_16k_pieces_arrives_whole() {
    let body: Vec<u8> = (0..1_048_576u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut c = HttpConn::new(BodyLimits::default());
    c.feed(
        Client,
        b"POST /upload HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 1048576\r\n\r\n",
        ts(1),
    );
    for (i, piece) in body.chunks(16 * 1024).enumerate() {
        assert!(c.feed(Client, piece, ts(2 + i as u64)).is_empty());
    }
    let ex = c.feed(
        Server,
        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        ts(100),
    );
    let b = &req(&ex[0]).body;
    assert_eq!(
        (b.size, b.captured, b.truncated),
        (1_048_576, 1_048_576, false)
    );
    assert_eq!(b.text.as_bytes(), &body[..]);
    assert_eq!(ex[0].request_sent, Some(ts(65)));
}

#[test]
fn body_over_the_cap_is_truncated_with_true_size() {
    let body = "x".repeat(5000);
    let limits = BodyLimits {
        max_body_bytes: 1000,
        ..BodyLimits::default()
    };
    let ex = run_with(
        limits,
        &[
            (Client, b"GET / HTTP/1.1\r\n\r\n"),
            (Server, &response_with("", body.as_bytes())),
        ],
        false,
    );
    let b = &resp(&ex[0]).body;
    assert_eq!(
        (b.size, b.captured, b.truncated, b.text.len()),
        (5000, 1000, true, 1000)
    );
    assert_eq!(
        ex[0].response_wire_bytes as usize,
        response_with("", body.as_bytes()).len()
    );
}

#[test]
fn truncated_gzip_keeps_what_decodes() {
    let mut x = 7u32;
    let text: String = (0..50_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (b'a' + (x >> 16) as u8 % 26) as char
        })
        .collect();
    let gz = gzip(text.as_bytes());
    let limits = BodyLimits {
        max_body_bytes: gz.len() / 2,
        ..BodyLimits::default()
    };
    let ex = run_with(
        limits,
        &[
            (Client, b"GET / HTTP/1.1\r\n\r\n"),
            (Server, &response_with("Content-Encoding: gzip\r\n", &gz)),
        ],
        false,
    );
    let b = &resp(&ex[0]).body;
    assert!(b.truncated);
    assert_eq!(b.content_encoding.as_deref(), Some("gzip"));
    assert!(!b.text.is_empty() && text.starts_with(&b.text));
    assert!(b.note.as_deref().unwrap().contains("not fully captured"));
}

#[test]
fn decompression_bomb_is_bounded() {
    let zeros = vec![0u8; 20 << 20];
    let gz = gzip(&zeros);
    let r = one_response("Content-Encoding: gzip\r\n", &gz);
    // 8 × 1 MiB of decoded zeros, base64 (zeros are valid UTF-8, so text).
    assert_eq!(r.body.text.len(), 8 << 20);
    assert!(r.body.note.unwrap().contains("larger than"));
}

#[test]
fn binary_body_is_base64_and_round_trips() {
    let png: Vec<u8> = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
        .iter()
        .copied()
        .chain((0..=255u8).rev())
        .collect();
    let r = one_response("Content-Type: image/png\r\n", &png);
    assert_eq!(r.body.encoding, BodyEncoding::Base64);
    assert_eq!(b64(&r.body.text), png);
}

#[test]
fn text_with_invalid_utf8_is_base64_never_lossy() {
    let latin1 = b"na\xefve caf\xe9";
    let r = one_response("Content-Type: text/plain; charset=iso-8859-1\r\n", latin1);
    assert_eq!(
        (r.body.encoding, b64(&r.body.text)),
        (BodyEncoding::Base64, latin1.to_vec())
    );
}

#[test]
fn unknown_or_broken_encoding_falls_back_to_raw() {
    let r = one_response("Content-Encoding: compress\r\n", b"\x1f\x9d\x90raw");
    assert_eq!(r.body.content_encoding, None);
    assert_eq!(b64(&r.body.text), b"\x1f\x9d\x90raw");
    assert!(
        r.body
            .note
            .unwrap()
            .contains("unsupported content-encoding `compress`")
    );
    let r = one_response("Content-Encoding: gzip\r\n", b"plainly not gzip");
    assert_eq!(
        (r.body.content_encoding.clone(), r.body.text.as_str()),
        (None, "plainly not gzip")
    );
}
