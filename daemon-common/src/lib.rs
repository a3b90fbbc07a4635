//! Records shared by the kernel programs (`qtap-ebpf`) and the daemon.
//!
//! Every ring-buffer record starts with a [`Header`] whose `kind` says which record
//! follows. Data records are variable-length: the header part of [`DataEvent`] is
//! followed by `len` payload bytes only (the record is emitted with
//! `DATA_HEADER_LEN + len` bytes). All integers are native-endian; addresses and ports
//! are kept as the kernel gives them (network order) and converted in user space.
#![no_std]

/// Payload bytes per ring-buffer record. A larger syscall or TLS call is split into
/// several records, each carrying its offset.
pub const CHUNK_SIZE: usize = 16 * 1024;
/// Records emitted per syscall / TLS call at most (64 × 16 KiB = 1 MiB). Bytes past
/// that are counted as dropped (reason `per-call-limit`), never lost silently.
pub const MAX_CHUNKS_PER_CALL: u32 = 64;
/// iovecs followed per readv/writev/recvmsg/sendmsg call.
pub const MAX_IOVECS: u32 = 64;
/// Entries of the kernel's socket table (`SOCKS`) unless the loader says otherwise.
pub const SOCKS_MAX_ENTRIES: u32 = 65_536;

/// Record kinds (`Header::kind`).
pub mod kind {
    pub const DATA: u32 = 1;
    pub const CONNECT: u32 = 2;
    pub const ACCEPT: u32 = 3;
    pub const CLOSE: u32 = 4;
    pub const EXEC: u32 = 5;
    pub const EXIT: u32 = 6;
    /// A TCP socket reached ESTABLISHED from SYN_SENT or SYN_RECV (softirq context:
    /// `pid` is not the owner); carries the full tuple.
    pub const ESTABLISHED: u32 = 7;
}

/// `DataEvent::direction`.
pub mod direction {
    /// bytes read by the process (read/recv*/SSL_read)
    pub const RECV: u8 = 0;
    /// bytes written by the process (write/send*/SSL_write)
    pub const SEND: u8 = 1;
}

/// `DataEvent::source`.
pub mod source {
    /// a socket syscall (plaintext, or TLS records when the app's TLS is not hooked)
    pub const SYSCALL: u8 = 0;
    /// OpenSSL/BoringSSL-compatible `SSL_read`/`SSL_write` (and `_ex`), plaintext
    pub const OPENSSL: u8 = 1;
    /// GnuTLS `gnutls_record_send`/`gnutls_record_recv`, plaintext
    pub const GNUTLS: u8 = 2;
    /// Go `crypto/tls.(*Conn).Read`/`Write`, plaintext; `ssl` is the `*tls.Conn`
    pub const GO_TLS: u8 = 3;
}

/// Values of the `SOCKS` map (what the kernel does with a (tgid, fd)).
pub mod sock_state {
    /// TCP socket created, not yet connected/accepted
    pub const CANDIDATE: u32 = 1;
    /// connected or accepted TCP socket: capture its bytes
    pub const CAPTURE: u32 = 2;
    /// a socket we know is not TCP (UDP, ...): ignore
    pub const IGNORE: u32 = 3;
    /// user space recognised TLS records it cannot decrypt: count bytes, send none
    pub const MUTE: u32 = 4;
}

/// Drop counters (`DROPS` per-CPU array indices).
pub mod drop_reason {
    /// ring buffer full: records lost
    pub const RINGBUF_FULL_EVENTS: u32 = 0;
    /// ring buffer full: payload bytes lost
    pub const RINGBUF_FULL_BYTES: u32 = 1;
    /// bytes of a call beyond MAX_CHUNKS_PER_CALL or MAX_IOVECS
    pub const PER_CALL_LIMIT_BYTES: u32 = 2;
    /// bytes that could not be read from user memory (paged out, bad pointer)
    pub const READ_FAULT_BYTES: u32 = 3;
    /// records for control events (connect/accept/close/exec) lost
    pub const CONTROL_EVENTS: u32 = 4;
    /// connections not captured because the `SOCKS` table was full
    pub const SOCKET_TABLE_FULL: u32 = 5;
    /// TLS library or socket calls not captured because the table of threads in such a
    /// call was full
    pub const THREAD_TABLE_FULL: u32 = 6;
    pub const COUNT: u32 = 7;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Header {
    pub kind: u32,
    /// tgid (the process id users see)
    pub pid: u32,
    /// thread id
    pub tid: u32,
    pub fd: i32,
    /// bpf_ktime_get_ns (CLOCK_MONOTONIC)
    pub ts_ns: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct DataEvent {
    pub header: Header,
    /// `SSL*` (Go: `*tls.Conn`) for TLS records, 0 for syscalls
    pub ssl: u64,
    /// position of the first payload byte in this direction of this stream (bytes
    /// already seen before it); a jump tells user space exactly how much was lost
    pub stream_pos: u64,
    /// bytes the whole call moved (may exceed what was captured)
    pub call_len: u32,
    /// offset of this record's payload within the call
    pub offset: u32,
    /// payload bytes in this record
    pub len: u32,
    pub direction: u8,
    pub source: u8,
    pub _pad: [u8; 2],
    pub data: [u8; CHUNK_SIZE],
}

/// Size of a `DataEvent` without its payload.
pub const DATA_HEADER_LEN: usize = core::mem::size_of::<DataEvent>() - CHUNK_SIZE;

/// A socket address as the kernel or `sockaddr` gives it: family 2 (AF_INET, first
/// 4 bytes of `addr` used) or 10 (AF_INET6); 0 when unknown. `port` in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Addr {
    pub family: u16,
    pub port: u16,
    pub _pad: u32,
    pub addr: [u8; 16],
}

/// CONNECT, ACCEPT: a socket the process connected or accepted.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnEvent {
    pub header: Header,
    pub local: Addr,
    pub remote: Addr,
    /// syscall return: 0 or -EINPROGRESS for connect, the new fd for accept
    pub ret: i64,
    /// kernel socket address (an opaque id; joins with ESTABLISHED), 0 if unknown
    pub sk: u64,
    /// the task's comm, naming a process that exits before user space reads /proc
    pub comm: [u8; 16],
}

/// CLOSE: final per-direction counters of a captured socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CloseEvent {
    pub header: Header,
    pub bytes_sent: u64,
    pub bytes_recv: u64,
}

/// Bytes of the exec'd file name kept.
pub const FILENAME_LEN: usize = 192;

/// `ProcEvent::exit_code` when the kernel's BTF did not say where `task_struct` keeps it.
pub const EXIT_CODE_UNKNOWN: u32 = u32::MAX;

/// EXEC / EXIT.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcEvent {
    pub header: Header,
    pub comm: [u8; 16],
    /// real uid
    pub uid: u32,
    /// EXIT: the task's `exit_code` as the kernel keeps it (`status << 8`, or the signal
    /// number, `| 0x80` when it dumped core); `EXIT_CODE_UNKNOWN` when not read
    pub exit_code: u32,
    /// EXEC: the path given to exec (NUL-terminated), so a process that exits before
    /// user space reads /proc is still named
    pub filename: [u8; FILENAME_LEN],
    /// the process's cgroup v2 id (the inode of its cgroup directory), so a process that
    /// exits before user space reads /proc still names its container
    pub cgroup_id: u64,
}

/// ESTABLISHED (server side): the tuple, for joining with ACCEPT.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EstablishedEvent {
    pub header: Header,
    pub local: Addr,
    pub remote: Addr,
    /// kernel socket address (opaque id)
    pub sk: u64,
    /// 2 (SYN_SENT, this host connected) or 3 (SYN_RECV, this host accepted)
    pub old_state: u32,
    pub _pad: u32,
}

/// Value of the `SOCKS` map, keyed by `(tgid << 32) | fd`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockInfo {
    pub state: u32,
    pub _pad: u32,
    pub bytes_sent: u64,
    pub bytes_recv: u64,
}

/// Value of the `SSL_FDS` map, keyed by the `SSL*` pointer value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SslInfo {
    pub tgid: u32,
    pub fd: i32,
    pub bytes_sent: u64,
    pub bytes_recv: u64,
}

/// Global configuration set by the loader (`EbpfLoader::set_global`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Config {
    /// the daemon's own tgid: its traffic is never captured
    pub self_tgid: u32,
    pub _pad: u32,
}

pub const fn sock_key(tgid: u32, fd: i32) -> u64 {
    ((tgid as u64) << 32) | (fd as u32 as u64)
}

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: plain-old-data, #[repr(C)], no padding holes that matter for maps.
    unsafe impl aya::Pod for SockInfo {}
    unsafe impl aya::Pod for SslInfo {}
    unsafe impl aya::Pod for Config {}
}
