//! Fuzzes `qtap::http2::hpack::Hpack`, the HPACK decoder of one direction, with a series
//! of header blocks.
//!
//! Input layout: `[flags, (len_hi, len_lo, block[len])...]`: each block is a 2-byte
//! big-endian length and that many bytes (the last one takes what is left).
//! - `flags & 1`: the direction was seen from its first byte (else joined mid-way).
//! - `flags >> 1 & 3` picks the peer's SETTINGS_HEADER_TABLE_SIZE: none, 0, 4096, 65536.
//! - `flags >> 3 & 3` picks the budget per block: 64 B, 4 KiB, 64 KiB, 256 KiB.
//!
//! Checks, besides "no panic" and libFuzzer's RSS and malloc limits (which catch an
//! amplification: a block of at most 64 KiB may cost its length plus the budget):
//! 1. the fields kept add up (RFC 7541 sizes) to `decoded`, within the budget, at most
//!    `MAX_FIELDS` of them;
//! 2. the dynamic table never holds more than `MAX_TABLE_BYTES`;
//! 3. a table size update above the limit is reported as fatal, and the limit is the
//!    announced one (or 4096 from the start without SETTINGS).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qtap::http2::hpack::{Hpack, MAX_FIELDS, MAX_TABLE_BYTES, field_size};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let from_start = flags & 1 != 0;
    let settings = [None, Some(0u32), Some(4096), Some(65536)][usize::from(flags >> 1 & 3)];
    let budget = [64, 4096, 64 * 1024, 256 * 1024][usize::from(flags >> 3 & 3)];
    let mut d = Hpack::new(from_start);
    if let Some(s) = settings {
        d.set_settings_max(s);
    }
    let limit = d.update_limit();
    match settings {
        Some(s) if from_start => assert_eq!(limit, s as usize),
        Some(s) => assert_eq!(limit, (s as usize).max(MAX_TABLE_BYTES)),
        None if from_start => assert_eq!(limit, 4096),
        None => assert_eq!(limit, MAX_TABLE_BYTES),
    }
    while !rest.is_empty() {
        let (block, next) = match rest {
            [hi, lo, tail @ ..] => {
                let n = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
                tail.split_at(n)
            }
            _ => (rest, &[][..]),
        };
        rest = next;
        let b = d.decode_within(block, budget);
        let kept: usize = b.fields.iter().map(|(n, v)| field_size(n, v)).sum();
        assert_eq!(kept, b.decoded, "decoded counts the fields kept");
        assert!(kept <= budget, "{kept} bytes kept, budget {budget}");
        assert!(b.fields.len() <= MAX_FIELDS);
        assert!(d.size() <= MAX_TABLE_BYTES, "table of {} bytes", d.size());
        if let Some(why) = &b.fatal {
            assert!(why.contains(&format!("above the {limit}")), "{why}");
            // the connection's decoding stops here
            return;
        }
    }
});
