//! `qtap trace` line encoding, per event: the direct typed encoder now used
//! (`Envelope::write_ndjson` into a reused buffer) against the former one (a
//! `serde_json::Value` tree with `topic` inserted, then printed). A benchmark you run,
//! not a test: `cargo bench --bench ndjson` prints ns per event for two transactions
//! (the docs/events.md example, and one with a 16 KiB body).
use qtap::events::{Envelope, Event, HttpTransaction, Timestamp};
use std::hint::black_box;
use std::time::Instant;

fn value_path(e: &Envelope) -> String {
    let mut v = serde_json::to_value(e).unwrap_or(serde_json::Value::Null);
    if let serde_json::Value::Object(m) = &mut v {
        m.insert("topic".into(), e.data.topic().into());
    }
    v.to_string()
}

fn per_event_ns(n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    let doc = include_str!("../../docs/events.md");
    let example = doc
        .split("```json\n")
        .nth(8)
        .and_then(|b| b.split("\n```").next())
        .expect("the HTTP transaction example of docs/events.md");
    let small: HttpTransaction = serde_json::from_str(example).expect("example parses");
    let mut big = small.clone();
    if let Some(r) = big.transaction.response.as_mut() {
        r.body.text = "q".repeat(16 * 1024);
        r.body.size = 16 * 1024;
        r.body.captured = 16 * 1024;
    }
    println!("| event | Value tree (before) ns | direct (after) ns | speed-up |");
    println!("|---|---:|---:|---:|");
    for (name, t, n) in [
        ("transaction, docs example", small, 200_000),
        ("transaction, 16 KiB body", big, 50_000),
    ] {
        let e = Envelope {
            ts: Timestamp(1_795_600_000_123_456_789),
            data: Event::HttpTransaction(Box::new(t)),
        };
        let before = per_event_ns(n, || {
            black_box(value_path(black_box(&e)));
        });
        let mut buf = Vec::with_capacity(64 * 1024);
        let after = per_event_ns(n, || {
            buf.clear();
            black_box(&e).write_ndjson(&mut buf);
            buf.push(b'\n');
            black_box(&buf);
        });
        println!(
            "| {name} | {before:.0} | {after:.0} | {:.1}× |",
            before / after
        );
    }
}
