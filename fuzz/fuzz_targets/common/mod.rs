//! What both parser fuzz targets share: the input's feed schedule and the body checks.
//!
//! Input layout: `[flags, n, schedule[n], payload...]`. Each schedule byte is one step,
//! the schedule repeating until the payload is used up: bit 7 = side (1: server),
//! bits 5-6 = op (3: gap, else feed), bits 0-4 = `k`; a feed takes the next `k*k + 1`
//! payload bytes, a gap loses `k + 1` bytes.

use base64::Engine as _;
use qtap::events::{Body, BodyEncoding};
use qtap::http::Side;

pub enum Step<'a> {
    Feed(Side, &'a [u8]),
    Gap(Side, u64),
}

/// Splits `data` into `(flags, schedule, payload)`; `None` when it is too short.
pub fn split_input(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let [flags, n, rest @ ..] = data else {
        return None;
    };
    let n = usize::from(*n % 32) + 1;
    if rest.len() < n {
        return None;
    }
    let (sched, payload) = rest.split_at(n);
    Some((*flags, sched, payload))
}

/// The body cap that `flags & 3` picks (16 B, 100 B, 1 KiB, 1 MiB).
pub fn body_cap(flags: u8) -> usize {
    [16, 100, 1024, 1 << 20][usize::from(flags & 3)]
}

pub fn schedule<'a>(sched: &[u8], mut payload: &'a [u8]) -> Vec<Step<'a>> {
    let mut steps = Vec::new();
    if sched.is_empty() {
        return steps;
    }
    let mut i = 0usize;
    let mut idle = 0usize;
    while !payload.is_empty() && idle <= sched.len() {
        let b = sched[i % sched.len()];
        i += 1;
        let side = if b & 0x80 != 0 {
            Side::Server
        } else {
            Side::Client
        };
        let k = usize::from(b & 0x1f);
        if (b >> 5) & 3 == 3 {
            steps.push(Step::Gap(side, k as u64 + 1));
            idle += 1;
        } else {
            let n = (k * k + 1).min(payload.len());
            let (piece, rest) = payload.split_at(n);
            steps.push(Step::Feed(side, piece));
            payload = rest;
            idle = 0;
        }
    }
    steps
}

/// The fed pieces of one side, in order (gaps left out).
pub fn pieces<'a>(steps: &[Step<'a>], want: Side) -> Vec<&'a [u8]> {
    steps
        .iter()
        .filter_map(|s| match *s {
            Step::Feed(side, d) if side == want => Some(d),
            _ => None,
        })
        .collect()
}

pub fn assert_base64(text: &str, what: &str) {
    assert!(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .is_ok(),
        "bad base64 in {what}"
    );
}

/// A body's counters agree with each other and with the cap; its text is bounded and,
/// when base64, decodes.
pub fn check_body(b: &Body, cap: usize) {
    assert!(b.captured <= b.size, "captured > size");
    assert_eq!(b.truncated, b.size > b.captured, "truncated flag");
    assert!(b.captured <= cap as u64, "captured over the cap");
    assert!(b.text.len() <= (qtap::http::MAX_DECODED_BYTES * 4 / 3 + 4).max(cap * 2 + 4));
    if b.encoding == BodyEncoding::Base64 {
        assert_base64(&b.text, "body");
    }
}
