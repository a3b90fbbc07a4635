//! Socket lifecycle: socket/connect/accept/close syscalls and `sock/inet_sock_set_state`.
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use qtap_common::{
    Addr, CloseEvent, ConnEvent, EstablishedEvent, Header, SockInfo, drop_reason, kind, sock_key,
    sock_state,
};

use crate::{
    data::{arg, ret},
    maps::{
        ACCEPT_ARGS, AcceptArgs, CONNECT_ARGS, ConnectArgs, EVENTS, SOCKET_ARGS, SOCKS, count_drop,
    },
    self_tgid,
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SOCK_STREAM: u64 = 1;
const EINPROGRESS: i64 = 115;
const IPPROTO_TCP: u16 = 6;
const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_SYN_RECV: i32 = 3;

#[inline(always)]
fn header(kind: u32, pid_tgid: u64, fd: i32) -> Header {
    Header {
        kind,
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        fd,
        // SAFETY: plain helper call.
        ts_ns: unsafe { bpf_ktime_get_ns() },
    }
}

/// Reads a user `sockaddr_in`/`sockaddr_in6`; family 0 when it is neither.
#[inline(always)]
fn read_sockaddr(p: u64) -> Addr {
    let mut a = Addr::default();
    if p == 0 {
        return a;
    }
    // SAFETY: user memory through the checked helper.
    let family = unsafe { bpf_probe_read_user(p as *const u16) }.unwrap_or(0);
    let port = unsafe { bpf_probe_read_user((p + 2) as *const u16) }.unwrap_or(0);
    a.port = u16::from_be(port);
    if family == AF_INET {
        if let Ok(v4) = unsafe { bpf_probe_read_user((p + 4) as *const [u8; 4]) } {
            a.family = AF_INET;
            a.addr[..4].copy_from_slice(&v4);
        }
    } else if family == AF_INET6 {
        if let Ok(v6) = unsafe { bpf_probe_read_user((p + 8) as *const [u8; 16]) } {
            a.family = AF_INET6;
            a.addr = v6;
        }
    } else {
        // AF_UNIX, AF_NETLINK, ...: remember the family to refuse it
        a.family = family;
        a.port = 0;
    }
    a
}

/// Marks a connected or accepted socket for capture. `false` when the table is full:
/// the connection is counted as lost (`SOCKET_TABLE_FULL`) and nothing of it is sent, so
/// user space keeps no state for a socket whose close it would never hear of.
#[inline(always)]
fn track(pid_tgid: u64, fd: i32) -> bool {
    let info = SockInfo {
        state: sock_state::CAPTURE,
        ..Default::default()
    };
    if SOCKS
        .insert(&sock_key((pid_tgid >> 32) as u32, fd), &info, 0)
        .is_err()
    {
        count_drop(drop_reason::SOCKET_TABLE_FULL, 1);
        return false;
    }
    true
}

#[tracepoint]
pub fn sys_enter_socket(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == self_tgid() {
        return 0;
    }
    let family = arg(&ctx, 0) & 0xffff;
    if family != AF_INET as u64 && family != AF_INET6 as u64 {
        return 0;
    }
    // type may carry SOCK_NONBLOCK | SOCK_CLOEXEC
    let ty = arg(&ctx, 1) & 0xf;
    let _ = SOCKET_ARGS.insert(&pid_tgid, &((family << 32) | ty), 0);
    0
}

#[tracepoint]
pub fn sys_exit_socket(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: map value copied out.
    let Some(v) = (unsafe { SOCKET_ARGS.get(&pid_tgid) }).copied() else {
        return 0;
    };
    let _ = SOCKET_ARGS.remove(&pid_tgid);
    let fd = ret(&ctx);
    if fd < 0 {
        return 0;
    }
    // Only non-stream inet sockets are remembered, so a later connect() on them (DNS over
    // UDP) is not mistaken for TCP. Stream sockets are tracked from connect/accept on.
    if v & 0xf != SOCK_STREAM {
        let info = SockInfo {
            state: sock_state::IGNORE,
            ..Default::default()
        };
        let _ = SOCKS.insert(&sock_key((pid_tgid >> 32) as u32, fd as i32), &info, 0);
    }
    0
}

#[tracepoint]
pub fn sys_enter_connect(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid == self_tgid() {
        return 0;
    }
    let fd = arg(&ctx, 0) as i32;
    // SAFETY: map value read.
    if let Some(s) = unsafe { SOCKS.get(&sock_key(tgid, fd)) } {
        if s.state == sock_state::IGNORE {
            return 0;
        }
    }
    let remote = read_sockaddr(arg(&ctx, 1));
    if remote.family != AF_INET && remote.family != AF_INET6 {
        return 0;
    }
    let a = ConnectArgs {
        fd: fd as i64,
        remote,
        local: Addr::default(),
        sk: 0,
    };
    let _ = CONNECT_ARGS.insert(&pid_tgid, &a, 0);
    0
}

#[tracepoint]
pub fn sys_exit_connect(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: map value copied out.
    let Some(a) = (unsafe { CONNECT_ARGS.get(&pid_tgid) }).copied() else {
        return 0;
    };
    let _ = CONNECT_ARGS.remove(&pid_tgid);
    let r = ret(&ctx);
    if r != 0 && r != -EINPROGRESS {
        return 0;
    }
    let fd = a.fd as i32;
    if !track(pid_tgid, fd) {
        return 0;
    }
    let ev: ConnEvent = ConnEvent {
        header: header(kind::CONNECT, pid_tgid, fd),
        local: a.local,
        remote: a.remote,
        ret: r,
        sk: a.sk,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    if EVENTS.output::<ConnEvent>(&ev, 0).is_err() {
        count_drop(drop_reason::CONTROL_EVENTS, 1);
    }
    0
}

#[inline(always)]
fn accept_enter(ctx: &TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == self_tgid() {
        return 0;
    }
    let _ = ACCEPT_ARGS.insert(
        &pid_tgid,
        &AcceptArgs {
            sockaddr: arg(ctx, 1),
        },
        0,
    );
    0
}

#[inline(always)]
fn accept_exit(ctx: &TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: map value copied out.
    let a = match unsafe { ACCEPT_ARGS.get(&pid_tgid) }.copied() {
        Some(a) => {
            let _ = ACCEPT_ARGS.remove(&pid_tgid);
            a
        }
        None => {
            // The call began before the probes attached: a server blocked in accept()
            // while nobody watched. Its sockaddr is unknown, so the record goes out as
            // for accept(fd, NULL, NULL): user space reads the tuple from /proc and
            // forgets the socket when it is not TCP (a unix socket's HTTP is not ours).
            if (pid_tgid >> 32) as u32 == self_tgid() {
                return 0;
            }
            AcceptArgs { sockaddr: 0 }
        }
    };
    let fd = ret(ctx);
    if fd < 0 {
        return 0;
    }
    let remote = read_sockaddr(a.sockaddr);
    // family 0: the caller passed no sockaddr; user space checks /proc and drops the
    // entry when the socket is not TCP.
    if remote.family != 0 && remote.family != AF_INET && remote.family != AF_INET6 {
        return 0;
    }
    let fd = fd as i32;
    if !track(pid_tgid, fd) {
        return 0;
    }
    let ev: ConnEvent = ConnEvent {
        header: header(kind::ACCEPT, pid_tgid, fd),
        local: Addr::default(),
        remote,
        ret: fd as i64,
        sk: 0,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    if EVENTS.output::<ConnEvent>(&ev, 0).is_err() {
        count_drop(drop_reason::CONTROL_EVENTS, 1);
    }
    0
}

#[tracepoint]
pub fn sys_enter_accept(ctx: TracePointContext) -> u32 {
    accept_enter(&ctx)
}

#[tracepoint]
pub fn sys_exit_accept(ctx: TracePointContext) -> u32 {
    accept_exit(&ctx)
}

#[tracepoint]
pub fn sys_enter_accept4(ctx: TracePointContext) -> u32 {
    accept_enter(&ctx)
}

#[tracepoint]
pub fn sys_exit_accept4(ctx: TracePointContext) -> u32 {
    accept_exit(&ctx)
}

#[tracepoint]
pub fn sys_enter_close(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid == self_tgid() {
        return 0;
    }
    let fd = arg(&ctx, 0) as i32;
    let key = sock_key(tgid, fd);
    // SAFETY: map value copied out.
    let Some(s) = (unsafe { SOCKS.get(&key) }).copied() else {
        return 0;
    };
    let _ = SOCKS.remove(&key);
    crate::gotls::socket_closed(tgid, fd);
    crate::data::socket_closed(tgid, fd);
    if s.state == sock_state::CAPTURE || s.state == sock_state::MUTE {
        let ev: CloseEvent = CloseEvent {
            header: header(kind::CLOSE, pid_tgid, fd),
            bytes_sent: s.bytes_sent,
            bytes_recv: s.bytes_recv,
        };
        if EVENTS.output::<CloseEvent>(&ev, 0).is_err() {
            count_drop(drop_reason::CONTROL_EVENTS, 1);
        }
    }
    0
}

#[inline(always)]
fn state_addr(ctx: &TracePointContext, family: u16, v4: usize, v6: usize, port: usize) -> Addr {
    let mut a = Addr {
        family,
        ..Default::default()
    };
    // SAFETY: fields of the inet_sock_set_state record (see its format file).
    unsafe {
        a.port = ctx.read_at::<u16>(port).unwrap_or(0);
        if family == AF_INET {
            if let Ok(b) = ctx.read_at::<[u8; 4]>(v4) {
                a.addr[..4].copy_from_slice(&b);
            }
        } else if let Ok(b) = ctx.read_at::<[u8; 16]>(v6) {
            a.addr = b;
        }
    }
    a
}

/// `sock/inet_sock_set_state`. CLOSE→SYN_SENT runs inside connect() on the caller's
/// thread: it gives the local address of an outgoing connection. SYN_RECV→ESTABLISHED
/// runs in softirq (the current task is unrelated): its tuple goes to user space, which
/// joins it with the ACCEPT record by the remote address.
#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    // SAFETY: fields at their documented offsets.
    let (old, new, family, proto) = unsafe {
        (
            ctx.read_at::<i32>(16).unwrap_or(0),
            ctx.read_at::<i32>(20).unwrap_or(0),
            ctx.read_at::<u16>(28).unwrap_or(0),
            ctx.read_at::<u16>(30).unwrap_or(0),
        )
    };
    if proto != IPPROTO_TCP || (family != AF_INET && family != AF_INET6) {
        return 0;
    }
    if new == TCP_SYN_SENT {
        let pid_tgid = bpf_get_current_pid_tgid();
        if let Some(a) = CONNECT_ARGS.get_ptr_mut(&pid_tgid) {
            let local = state_addr(&ctx, family, 32, 40, 24);
            // SAFETY: tracepoint field; map value pointer.
            let sk = unsafe { ctx.read_at::<u64>(8) }.unwrap_or(0);
            unsafe {
                (*a).local = local;
                (*a).sk = sk;
            }
        }
    } else if (old == TCP_SYN_RECV || old == TCP_SYN_SENT) && new == TCP_ESTABLISHED {
        let ev: EstablishedEvent = EstablishedEvent {
            header: header(kind::ESTABLISHED, 0, -1),
            local: state_addr(&ctx, family, 32, 40, 24),
            remote: state_addr(&ctx, family, 36, 56, 26),
            // SAFETY: tracepoint field.
            sk: unsafe { ctx.read_at::<u64>(8) }.unwrap_or(0),
            old_state: old as u32,
            _pad: 0,
        };
        if EVENTS.output::<EstablishedEvent>(&ev, 0).is_err() {
            count_drop(drop_reason::CONTROL_EVENTS, 1);
        }
    }
    0
}
