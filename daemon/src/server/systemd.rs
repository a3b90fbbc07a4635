//! sd_notify: `READY=1`, `STATUS=`, watchdog pings, `STOPPING=1`. Each call is a no-op
//! when `NOTIFY_SOCKET` is unset (not run by systemd), and never waits: a service manager
//! that does not read its socket costs us a lost notification, not a hung daemon.
use crate::hub::Hub;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// How often `STATUS=` is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Sends `msg` (lines `KEY=VALUE`) to `$NOTIFY_SOCKET` without blocking.
pub fn notify(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send_to(msg, &path) {
        tracing::debug!(
            "cannot notify systemd ({}): {e}",
            msg.lines().next().unwrap_or("")
        );
    }
}

fn send_to(msg: &str, path: &std::ffi::OsStr) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    let bytes = path.as_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        // abstract socket namespace
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(msg.as_bytes(), &addr)?;
    } else {
        sock.send_to(msg.as_bytes(), path)?;
    }
    Ok(())
}

pub fn ready(status: &str) {
    notify(&format!("READY=1\nSTATUS={status}\n"));
}

pub fn status(status: &str) {
    notify(&format!("STATUS={status}\n"));
}

pub fn stopping(why: &str) {
    notify(&format!("STOPPING=1\nSTATUS=stopping: {why}\n"));
}

/// Half of `WATCHDOG_USEC` when systemd asked for pings (`WatchdogSec=`).
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec)
        .then(|| Duration::from_micros(usec / 2).max(Duration::from_millis(10)))
}

/// Refreshes `STATUS=` and pings the watchdog until the task is aborted. The pings come from
/// the async runtime, so a wedged runtime gets the daemon restarted.
pub fn spawn_status_and_watchdog(hub: Hub, ready_status: String) -> tokio::task::JoinHandle<()> {
    let watchdog = watchdog_interval();
    if let Some(w) = watchdog {
        tracing::debug!("pinging the systemd watchdog every {w:?}");
    }
    tokio::spawn(async move {
        let mut status_tick = tokio::time::interval(STATUS_EVERY);
        let mut dog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        let mut last = ready_status;
        loop {
            tokio::select! {
                _ = status_tick.tick() => {
                    let line = hub.status().line();
                    if line != last {
                        status(&line);
                        last = line;
                    }
                }
                _ = dog_tick.tick(), if watchdog.is_some() => notify("WATCHDOG=1\n"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_never_block() {
        let dir = std::env::temp_dir().join(format!("qtap-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("n.sock");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        send_to("READY=1\n", path.as_os_str()).unwrap();
        let mut buf = [0; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
        // nobody reads: the queue fills, and sending fails instead of waiting
        let t = std::time::Instant::now();
        let failed = (0..10_000).any(|_| send_to("WATCHDOG=1\n", path.as_os_str()).is_err());
        assert!(failed && t.elapsed() < Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
