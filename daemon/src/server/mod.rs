//! The HTTP side: `/devtools/` (the UI), `/devtools/api/events` (SSE), `/devtools/api/health`,
//! over hyper 1 (HTTP/1.1, keep-alive), with graceful shutdown and systemd integration.
//!
//! [`serve`] / [`serve_all`] are the accept loops (tests drive them directly): each
//! connection is identified and checked against the [`access::AccessPolicy`] before
//! anything is served. [`run`] adds what the daemon needs around it: signals, `sd_notify`,
//! and the idle exit of a socket-activated daemon.
pub mod access;
pub mod assets;
pub mod guard;
pub mod listen;
mod listen_unix;
pub mod peer;
mod refusals;
mod routes;
pub mod systemd;

use crate::hub::Hub;
use access::{AccessPolicy, Decision, Peer};
use guard::HostPolicy;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use routes::Ctx;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// the TCP address we serve on (for messages; each listener's own address sets the Host
    /// policy)
    pub local_addr: SocketAddr,
    /// `--allow-remote`: also accept requests addressed to the listen address
    pub allow_remote: bool,
    /// who may connect (checked before anything is served)
    pub access: Arc<AccessPolicy>,
    /// an SSE comment after this long without a frame
    pub keep_alive: Duration,
    /// how long open connections get to finish at shutdown
    pub shutdown_timeout: Duration,
}

impl ServerConfig {
    /// Root, our own user and `SUDO_UID` may connect (see [`AccessPolicy::for_this_process`]).
    pub fn new(local_addr: SocketAddr, allow_remote: bool) -> Self {
        ServerConfig {
            local_addr,
            allow_remote,
            access: Arc::new(AccessPolicy::for_this_process(allow_remote)),
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

/// A socket to serve: TCP or unix.
pub enum Incoming {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl From<TcpListener> for Incoming {
    fn from(l: TcpListener) -> Self {
        Incoming::Tcp(l)
    }
}

impl From<UnixListener> for Incoming {
    fn from(l: UnixListener) -> Self {
        Incoming::Unix(l)
    }
}

/// An accepted connection, with who is at the other end still to be found.
enum Conn {
    Tcp(TcpStream, SocketAddr, SocketAddr),
    Unix(UnixStream),
}

/// Serves one listener until `shutdown` resolves (see [`serve_all`]).
pub async fn serve(
    listener: impl Into<Incoming>,
    hub: Hub,
    cfg: ServerConfig,
    activity: Arc<Activity>,
    shutdown: impl Future<Output = String>,
) {
    serve_all(vec![listener.into()], hub, cfg, activity, shutdown).await
}

/// Serves until `shutdown` resolves (to the reason told to clients), then: stops accepting,
/// `hub.shutdown(reason)` (every stream gets `system.disconnected` and ends; probes detach),
/// and waits up to `shutdown_timeout` for connections to finish.
///
/// Each connection is identified first (peer uid: `peer`) and decided on (`access`); a
/// refused one is answered with the 403 page and never reaches routing.
pub async fn serve_all(
    listeners: Vec<Incoming>,
    hub: Hub,
    cfg: ServerConfig,
    activity: Arc<Activity>,
    shutdown: impl Future<Output = String>,
) {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    let http = Arc::new(http);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Conn, Arc<Ctx>)>(64);
    let mut acceptors = Vec::new();
    for l in listeners {
        let policy = match &l {
            Incoming::Tcp(t) => {
                HostPolicy::new(cfg.allow_remote, t.local_addr().unwrap_or(cfg.local_addr))
            }
            Incoming::Unix(u) => match u
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(std::path::PathBuf::from))
            {
                Some(path) => HostPolicy::for_unix(&path),
                None => HostPolicy::for_unix(std::path::Path::new("/run/qtap/devtools.sock")),
            },
        };
        let ctx = Arc::new(Ctx {
            hub: hub.clone(),
            policy,
            keep_alive: cfg.keep_alive,
            activity: activity.clone(),
        });
        acceptors.push(tokio::spawn(accept_loop(l, ctx, tx.clone())));
    }
    drop(tx);
    let mut shutdown = std::pin::pin!(shutdown);
    let reason = loop {
        tokio::select! {
            Some((conn, ctx)) = rx.recv() => {
                let (access, watcher, http) = (cfg.access.clone(), graceful.watcher(), http.clone());
                tokio::spawn(handle_conn(conn, ctx, access, watcher, http));
            }
            reason = &mut shutdown => break reason,
        }
    };
    for a in &acceptors {
        a.abort();
    }
    for a in acceptors {
        let _ = a.await; // the listeners are closed once their task is gone
    }
    drop(rx);
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

type Http = Arc<hyper::server::conn::http1::Builder>;

/// Accepts connections on `l` and hands them to the serving loop.
async fn accept_loop(l: Incoming, ctx: Arc<Ctx>, tx: tokio::sync::mpsc::Sender<(Conn, Arc<Ctx>)>) {
    loop {
        let conn = match &l {
            Incoming::Tcp(t) => t.accept().await.and_then(|(s, peer)| {
                let local = s.local_addr()?;
                Ok(Conn::Tcp(s, local, peer))
            }),
            Incoming::Unix(u) => u.accept().await.map(|(s, _)| Conn::Unix(s)),
        };
        match conn {
            Ok(c) => {
                if tx.send((c, ctx.clone())).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // e.g. out of file descriptors: back off instead of spinning
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Identifies the peer, decides, and serves the connection (or the 403 page).
async fn handle_conn(
    conn: Conn,
    ctx: Arc<Ctx>,
    access: Arc<AccessPolicy>,
    watcher: Watcher,
    http: Http,
) {
    let refuse = |e: tokio::task::JoinError| Decision::Refuse(format!("403 Forbidden: {e}\n"));
    match conn {
        Conn::Tcp(s, local, peer) => {
            // sock_diag or /proc, and maybe NSS for groups: off the async workers
            let decision = tokio::task::spawn_blocking(move || {
                decide(&access, peer::tcp_peer(local, peer), &peer.to_string())
            })
            .await
            .unwrap_or_else(refuse);
            serve_conn(TokioIo::new(s), decision, ctx, watcher, http).await
        }
        Conn::Unix(s) => {
            let who = peer::unix_peer(&s);
            // NSS (a refused user's name, group membership) may block: off the workers too
            let decision = tokio::task::spawn_blocking(move || decide(&access, who, "unix socket"))
                .await
                .unwrap_or_else(refuse);
            serve_conn(TokioIo::new(s), decision, ctx, watcher, http).await
        }
    }
}

/// The decision for one connection, logged (a refusal at info: it names a uid, never
/// anything of the traffic; per uid at most a line a minute, see `refusals`).
fn decide(access: &AccessPolicy, who: Peer, via: &str) -> Decision {
    static REFUSALS: std::sync::LazyLock<refusals::Refusals> =
        std::sync::LazyLock::new(refusals::Refusals::default);
    let d = access.decide(&who);
    match (&d, &who) {
        (Decision::Allow(why), _) => tracing::debug!("connection from {via} allowed: {why}"),
        (Decision::Refuse(_), Peer::Local { uid, pid }) => {
            if let refusals::Say::Log(quiet) = REFUSALS.refused(*uid, Instant::now()) {
                tracing::info!(
                    "refused a connection from {via}: uid {uid}{} is not allowed (see --allow-user, --allow-group){}",
                    pid.map(|p| format!(", pid {p}")).unwrap_or_default(),
                    if quiet > 0 {
                        format!("; {quiet} more refusals of this uid since the last line")
                    } else {
                        String::new()
                    }
                )
            }
        }
        (Decision::Refuse(_), other) => {
            tracing::info!("refused a connection from {via}: {other:?}")
        }
    }
    d
}

async fn serve_conn<I>(io: I, decision: Decision, ctx: Arc<Ctx>, watcher: Watcher, http: Http)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let res = match decision {
        Decision::Allow(_) => {
            let svc = hyper::service::service_fn(move |req| routes::handle(req, ctx.clone()));
            watcher.watch(http.serve_connection(io, svc)).await
        }
        Decision::Refuse(page) => {
            let mut http = (*http).clone();
            http.keep_alive(false);
            let svc = hyper::service::service_fn(move |_req| {
                std::future::ready(Ok::<_, std::convert::Infallible>(routes::refused(&page)))
            });
            watcher.watch(http.serve_connection(io, svc)).await
        }
    };
    if let Err(e) = res {
        tracing::debug!("connection ended: {e}");
    }
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub allow_remote: bool,
    pub access: Arc<AccessPolicy>,
    /// socket-activated daemons exit after this long without a client; `None`: never
    pub idle_timeout: Option<Duration>,
    pub keep_alive: Duration,
}

/// The daemon: serves on `listeners` until SIGTERM/SIGINT (or, when socket-activated, until
/// idle), with `READY=1`, `STATUS=`, watchdog pings and `STOPPING=1` for systemd.
pub async fn run(
    listeners: Vec<listen::Listener>,
    hub: Hub,
    opts: RunOptions,
) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let socket_activated = listeners.iter().any(|l| l.socket_activated);
    let mut incoming = Vec::new();
    let mut created = Vec::new();
    let mut local_addr = None;
    let mut names = Vec::new();
    for l in listeners {
        names.push(l.addr.to_string());
        match l.socket {
            listen::Socket::Tcp(t) => {
                t.set_nonblocking(true)?;
                local_addr = local_addr.or(t.local_addr().ok());
                incoming.push(Incoming::Tcp(TcpListener::from_std(t)?));
            }
            listen::Socket::Unix(u) => {
                u.set_nonblocking(true)?;
                incoming.push(Incoming::Unix(UnixListener::from_std(u)?));
            }
        }
        created.extend(l.created);
    }
    let local_addr = local_addr.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 10001)));
    // before READY=1, so a stop request right after it is handled, not fatal
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let activity = Arc::new(Activity::default());
    let idle = opts.idle_timeout.filter(|_| socket_activated);
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
        access: opts.access.clone(),
        ..ServerConfig::new(local_addr, opts.allow_remote)
    };
    tracing::info!(
        "qtap DevTools serving on {} (open http://localhost:{}/devtools/){}; allowed: uids {:?}, gids {:?}",
        names.join(", "),
        local_addr.port(),
        if socket_activated {
            ", socket-activated"
        } else {
            ""
        },
        opts.access.allowed_uids(),
        opts.access.allowed_gids(),
    );
    let ready = hub.status().line();
    systemd::ready(&ready);
    let status = systemd::spawn_status_and_watchdog(hub.clone(), ready);
    serve_all(incoming, hub, cfg, activity, stop).await;
    status.abort();
    for c in created {
        c.remove();
    }
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
