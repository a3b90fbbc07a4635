//! Go `crypto/tls`: `(*Conn).Read` and `(*Conn).Write` inside Go executables.
//!
//! Go code gets no uretprobe (the runtime moves goroutine stacks and would trip over
//! the rewritten return address): user space puts `go_tls_read`/`go_tls_write` on the
//! entry and `go_tls_ret` on every `RET` of each function. Arguments come from Go's
//! register ABI (ABIInternal, amd64, Go ≥ 1.17): receiver `*tls.Conn` in RAX, the
//! slice in RBX (pointer) and RCX (length); results `n` in RAX and the error's itab in
//! RBX; R14 always holds the goroutine (`g`).
//!
//! A call is keyed by (process, goroutine): a goroutine may return on another thread
//! than the one it entered on. The thread it entered on is marked (`GO_THREADS`) so the
//! first socket syscall made there tells the connection's fd (`data`), and the
//! ciphertext syscalls on that socket from that thread are not copied.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{map, uprobe},
    maps::LruHashMap,
    programs::ProbeContext,
};
use qtap_common::{SslInfo, direction, sock_key, source};

use crate::{
    emit::{Meta, emit},
    maps::{GO_CONNS, GO_FD_CONN, GO_THREADS, GoConnKey, GoThread},
    self_tgid,
};

#[repr(C)]
#[derive(Clone, Copy)]
struct GoCallKey {
    g: u64,
    tgid: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct GoCall {
    conn: u64,
    buf: u64,
    len: u64,
    /// thread the call entered on
    tid: u32,
    direction: u8,
    _pad: [u8; 3],
}

/// Calls in flight. LRU: a call that never returns (a panic unwinding through it)
/// leaves an entry that ages out.
#[map]
static GO_CALLS: LruHashMap<GoCallKey, GoCall> = LruHashMap::with_max_entries(16_384, 0);

/// The first three integer registers of Go's ABI and the goroutine register at the
/// probed instruction: (RAX, RBX, RCX, R14) on amd64.
#[cfg(not(bpf_target_arch = "aarch64"))]
#[inline(always)]
fn regs(ctx: &ProbeContext) -> (u64, u64, u64, u64) {
    let r = ctx.regs;
    // SAFETY: `regs` is the probe's context (struct pt_regs), read at fixed offsets.
    unsafe { ((*r).rax, (*r).rbx, (*r).rcx, (*r).r14) }
}

/// (R0, R1, R2, R28) on arm64 (user space does not attach there yet: untested).
#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
fn regs(ctx: &ProbeContext) -> (u64, u64, u64, u64) {
    let r = ctx.regs.cast::<aya_ebpf::bindings::user_pt_regs>();
    // SAFETY: as above; arm64's pt_regs starts with user_pt_regs.
    unsafe { ((*r).regs[0], (*r).regs[1], (*r).regs[2], (*r).regs[28]) }
}

#[inline(always)]
fn enter(ctx: &ProbeContext, dir: u8) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid == self_tgid() {
        return 0;
    }
    let (conn, buf, len, g) = regs(ctx);
    if conn == 0 || g == 0 || buf == 0 {
        return 0;
    }
    let call = GoCall {
        conn,
        buf,
        len,
        tid: pid_tgid as u32,
        direction: dir,
        _pad: [0; 3],
    };
    let _ = GO_CALLS.insert(&GoCallKey { g, tgid, _pad: 0 }, &call, 0);
    let key = GoConnKey {
        conn,
        tgid,
        _pad: 0,
    };
    // SAFETY: map value read.
    let fd = match unsafe { GO_CONNS.get(&key) } {
        Some(i) if i.fd >= 0 => i.fd as i64,
        _ => -1,
    };
    let mark = GoThread {
        g,
        conn,
        fd,
        suppress: 1,
    };
    let _ = GO_THREADS.insert(&pid_tgid, &mark, 0);
    0
}

/// Entry of a handshake: its first socket syscall (ClientHello written, or read) on
/// this thread tells the connection's fd; its records are still copied (SNI, version).
#[inline(always)]
fn handshake(ctx: &ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == self_tgid() {
        return 0;
    }
    let (conn, _, _, g) = regs(ctx);
    if conn == 0 || g == 0 {
        return 0;
    }
    let mark = GoThread {
        g,
        conn,
        fd: -1,
        suppress: 0,
    };
    let _ = GO_THREADS.insert(&pid_tgid, &mark, 0);
    0
}

/// Called by the read/write-family tracepoints for a captured socket: whether the
/// syscall belongs to a Go TLS Read/Write in flight on this thread (ciphertext: not
/// copied). The first such socket syscall of a call (or handshake) on a connection
/// whose fd is not known yet tells it.
#[inline(always)]
pub fn syscall_in_call(pid_tgid: u64, fd: i32) -> bool {
    let Some(m) = GO_THREADS.get_ptr_mut(&pid_tgid) else {
        return false;
    };
    let fd64 = fd as i64;
    // SAFETY: map value pointer; only this thread writes its own mark.
    let (conn, known, suppress) = unsafe { ((*m).conn, (*m).fd, (*m).suppress != 0) };
    if known == fd64 {
        return suppress;
    }
    if known >= 0 {
        return false;
    }
    // SAFETY: as above.
    unsafe { (*m).fd = fd64 };
    let tgid = (pid_tgid >> 32) as u32;
    let key = GoConnKey {
        conn,
        tgid,
        _pad: 0,
    };
    let fresh = SslInfo {
        tgid,
        fd,
        bytes_sent: 0,
        bytes_recv: 0,
    };
    match GO_CONNS.get_ptr_mut(&key) {
        // SAFETY: map value pointer.
        Some(p) => unsafe {
            if (*p).fd != fd {
                *p = fresh;
            }
        },
        None => {
            let _ = GO_CONNS.insert(&key, &fresh, 0);
        }
    }
    let _ = GO_FD_CONN.insert(&sock_key(tgid, fd), &conn, 0);
    suppress
}

/// Called when a captured socket is closed: forget the connection that used it.
#[inline(always)]
pub fn socket_closed(tgid: u32, fd: i32) {
    let k = sock_key(tgid, fd);
    // SAFETY: map value copied out.
    let Some(conn) = (unsafe { GO_FD_CONN.get(&k) }).copied() else {
        return;
    };
    let _ = GO_FD_CONN.remove(&k);
    let key = GoConnKey {
        conn,
        tgid,
        _pad: 0,
    };
    // SAFETY: map value read.
    if unsafe { GO_CONNS.get(&key) }.is_some_and(|i| i.fd == fd) {
        let _ = GO_CONNS.remove(&key);
    }
}

#[inline(always)]
fn ret(ctx: &ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let (rax, _err_itab, _, g) = regs(ctx);
    let ck = GoCallKey { g, tgid, _pad: 0 };
    // SAFETY: map value copied out.
    let Some(call) = (unsafe { GO_CALLS.get(&ck) }).copied() else {
        return 0;
    };
    let _ = GO_CALLS.remove(&ck);
    let entry_thread = ((tgid as u64) << 32) | call.tid as u64;
    // SAFETY: map value read.
    if unsafe { GO_THREADS.get(&entry_thread) }.is_some_and(|m| m.g == g) {
        let _ = GO_THREADS.remove(&entry_thread);
    }
    // n bytes were moved even when an error comes with them
    let n = rax as i64;
    if n <= 0 {
        return 0;
    }
    let mut n = n as u64;
    if n > call.len {
        n = call.len;
    }
    let key = GoConnKey {
        conn: call.conn,
        tgid,
        _pad: 0,
    };
    let send = call.direction == direction::SEND;
    let (fd, pos) = match GO_CONNS.get_ptr_mut(&key) {
        // SAFETY: map value pointer; one connection is rarely read (or written) by two
        // goroutines at once, and a race only shifts positions (seen as a gap).
        Some(p) => unsafe {
            let pos = if send {
                (*p).bytes_sent
            } else {
                (*p).bytes_recv
            };
            if send {
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
            if send {
                info.bytes_sent = n;
            } else {
                info.bytes_recv = n;
            }
            let _ = GO_CONNS.insert(&key, &info, 0);
            (-1, 0)
        }
    };
    let meta = Meta {
        pid: tgid,
        tid: pid_tgid as u32,
        fd,
        ssl: call.conn,
        pos,
        direction: call.direction,
        source: source::GO_TLS,
        // stamped at the RET probe (no entry time kept per goroutine call)
        ts_ns: 0,
    };
    emit(&meta, call.buf, 0, n);
    0
}

/// Entry of `crypto/tls.(*Conn).Read(b []byte) (int, error)`.
#[uprobe]
pub fn go_tls_read(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::RECV)
}

/// Entry of `crypto/tls.(*Conn).Write(b []byte) (int, error)`.
#[uprobe]
pub fn go_tls_write(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::SEND)
}

/// Entry of `crypto/tls.(*Conn).clientHandshake` and `serverHandshake`.
#[uprobe]
pub fn go_tls_handshake(ctx: ProbeContext) -> u32 {
    handshake(&ctx)
}

/// Each `RET` of Read and Write.
#[uprobe]
pub fn go_tls_ret(ctx: ProbeContext) -> u32 {
    ret(&ctx)
}
