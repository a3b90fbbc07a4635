//! Docker's names for container ids, through bollard on Docker's socket.
//!
//! The capture thread must never wait on Docker, so the client runs on its own thread
//! (`qtap-docker`, a current-thread tokio runtime) and the two share a cache:
//!
//! - [`DockerNames::lookup`] (capture thread) answers from the cache at once. An id not
//!   seen before is answered with its id and runtime only, and queued for the client.
//! - The client fills the cache: all containers when it connects, each container as
//!   Docker's event stream reports it created, started or renamed, and each queued id by
//!   inspecting it. A destroyed container is kept for [`DESTROYED_GRACE`] so that the last
//!   events of its processes still carry its name.
//!
//! Bounded delay: events never wait. A container created while the client is connected is
//! named from its `create` event, before its first process runs; otherwise the events of
//! its processes carry the id only until one inspection (at most `timeout` later) answers.
//!
//! Degrade, never fail: no socket, a socket that refuses or never answers (every call has
//! a timeout), or a container gone before it was inspected leave containers with their id
//! and runtime only. Each outage is logged once (not per event), and the client tries
//! again every `retry`; when Docker is back it is said once, and the cache is refilled.
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bollard::ClientVersion;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerInspectResponse, ContainerSummary, EventMessage};
use bollard::query_parameters::{
    EventsOptions, InspectContainerOptions, ListContainersOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::container::DOCKER;
use crate::events::Container;

pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// How long a destroyed container's name is kept for late events.
pub const DESTROYED_GRACE: Duration = Duration::from_secs(60);
/// Containers remembered at most.
const MAX_ENTRIES: usize = 16_384;
/// Ids queued for inspection at most (more are answered with the id only).
const QUEUE: usize = 1024;

#[derive(Clone, Debug)]
pub struct DockerConfig {
    /// Docker's API socket
    pub socket: PathBuf,
    /// limit of every call (version, list, inspect, subscribing to events)
    pub timeout: Duration,
    /// wait before trying to reach Docker again
    pub retry: Duration,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            socket: PathBuf::from(DEFAULT_SOCKET),
            timeout: Duration::from_secs(2),
            retry: Duration::from_secs(5),
        }
    }
}

/// A container known by its id only.
pub fn bare(runtime: &str, id: &str) -> Container {
    Container {
        id: id.to_string(),
        name: None,
        image: None,
        runtime: runtime.to_string(),
        service: None,
        pod: None,
        namespace: None,
    }
}

/// A Docker container from its name, image and labels.
pub fn from_parts(
    id: &str,
    name: Option<&str>,
    image: Option<&str>,
    label: impl Fn(&str) -> Option<String>,
) -> Container {
    let some = |s: Option<&str>| {
        s.map(|s| s.trim_start_matches('/').to_string())
            .filter(|s| !s.is_empty())
    };
    Container {
        name: some(name),
        image: some(image),
        service: label("com.docker.compose.service"),
        pod: label("io.kubernetes.pod.name"),
        namespace: label("io.kubernetes.pod.namespace"),
        ..bare(DOCKER, id)
    }
}

fn from_inspect(id: &str, r: &ContainerInspectResponse) -> Container {
    let cfg = r.config.as_ref();
    let labels = cfg.and_then(|c| c.labels.as_ref());
    let image = cfg.and_then(|c| c.image.as_deref()).or(r.image.as_deref());
    from_parts(id, r.name.as_deref(), image, |k| labels?.get(k).cloned())
}

fn from_summary(s: &ContainerSummary) -> Option<Container> {
    let id = s.id.as_deref()?;
    let name = s.names.as_ref().and_then(|n| n.first()).map(String::as_str);
    let labels = s.labels.as_ref();
    Some(from_parts(id, name, s.image.as_deref(), |k| {
        labels?.get(k).cloned()
    }))
}

/// What an event says of its container (Docker puts name, image and labels in the
/// actor's attributes), when it says it.
fn from_event(m: &EventMessage) -> Option<Container> {
    let actor = m.actor.as_ref()?;
    let id = actor.id.as_deref()?;
    let attrs = actor.attributes.as_ref()?;
    let name = attrs.get("name")?;
    Some(from_parts(
        id,
        Some(name),
        attrs.get("image").map(String::as_str),
        |k| attrs.get(k).cloned(),
    ))
}

#[derive(Clone, Debug)]
enum Slot {
    Known(Container),
    /// queued for inspection
    Asked,
    /// Docker could not say (unreachable, or no such container): id only
    Unresolved,
}

#[derive(Default)]
struct Shared {
    cache: RwLock<HashMap<String, Slot>>,
    reachable: AtomicBool,
    warnings: AtomicU32,
}

impl Shared {
    fn set(&self, id: &str, slot: Slot) {
        let Ok(mut c) = self.cache.write() else {
            return;
        };
        if c.len() >= MAX_ENTRIES && !c.contains_key(id) {
            c.retain(|_, s| matches!(s, Slot::Known(_)));
            if c.len() >= MAX_ENTRIES {
                c.clear();
            }
        }
        c.insert(id.to_string(), slot);
    }

    fn remove(&self, id: &str) {
        if let Ok(mut c) = self.cache.write() {
            c.remove(id);
        }
    }

    /// Ids asked for but not known.
    fn unresolved(&self) -> Vec<String> {
        self.cache
            .read()
            .map(|c| {
                c.iter()
                    .filter(|(_, s)| !matches!(s, Slot::Known(_)))
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn warn(&self) {
        self.warnings.fetch_add(1, Ordering::Relaxed);
    }
}

/// The handle the capture side holds; dropping it stops the client thread.
pub struct DockerNames {
    shared: Arc<Shared>,
    requests: mpsc::Sender<String>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DockerNames {
    /// Starts the client thread. Never fails: if even the thread cannot start, every
    /// container stays id-only (and that is logged).
    pub fn start(cfg: DockerConfig) -> DockerNames {
        let shared = Arc::new(Shared::default());
        let (requests, rx) = mpsc::channel(QUEUE);
        let (stop, stop_rx) = oneshot::channel();
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("qtap-docker".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot start the Docker client: containers are shown by id only");
                        s2.warn();
                        return;
                    }
                };
                rt.block_on(async move {
                    tokio::select! {
                        _ = stop_rx => {}
                        _ = worker(cfg, s2, rx) => {}
                    }
                });
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the Docker client thread: containers are shown by id only");
                shared.warn();
                None
            }
        };
        DockerNames {
            shared,
            requests,
            stop: Some(stop),
            thread,
        }
    }

    /// What is known of a Docker container now; never waits. An id not known yet is
    /// answered with the id only and queued for inspection (once).
    pub fn lookup(&self, id: &str) -> Container {
        if let Ok(c) = self.shared.cache.read() {
            match c.get(id) {
                Some(Slot::Known(k)) => return k.clone(),
                Some(_) => return bare(DOCKER, id),
                None => {}
            }
        }
        if let Ok(mut c) = self.shared.cache.write()
            && !c.contains_key(id)
            && self.requests.try_send(id.to_string()).is_ok()
        {
            c.insert(id.to_string(), Slot::Asked);
        }
        bare(DOCKER, id)
    }

    /// What is known of a container, without asking Docker anything.
    pub fn known(&self, id: &str) -> Option<Container> {
        match self.shared.cache.read().ok()?.get(id)? {
            Slot::Known(k) => Some(k.clone()),
            _ => None,
        }
    }

    /// Whether the last attempt to talk to Docker worked.
    pub fn reachable(&self) -> bool {
        self.shared.reachable.load(Ordering::Relaxed)
    }

    /// Warnings logged so far (one per outage).
    pub fn warnings(&self) -> u32 {
        self.shared.warnings.load(Ordering::Relaxed)
    }
}

impl Drop for DockerNames {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Outcome<T> = Result<T, String>;

async fn timed<T>(
    limit: Duration,
    what: &str,
    f: impl std::future::Future<Output = Result<T, BollardError>>,
) -> Outcome<Result<T, BollardError>> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| format!("{what}: no answer within {limit:?}"))
}

fn parse_api_version(v: &str) -> Option<ClientVersion> {
    let (a, b) = v.split_once('.')?;
    Some(ClientVersion {
        major_version: a.parse().ok()?,
        minor_version: b.parse().ok()?,
    })
}

/// A client speaking the highest API version both sides know. Docker refuses versions
/// newer than its own (20.10 knows 1.41) and, from 29 on, older than 1.44: ask with
/// bollard's version first, then with an old one, and settle on the server's.
async fn connect(cfg: &DockerConfig) -> Outcome<bollard::Docker> {
    let path = cfg.socket.to_string_lossy().into_owned();
    let secs = cfg.timeout.as_secs().max(1);
    let old = ClientVersion {
        major_version: 1,
        minor_version: 24,
    };
    let mut last = String::new();
    for first in [bollard::API_DEFAULT_VERSION, &old] {
        let d =
            bollard::Docker::connect_with_unix(&path, secs, first).map_err(|e| e.to_string())?;
        match timed(cfg.timeout, "version", d.version()).await? {
            Ok(v) => {
                let server = v
                    .api_version
                    .as_deref()
                    .and_then(parse_api_version)
                    .ok_or("Docker did not say its API version")?;
                let ours = bollard::API_DEFAULT_VERSION;
                let use_v = if (server.major_version, server.minor_version)
                    < (ours.major_version, ours.minor_version)
                {
                    server
                } else {
                    *ours
                };
                return bollard::Docker::connect_with_unix(&path, secs, &use_v)
                    .map_err(|e| e.to_string());
            }
            Err(BollardError::DockerResponseServerError {
                status_code: 400,
                message,
            }) => last = message,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("no API version in common: {last}"))
}

/// Outage bookkeeping: one warning per outage, one note when it ends.
struct Health {
    /// the current outage was logged
    warned: bool,
    /// Docker answered once (then any outage matters at once)
    ever_up: bool,
    vanished_warned: bool,
}

impl Health {
    /// Logs an outage once. A host without Docker is not warned about until a container
    /// of Docker's wants a name.
    fn outage(&mut self, shared: &Shared, cfg: &DockerConfig, err: &str, matters: bool) {
        if self.warned || !(matters || self.ever_up) {
            tracing::debug!(socket = %cfg.socket.display(), error = %err, "Docker unreachable");
            return;
        }
        self.warned = true;
        shared.warn();
        tracing::warn!(
            socket = %cfg.socket.display(),
            error = %err,
            "containers are shown by id and runtime only until Docker answers (retrying every {:?}; set --docker-socket if Docker listens elsewhere)",
            cfg.retry
        );
    }
}

async fn worker(cfg: DockerConfig, shared: Arc<Shared>, mut rx: mpsc::Receiver<String>) {
    let mut h = Health {
        warned: false,
        ever_up: false,
        vanished_warned: false,
    };
    let socket = cfg.socket.display().to_string();
    loop {
        let err = match connect(&cfg).await {
            Ok(docker) => {
                shared.reachable.store(true, Ordering::Relaxed);
                h.ever_up = true;
                if std::mem::take(&mut h.warned) {
                    tracing::info!(%socket, "Docker answers again: containers are named again");
                } else {
                    tracing::debug!(%socket, "connected to Docker");
                }
                match session(&cfg, &shared, &docker, &mut rx, &mut h).await {
                    Ok(()) => return,
                    Err(e) => format!("lost Docker: {e}"),
                }
            }
            Err(e) => format!("cannot reach Docker: {e}"),
        };
        shared.reachable.store(false, Ordering::Relaxed);
        let pending = shared.unresolved();
        h.outage(&shared, &cfg, &err, !pending.is_empty());
        for id in pending {
            shared.set(&id, Slot::Unresolved);
        }
        let retry = tokio::time::sleep(cfg.retry);
        tokio::pin!(retry);
        loop {
            tokio::select! {
                _ = &mut retry => break,
                id = rx.recv() => match id {
                    Some(id) => {
                        shared.set(&id, Slot::Unresolved);
                        h.outage(&shared, &cfg, &err, true);
                    }
                    None => return,
                },
            }
        }
    }
}

/// Inspects one id into the cache. `Err` when Docker itself failed (not for a missing
/// container).
async fn inspect(
    cfg: &DockerConfig,
    shared: &Shared,
    docker: &bollard::Docker,
    id: &str,
    h: &mut Health,
) -> Outcome<()> {
    let r = timed(
        cfg.timeout,
        "inspect",
        docker.inspect_container(id, None::<InspectContainerOptions>),
    )
    .await;
    match r {
        Ok(Ok(resp)) => {
            shared.set(id, Slot::Known(from_inspect(id, &resp)));
            Ok(())
        }
        Ok(Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        })) => {
            shared.set(id, Slot::Unresolved);
            if !std::mem::replace(&mut h.vanished_warned, true) {
                shared.warn();
                tracing::warn!(
                    container = id,
                    "container gone before Docker could name it: its events carry the id only (further ones are logged at debug level)"
                );
            } else {
                tracing::debug!(container = id, "container gone before Docker could name it");
            }
            Ok(())
        }
        Ok(Err(e)) => {
            shared.set(id, Slot::Unresolved);
            Err(format!("inspect: {e}"))
        }
        Err(e) => {
            shared.set(id, Slot::Unresolved);
            Err(e)
        }
    }
}

/// One connection's life: fill the cache, then follow events and answer requests.
/// `Ok` when the capture side has gone, `Err` when Docker did.
async fn session(
    cfg: &DockerConfig,
    shared: &Shared,
    docker: &bollard::Docker,
    rx: &mut mpsc::Receiver<String>,
    h: &mut Health,
) -> Outcome<()> {
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        (
            "event".to_string(),
            ["create", "start", "rename", "destroy"]
                .map(String::from)
                .to_vec(),
        ),
    ]);
    // Subscribed before listing, but the request goes out on the first poll: a container
    // created in between is named by inspection when first looked up.
    let mut events = docker.events(Some(EventsOptions {
        filters: Some(filters),
        ..Default::default()
    }));
    let list = timed(
        cfg.timeout,
        "list",
        docker.list_containers(Some(ListContainersOptionsBuilder::new().all(true).build())),
    )
    .await?
    .map_err(|e| format!("list: {e}"))?;
    for c in list.iter().filter_map(from_summary) {
        let id = c.id.clone();
        shared.set(&id, Slot::Known(c));
    }
    tracing::debug!(containers = list.len(), "Docker containers listed");
    for id in shared.unresolved() {
        inspect(cfg, shared, docker, &id, h).await?;
    }
    let mut destroyed: VecDeque<(Instant, String)> = VecDeque::new();
    loop {
        while destroyed
            .front()
            .is_some_and(|(t, _)| t.elapsed() >= DESTROYED_GRACE)
        {
            if let Some((_, id)) = destroyed.pop_front() {
                shared.remove(&id);
            }
        }
        tokio::select! {
            id = rx.recv() => match id {
                Some(id) => inspect(cfg, shared, docker, &id, h).await?,
                None => return Ok(()),
            },
            ev = events.next() => match ev {
                Some(Ok(m)) => on_event(cfg, shared, docker, &m, &mut destroyed, h).await?,
                Some(Err(e)) => return Err(format!("events: {e}")),
                None => return Err("Docker closed the event stream".into()),
            },
            // wake up now and then to forget destroyed containers
            _ = tokio::time::sleep(DESTROYED_GRACE) => {}
        }
    }
}

async fn on_event(
    cfg: &DockerConfig,
    shared: &Shared,
    docker: &bollard::Docker,
    m: &EventMessage,
    destroyed: &mut VecDeque<(Instant, String)>,
    h: &mut Health,
) -> Outcome<()> {
    let Some(id) = m.actor.as_ref().and_then(|a| a.id.as_deref()) else {
        return Ok(());
    };
    match m.action.as_deref() {
        Some("destroy") => destroyed.push_back((Instant::now(), id.to_string())),
        Some("create" | "start" | "rename") => match from_event(m) {
            Some(c) => shared.set(id, Slot::Known(c)),
            None => inspect(cfg, shared, docker, id, h).await?,
        },
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
#[path = "docker_tests.rs"]
mod tests;
