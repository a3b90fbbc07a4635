//! Body capture (bounded) and its conversion to the event's [`Body`]: content decoding,
//! then UTF-8 text or base64, never lossy.
use super::decode::{decode, decoded_cap};
use crate::events::{Body, BodyEncoding};
use base64::Engine as _;

/// Heap bytes a header list holds (names, values and the list itself), for the memory
/// budget.
pub(crate) fn headers_bytes(h: &crate::events::Headers) -> usize {
    h.capacity() * std::mem::size_of::<(String, String)>()
        + h.iter()
            .map(|(n, v)| n.capacity() + v.capacity())
            .sum::<usize>()
}

/// Keeps the first `cap` bytes of a body (after transfer decoding) and counts them all.
#[derive(Debug, Default)]
pub(crate) struct BodyCapture {
    size: u64,
    data: Vec<u8>,
    cap: usize,
    /// Bytes lost in capture: once any is, later bytes are counted but not kept (the
    /// kept bytes must stay contiguous).
    lost: u64,
    notes: Vec<String>,
}

impl BodyCapture {
    /// `expected`: the Content-Length, when known, to size the buffer (a claim, so at most
    /// 64 KiB up front; the rest grows as bytes arrive).
    pub(crate) fn new(cap: usize, expected: Option<u64>) -> Self {
        let want = expected.map_or(0, |n| {
            usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(cap)
                .min(64 * 1024)
        });
        BodyCapture {
            data: Vec::with_capacity(want),
            cap,
            ..Default::default()
        }
    }

    pub(crate) fn push(&mut self, b: &[u8]) {
        self.size = self.size.saturating_add(b.len() as u64);
        if self.lost == 0 {
            let room = self.cap.saturating_sub(self.data.len());
            self.data
                .extend_from_slice(b.get(..room.min(b.len())).unwrap_or_default());
        }
    }

    /// Heap bytes held (the kept bytes and notes), for the memory budget.
    pub(crate) fn held_bytes(&self) -> usize {
        self.data.capacity() + self.notes.iter().map(String::capacity).sum::<usize>()
    }

    /// The bytes kept so far (contiguous from the start of the body).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Every body byte counted so far (kept, beyond the cap, or lost).
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn lose(&mut self, n: u64) {
        if self.lost == 0 {
            self.data.shrink_to_fit();
        }
        self.size = self.size.saturating_add(n);
        self.lost = self.lost.saturating_add(n);
    }

    pub(crate) fn note(&mut self, why: String) {
        if self.notes.len() < 4 {
            self.notes.push(why);
        }
    }

    /// Converts to the event form, decoding per the Content-Encoding header value.
    pub(crate) fn into_body(
        mut self,
        content_encoding: Option<&str>,
        max_body_bytes: usize,
    ) -> Body {
        let captured = self.data.len() as u64;
        let truncated = self.size > captured;
        if self.lost > 0 {
            self.notes
                .insert(0, format!("{} body bytes lost in capture", self.lost));
        }
        let mut out = Body {
            size: self.size,
            captured,
            truncated,
            ..Body::empty()
        };
        let mut bytes = std::mem::take(&mut self.data);
        if let Some(ce) = content_encoding.filter(|_| !bytes.is_empty()) {
            match decode(&bytes, ce, decoded_cap(max_body_bytes)) {
                Ok(None) => {}
                Ok(Some(d)) => {
                    if let Some(n) = d.note {
                        self.notes.push(if truncated {
                            format!("body not fully captured, decoded what was: {n}")
                        } else {
                            n
                        });
                    }
                    out.content_encoding = Some(d.content_encoding);
                    bytes = d.bytes;
                }
                Err(e) => self.notes.push(e),
            }
        }
        let partial = truncated || !self.notes.is_empty();
        match String::from_utf8(bytes) {
            Ok(s) => out.text = s,
            // Cut inside a character only because the body was cut: drop that tail.
            Err(e) if partial && e.utf8_error().error_len().is_none() => {
                let valid = e.utf8_error().valid_up_to();
                let mut b = e.into_bytes();
                b.truncate(valid);
                out.text = String::from_utf8(b).unwrap_or_default();
            }
            Err(e) => {
                out.encoding = BodyEncoding::Base64;
                out.text = base64::engine::general_purpose::STANDARD.encode(e.as_bytes());
            }
        }
        out.note = (!self.notes.is_empty()).then(|| self.notes.join("; "));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_all_keeps_cap() {
        let mut c = BodyCapture::new(4, Some(10));
        c.push(b"hello");
        c.push(b" world");
        let b = c.into_body(None, 4);
        assert_eq!(
            (b.size, b.captured, b.truncated, b.text.as_str()),
            (11, 4, true, "hell")
        );
        assert_eq!(b.encoding, BodyEncoding::Utf8);
    }

    #[test]
    fn binary_is_base64_and_round_trips() {
        let raw: Vec<u8> = (0..=255u8).collect();
        let mut c = BodyCapture::new(1024, None);
        c.push(&raw);
        let b = c.into_body(None, 1024);
        assert_eq!(b.encoding, BodyEncoding::Base64);
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&b.text)
                .unwrap(),
            raw
        );
        assert!(!b.truncated);
    }

    #[test]
    fn invalid_utf8_text_is_base64_not_lossy() {
        let mut c = BodyCapture::new(1024, None);
        c.push(b"caf\xe9 latin-1");
        let b = c.into_body(None, 1024);
        assert_eq!(b.encoding, BodyEncoding::Base64);
    }

    #[test]
    fn cut_inside_a_character_stays_text() {
        let mut c = BodyCapture::new(4, None);
        c.push("abc\u{e9}\u{e9}".as_bytes());
        let b = c.into_body(None, 4);
        assert_eq!(
            (b.encoding, b.text.as_str(), b.captured),
            (BodyEncoding::Utf8, "abc", 4)
        );
    }

    #[test]
    fn lost_bytes_stop_capture_and_say_so() {
        let mut c = BodyCapture::new(100, None);
        c.push(b"abc");
        c.lose(5);
        c.push(b"def");
        let b = c.into_body(None, 100);
        assert_eq!(
            (b.size, b.captured, b.truncated, b.text.as_str()),
            (11, 3, true, "abc")
        );
        assert!(b.note.unwrap().contains("5 body bytes lost"));
    }

    #[test]
    fn undecodable_falls_back_to_raw() {
        let mut c = BodyCapture::new(100, None);
        c.push(b"plain, not gzip");
        let b = c.into_body(Some("gzip"), 100);
        assert_eq!(b.content_encoding, None);
        assert_eq!(b.text, "plain, not gzip");
        assert!(b.note.unwrap().contains("could not decode gzip"));
    }
}
