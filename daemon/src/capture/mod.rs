//! The kernel side as seen from user space: load the embedded object, attach the
//! tracepoints and TLS uprobes, read the ring buffer, keep the socket map right.
//!
//! Dropping a [`Capture`] detaches and unloads every program and map: nothing of ours
//! stays in the kernel.
pub mod btf;
pub mod golang;
pub mod java;
pub mod libs;
pub mod preadref;
pub mod procnet;
pub mod record;
pub mod safefs;
pub mod sweep;

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
    programs::{
        TracePoint, UProbe, trace_point::TracePointLinkId, uprobe::UProbeLinkId,
        uprobe::UProbeScope,
    },
};
use qtap_common::{SockInfo, drop_reason, sock_key};
use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::events::ProbeStatus;
pub use record::{Dir, Record, Source};

/// The kernel object built by `daemon/build.rs`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/qtap"));

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "this qtap binary was built without its eBPF programs (AYA_BUILD_SKIP) — rebuild with `cargo build --release` after running `.ci/setup`"
    )]
    NoObject,
    #[error(
        "cannot capture: {0} — run as root (sudo), or grant CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN"
    )]
    Permission(String),
    #[error(
        "cannot find tracefs (tried /sys/kernel/tracing and /sys/kernel/debug/tracing, and mounting it failed: {0}) — mount it with `mount -t tracefs nodev /sys/kernel/tracing`"
    )]
    NoTracefs(String),
    #[error(
        "this kernel has no tracepoint {0} — qtap needs Linux ≥ 5.10 built with CONFIG_FTRACE_SYSCALLS"
    )]
    MissingTracepoint(String),
    #[error(
        "cannot load the eBPF programs: {0} — qtap needs Linux ≥ 5.10 with BPF ring buffers (5.8+); run as root"
    )]
    Load(String),
    #[error("cannot attach {what}: {why}")]
    Attach { what: String, why: String },
    #[error("cannot read the ring buffer: {0}")]
    Ring(String),
}

#[derive(Clone, Debug)]
pub struct CaptureConfig {
    /// ring buffer size in bytes (power of two, multiple of the page size)
    pub ring_bytes: u32,
    /// normally `/proc`
    pub proc_root: PathBuf,
    /// entries of the kernel's socket table (sockets followed at once)
    pub socket_table: u32,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            ring_bytes: 32 << 20,
            proc_root: PathBuf::from("/proc"),
            socket_table: qtap_common::SOCKS_MAX_ENTRIES,
        }
    }
}

/// The syscall and scheduler tracepoints every capture needs.
const TRACEPOINTS: &[(&str, &str)] = &[
    ("syscalls", "sys_enter_read"),
    ("syscalls", "sys_exit_read"),
    ("syscalls", "sys_enter_recvfrom"),
    ("syscalls", "sys_exit_recvfrom"),
    ("syscalls", "sys_enter_readv"),
    ("syscalls", "sys_exit_readv"),
    ("syscalls", "sys_enter_recvmsg"),
    ("syscalls", "sys_exit_recvmsg"),
    ("syscalls", "sys_enter_write"),
    ("syscalls", "sys_exit_write"),
    ("syscalls", "sys_enter_sendto"),
    ("syscalls", "sys_exit_sendto"),
    ("syscalls", "sys_enter_writev"),
    ("syscalls", "sys_exit_writev"),
    ("syscalls", "sys_enter_sendmsg"),
    ("syscalls", "sys_exit_sendmsg"),
    ("syscalls", "sys_enter_sendfile64"),
    ("syscalls", "sys_exit_sendfile64"),
    ("syscalls", "sys_enter_socket"),
    ("syscalls", "sys_exit_socket"),
    ("syscalls", "sys_enter_connect"),
    ("syscalls", "sys_exit_connect"),
    ("syscalls", "sys_enter_accept"),
    ("syscalls", "sys_exit_accept"),
    ("syscalls", "sys_enter_accept4"),
    ("syscalls", "sys_exit_accept4"),
    ("syscalls", "sys_enter_close"),
    ("sock", "inet_sock_set_state"),
    ("sched", "sched_process_exec"),
    ("sched", "sched_process_exit"),
];

/// A TLS library API the probes understand: (entry program, symbol) pairs, each also
/// given the shared return probe `ssl_ret`.
pub struct TlsApi {
    pub library: &'static str,
    pub entries: &'static [(&'static str, &'static str)],
    /// symbols without which the library is not this API
    pub required: &'static [&'static str],
}

pub const TLS_APIS: &[TlsApi] = &[
    TlsApi {
        library: "openssl",
        entries: &[
            ("ssl_write", "SSL_write"),
            ("ssl_read", "SSL_read"),
            ("ssl_write_ex", "SSL_write_ex"),
            ("ssl_read_ex", "SSL_read_ex"),
        ],
        required: &["SSL_read", "SSL_write"],
    },
    TlsApi {
        library: "gnutls",
        entries: &[
            ("gnutls_send", "gnutls_record_send"),
            ("gnutls_recv", "gnutls_record_recv"),
        ],
        required: &["gnutls_record_send", "gnutls_record_recv"],
    },
];

/// Drop counts since the last call, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    pub ringbuf_events: u64,
    pub ringbuf_bytes: u64,
    pub per_call_bytes: u64,
    pub read_fault_bytes: u64,
    pub control_events: u64,
    /// connections not captured: the socket table was full
    pub socket_table_full: u64,
    /// calls not captured: the table of threads in a call was full
    pub thread_table_full: u64,
}

/// Kernel (CLOCK_MONOTONIC) → wall-clock conversion.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall_offset: i128,
}

impl Clock {
    /// Kernel monotonic ns → wall-clock ns since the epoch.
    pub fn wall_ns(&self, ktime_ns: u64) -> u64 {
        u64::try_from(i128::from(ktime_ns) + self.wall_offset).unwrap_or(0)
    }
}

/// One attachment, so that `Drop` can release them all at once (see `release_links`).
enum LinkRef {
    Tracepoint(&'static str, TracePointLinkId),
    Uprobe(&'static str, UProbeLinkId),
}

/// How many threads release the links on detach (see `Capture::release_links`).
const DETACH_THREADS: usize = 16;

pub struct Capture {
    // Field order matters: maps and ring are released before the object.
    ring: RingBuf<MapData>,
    socks: BpfHashMap<MapData, u64, SockInfo>,
    drops: PerCpuArray<MapData, u64>,
    ebpf: Ebpf,
    cfg: CaptureConfig,
    attached_libs: HashSet<(u64, u64)>,
    /// executables already looked at for a static OpenSSL
    checked_exes: HashSet<(u64, u64)>,
    /// root directories (ours, containers') whose library directories were scanned
    scanned_roots: HashSet<(u64, u64)>,
    probes: Vec<ProbeStatus>,
    links: Vec<LinkRef>,
    last_drops: [u64; drop_reason::COUNT as usize],
    /// sockets open before the attach that did not fit the socket table
    table_full_existing: u64,
    /// CLOCK_REALTIME − CLOCK_MONOTONIC, in ns
    wall_offset: i128,
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.release_links();
    }
}

fn is_permission(e: &str) -> bool {
    e.contains("EPERM")
        || e.contains("ermission denied")
        || e.contains("Operation not permitted")
        || e.contains("EACCES")
}

fn ensure_tracefs() -> Result<(), CaptureError> {
    for p in [
        "/sys/kernel/tracing/events",
        "/sys/kernel/debug/tracing/events",
    ] {
        if Path::new(p).is_dir() {
            return Ok(());
        }
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: plain mount(2) call with valid C strings.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EPERM) {
            return Err(CaptureError::Permission(format!("mounting tracefs: {err}")));
        }
        return Err(CaptureError::NoTracefs(err.to_string()));
    }
    tracing::info!("mounted tracefs on /sys/kernel/tracing");
    Ok(())
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

impl Capture {
    /// Loads the programs, attaches every tracepoint and the TLS uprobes of every
    /// libssl found, and marks sockets already open as captured.
    pub fn start(cfg: CaptureConfig) -> Result<Capture, CaptureError> {
        if OBJECT.is_empty() {
            return Err(CaptureError::NoObject);
        }
        ensure_tracefs()?;
        let self_tgid = std::process::id();
        // without it, process.stopped comes without an exit code (said once in the log)
        let exit_code_off = btf::task_exit_code_offset().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "exit codes of processes are not available");
            0
        });
        let mut ebpf = EbpfLoader::new()
            .override_global("SELF_TGID", &self_tgid, true)
            .override_global("TASK_EXIT_CODE_OFF", &exit_code_off, true)
            .override_global("WAKEUP_BYTES", &wakeup_bytes(cfg.ring_bytes), true)
            .map_max_entries("EVENTS", cfg.ring_bytes)
            .map_max_entries("SOCKS", cfg.socket_table.max(1))
            .load(OBJECT)
            .map_err(|e| {
                let s = format!("{e:#}");
                let chain = error_chain(&e);
                if is_permission(&chain) {
                    CaptureError::Permission(chain)
                } else {
                    CaptureError::Load(s + ": " + &chain)
                }
            })?;
        let mut probes = Vec::new();
        let mut links = Vec::new();
        for (cat, name) in TRACEPOINTS {
            let prog: &mut TracePoint = ebpf
                .program_mut(name)
                .ok_or_else(|| {
                    CaptureError::Load(format!("program {name} missing from the object"))
                })?
                .try_into()
                .map_err(|e| CaptureError::Load(format!("{name}: {e}")))?;
            prog.load().map_err(|e| {
                let chain = error_chain(&e);
                if is_permission(&chain) {
                    CaptureError::Permission(chain)
                } else {
                    CaptureError::Load(format!("{name}: {chain}"))
                }
            })?;
            let id = prog.attach(cat, name).map_err(|e| {
                let chain = error_chain(&e);
                if chain.contains("No such file") {
                    CaptureError::MissingTracepoint(format!("{cat}/{name}"))
                } else if is_permission(&chain) {
                    CaptureError::Permission(chain)
                } else {
                    CaptureError::Attach {
                        what: format!("tracepoint {cat}/{name}"),
                        why: chain,
                    }
                }
            })?;
            links.push(LinkRef::Tracepoint(name, id));
        }
        probes.push(ProbeStatus {
            library: "syscalls".into(),
            path: "kernel".into(),
            status: format!("attached ({} tracepoints)", TRACEPOINTS.len()),
        });
        for (prog, _) in TLS_APIS.iter().flat_map(|a| a.entries) {
            let p: &mut UProbe = ebpf
                .program_mut(prog)
                .ok_or_else(|| CaptureError::Load(format!("program {prog} missing")))?
                .try_into()
                .map_err(|e| CaptureError::Load(format!("{prog}: {e}")))?;
            p.load()
                .map_err(|e| CaptureError::Load(format!("{prog}: {}", error_chain(&e))))?;
        }
        let p: &mut UProbe = ebpf
            .program_mut("ssl_ret")
            .ok_or_else(|| CaptureError::Load("program ssl_ret missing".into()))?
            .try_into()
            .map_err(|e| CaptureError::Load(format!("ssl_ret: {e}")))?;
        p.load()
            .map_err(|e| CaptureError::Load(format!("ssl_ret: {}", error_chain(&e))))?;
        if let Err(e) = golang::load_programs(&mut ebpf) {
            // everything else still works; each Go executable then says why it is not probed
            tracing::warn!(error = %e, "Go TLS programs not loaded");
            probes.push(ProbeStatus {
                library: "go-tls".into(),
                path: "kernel".into(),
                status: format!("failed: {e}"),
            });
        }

        let ring = RingBuf::try_from(
            ebpf.take_map("EVENTS")
                .ok_or_else(|| CaptureError::Load("map EVENTS missing".into()))?,
        )
        .map_err(|e| CaptureError::Ring(e.to_string()))?;
        let socks = BpfHashMap::try_from(
            ebpf.take_map("SOCKS")
                .ok_or_else(|| CaptureError::Load("map SOCKS missing".into()))?,
        )
        .map_err(|e| CaptureError::Load(format!("SOCKS: {e}")))?;
        let drops = PerCpuArray::try_from(
            ebpf.take_map("DROPS")
                .ok_or_else(|| CaptureError::Load("map DROPS missing".into()))?,
        )
        .map_err(|e| CaptureError::Load(format!("DROPS: {e}")))?;
        let wall_offset = clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC);
        let mut cap = Capture {
            ring,
            socks,
            drops,
            ebpf,
            cfg,
            attached_libs: HashSet::new(),
            checked_exes: HashSet::new(),
            scanned_roots: libs::root_id(Path::new("/"), None).into_iter().collect(),
            probes,
            links,
            last_drops: [0; drop_reason::COUNT as usize],
            table_full_existing: 0,
            wall_offset,
        };
        for lib in libs::scan_standard_dirs() {
            cap.attach_lib(&lib);
        }
        for pid in libs::pids(&cap.cfg.proc_root) {
            cap.attach_libs_of(pid);
        }
        Ok(cap)
    }

    pub fn probes(&self) -> &[ProbeStatus] {
        &self.probes
    }

    /// Detaches every tracepoint and uprobe. Each detach waits for RCU grace periods in
    /// the kernel (the BPF link's, then the trace event's), ~0.1 s apiece on a busy VM:
    /// one by one, a hundred uprobes (Go programs have one per RET) took tens of seconds.
    /// Released from several threads, the waits that are not under the kernel's
    /// `event_mutex` overlap.
    fn release_links(&mut self) {
        let mut owned: Vec<Box<dyn Send>> = Vec::with_capacity(self.links.len());
        for l in self.links.drain(..) {
            match l {
                LinkRef::Tracepoint(name, id) => {
                    let p: Option<&mut TracePoint> =
                        self.ebpf.program_mut(name).and_then(|p| p.try_into().ok());
                    if let Some(link) = p.and_then(|p| p.take_link(id).ok()) {
                        owned.push(Box::new(link));
                    }
                }
                LinkRef::Uprobe(name, id) => {
                    let p: Option<&mut UProbe> =
                        self.ebpf.program_mut(name).and_then(|p| p.try_into().ok());
                    if let Some(link) = p.and_then(|p| p.take_link(id).ok()) {
                        owned.push(Box::new(link));
                    }
                }
            }
        }
        let n = owned.len();
        if n == 0 {
            return;
        }
        let t = std::time::Instant::now();
        let per = n.div_ceil(DETACH_THREADS);
        std::thread::scope(|s| {
            while !owned.is_empty() {
                let chunk: Vec<_> = owned.drain(..per.min(owned.len())).collect();
                if std::thread::Builder::new()
                    .name("qtap-detach".into())
                    .spawn_scoped(s, move || drop(chunk))
                    .is_err()
                {
                    // no thread: the rest is released here, one by one
                    break;
                }
            }
        });
        drop(owned);
        tracing::debug!(
            links = n,
            ms = t.elapsed().as_millis() as u64,
            "probes released"
        );
    }

    pub fn proc_root(&self) -> &Path {
        &self.cfg.proc_root
    }

    /// Converts kernel timestamps to wall-clock time.
    pub fn clock(&self) -> Clock {
        Clock {
            wall_offset: self.wall_offset,
        }
    }

    /// Attaches the TLS probes to one library file, once per distinct file. Returns the
    /// status of each TLS API found in a file not seen before.
    pub fn attach_lib(&mut self, lib: &libs::LibFile) -> Vec<ProbeStatus> {
        if self.attached_libs.contains(&(lib.dev, lib.ino)) {
            return Vec::new();
        }
        // Held open while attaching, and attached through /proc/self/fd: a path under
        // /proc/PID/root/ is gone as soon as a short-lived container process exits,
        // while the probes attach to the file itself and outlive it. Read with bounded
        // preads (never mapped: its owner may truncate it meanwhile).
        let file = match lib.open() {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(library = %lib.shown_path, error = %e, "cannot open: not probed");
                return Vec::new();
            }
        };
        self.attached_libs.insert((lib.dev, lib.ino));
        let fd_path = PathBuf::from(format!("/proc/self/fd/{}", file.file.as_raw_fd()));
        let names: Vec<&str> = TLS_APIS
            .iter()
            .flat_map(|a| a.entries.iter().map(|(_, s)| *s))
            .collect();
        let offsets = match libs::symbol_offsets_in(&file.file, file.size, &names) {
            Ok(o) => o,
            Err(e) => return self.unreadable(lib, &e),
        };
        let mut out = Vec::new();
        for api in TLS_APIS {
            if !api
                .required
                .iter()
                .all(|r| offsets.iter().any(|(n, _)| n == r))
            {
                // e.g. NSS's libssl3.so: a libssl by name, not OpenSSL's API
                continue;
            }
            out.push(self.attach_api(lib, &fd_path, api, &offsets));
        }
        if out.is_empty() {
            tracing::debug!(library = %lib.shown_path, "no TLS API the probes know");
        }
        out
    }

    /// A library whose symbols could not be read (truncated while read, tables over the
    /// budget, not ELF): reported when its name says it is a TLS library, else only logged.
    fn unreadable(&mut self, lib: &libs::LibFile, why: &str) -> Vec<ProbeStatus> {
        let name = lib.shown_path.rsplit('/').next().unwrap_or_default();
        if !libs::is_tls_library_name(name) {
            tracing::debug!(library = %lib.shown_path, error = %why, "not probed");
            return Vec::new();
        }
        let status = format!("failed: cannot read its symbols: {why}");
        let shown = self.shown(lib);
        tracing::warn!(library = %shown, %status, "TLS library not probed");
        let st = ProbeStatus {
            library: if name.starts_with("libgnutls") {
                "gnutls"
            } else {
                "openssl"
            }
            .into(),
            path: shown,
            status,
        };
        self.probes.push(st.clone());
        vec![st]
    }

    /// How a library is named in statuses: its path, and how it was reached when that is
    /// another root.
    fn shown(&self, lib: &libs::LibFile) -> String {
        if lib.open_path.starts_with(&self.cfg.proc_root) {
            format!("{} (via {})", lib.shown_path, lib.open_path.display())
        } else {
            lib.shown_path.clone()
        }
    }

    fn attach_api(
        &mut self,
        lib: &libs::LibFile,
        fd_path: &Path,
        api: &TlsApi,
        offsets: &[(String, u64)],
    ) -> ProbeStatus {
        let mut attached = Vec::new();
        let mut missing = Vec::new();
        let mut failure = None;
        for (prog, sym) in api.entries {
            let Some((_, off)) = offsets.iter().find(|(n, _)| n == sym) else {
                missing.push(*sym);
                continue;
            };
            let r = (|| -> Result<(), String> {
                for name in [*prog, "ssl_ret"] {
                    let p: &mut UProbe = self
                        .ebpf
                        .program_mut(name)
                        .ok_or("program missing")?
                        .try_into()
                        .map_err(|e| format!("{e}"))?;
                    let id = p
                        .attach(*off, fd_path, UProbeScope::AllProcesses)
                        .map_err(|e| error_chain(&e))?;
                    self.links.push(LinkRef::Uprobe(name, id));
                }
                Ok(())
            })();
            match r {
                Ok(()) => attached.push(*sym),
                Err(e) => failure = Some(format!("{sym}: {e}")),
            }
        }
        let status = match (&failure, attached.is_empty()) {
            (Some(e), true) => format!("failed: {e}"),
            (Some(e), false) => format!("partly attached ({}); {e}", attached.join(", ")),
            (None, _) if missing.is_empty() => "attached".to_string(),
            (None, _) => format!(
                "attached ({}; this build has no {})",
                attached.join(", "),
                missing.join(", ")
            ),
        };
        let shown = self.shown(lib);
        if status.starts_with("failed") {
            tracing::warn!(library = %shown, %status, "TLS library not probed");
        } else {
            tracing::info!(library = %shown, tls = api.library, %status, "TLS probes attached");
        }
        let st = ProbeStatus {
            library: api.library.into(),
            path: shown,
            status,
        };
        self.probes.push(st.clone());
        st
    }

    /// Attaches to the TLS libraries `pid` maps that are not probed yet, and to its
    /// executable when that carries OpenSSL itself (statically linked, e.g. Node.js) or
    /// is a Go program using crypto/tls.
    /// The first process seen with a root of its own (a container) also has its root's
    /// library directories probed at once: its loader maps libssl only a moment after
    /// exec, and a short-lived client may speak TLS before a later look at its maps.
    pub fn attach_libs_of(&mut self, pid: u32) -> Vec<ProbeStatus> {
        let mut out: Vec<ProbeStatus> = Vec::new();
        if let Some(root) = libs::root_id(&self.cfg.proc_root, Some(pid))
            && self.scanned_roots.insert(root)
            && let Ok(base) = safefs::Root::of_pid(&self.cfg.proc_root, pid)
        {
            for l in libs::scan_dirs_under(&base) {
                out.extend(self.attach_lib(&l));
            }
        }
        // the executable first: it is also looked at for Go's crypto/tls
        if let Some(exe) = libs::exe_of(&self.cfg.proc_root, pid) {
            let key = (exe.dev, exe.ino);
            if !self.attached_libs.contains(&key) && self.checked_exes.insert(key) {
                out.extend(self.attach_lib(&exe));
                out.extend(self.attach_go(&exe));
            }
        }
        // then every library it maps, whatever its name (each file once)
        out.extend(
            libs::scan_pid(&self.cfg.proc_root, pid)
                .iter()
                .flat_map(|l| self.attach_lib(l)),
        );
        out
    }

    /// Marks sockets that were open before attach as captured. Returns (pid, fd, local,
    /// remote, listening-side) for each.
    pub fn prime_existing(&mut self) -> Vec<(u32, i32, procnet::TcpEntry, bool)> {
        let me = std::process::id();
        let mut out = Vec::new();
        let mut tables: std::collections::HashMap<
            u64,
            std::collections::HashMap<u64, procnet::TcpEntry>,
        > = Default::default();
        let root = self.cfg.proc_root.clone();
        for pid in libs::pids(&root) {
            if pid == me {
                continue;
            }
            let ns = std::fs::metadata(root.join(pid.to_string()).join("ns/net")).map(|m| {
                use std::os::unix::fs::MetadataExt;
                m.ino()
            });
            let Ok(ns) = ns else { continue };
            let table = tables
                .entry(ns)
                .or_insert_with(|| procnet::tcp_table(&root, pid));
            let listening: HashSet<u16> = table
                .values()
                .filter(|t| t.state == 10)
                .map(|t| t.local.port())
                .collect();
            for (fd, t) in procnet::tcp_fds(&root, pid, table) {
                if t.state != 1 {
                    continue;
                }
                let info = SockInfo {
                    state: qtap_common::sock_state::CAPTURE,
                    ..Default::default()
                };
                if self.socks.insert(sock_key(pid, fd), info, 0).is_ok() {
                    out.push((pid, fd, t, listening.contains(&t.local.port())));
                } else {
                    self.table_full_existing += 1;
                }
            }
        }
        out
    }

    /// Sets what the kernel does with a socket (e.g. `MUTE` for TLS records we cannot
    /// read), or forgets it.
    pub fn set_sock_state(&mut self, pid: u32, fd: i32, state: Option<u32>) {
        let key = sock_key(pid, fd);
        match state {
            None => {
                let _ = self.socks.remove(&key);
            }
            Some(s) => {
                if let Ok(mut info) = self.socks.get(&key, 0) {
                    info.state = s;
                    let _ = self.socks.insert(key, info, 0);
                }
            }
        }
    }

    /// Waits up to `timeout` for records and appends them to `out`.
    pub fn poll(
        &mut self,
        timeout: Duration,
        out: &mut Vec<Result<Record, record::RecordError>>,
    ) -> Result<(), CaptureError> {
        let mut pfd = libc::pollfd {
            fd: self.ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(CaptureError::Ring(e.to_string()));
            }
        }
        // bounded so a flood cannot starve the caller's other duties, nor hold more than
        // POLL_BYTES of copied records (and the events they make) at once
        let mut bytes = 0;
        for _ in 0..65_536 {
            let Some(item) = self.ring.next() else { break };
            bytes += item.len();
            out.push(record::parse(&item));
            if bytes >= POLL_BYTES {
                break;
            }
        }
        Ok(())
    }

    /// Drops counted in the kernel since the last call.
    pub fn take_drops(&mut self) -> DropCounts {
        let mut now = [0u64; drop_reason::COUNT as usize];
        for (i, slot) in now.iter_mut().enumerate() {
            if let Ok(v) = self.drops.get(&(i as u32), 0) {
                *slot = v.iter().sum();
            }
        }
        let d = |i: u32| now[i as usize].saturating_sub(self.last_drops[i as usize]);
        let out = DropCounts {
            ringbuf_events: d(drop_reason::RINGBUF_FULL_EVENTS),
            ringbuf_bytes: d(drop_reason::RINGBUF_FULL_BYTES),
            per_call_bytes: d(drop_reason::PER_CALL_LIMIT_BYTES),
            read_fault_bytes: d(drop_reason::READ_FAULT_BYTES),
            control_events: d(drop_reason::CONTROL_EVENTS),
            socket_table_full: d(drop_reason::SOCKET_TABLE_FULL)
                + std::mem::take(&mut self.table_full_existing),
            thread_table_full: d(drop_reason::THREAD_TABLE_FULL),
        };
        self.last_drops = now;
        out
    }
}

/// Record bytes [`Capture::poll`] takes from the ring at most per call.
pub const POLL_BYTES: usize = 4 << 20;

/// How long [`Capture::poll`] callers may wait at most: data records wake the reader only
/// once [`wakeup_bytes`] are pending, so below that the reader finds them on this timeout.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The poll timeout once the ring has been empty for a while: a data record written then
/// waits at most this long (control records wake the reader at once).
pub const IDLE_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Unread ring-buffer bytes past which the kernel wakes the reader for a data record: an
/// eighth of the ring, at most 1 MiB (the reader also polls every [`POLL_INTERVAL`]).
pub fn wakeup_bytes(ring_bytes: u32) -> u64 {
    (u64::from(ring_bytes) / 8).clamp(4096, 1 << 20)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakeup_threshold_is_a_bounded_share_of_the_ring() {
        assert_eq!(wakeup_bytes(32 << 20), 1 << 20);
        assert_eq!(wakeup_bytes(4 << 20), 512 << 10);
        assert_eq!(wakeup_bytes(4096), 4096);
        // the reader must be woken before the ring is full
        for ring in [4096u32 * 2, 1 << 16, 1 << 22, 1 << 30] {
            assert!(wakeup_bytes(ring) < u64::from(ring));
        }
    }
}
