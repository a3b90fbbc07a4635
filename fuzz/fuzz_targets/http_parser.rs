//! Fuzzes `qtap::http::HttpConn` with both sides of a connection.
//!
//! Input layout: `[flags, n, schedule[n], payload...]`.
//! - `flags & 3` picks the body cap (16 B, 100 B, 1 KiB, 1 MiB).
//! - Each schedule byte is one step, the schedule repeating until the payload is used up:
//!   bit 7 = side (1: server), bits 5-6 = op (3: gap, else feed), bits 0-4 = `k`;
//!   a feed takes the next `k*k + 1` payload bytes, a gap loses `k + 1` bytes.
//!
//! Checks, besides "no panic, no unbounded allocation":
//! 1. every body respects its counters and cap, base64 text decodes;
//! 2. without gaps, feeding each side's bytes whole or in the scheduled pieces gives the
//!    same exchanges (the parser does not depend on how the kernel split the stream).
#![no_main]

#[path = "common/mod.rs"]
mod common;

use common::{Step, body_cap, check_body, pieces, schedule, split_input};
use libfuzzer_sys::fuzz_target;
use qtap::events::Timestamp;
use qtap::http::{BodyLimits, Exchange, HttpConn, Side, looks_like_request};

fn check(out: &[Exchange], cap: usize) {
    for e in out {
        assert!(
            e.request.is_some() || e.response.is_some() || e.error.is_some(),
            "empty exchange"
        );
        if let Some(r) = &e.request {
            check_body(&r.body, cap);
        }
        if let Some(r) = &e.response {
            check_body(&r.body, cap);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((flags, sched, payload)) = split_input(data) else {
        return;
    };
    let cap = body_cap(flags);
    let limits = BodyLimits {
        max_body_bytes: cap,
        ..BodyLimits::default()
    };
    let _ = looks_like_request(payload);
    let steps = schedule(sched, payload);
    let t = Timestamp(1);

    // 1. The schedule as is, gaps included, then close.
    let mut c = HttpConn::new(limits);
    let mut out = Vec::new();
    for s in &steps {
        if c.is_not_http() {
            break;
        }
        out.extend(match *s {
            Step::Feed(side, d) => c.feed(side, d, t),
            Step::Gap(side, lost) => c.gap(side, lost, t),
        });
    }
    out.extend(c.close(t));
    check(&out, cap);

    // 2. Without gaps: each side whole (client first) vs. in the scheduled pieces.
    let run = |client: &[&[u8]], server: &[&[u8]]| -> (Vec<Exchange>, bool) {
        let mut c = HttpConn::new(limits);
        let mut out = Vec::new();
        for d in client {
            out.extend(c.feed(Side::Client, d, t));
        }
        for d in server {
            out.extend(c.feed(Side::Server, d, t));
        }
        let not_http = c.is_not_http();
        out.extend(c.close(t));
        (out, not_http)
    };
    let (cp, sp) = (pieces(&steps, Side::Client), pieces(&steps, Side::Server));
    let (cw, sw) = (cp.concat(), sp.concat());
    let split = run(&cp, &sp);
    let whole = run(&[&cw], &[&sw]);
    check(&split.0, cap);
    assert_eq!(split, whole, "split and whole feeds differ");
});
