//! sd_notify: `READY=1`, `STATUS=`, watchdog pings, `STOPPING=1`. Each call is a no-op
//! when `NOTIFY_SOCKET` is unset (not run by systemd).
use crate::hub::Hub;
use sd_notify::NotifyState;
use std::time::Duration;

/// How often `STATUS=` is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(5);

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!("cannot notify systemd: {e}");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn stopping(why: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(&format!("stopping: {why}"))]);
}

/// Half of `WATCHDOG_USEC` when systemd asked for pings (`WatchdogSec=`).
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2).max(Duration::from_millis(10)))
}

/// Refreshes `STATUS=` and pings the watchdog until the task is aborted. The pings come from
/// the async runtime, so a wedged runtime gets the daemon restarted.
pub fn spawn_status_and_watchdog(hub: Hub) -> tokio::task::JoinHandle<()> {
    let watchdog = watchdog_interval();
    if let Some(w) = watchdog {
        tracing::debug!("pinging the systemd watchdog every {w:?}");
    }
    tokio::spawn(async move {
        let mut status_tick = tokio::time::interval(STATUS_EVERY);
        let mut dog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        let mut last = String::new();
        loop {
            tokio::select! {
                _ = status_tick.tick() => {
                    let line = hub.status().line();
                    if line != last {
                        status(&line);
                        last = line;
                    }
                }
                _ = dog_tick.tick(), if watchdog.is_some() => send(&[NotifyState::Watchdog]),
            }
        }
    })
}
