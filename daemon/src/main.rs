//! `qtap`: wiring only. The command line picks a mode; the capture engine comes from
//! `make_engine`; the hub fans its events out to the HTTP server or to `qtap trace`.
use anyhow::Context as _;
use clap::Parser as _;
use qtap::attribution::docker::DockerConfig;
use qtap::cli::{CaptureConfig, Cli, DevToolsConfig, Mode, TraceConfig};
use qtap::engine::{Engine, EngineConfig};
use qtap::events::Limits;
use qtap::hub::{Hub, HubConfig, ProbeControl};
use qtap::logging::Sink;
use qtap::server::{self, listen};
use std::process::ExitCode;

/// mimalloc: the capture path allocates and frees many small, short-lived objects
/// (parsed headers, event strings) across two threads; glibc's malloc spent ~40 % of the
/// daemon's CPU on them at saturation (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::sync::Arc;
use std::time::Duration;

/// The capture engine behind the hub.
fn make_engine(cfg: &CaptureConfig) -> Arc<dyn ProbeControl> {
    Arc::new(Engine::new(EngineConfig {
        max_body_bytes: cfg.max_body_bytes as usize,
        max_buffer_bytes: usize::try_from(cfg.max_buffer_bytes).unwrap_or(usize::MAX),
        max_header_bytes: usize::try_from(cfg.max_header_bytes).unwrap_or(usize::MAX),
        docker: cfg.docker_socket.clone().map(|socket| DockerConfig {
            socket,
            ..DockerConfig::default()
        }),
        capture: qtap::capture::CaptureConfig {
            socket_table: cfg.socket_table_entries,
            ..Default::default()
        },
    }))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mode = cli.mode();
    if let Mode::Help = mode {
        eprintln!("{}", Cli::help_text());
        eprintln!(
            "qtap: nothing to do: pass --enable-dev-tools (or set ENABLE_DEV_TOOLS=true), or use `qtap trace`"
        );
        return ExitCode::from(2);
    }
    let sink = qtap::logging::init(cli.log_level);
    let result = match mode {
        Mode::DevTools(cfg) => devtools(cfg),
        Mode::Trace(cfg) => trace(cfg),
        Mode::Help => unreachable!(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            // a journal-bound log may not reach whoever ran the command; stderr does,
            // unless stderr is itself the journal
            if sink == Sink::Journald && std::env::var_os("JOURNAL_STREAM").is_none() {
                eprintln!("qtap: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn hub_config(grace: Duration, capture: &CaptureConfig) -> HubConfig {
    let d = HubConfig::default();
    let budget = usize::try_from(capture.max_buffer_bytes).unwrap_or(usize::MAX);
    HubConfig {
        grace,
        client_queue_bytes: qtap::hub::client_queue_bytes(budget),
        limits: Limits {
            max_body_bytes: capture.max_body_bytes,
            max_buffer_bytes: capture.max_buffer_bytes,
            max_header_bytes: capture.max_header_bytes,
            ..d.limits.clone()
        },
        ..d
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("qtap-io")
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn devtools(cfg: DevToolsConfig) -> anyhow::Result<()> {
    // first, while there is one thread: reading LISTEN_FDS edits the environment
    let listeners = listen::acquire(&cfg.listen, cfg.allow_remote)?;
    let sudo_uid = std::env::var("SUDO_UID").ok();
    let access = server::access::AccessPolicy::resolve(
        &cfg.allow_users,
        &cfg.allow_groups,
        sudo_uid.as_deref(),
        cfg.allow_remote,
    )?;
    let rt = runtime()?;
    let hub = Hub::new(
        make_engine(&cfg.capture),
        hub_config(cfg.grace, &cfg.capture),
    );
    let opts = server::RunOptions {
        allow_remote: cfg.allow_remote,
        access: Arc::new(access),
        idle_timeout: cfg.idle_timeout,
        keep_alive: server::DEFAULT_KEEP_ALIVE,
    };
    rt.block_on(server::run(listeners, hub, opts))
        .context("serving DevTools")?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

fn trace(cfg: TraceConfig) -> anyhow::Result<()> {
    let rt = runtime()?;
    // a trace is one client: probes go as soon as it ends
    let hub = Hub::new(
        make_engine(&cfg.capture),
        hub_config(Duration::ZERO, &cfg.capture),
    );
    let out = std::io::stdout().lock();
    let res = rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let stop = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        anyhow::Ok(qtap::trace::run(&hub, cfg.topics, out, stop).await)
    })?;
    hub.shutdown("trace stopped");
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(res?)
}
