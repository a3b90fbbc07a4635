//! Maps shared by the hook families, and the per-thread argument records.
use aya_ebpf::{
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use qtap_common::{Addr, DataEvent, SockInfo, SslInfo, drop_reason};

/// Default ring size; the loader may resize it (`--ring-buffer-mib`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(32 * 1024 * 1024, 0);

/// Per-CPU scratch record: large records are built here, never on the 512-byte stack.
#[map]
pub static SCRATCH: PerCpuArray<DataEvent> = PerCpuArray::with_max_entries(1, 0);

/// Drop counters, indexed by `drop_reason::*`.
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drop_reason::COUNT, 0);

/// (tgid << 32 | fd) → what to do with that socket. Filled by connect/accept, by user
/// space for sockets that existed before attach, emptied by close. Not an LRU: evicting
/// a live socket would skip its bytes and lose its close without a trace. When full, a
/// new socket is not captured and is counted (`drop_reason::SOCKET_TABLE_FULL`); user
/// space sweeps out entries of sockets closed without close(2) (process exit, exec).
/// The loader may resize it (`SOCKS_MAX_ENTRIES`).
#[map]
pub static SOCKS: HashMap<u64, SockInfo> = HashMap::with_max_entries(65_536, 0);

/// `SSL*` → the socket it reads and writes, and per-direction plaintext counters.
#[map]
pub static SSL_FDS: LruHashMap<u64, SslInfo> = LruHashMap::with_max_entries(65_536, 0);

/// Arguments of a read/write-family syscall in flight, by pid_tgid. Each thread's entry
/// is rewritten in place by the next call and marked consumed (`fd == -1`) by the exit,
/// deleted only when the thread exits (`sched_process_exit`): an in-place write of a
/// looked-up value takes no lock, where a hash update or delete takes a bucket lock and
/// recycles an element (measured: this pair of hooks runs ~1 M times per 10 s of
/// nginx+TLS under wrk). Not an LRU: evicting the entry of a call in flight would skip
/// its bytes without a trace; when full, a new thread's call is counted
/// (`drop_reason::THREAD_TABLE_FULL`) instead.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DataArgs {
    pub fd: i64,
    /// buffer, or the iovec array for vectored calls
    pub buf: u64,
    /// 0 for a plain buffer, else the iovec count
    pub iovcnt: u64,
    pub direction: u8,
    pub _pad: [u8; 7],
    /// when a send began (0 for receives, stamped when they return): a request's first
    /// byte is never stamped after the response to it, whichever thread reads that
    pub ts_ns: u64,
}

#[map]
pub static DATA_ARGS: HashMap<u64, DataArgs> = HashMap::with_max_entries(THREADS, 0);

/// Threads in a read/write-family or TLS library call at once (see `DATA_ARGS`).
pub const THREADS: u32 = 32_768;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ConnectArgs {
    pub fd: i64,
    pub remote: Addr,
    pub local: Addr,
    pub sk: u64,
}

#[map]
pub static CONNECT_ARGS: HashMap<u64, ConnectArgs> = HashMap::with_max_entries(16_384, 0);

#[repr(C)]
#[derive(Clone, Copy)]
pub struct AcceptArgs {
    pub sockaddr: u64,
}

#[map]
pub static ACCEPT_ARGS: HashMap<u64, AcceptArgs> = HashMap::with_max_entries(16_384, 0);

/// socket(): (family << 32) | type, by pid_tgid.
#[map]
pub static SOCKET_ARGS: HashMap<u64, u64> = HashMap::with_max_entries(16_384, 0);

/// An SSL_read/SSL_write call in flight on a thread; like `DATA_ARGS`, rewritten in
/// place per call, marked consumed (`ssl == 0`) by the return probe, deleted when the
/// thread exits, and not an LRU.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SslArgs {
    pub ssl: u64,
    pub buf: u64,
    /// `size_t *` of the `_ex` variants (bytes done), 0 for the plain ones
    pub ex_len: u64,
    pub direction: u8,
    /// `source::OPENSSL` or `source::GNUTLS`
    pub source: u8,
    pub _pad: [u8; 6],
    /// when a send began (0 for receives), as in `DataArgs`
    pub ts_ns: u64,
}

#[map]
pub static SSL_ARGS: HashMap<u64, SslArgs> = HashMap::with_max_entries(THREADS, 0);

/// pid_tgid → the `SSL*` (GnuTLS session) of the thread's last TLS library call, when
/// that call left it without a socket: libraries driven through memory BIOs (Node.js)
/// make no syscall inside `SSL_read`/`SSL_write`, and write the records they produce
/// just after. The next handshake record the thread writes to a captured socket ties
/// the `SSL*` to that socket (see `data::tie_pending`). Any later library call replaces
/// or clears the entry.
#[map]
pub static SSL_PENDING: LruHashMap<u64, u64> = LruHashMap::with_max_entries(16_384, 0);

/// (tgid << 32 | fd) → the `SSL*` `data::tie_pending` tied to that socket. Closing the
/// socket unties it: a memory-BIO program may allocate its next `SSL*` at the same
/// address, which must wait for its own handshake rather than inherit a closed fd.
#[map]
pub static SOCK_SSL: LruHashMap<u64, u64> = LruHashMap::with_max_entries(65_536, 0);

#[inline(always)]
pub fn count_drop(reason: u32, n: u64) {
    if let Some(p) = DROPS.get_ptr_mut(reason) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU while we run.
        unsafe { *p += n };
    }
}

/// A Go `crypto/tls` connection: the `*tls.Conn` of one process (Go heap addresses
/// repeat from one process to the next, so the process is part of the key).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoConnKey {
    pub conn: u64,
    pub tgid: u32,
    pub _pad: u32,
}

/// `*tls.Conn` → its socket and per-direction plaintext counters.
#[map]
pub static GO_CONNS: LruHashMap<GoConnKey, SslInfo> = LruHashMap::with_max_entries(65_536, 0);

/// (tgid << 32 | fd) → the `*tls.Conn` using that socket, so closing the socket forgets
/// the connection (the Go heap reuses the address for the next one).
#[map]
pub static GO_FD_CONN: LruHashMap<u64, u64> = LruHashMap::with_max_entries(65_536, 0);

/// A `crypto/tls.(*Conn).Read`/`Write` or handshake in flight on a thread (by
/// pid_tgid): the syscall it makes there tells (or is) its socket. Cleared by the
/// call's return (Read/Write), or taken over by the next call on the thread.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoThread {
    /// goroutine (`g`), to clear only our own mark
    pub g: u64,
    pub conn: u64,
    /// the socket once known, else -1
    pub fd: i64,
    /// 1 for Read/Write: their syscalls on `fd` carry ciphertext, not copied; 0 for a
    /// handshake, whose records are read for SNI and version
    pub suppress: u64,
}

#[map]
pub static GO_THREADS: LruHashMap<u64, GoThread> = LruHashMap::with_max_entries(16_384, 0);
