//! Temporary wiring until the DevTools server lands: `qtap trace` only.
use qtap::engine::{Engine, EngineConfig};
use qtap::events::{Connected, Envelope, Event, Limits};
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("trace") {
        eprintln!("usage: qtap trace");
        std::process::exit(2);
    }
    let engine = Engine::new(EngineConfig::default());
    let out = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let o2 = out.clone();
    let sink = Box::new(move |ev: Event| {
        let mut o = o2.lock().unwrap();
        let _ = writeln!(o, "{}", Envelope::new(ev).to_ndjson());
        let _ = o.flush();
    });
    match engine.start(sink) {
        Ok(probes) => {
            let c = Event::Connected(Connected { version: "dev".into(), hostname: String::new(), kernel: String::new(), probes, limits: Limits { max_body_bytes: 1 << 20, chunk_bytes: 16384, max_bytes_per_call: 1 << 20, client_queue: 0 } });
            let mut o = out.lock().unwrap();
            let _ = writeln!(o, "{}", Envelope::new(c).to_ndjson());
            let _ = o.flush();
        }
        Err(e) => {
            eprintln!("qtap: {e}");
            std::process::exit(1);
        }
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
