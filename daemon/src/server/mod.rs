//! The HTTP side: `/devtools/` (the UI), `/devtools/api/events` (SSE), `/devtools/api/health`,
//! over hyper 1 (HTTP/1.1, keep-alive), with graceful shutdown and systemd integration.
//!
//! [`serve`] is the accept loop (tests drive it directly); [`run`] adds what the daemon needs
//! around it: signals, `sd_notify`, and the idle exit of a socket-activated daemon.
pub mod assets;
pub mod guard;
pub mod listen;
mod routes;
pub mod systemd;

use crate::hub::Hub;
use guard::HostPolicy;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use routes::Ctx;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// the address we serve on (for the Host policy and messages)
    pub local_addr: SocketAddr,
    /// `--allow-remote`: also accept requests addressed to `local_addr`
    pub allow_remote: bool,
    /// an SSE comment after this long without a frame
    pub keep_alive: Duration,
    /// how long open connections get to finish at shutdown
    pub shutdown_timeout: Duration,
}

impl ServerConfig {
    pub fn new(local_addr: SocketAddr, allow_remote: bool) -> Self {
        ServerConfig {
            local_addr,
            allow_remote,
            keep_alive: DEFAULT_KEEP_ALIVE,
            shutdown_timeout: Duration::from_secs(3),
        }
    }
}

/// When the last request arrived (for the idle exit).
pub struct Activity {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Activity {
    pub fn touch(&self) {
        self.last_ms
            .store(self.origin.elapsed().as_millis() as u64, Relaxed);
    }
    pub fn idle_for(&self) -> Duration {
        self.origin
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Relaxed)))
    }
}

/// Serves until `shutdown` resolves (to the reason told to clients), then: stops accepting,
/// `hub.shutdown(reason)` (every stream gets `system.disconnected` and ends; probes detach),
/// and waits up to `shutdown_timeout` for connections to finish.
pub async fn serve(
    listener: TcpListener,
    hub: Hub,
    cfg: ServerConfig,
    activity: Arc<Activity>,
    shutdown: impl Future<Output = String>,
) {
    let ctx = Arc::new(Ctx {
        hub: hub.clone(),
        policy: HostPolicy::new(cfg.allow_remote, cfg.local_addr),
        keep_alive: cfg.keep_alive,
        activity,
    });
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    let mut shutdown = std::pin::pin!(shutdown);
    let reason = loop {
        tokio::select! {
            conn = listener.accept() => {
                let (stream, peer) = match conn {
                    Ok(c) => c,
                    Err(e) => {
                        // e.g. out of file descriptors: back off instead of spinning
                        tracing::warn!("cannot accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                let ctx = ctx.clone();
                let svc = hyper::service::service_fn(move |req| routes::handle(req, ctx.clone()));
                let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), svc));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection from {peer} ended: {e}");
                    }
                });
            }
            reason = &mut shutdown => break reason,
        }
    };
    drop(listener);
    tracing::info!("shutting down: {reason}");
    let h = hub.clone();
    let _ = tokio::task::spawn_blocking(move || h.shutdown(&reason)).await;
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(cfg.shutdown_timeout) => {
            tracing::warn!("connections still open after {:?}; closing them", cfg.shutdown_timeout);
        }
    }
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub allow_remote: bool,
    /// socket-activated daemons exit after this long without a client; `None`: never
    pub idle_timeout: Option<Duration>,
    pub keep_alive: Duration,
}

/// The daemon: serves on `listener` until SIGTERM/SIGINT (or, when socket-activated, until
/// idle), with `READY=1`, `STATUS=`, watchdog pings and `STOPPING=1` for systemd.
pub async fn run(listener: listen::Listener, hub: Hub, opts: RunOptions) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let local_addr = listener.local_addr;
    listener.socket.set_nonblocking(true)?;
    let tcp = TcpListener::from_std(listener.socket)?;
    // before READY=1, so a stop request right after it is handled, not fatal
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let activity = Arc::new(Activity::default());
    let idle = opts.idle_timeout.filter(|_| listener.socket_activated);
    let stop = {
        let (hub, activity) = (hub.clone(), activity.clone());
        async move {
            let (reason, why) = tokio::select! {
                _ = term.recv() => ("daemon stopping", "SIGTERM".to_string()),
                _ = int.recv() => ("daemon stopping", "SIGINT".to_string()),
                d = wait_idle(&hub, &activity, idle.unwrap_or(Duration::MAX)), if idle.is_some() => {
                    ("daemon idle", format!("no client for {d:?}; the socket unit starts qtap again on the next connection"))
                }
            };
            tracing::info!("stopping: {why}");
            systemd::stopping(&why);
            reason.to_string()
        }
    };
    let cfg = ServerConfig {
        keep_alive: opts.keep_alive,
        ..ServerConfig::new(local_addr, opts.allow_remote)
    };
    tracing::info!(
        "qtap DevTools serving on http://{local_addr}/devtools/ (open http://localhost:{}/devtools/){}",
        local_addr.port(),
        if listener.socket_activated {
            ", socket-activated"
        } else {
            ""
        }
    );
    let ready = hub.status().line();
    systemd::ready(&ready);
    let status = systemd::spawn_status_and_watchdog(hub.clone(), ready);
    serve(tcp, hub, cfg, activity, stop).await;
    status.abort();
    Ok(())
}

/// Resolves once there has been no client and no request for `timeout`.
async fn wait_idle(hub: &Hub, activity: &Activity, timeout: Duration) -> Duration {
    let tick = (timeout / 10).clamp(Duration::from_millis(50), Duration::from_secs(5));
    loop {
        tokio::time::sleep(tick).await;
        if hub.clients() > 0 {
            activity.touch();
        } else if activity.idle_for() >= timeout {
            return timeout;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_measures_idleness() {
        let a = Activity::default();
        std::thread::sleep(Duration::from_millis(30));
        assert!(a.idle_for() >= Duration::from_millis(30));
        a.touch();
        assert!(a.idle_for() < Duration::from_millis(30));
    }
}
