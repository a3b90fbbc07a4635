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

/// Prints every frame (`Envelope::to_ndjson`, one per line, flushed) until `stop` resolves
/// or the hub ends the stream. A closed pipe (`| head`) ends quietly. If the probes cannot
/// be attached, prints the `system.connected` line (it lists the failure) and fails.
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
    loop {
        let frame = tokio::select! {
            f = sub.next() => match f { Some(f) => f, None => return Ok(()) },
            _ = &mut stop => return Ok(()),
        };
        let line = frame.to_ndjson();
        match writeln!(out, "{line}").and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(TraceError::Write(e)),
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
