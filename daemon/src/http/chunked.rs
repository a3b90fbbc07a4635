//! `Transfer-Encoding: chunked` decoder (RFC 9112 §7.1), incremental: it never buffers
//! chunk data, only the trailer section (bounded by `MAX_HEAD_BYTES`).
//!
//! Lenient where peers commonly are (bare LF line ends, whitespace before `;`), strict
//! where leniency would let garbage through (non-hex sizes, sizes over 16 hex digits,
//! missing CRLF after data).
use super::head::{MAX_HEAD_BYTES, MAX_START_LINE};
use crate::events::Headers;

#[derive(Clone, Debug, PartialEq, Eq)]
enum St {
    /// Reading the hex size; `digits` so far.
    Size {
        value: u64,
        digits: u32,
    },
    /// After the size: whitespace, extensions, CR, up to LF. `len` bytes of it so far.
    SizeRest {
        value: u64,
        len: usize,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    Trailers,
    Done,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    Data(&'a [u8]),
    NeedMore,
    /// The last chunk and the trailer section were read.
    Done(Headers),
    Error(String),
}

#[derive(Debug)]
pub(crate) struct Chunked {
    st: St,
    trailers: Vec<u8>,
    /// Where the trailer line in progress starts in `trailers`.
    line_start: usize,
}

impl Chunked {
    /// Heap bytes held (the trailer section in progress), for the memory budget.
    pub(crate) fn held_bytes(&self) -> usize {
        self.trailers.capacity()
    }

    pub(crate) fn new() -> Self {
        Chunked {
            st: St::Size {
                value: 0,
                digits: 0,
            },
            trailers: Vec::new(),
            line_start: 0,
        }
    }

    /// Consumes from `input` (advancing it) until chunk data, the end, an error, or the
    /// input runs out.
    pub(crate) fn step<'a>(&mut self, input: &mut &'a [u8]) -> Step<'a> {
        loop {
            if let St::Data { remaining } = self.st {
                if input.is_empty() {
                    return Step::NeedMore;
                }
                let n = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                let (data, rest) = input.split_at(n);
                *input = rest;
                let left = remaining - n as u64;
                self.st = if left == 0 {
                    St::DataCr
                } else {
                    St::Data { remaining: left }
                };
                return Step::Data(data);
            }
            if self.st == St::Done {
                return Step::Done(Vec::new());
            }
            if self.st == St::Trailers {
                return self.trailers_step(input);
            }
            let Some((&c, rest)) = input.split_first() else {
                return Step::NeedMore;
            };
            *input = rest;
            if let Err(e) = self.framing_byte(c) {
                return Step::Error(e);
            }
        }
    }

    fn framing_byte(&mut self, c: u8) -> Result<(), String> {
        self.st = match self.st {
            St::Size { value, digits } => match (c as char).to_digit(16) {
                Some(d) if digits >= 16 => {
                    return Err(format!("chunk size over 16 hex digits (next digit {d:x})"));
                }
                Some(d) => St::Size {
                    value: (value << 4) | u64::from(d),
                    digits: digits + 1,
                },
                None if digits == 0 => {
                    return Err(format!(
                        "invalid chunk size: byte 0x{c:02x} where a hex digit was expected"
                    ));
                }
                None => return self.size_rest(value, 0, c),
            },
            St::SizeRest { value, len } => return self.size_rest(value, len, c),
            St::DataCr if c == b'\r' => St::DataLf,
            St::DataCr | St::DataLf if c == b'\n' => St::Size {
                value: 0,
                digits: 0,
            },
            St::DataCr | St::DataLf => {
                return Err(format!(
                    "byte 0x{c:02x} where CRLF was expected after chunk data"
                ));
            }
            // Handled in `step`.
            St::Data { .. } | St::Trailers | St::Done => return Ok(()),
        };
        Ok(())
    }

    fn size_rest(&mut self, value: u64, len: usize, c: u8) -> Result<(), String> {
        if len >= MAX_START_LINE {
            return Err(format!(
                "chunk size line longer than {MAX_START_LINE} bytes"
            ));
        }
        self.st = match c {
            b'\n' if value == 0 => St::Trailers,
            b'\n' => St::Data { remaining: value },
            b'\r' | b' ' | b'\t' | b';' => St::SizeRest {
                value,
                len: len + 1,
            },
            // Extension text after a `;` may hold any visible byte.
            _ if len > 0 && c >= b' ' && c != 0x7f => St::SizeRest {
                value,
                len: len + 1,
            },
            _ => return Err(format!("invalid byte 0x{c:02x} after chunk size")),
        };
        Ok(())
    }

    fn trailers_step<'a>(&mut self, input: &mut &'a [u8]) -> Step<'a> {
        while let Some(nl) = input.iter().position(|&c| c == b'\n') {
            let (line, rest) = input.split_at(nl + 1);
            *input = rest;
            if self.trailers.len() + line.len() > MAX_HEAD_BYTES {
                return Step::Error(format!(
                    "trailer section larger than {MAX_HEAD_BYTES} bytes"
                ));
            }
            self.trailers.extend_from_slice(line);
            let t = &self.trailers;
            // An empty line (LF or CRLF) ends the section.
            if t.get(self.line_start..)
                .is_some_and(|l| l == b"\n" || l == b"\r\n")
            {
                self.st = St::Done;
                return Step::Done(parse_trailers(t));
            }
            self.line_start = t.len();
        }
        if self.trailers.len() + input.len() > MAX_HEAD_BYTES {
            return Step::Error(format!(
                "trailer section larger than {MAX_HEAD_BYTES} bytes"
            ));
        }
        self.trailers.extend_from_slice(input);
        *input = &[];
        Step::NeedMore
    }

    /// `lost` bytes went missing from the stream: absorbed when they fall inside the
    /// current chunk's data (parsing continues exactly), otherwise `false`.
    pub(crate) fn absorb(&mut self, lost: u64) -> bool {
        match self.st {
            St::Data { remaining } if lost <= remaining => {
                let left = remaining - lost;
                self.st = if left == 0 {
                    St::DataCr
                } else {
                    St::Data { remaining: left }
                };
                true
            }
            _ => false,
        }
    }
}

/// `name: value` lines; lines without a colon or with an empty name are skipped.
fn parse_trailers(t: &[u8]) -> Headers {
    t.split(|&c| c == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&c| c == b':')?;
            let (name, value) = (line.get(..colon)?, line.get(colon + 1..)?);
            let name = String::from_utf8_lossy(name).trim().to_string();
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c.is_control()) {
                return None;
            }
            Some((name, String::from_utf8_lossy(value).trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the decoder over `pieces`; returns (body, trailers) or the error.
    fn run(pieces: &[&[u8]]) -> Result<(Vec<u8>, Option<Headers>, usize), String> {
        let mut d = Chunked::new();
        let mut body = Vec::new();
        for p in pieces {
            let mut input: &[u8] = p;
            loop {
                match d.step(&mut input) {
                    Step::Data(b) => body.extend_from_slice(b),
                    Step::NeedMore => break,
                    Step::Done(t) => return Ok((body, Some(t), input.len())),
                    Step::Error(e) => return Err(e),
                }
            }
        }
        Ok((body, None, 0))
    }

    #[test]
    fn chunks_extensions_and_trailers() {
        let msg = b"5;name=\"v\"\r\nhello\r\n6 ; x\r\n world\r\n0\r\nX-Sum: 1\r\nX-Other: two\r\n\r\nNEXT";
        let (body, tr, left) = run(&[msg]).unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(
            tr.unwrap(),
            vec![
                ("X-Sum".into(), "1".into()),
                ("X-Other".into(), "two".into())
            ]
        );
        assert_eq!(left, 4, "bytes after the message are left for the next one");
        // Same at every split.
        for i in 0..msg.len() {
            let (b, t, _) = run(&[&msg[..i], &msg[i..]]).unwrap();
            assert_eq!(b, b"hello world");
            assert_eq!(t.unwrap().len(), 2);
        }
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(run(&[b"-5\r\n"]).is_err());
        assert!(run(&[b"\r\n"]).is_err());
        assert!(
            run(&[b"fffffffffffffffff\r\n"])
                .unwrap_err()
                .contains("16 hex digits")
        );
        assert!(run(&[b"3\r\nabcX"]).unwrap_err().contains("CRLF"));
        assert!(run(&[b"3x\r\n"]).is_err());
        // Huge (but valid) sizes are fine: data is streamed, never buffered.
        assert_eq!(run(&[b"ffffffffffffffff\r\nabc"]).unwrap().0, b"abc");
    }

    #[test]
    fn bare_lf_and_empty_trailers() {
        assert_eq!(run(&[b"3\nabc\n0\n\n"]).unwrap().0, b"abc");
        let (_, t, _) = run(&[b"0\r\n\r\n"]).unwrap();
        assert_eq!(t.unwrap(), Vec::<(String, String)>::new());
    }

    #[test]
    fn absorb_inside_data_only() {
        let mut d = Chunked::new();
        let mut input: &[u8] = b"a\r\n01";
        assert_eq!(d.step(&mut input), Step::Data(b"01"));
        assert!(d.absorb(8));
        let mut input: &[u8] = b"\r\n0\r\n\r\n";
        assert_eq!(d.step(&mut input), Step::Done(vec![]));
        assert!(!Chunked::new().absorb(1));
    }
}
