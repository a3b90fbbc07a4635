//! read/write-family syscalls on captured sockets.
//!
//! Entry saves the arguments when the fd is a captured socket (one hash lookup for any
//! other fd); exit copies what the call actually moved. A syscall made inside an
//! `SSL_read`/`SSL_write` (or a Go `crypto/tls` call, see `gotls`) carries ciphertext:
//! it is not copied, but it tells which fd the `SSL*` (`*tls.Conn`) uses.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use qtap_common::{SslInfo, direction, sock_key, sock_state, source};

use crate::{
    emit::{Meta, emit, emit_unseen},
    maps::{DATA_ARGS, DataArgs, SOCK_SSL, SOCKS, SSL_ARGS, SSL_FDS, SSL_PENDING},
    self_tgid,
};

const MSG_PEEK: u64 = 2;

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// (fd, buf, len)
    Buf,
    /// (fd, buf, len, flags, ...): recvfrom/sendto
    BufFlags,
    /// (fd, iov, iovcnt)
    Vec,
    /// (fd, msghdr, flags)
    Msg,
    /// sendfile(out_fd, in_fd, ...): bytes we cannot see
    Unseen,
}

#[inline(always)]
pub(crate) fn arg(ctx: &TracePointContext, i: usize) -> u64 {
    // SAFETY: syscall tracepoint records hold 6 u64 args from offset 16.
    unsafe { ctx.read_at::<u64>(16 + 8 * i) }.unwrap_or(0)
}

#[inline(always)]
pub(crate) fn ret(ctx: &TracePointContext) -> i64 {
    // SAFETY: sys_exit_* records hold `long ret` at offset 16.
    unsafe { ctx.read_at::<i64>(16) }.unwrap_or(-1)
}

/// Records which socket an in-flight SSL call uses (first syscall on a captured socket
/// inside it).
#[inline(always)]
fn learn_ssl_fd(pid_tgid: u64, fd: i32) -> bool {
    // SAFETY: map value copied out.
    let Some(args) = (unsafe { SSL_ARGS.get(&pid_tgid) }).copied() else {
        return false;
    };
    if args.ssl == 0 {
        // no TLS library call in flight on this thread (the entry is a consumed one)
        return false;
    }
    let tgid = (pid_tgid >> 32) as u32;
    match SSL_FDS.get_ptr_mut(&args.ssl) {
        // SAFETY: map value pointer.
        Some(p) => unsafe {
            if (*p).fd != fd || (*p).tgid != tgid {
                *p = SslInfo {
                    tgid,
                    fd,
                    bytes_sent: 0,
                    bytes_recv: 0,
                };
            }
        },
        None => {
            let _ = SSL_FDS.insert(
                &args.ssl,
                &SslInfo {
                    tgid,
                    fd,
                    bytes_sent: 0,
                    bytes_recv: 0,
                },
                0,
            );
        }
    }
    true
}

/// TLS record types that only the handshake writes: ChangeCipherSpec (TLS 1.3 clients
/// in middlebox-compatibility mode open their second flight with one) and Handshake
/// (ClientHello, ServerHello, ...).
const TLS_CHANGE_CIPHER_SPEC: u8 = 20;
const TLS_HANDSHAKE: u8 = 22;

/// A thread whose last TLS library call left its `SSL*` without a socket (see
/// `SSL_PENDING`) wrote to captured socket `fd`: when what it wrote starts with a TLS
/// handshake record, that record came out of that call, and the `SSL*` is `fd`'s. Only
/// handshake-phase records tie, so a connection whose handshake was not seen stays untied
/// rather than risk being tied to another connection's socket.
#[inline(always)]
fn tie_pending(pid_tgid: u64, tgid: u32, fd: i32, buf: u64, iovcnt: u64) {
    // SAFETY: map value copied out.
    let Some(ssl) = (unsafe { SSL_PENDING.get(&pid_tgid) }).copied() else {
        return;
    };
    // the first bytes written: `buf` itself, or the first iovec's base
    let first = if iovcnt == 0 {
        buf
    } else {
        // SAFETY: user memory through the checked helper.
        unsafe { bpf_probe_read_user(buf as *const u64) }.unwrap_or(0)
    };
    if first == 0 {
        return;
    }
    // SAFETY: user memory through the checked helper.
    let Ok(hdr) = (unsafe { bpf_probe_read_user(first as *const [u8; 3]) }) else {
        return;
    };
    if (hdr[0] != TLS_HANDSHAKE && hdr[0] != TLS_CHANGE_CIPHER_SPEC) || hdr[1] != 3 {
        return;
    }
    let _ = SSL_PENDING.remove(&pid_tgid);
    let _ = SOCK_SSL.insert(&sock_key(tgid, fd), &ssl, 0);
    match SSL_FDS.get_ptr_mut(&ssl) {
        // SAFETY: map value pointer.
        Some(p) => unsafe {
            if (*p).tgid != tgid {
                *p = SslInfo {
                    tgid,
                    fd,
                    bytes_sent: 0,
                    bytes_recv: 0,
                };
            } else if (*p).fd < 0 {
                // plaintext already counted keeps its positions
                (*p).fd = fd;
            }
        },
        None => {
            let _ = SSL_FDS.insert(
                &ssl,
                &SslInfo {
                    tgid,
                    fd,
                    bytes_sent: 0,
                    bytes_recv: 0,
                },
                0,
            );
        }
    }
}

/// `fd` of `tgid` is being closed: an `SSL*` tied to it by `tie_pending` is forgotten.
#[inline(always)]
pub(crate) fn socket_closed(tgid: u32, fd: i32) {
    let key = sock_key(tgid, fd);
    // SAFETY: map value copied out.
    let Some(ssl) = (unsafe { SOCK_SSL.get(&key) }).copied() else {
        return;
    };
    let _ = SOCK_SSL.remove(&key);
    // SAFETY: map value copied out.
    if let Some(i) = (unsafe { SSL_FDS.get(&ssl) }).copied()
        && i.tgid == tgid
        && i.fd == fd
    {
        let _ = SSL_FDS.remove(&ssl);
    }
}

#[inline(always)]
fn enter(ctx: &TracePointContext, dir: u8, shape: Shape) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid == self_tgid() {
        return 0;
    }
    let fd = arg(ctx, 0) as i32;
    // SAFETY: map value read.
    let Some(s) = (unsafe { SOCKS.get(&sock_key(tgid, fd)) }) else {
        // not a TCP socket: files read inside a TLS call (certificates, time zone data
        // while checking a certificate's dates) tell nothing about its connection
        return 0;
    };
    if shape != Shape::Unseen && learn_ssl_fd(pid_tgid, fd) {
        return 0;
    }
    if s.state != sock_state::CAPTURE && s.state != sock_state::MUTE {
        return 0;
    }
    if shape != Shape::Unseen && crate::gotls::syscall_in_call(pid_tgid, fd) {
        return 0;
    }
    let mut a = DataArgs {
        fd: fd as i64,
        buf: arg(ctx, 1),
        iovcnt: 0,
        direction: dir,
        _pad: [0; 7],
        ts_ns: if dir == direction::SEND {
            // SAFETY: plain helper call.
            unsafe { bpf_ktime_get_ns() }
        } else {
            0
        },
    };
    match shape {
        Shape::Buf => {}
        Shape::BufFlags => {
            // recvfrom(fd, buf, len, flags, ...): peeked bytes will be read again
            if dir == direction::RECV && arg(ctx, 3) & MSG_PEEK != 0 {
                return 0;
            }
        }
        Shape::Vec => a.iovcnt = arg(ctx, 2),
        Shape::Msg => {
            if dir == direction::RECV && arg(ctx, 2) & MSG_PEEK != 0 {
                return 0;
            }
            // struct msghdr: msg_iov at 16, msg_iovlen at 24
            let msg = a.buf;
            // SAFETY: user memory through the checked helper.
            let iov = unsafe { bpf_probe_read_user((msg + 16) as *const u64) }.unwrap_or(0);
            let cnt = unsafe { bpf_probe_read_user((msg + 24) as *const u64) }.unwrap_or(0);
            if cnt == 0 {
                return 0;
            }
            a.buf = iov;
            a.iovcnt = cnt;
        }
        Shape::Unseen => a.iovcnt = u64::MAX - 1,
    }
    match DATA_ARGS.get_ptr_mut(&pid_tgid) {
        // SAFETY: this thread's own entry (see `DATA_ARGS`).
        Some(p) => unsafe { *p = a },
        None => {
            if DATA_ARGS.insert(&pid_tgid, &a, 0).is_err() {
                // the table of threads in a call is full: this call goes uncaptured
                crate::maps::count_drop(qtap_common::drop_reason::THREAD_TABLE_FULL, 1);
            }
        }
    }
    0
}

#[inline(always)]
fn exit(ctx: &TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(p) = DATA_ARGS.get_ptr_mut(&pid_tgid) else {
        return 0;
    };
    // SAFETY: this thread's own entry (see `DATA_ARGS`); copied, then marked consumed.
    let a = unsafe { *p };
    if a.fd < 0 {
        return 0;
    }
    // SAFETY: as above.
    unsafe { (*p).fd = -1 };
    let n = ret(ctx);
    if n <= 0 {
        return 0;
    }
    let n = n as u64;
    let tgid = (pid_tgid >> 32) as u32;
    let Some(s) = SOCKS.get_ptr_mut(&sock_key(tgid, a.fd as i32)) else {
        return 0;
    };
    // SAFETY: map value pointer; a socket is rarely written by two threads at once, and a
    // race only shifts positions (seen as a gap), never memory safety.
    let (state, pos) = unsafe {
        let pos = if a.direction == direction::SEND {
            (*s).bytes_sent
        } else {
            (*s).bytes_recv
        };
        if a.direction == direction::SEND {
            (*s).bytes_sent = pos + n;
        } else {
            (*s).bytes_recv = pos + n;
        }
        ((*s).state, pos)
    };
    if a.direction == direction::SEND && a.iovcnt != u64::MAX - 1 {
        tie_pending(pid_tgid, tgid, a.fd as i32, a.buf, a.iovcnt);
    }
    if state != sock_state::CAPTURE {
        return 0;
    }
    let meta = Meta {
        pid: tgid,
        tid: pid_tgid as u32,
        fd: a.fd as i32,
        ssl: 0,
        pos,
        direction: a.direction,
        source: source::SYSCALL,
        ts_ns: a.ts_ns,
    };
    if a.iovcnt == u64::MAX - 1 {
        emit_unseen(&meta, n);
    } else {
        emit(&meta, a.buf, a.iovcnt, n);
    }
    0
}

macro_rules! hooks {
    ($($enter:ident, $exit:ident, $dir:expr, $shape:expr;)*) => {$(
        #[tracepoint]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            enter(&ctx, $dir, $shape)
        }
        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            exit(&ctx)
        }
    )*};
}

hooks! {
    sys_enter_read, sys_exit_read, direction::RECV, Shape::Buf;
    sys_enter_recvfrom, sys_exit_recvfrom, direction::RECV, Shape::BufFlags;
    sys_enter_readv, sys_exit_readv, direction::RECV, Shape::Vec;
    sys_enter_recvmsg, sys_exit_recvmsg, direction::RECV, Shape::Msg;
    sys_enter_write, sys_exit_write, direction::SEND, Shape::Buf;
    sys_enter_sendto, sys_exit_sendto, direction::SEND, Shape::BufFlags;
    sys_enter_writev, sys_exit_writev, direction::SEND, Shape::Vec;
    sys_enter_sendmsg, sys_exit_sendmsg, direction::SEND, Shape::Msg;
    sys_enter_sendfile64, sys_exit_sendfile64, direction::SEND, Shape::Unseen;
}
