//! Content-Encoding decoding (gzip, x-gzip, deflate as zlib or raw, br, zstd, and comma
//! lists of them), always with a bound on the output so a decompression bomb costs at most
//! `out_cap` bytes of memory (and the CPU to produce them): one budget per body, which
//! every coding of a list draws on (a stack of codings cannot multiply it).
use std::io::Read;

/// Most decoded bytes kept, whatever the capture limit.
pub const MAX_DECODED_BYTES: usize = 16 * 1024 * 1024;
/// zstd window accepted (RFC 8878 asks HTTP encoders to stay within 8 MiB).
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Decoded output cap for a capture limit: 8× the limit, at most [`MAX_DECODED_BYTES`].
pub(crate) fn decoded_cap(max_body_bytes: usize) -> usize {
    max_body_bytes.saturating_mul(8).clamp(1, MAX_DECODED_BYTES)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    Gzip,
    Deflate,
    Br,
    Zstd,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }
}

/// The result of decoding a body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub bytes: Vec<u8>,
    /// Normalised list, e.g. `gzip` or `gzip, br` (in the header's order).
    pub content_encoding: String,
    /// Why the output is partial, if it is.
    pub note: Option<String>,
}

/// Codings named by a Content-Encoding value, in header order; `identity` dropped.
/// `Ok(empty)` when there is nothing to decode, `Err(name)` for an unsupported coding.
fn codings(header: &str) -> Result<Vec<Coding>, String> {
    let mut out = Vec::new();
    for c in header.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        out.push(match c.to_ascii_lowercase().as_str() {
            "identity" => continue,
            "gzip" | "x-gzip" => Coding::Gzip,
            "deflate" => Coding::Deflate,
            "br" => Coding::Br,
            "zstd" => Coding::Zstd,
            _ => return Err(c.chars().take(64).collect()),
        });
        if out.len() > 8 {
            return Err("(more than 8 codings)".to_string());
        }
    }
    Ok(out)
}

/// Decodes `raw` per the Content-Encoding `header`, all codings together producing at most
/// `out_cap` bytes. `Ok(None)`: nothing to decode. `Err(why)`: nothing could be decoded,
/// show the raw bytes. `Ok(Some)`: decoded, maybe partially (`note` says why).
pub(crate) fn decode(raw: &[u8], header: &str, out_cap: usize) -> Result<Option<Decoded>, String> {
    let list = match codings(header) {
        Ok(l) if l.is_empty() => return Ok(None),
        Ok(l) => l,
        Err(c) => {
            return Err(format!(
                "unsupported content-encoding `{c}`; showing the raw bytes"
            ));
        }
    };
    let mut notes = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    let mut left = out_cap;
    for &c in list.iter().rev() {
        let input = cur.as_deref().unwrap_or(raw);
        let (bytes, err, capped) = decode_one(c, input, left);
        left -= bytes.len();
        if bytes.is_empty() {
            if let Some(e) = err {
                return Err(format!(
                    "could not decode {}: {e}; showing the raw bytes",
                    c.name()
                ));
            }
        } else if let Some(e) = err {
            notes.push(format!(
                "{} stream incomplete or corrupt after {} decoded bytes: {e}",
                c.name(),
                bytes.len()
            ));
        }
        if capped {
            let what = if list.len() > 1 {
                " (all its codings together)"
            } else {
                ""
            };
            notes.push(format!(
                "decoded body larger than its {out_cap}-byte decompression budget{what}; \
                 kept the first {} bytes of the {} output",
                bytes.len(),
                c.name()
            ));
        }
        cur = Some(bytes);
    }
    let names: Vec<&str> = list.iter().map(|c| c.name()).collect();
    Ok(Some(Decoded {
        bytes: cur.unwrap_or_default(),
        content_encoding: names.join(", "),
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }))
}

/// Reads at most `cap` bytes from `r`: (bytes, error if the stream failed, capped).
fn read_capped(r: impl Read, cap: usize) -> (Vec<u8>, Option<String>, bool) {
    let mut out = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let err = r
        .take(limit)
        .read_to_end(&mut out)
        .err()
        .map(|e| e.to_string());
    let capped = out.len() > cap;
    out.truncate(cap);
    (out, if capped { None } else { err }, capped)
}

fn looks_like_zlib(b: &[u8]) -> bool {
    match b {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && ((u16::from(*cmf) << 8) | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

fn decode_one(c: Coding, input: &[u8], cap: usize) -> (Vec<u8>, Option<String>, bool) {
    match c {
        Coding::Gzip => read_capped(flate2::read::MultiGzDecoder::new(input), cap),
        Coding::Deflate => {
            // `deflate` is zlib per the RFC, raw DEFLATE from some servers: try both.
            if looks_like_zlib(input) {
                let z = read_capped(flate2::read::ZlibDecoder::new(input), cap);
                if !z.0.is_empty() || z.1.is_none() {
                    return z;
                }
            }
            read_capped(flate2::read::DeflateDecoder::new(input), cap)
        }
        Coding::Br => read_capped(brotli::Decompressor::new(input, 4096), cap),
        Coding::Zstd => match zstd::stream::read::Decoder::with_buffer(input) {
            Ok(mut d) => match d.window_log_max(ZSTD_WINDOW_LOG_MAX) {
                Ok(()) => read_capped(d, cap),
                Err(e) => (Vec::new(), Some(e.to_string()), false),
            },
            Err(e) => (Vec::new(), Some(e.to_string()), false),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn brotli(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(b).unwrap();
        }
        out
    }

    #[test]
    fn each_coding_round_trips() {
        let text = b"hello hello hello hello, world".repeat(10);
        let gz = gzip(&text);
        assert_eq!(decode(&gz, "gzip", 1 << 20).unwrap().unwrap().bytes, text);
        assert_eq!(
            decode(&gz, "X-GZIP", 1 << 20)
                .unwrap()
                .unwrap()
                .content_encoding,
            "gzip"
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&text).unwrap();
        assert_eq!(
            decode(&z.finish().unwrap(), "deflate", 1 << 20)
                .unwrap()
                .unwrap()
                .bytes,
            text
        );
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&text).unwrap();
        assert_eq!(
            decode(&raw.finish().unwrap(), "deflate", 1 << 20)
                .unwrap()
                .unwrap()
                .bytes,
            text
        );
        assert_eq!(
            decode(&brotli(&text), "br", 1 << 20)
                .unwrap()
                .unwrap()
                .bytes,
            text
        );
        let zs = zstd::encode_all(&text[..], 3).unwrap();
        assert_eq!(decode(&zs, "zstd", 1 << 20).unwrap().unwrap().bytes, text);
        assert_eq!(decode(&text, "identity", 1 << 20), Ok(None));
    }

    #[test]
    fn lists_apply_in_reverse() {
        let text = b"layered".to_vec();
        let both = brotli(&gzip(&text));
        let d = decode(&both, "gzip, br", 1 << 20).unwrap().unwrap();
        assert_eq!(
            (d.bytes, d.content_encoding, d.note),
            (text, "gzip, br".to_string(), None)
        );
    }

    #[test]
    fn bombs_are_capped() {
        let zeros = vec![0u8; 4 << 20];
        let d = decode(&gzip(&zeros), "gzip", 1 << 20).unwrap().unwrap();
        assert_eq!(d.bytes.len(), 1 << 20);
        assert!(d.note.unwrap().contains("larger than"));
        let d = decode(&brotli(&zeros), "br", 1000).unwrap().unwrap();
        assert_eq!(d.bytes.len(), 1000);
    }

    #[test]
    fn stacked_codings_share_one_budget() {
        // gzip of gzip of 4 MiB of zeros: the inner stage expands 1000-fold, each stage
        // alone would stay under a 1 MiB cap only if the budget were per stage
        let zeros = vec![0u8; 4 << 20];
        let twice = gzip(&gzip(&zeros));
        let cap = 1 << 20;
        let d = decode(&twice, "gzip, gzip", cap).unwrap().unwrap();
        let inner = gzip(&zeros).len();
        assert_eq!(d.bytes.len(), cap - inner, "both stages drew on one budget");
        let note = d.note.unwrap();
        assert!(
            note.contains("decompression budget (all its codings together)"),
            "{note}"
        );
        // eight stacked codings of a small body still decode whole
        let mut b = b"eight layers".to_vec();
        for _ in 0..8 {
            b = gzip(&b);
        }
        let d = decode(&b, &["gzip"; 8].join(", "), cap).unwrap().unwrap();
        assert_eq!((d.bytes.as_slice(), d.note), (&b"eight layers"[..], None));
    }

    #[test]
    fn truncated_and_garbage() {
        let mut x = 1u32;
        let text: Vec<u8> = (0..20_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                b'a' + (x >> 16) as u8 % 26
            })
            .collect();
        let gz = gzip(&text);
        let d = decode(&gz[..gz.len() / 2], "gzip", 1 << 20)
            .unwrap()
            .unwrap();
        assert!(!d.bytes.is_empty() && text.starts_with(&d.bytes));
        assert!(d.note.unwrap().contains("incomplete"));
        assert!(
            decode(b"not gzip at all", "gzip", 1 << 20)
                .unwrap_err()
                .contains("could not decode gzip")
        );
        assert!(
            decode(b"x", "compress", 1 << 20)
                .unwrap_err()
                .contains("unsupported")
        );
        assert!(decode(b"\x28\xb5\x2f\xfd garbage", "zstd", 1 << 20).is_err());
    }
}
