//! OpenSSL (and API-compatible BoringSSL/LibreSSL) plaintext: `SSL_write`, `SSL_read`
//! and their `_ex` forms; GnuTLS's `gnutls_record_send`/`gnutls_record_recv`. Entry
//! saves (ssl, buf) per thread; the syscall inside the call tells the fd (see `data`),
//! or, for memory BIOs (Node.js), the handshake record the thread writes right after a
//! call (`SSL_PENDING`); the return probe copies what the call moved.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use qtap_common::{SslInfo, direction, source};

use crate::{
    emit::{Meta, emit},
    maps::{SSL_ARGS, SSL_FDS, SSL_PENDING, SslArgs},
    self_tgid,
};

#[inline(always)]
fn enter(ctx: &ProbeContext, dir: u8, ex: bool, src: u8) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == self_tgid() {
        return 0;
    }
    let ssl: u64 = ctx.arg(0).unwrap_or(0);
    let buf: u64 = ctx.arg(1).unwrap_or(0);
    let ex_len: u64 = if ex { ctx.arg(3).unwrap_or(0) } else { 0 };
    if ssl == 0 || buf == 0 {
        return 0;
    }
    let a = SslArgs {
        ssl,
        buf,
        ex_len,
        direction: dir,
        source: src,
        _pad: [0; 6],
        ts_ns: if dir == direction::SEND {
            // SAFETY: plain helper call.
            unsafe { bpf_ktime_get_ns() }
        } else {
            0
        },
    };
    match SSL_ARGS.get_ptr_mut(&pid_tgid) {
        // SAFETY: this thread's own entry (see `SSL_ARGS`); only this thread's
        // programs use it, and a thread runs on one CPU at a time.
        Some(p) => unsafe { *p = a },
        None => {
            if SSL_ARGS.insert(&pid_tgid, &a, 0).is_err() {
                // the table of threads in a call is full: this call goes uncaptured
                crate::maps::count_drop(qtap_common::drop_reason::THREAD_TABLE_FULL, 1);
            }
        }
    }
    0
}

#[inline(always)]
fn exit(ctx: &RetProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(p) = SSL_ARGS.get_ptr_mut(&pid_tgid) else {
        return 0;
    };
    // SAFETY: this thread's own entry (see `enter`); copied, then marked consumed.
    let a = unsafe { *p };
    if a.ssl == 0 {
        return 0;
    }
    // SAFETY: as above.
    unsafe { (*p).ssl = 0 };
    let tgid = (pid_tgid >> 32) as u32;
    let info = SSL_FDS.get_ptr_mut(&a.ssl);
    // A call that ends with its SSL* still not tied to a socket (no syscall inside:
    // memory BIOs) hands it to the thread's next handshake write; any other call ends
    // that wait, so a record written later for another connection cannot claim it.
    let tied = match info {
        // SAFETY: map value pointer.
        Some(i) => unsafe { (*i).tgid == tgid && (*i).fd >= 0 },
        None => false,
    };
    if tied {
        // a lookup takes no lock; the delete only when there is something to delete
        // SAFETY: map value read.
        if unsafe { SSL_PENDING.get(&pid_tgid) }.is_some() {
            let _ = SSL_PENDING.remove(&pid_tgid);
        }
    } else {
        let _ = SSL_PENDING.insert(&pid_tgid, &a.ssl, 0);
    }
    let r: u64 = ctx.ret();
    // int return value: only the low 32 bits are defined
    let r = r as u32 as i32;
    let n: u64 = if a.ex_len != 0 {
        if r != 1 {
            return 0;
        }
        // SAFETY: user memory through the checked helper.
        unsafe { bpf_probe_read_user(a.ex_len as *const u64) }.unwrap_or(0)
    } else if r > 0 {
        r as u64
    } else {
        return 0;
    };
    if n == 0 {
        return 0;
    }
    let (fd, pos) = match info {
        // SAFETY: map value pointer (see `data::exit` on races).
        Some(p) => unsafe {
            if (*p).tgid != tgid {
                *p = SslInfo {
                    tgid,
                    fd: -1,
                    bytes_sent: 0,
                    bytes_recv: 0,
                };
            }
            let pos = if a.direction == direction::SEND {
                (*p).bytes_sent
            } else {
                (*p).bytes_recv
            };
            if a.direction == direction::SEND {
                (*p).bytes_sent = pos + n;
            } else {
                (*p).bytes_recv = pos + n;
            }
            ((*p).fd, pos)
        },
        None => {
            let mut info = SslInfo {
                tgid,
                fd: -1,
                bytes_sent: 0,
                bytes_recv: 0,
            };
            if a.direction == direction::SEND {
                info.bytes_sent = n;
            } else {
                info.bytes_recv = n;
            }
            let _ = SSL_FDS.insert(&a.ssl, &info, 0);
            (-1, 0)
        }
    };
    let meta = Meta {
        pid: tgid,
        tid: pid_tgid as u32,
        fd,
        ssl: a.ssl,
        pos,
        direction: a.direction,
        source: a.source,
        ts_ns: a.ts_ns,
    };
    emit(&meta, a.buf, 0, n);
    0
}

#[uprobe]
pub fn ssl_write(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::SEND, false, source::OPENSSL)
}

#[uprobe]
pub fn ssl_write_ex(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::SEND, true, source::OPENSSL)
}

#[uprobe]
pub fn ssl_read(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::RECV, false, source::OPENSSL)
}

#[uprobe]
pub fn ssl_read_ex(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::RECV, true, source::OPENSSL)
}

/// `ssize_t gnutls_record_send(gnutls_session_t, const void *data, size_t size)`: the
/// same shape as `SSL_write`; the session pointer plays the role of the `SSL*`.
#[uprobe]
pub fn gnutls_send(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::SEND, false, source::GNUTLS)
}

/// `ssize_t gnutls_record_recv(gnutls_session_t, void *data, size_t size)`.
#[uprobe]
pub fn gnutls_recv(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::RECV, false, source::GNUTLS)
}

#[uretprobe]
pub fn ssl_ret(ctx: RetProbeContext) -> u32 {
    exit(&ctx)
}
