//! Fuzzes `qtap::http2::H2Conn` with both sides of a connection.
//!
//! Input layout: `[flags, n, schedule[n], payload...]`, as for `http_parser`.
//! - `flags & 3` picks the body cap (16 B, 100 B, 1 KiB, 1 MiB).
//! - `flags & 4`: the client side starts with the connection preface; `flags & 8`: the
//!   server side starts with an empty SETTINGS frame (else: a connection joined mid-way).
//! - Each schedule byte is one step, the schedule repeating until the payload is used up:
//!   bit 7 = side (1: server), bits 5-6 = op (3: gap, else feed), bits 0-4 = `k`;
//!   a feed takes the next `k*k + 1` payload bytes, a gap loses `k + 1` bytes.
//!
//! Checks, besides "no panic, no unbounded allocation":
//! 1. every body respects its counters and cap, base64 text decodes; gRPC messages too;
//!    streams followed stay within `MAX_STREAMS`;
//! 2. without gaps, from the preface, and as long as the parser never fell out of step,
//!    feeding each side whole or in the scheduled pieces gives the same exchanges.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use common::{Step, assert_base64, body_cap, check_body, pieces, schedule, split_input};
use libfuzzer_sys::fuzz_target;
use qtap::events::Timestamp;
use qtap::http::{BodyLimits, Exchange, Side};
use qtap::http2::{H2Conn, MAX_STREAMS, PREFACE, looks_like_h2};

fn check(out: &[Exchange], cap: usize) {
    for e in out {
        assert!(e.start <= e.end, "ends before it starts");
        if let Some(r) = &e.request {
            assert_eq!(r.version, "HTTP/2");
            check_body(&r.body, cap);
        }
        if let Some(r) = &e.response {
            check_body(&r.body, cap);
        }
        if let Some(g) = &e.grpc {
            assert!(g.messages.len() <= 2 * qtap::http2::grpc::MAX_MESSAGES);
            for m in &g.messages {
                assert!(m.captured <= m.size, "message captured > size");
                assert_base64(&m.data, "gRPC message");
            }
        }
    }
}

const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

fuzz_target!(|data: &[u8]| {
    let Some((flags, sched, payload)) = split_input(data) else {
        return;
    };
    let cap = body_cap(flags);
    let limits = BodyLimits {
        max_body_bytes: cap,
        ..BodyLimits::default()
    };
    let _ = looks_like_h2(payload);
    let _ = qtap::http2::grpc::dump(payload);
    let mut steps = schedule(sched, payload);
    if flags & 8 != 0 {
        steps.insert(0, Step::Feed(Side::Server, SETTINGS));
    }
    if flags & 4 != 0 {
        steps.insert(0, Step::Feed(Side::Client, PREFACE));
    }
    let t = Timestamp(1);

    // 1. The schedule as is, gaps included, then close.
    let mut c = H2Conn::new(limits);
    let mut out = Vec::new();
    for s in &steps {
        if c.is_not_http2() {
            break;
        }
        out.extend(match *s {
            Step::Feed(side, d) => c.feed(side, d, t),
            Step::Gap(side, lost) => c.gap(side, lost, t),
        });
        assert!(c.open_streams() <= MAX_STREAMS);
    }
    out.extend(c.close(t));
    check(&out, cap);

    // 2. Without gaps: each side whole (client first) vs. in the scheduled pieces.
    if flags & 4 == 0 {
        return;
    }
    let run = |client: &[&[u8]], server: &[&[u8]]| -> (Vec<Exchange>, bool, u64) {
        let mut c = H2Conn::new(limits);
        let mut out = Vec::new();
        for d in client {
            out.extend(c.feed(Side::Client, d, t));
        }
        for d in server {
            out.extend(c.feed(Side::Server, d, t));
        }
        let not_h2 = c.is_not_http2();
        let desyncs = c.desyncs();
        out.extend(c.close(t));
        (out, not_h2, desyncs)
    };
    let (cp, sp) = (pieces(&steps, Side::Client), pieces(&steps, Side::Server));
    let (cw, sw) = (cp.concat(), sp.concat());
    let split = run(&cp, &sp);
    let whole = run(&[&cw], &[&sw]);
    check(&split.0, cap);
    if split.2 == 0 && whole.2 == 0 {
        assert_eq!(split, whole, "split and whole feeds differ");
    }
});
