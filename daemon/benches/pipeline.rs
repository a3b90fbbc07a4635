//! The daemon's user-space path per transaction, without the kernel: ring records →
//! `Tracker` (reassembly, HTTP parsing, attribution, event building) → the `qtap trace`
//! line (`Envelope::write_ndjson`). A benchmark you run, not a test:
//!
//! ```sh
//! cargo bench --bench pipeline
//! ```
//!
//! It replays what `daemon/benches/capture.sh` makes nginx and wrk do — keep-alive
//! connections carrying `GET /` answered by nginx's 39-byte `return 200` (and a 16 KiB
//! body), seen from both ends (the client's egress and the server's ingress, as on one
//! host) — and prints the CPU time per request (both sides) of the whole path, and of
//! the tracker and the encoder separately. The records name this process, so
//! attribution reads a real `/proc` entry (cached after the first, as in the daemon).
use qtap::attribution::Processes;
use qtap::capture::{Dir, Record, Source};
use qtap::events::{Envelope, Event, Timestamp};
use qtap::http::BodyLimits;
use qtap::streams::{KernelControl, Tracker, TrackerConfig};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct NoKernel;
impl KernelControl for NoKernel {
    fn set_sock_state(&mut self, _: u32, _: i32, _: Option<u32>) {}
}

const CONNS: i32 = 32;

fn request(i: u64) -> Vec<u8> {
    format!(
        "GET /?n={i} HTTP/1.1\r\nHost: 127.0.0.1:18443\r\nUser-Agent: wrk\r\n\
         Authorization: Bearer 0123456789abcdef\r\nAccept: */*\r\n\r\n"
    )
    .into_bytes()
}

fn response(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 25 Nov 2026 23:30:00 GMT\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

struct Sim {
    t: Tracker,
    pid: u32,
    ts: u64,
    pos: Vec<[u64; 4]>,
}

impl Sim {
    fn new() -> Sim {
        let pid = std::process::id();
        let mut s = Sim {
            t: Tracker::new(
                TrackerConfig::new(BodyLimits {
                    max_body_bytes: 1 << 20,
                    ..BodyLimits::default()
                }),
                Processes::new(Path::new("/proc")),
            ),
            pid,
            ts: 1_000,
            pos: vec![[0; 4]; CONNS as usize],
        };
        let server: SocketAddr = "127.0.0.1:18443".parse().unwrap();
        for c in 0..CONNS {
            let client: SocketAddr = format!("127.0.0.1:{}", 40_000 + c).parse().unwrap();
            let (cfd, sfd) = (100 + c, 1_000 + c);
            s.handle(Record::Connect {
                pid,
                tid: pid,
                fd: cfd,
                ts_ns: s.ts,
                local: Some(client),
                remote: Some(server),
                sk: 7_000 + c as u64,
                comm: "wrk".into(),
            });
            s.handle(Record::Accept {
                pid,
                tid: pid,
                fd: sfd,
                ts_ns: s.ts,
                remote: Some(client),
                comm: "nginx".into(),
            });
        }
        s.t.drain();
        s
    }

    fn handle(&mut self, r: Record) {
        let wall = |ns: u64| Timestamp(1_795_600_000_000_000_000 + ns);
        self.t.handle(r, &wall, &mut NoKernel);
    }

    fn data(&mut self, fd: i32, slot: (usize, usize), dir: Dir, bytes: &[u8]) {
        self.ts += 1_000;
        let pos = self.pos[slot.0][slot.1];
        self.pos[slot.0][slot.1] += bytes.len() as u64;
        // as the kernel sends them: at most 16 KiB per record
        for (k, chunk) in bytes.chunks(16 * 1024).enumerate() {
            self.handle(Record::Data {
                pid: self.pid,
                tid: self.pid,
                fd,
                ts_ns: self.ts,
                ssl: 0,
                pos: pos + (k * 16 * 1024) as u64,
                dir,
                source: Source::Syscall,
                bytes: chunk.to_vec(),
                unseen: 0,
            });
        }
    }

    /// One request on connection `c`, seen from both ends.
    fn exchange(&mut self, c: i32, req: &[u8], resp: &[u8]) {
        let (cfd, sfd, i) = (100 + c, 1_000 + c, c as usize);
        self.data(cfd, (i, 0), Dir::Send, req);
        self.data(sfd, (i, 1), Dir::Recv, req);
        self.data(sfd, (i, 2), Dir::Send, resp);
        self.data(cfd, (i, 3), Dir::Recv, resp);
    }
}

/// Runs `n` requests round-robin over the connections; returns (tracker time, encoder
/// time, lines, bytes).
fn run(n: u64, resp: &[u8]) -> (Duration, Duration, u64, usize) {
    let mut sim = Sim::new();
    let reqs: Vec<Vec<u8>> = (0..64).map(request).collect();
    let mut out = Vec::with_capacity(256 * 1024);
    let (mut track, mut enc, mut lines, mut bytes) = (Duration::ZERO, Duration::ZERO, 0, 0);
    let batch = 256;
    let mut i = 0;
    while i < n {
        let t0 = Instant::now();
        for k in 0..batch.min(n - i) {
            let r = &reqs[((i + k) % 64) as usize];
            sim.exchange(((i + k) % CONNS as u64) as i32, r, resp);
        }
        let evs = sim.t.drain();
        let t1 = Instant::now();
        for e in evs {
            if matches!(e, Event::HttpTransaction(_)) {
                lines += 1;
            }
            let env = Envelope {
                ts: Timestamp(1_795_600_000_123_456_789),
                data: e,
            };
            env.write_ndjson(&mut out);
            out.push(b'\n');
            bytes += out.len();
            out.clear();
        }
        let t2 = Instant::now();
        track += t1 - t0;
        enc += t2 - t1;
        i += batch;
    }
    (track, enc, lines, bytes)
}

fn main() {
    let small = response(b"hello from the qtap capture benchmark\n");
    let big = response(&vec![b'q'; 16 * 1024]);
    println!(
        "| response | requests | transactions (both sides) | µs / request: tracker | encoder | total | bytes / line |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, resp, n) in [
        ("39 B `return 200`", &small, 200_000u64),
        ("16 KiB body", &big, 50_000),
    ] {
        run(n / 10, resp); // warm-up
        let mut best: Option<(Duration, Duration, u64, usize)> = None;
        for _ in 0..3 {
            let r = run(n, resp);
            if best.is_none_or(|b| r.0 + r.1 < b.0 + b.1) {
                best = Some(r);
            }
        }
        let (track, enc, lines, bytes) = best.unwrap();
        let us = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        println!(
            "| {name} | {n} | {lines} | {:.2} | {:.2} | {:.2} | {} |",
            us(track),
            us(enc),
            us(track + enc),
            bytes / lines.max(1) as usize
        );
    }
}
