//! `qtap trace`: the event stream as NDJSON on stdout, from the same hub, no HTTP.
use crate::hub::Hub;
use std::future::Future;
use std::io::Write;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot capture: {0}")]
    Attach(String),
    #[error("cannot subscribe: {0}")]
    Subscribe(String),
    #[error("cannot write the output: {0}")]
    Write(std::io::Error),
}

/// Output written per `write(2)` at most while more frames are ready.
const BATCH_BYTES: usize = 256 * 1024;

/// Prints every frame (`Frame::write_ndjson`, one per line) until `stop` resolves or the
/// hub ends the stream. Frames are serialised into one reused buffer and written when no
/// further frame is ready (or the batch is large), then flushed: one write per batch,
/// never a frame left waiting. A closed pipe (`| head`) ends quietly. If the probes
/// cannot be attached, prints the `system.connected` line (it lists the failure) and fails.
pub async fn run<W: Write>(
    hub: &Hub,
    topics: Option<Vec<String>>,
    mut out: W,
    stop: impl Future,
) -> Result<(), TraceError> {
    let h = hub.clone();
    let mut sub = tokio::task::spawn_blocking(move || h.subscribe(topics))
        .await
        .map_err(|e| TraceError::Subscribe(e.to_string()))?
        .map_err(TraceError::Subscribe)?;
    let mut stop = std::pin::pin!(stop);
    let mut buf: Vec<u8> = Vec::with_capacity(BATCH_BYTES + 64 * 1024);
    loop {
        let frame = tokio::select! {
            f = sub.next() => match f { Some(f) => f, None => return Ok(()) },
            _ = &mut stop => return Ok(()),
        };
        buf.clear();
        frame.write_ndjson(&mut buf);
        buf.push(b'\n');
        while buf.len() < BATCH_BYTES {
            let Some(f) = sub.try_next() else { break };
            f.write_ndjson(&mut buf);
            buf.push(b'\n');
        }
        match out.write_all(&buf).and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(TraceError::Write(e)),
        }
        if buf.capacity() > 4 * BATCH_BYTES {
            // one huge event (a 1 MiB body, escaped) need not keep its buffer
            buf = Vec::with_capacity(BATCH_BYTES + 64 * 1024);
        }
        if let Some(e) = sub.attach_error() {
            return Err(TraceError::Attach(e.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, ProbeStatus, ProcessStopped};
    use crate::hub::{HubConfig, ProbeControl, Publisher};
    use std::sync::{Arc, Mutex};

    struct Once(Mutex<Option<String>>);
    impl ProbeControl for Once {
        fn attach(&self, sink: Publisher) -> Result<Vec<ProbeStatus>, String> {
            if let Some(e) = self.0.lock().unwrap().clone() {
                return Err(e);
            }
            // publish from a plain thread, as capture does
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                sink.publish(Event::ProcessStopped(ProcessStopped::from_raw(7, None)));
            });
            Ok(vec![])
        }
        fn detach(&self) {}
    }

    #[tokio::test]
    async fn prints_ndjson_with_topics_until_stopped() {
        let hub = Hub::new(Arc::new(Once(Mutex::new(None))), HubConfig::default());
        let mut out = Vec::new();
        let stop = tokio::time::sleep(std::time::Duration::from_millis(300));
        run(&hub, None, &mut out, stop).await.unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["topic"], "system.connected");
        assert_eq!(lines[1]["topic"], "process.stopped");
        assert_eq!(lines[1]["data"]["pid"], 7);
        assert!(lines[1]["ts"].as_str().unwrap().ends_with('Z'));
    }

    struct Burst;
    impl ProbeControl for Burst {
        fn attach(&self, sink: Publisher) -> Result<Vec<ProbeStatus>, String> {
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                // batches and single events, more than one write's worth
                for round in 0..50u32 {
                    sink.publish_all((0..200).map(|i| {
                        Event::ProcessStopped(ProcessStopped::from_raw(round * 200 + i, Some(0)))
                    }));
                    sink.publish(Event::ProcessStopped(ProcessStopped::from_raw(
                        1_000_000 + round,
                        None,
                    )));
                }
            });
            Ok(vec![])
        }
        fn detach(&self) {}
    }

    /// Counts writes, to check that lines are batched but none is held back.
    struct Writes(Vec<u8>, usize, usize);
    impl Write for Writes {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.1 += 1;
            self.0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.2 += 1;
            Ok(())
        }
    }

    #[tokio::test]
    async fn batches_lines_in_order_and_flushes_each_batch() {
        let hub = Hub::new(
            Arc::new(Burst),
            HubConfig {
                client_queue: 100_000,
                ..HubConfig::default()
            },
        );
        let mut w = Writes(Vec::new(), 0, 0);
        let stop = tokio::time::sleep(std::time::Duration::from_millis(1500));
        run(&hub, None, &mut w, stop).await.unwrap();
        let text = String::from_utf8(w.0).unwrap();
        assert!(text.ends_with('\n'));
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1 + 50 * 201);
        let mut expect = Vec::new();
        for round in 0..50u64 {
            expect.extend((0..200).map(|i| round * 200 + i));
            expect.push(1_000_000 + round);
        }
        let pids: Vec<u64> = lines[1..]
            .iter()
            .map(|l| l["data"]["pid"].as_u64().unwrap())
            .collect();
        assert_eq!(pids, expect);
        assert!(lines.iter().all(|l| l["topic"].is_string()));
        // every write was flushed at once (nothing waits in a buffer of ours)
        assert_eq!(w.1, w.2, "writes {} flushes {}", w.1, w.2);
        assert!(
            w.1 < lines.len(),
            "{} writes for {} lines",
            w.1,
            lines.len()
        );
    }

    #[tokio::test]
    async fn attach_failure_prints_connected_then_fails() {
        let hub = Hub::new(
            Arc::new(Once(Mutex::new(Some("permission denied".into())))),
            HubConfig::default(),
        );
        let mut out = Vec::new();
        let e = run(&hub, None, &mut out, std::future::pending::<()>())
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "cannot capture: permission denied");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["data"]["probes"][0]["status"],
            "failed: permission denied"
        );
    }
}
