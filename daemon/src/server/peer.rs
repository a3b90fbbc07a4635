//! Who is at the other end of an accepted connection.
//!
//! - TCP: the peer of a connection to this host's loopback (or to one of its addresses) is
//!   a socket on this host; its owner's uid comes from `NETLINK_SOCK_DIAG` (an exact
//!   4-tuple lookup, the way `ss` asks), else from `/proc/net/tcp{,6}`. A peer that is no
//!   socket of this network namespace is remote.
//! - Unix socket: `SO_PEERCRED` (uid and pid of the process that connected).
use super::access::Peer;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
/// inet_diag_msg: family, state, timer, retrans (4) + sockid (48) + expires, rqueue,
/// wqueue (12), then uid
const DIAG_MSG_UID_OFFSET: usize = 4 + 48 + 12;

/// The owner of the TCP socket at `peer` connected to our `local`.
pub fn tcp_peer(local: SocketAddr, peer: SocketAddr) -> Peer {
    let (local, peer) = (unmap(local), unmap(peer));
    let found = match sock_diag_uid(peer, local) {
        Ok(Some(uid)) => Some(uid),
        other => {
            if let Err(e) = &other {
                tracing::debug!("sock_diag lookup of {peer} failed ({e}); reading /proc/net/tcp");
            }
            // "not found" may also mean that this kernel has no tcp_diag (a module that
            // could not be loaded answers ENOENT too, e.g. without /lib/modules): the
            // /proc/net/tcp tables decide
            match proc_net_uid(peer, local) {
                Ok(found) => found,
                Err(e) => {
                    return Peer::Unknown(format!(
                        "neither sock_diag nor /proc/net/tcp answered for {peer}: {e}"
                    ));
                }
            }
        }
    };
    match found {
        Some(uid) => Peer::Local { uid, pid: None },
        // a loopback peer is a socket of ours by definition: not finding it means it is
        // gone already (or something odd is going on), never that it is remote
        None if peer.ip().is_loopback() => {
            Peer::Unknown(format!("no socket {peer} → {local} on this host"))
        }
        None => Peer::Remote(peer),
    }
}

/// `SO_PEERCRED` of a connected unix socket.
pub fn unix_peer(s: &tokio::net::UnixStream) -> Peer {
    match s.peer_cred() {
        Ok(c) => Peer::Local {
            uid: c.uid(),
            pid: c.pid(),
        },
        Err(e) => Peer::Unknown(format!("SO_PEERCRED: {e}")),
    }
}

/// `::ffff:a.b.c.d` → `a.b.c.d` (a v4 client of a dual-stack listener).
fn unmap(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

/// The request: nlmsghdr (16 bytes) + inet_diag_req_v2 (56 bytes) for the socket whose
/// own address is `src` and whose peer is `dst`.
fn diag_request(src: SocketAddr, dst: SocketAddr, seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(72);
    m.extend_from_slice(&72u32.to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    let family = if src.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    m.push(family as u8);
    m.push(libc::IPPROTO_TCP as u8);
    m.push(0); // no extensions
    m.push(0);
    m.extend_from_slice(&u32::MAX.to_ne_bytes()); // any state
    m.extend_from_slice(&src.port().to_be_bytes());
    m.extend_from_slice(&dst.port().to_be_bytes());
    for a in [src.ip(), dst.ip()] {
        let mut b = [0u8; 16];
        match a {
            IpAddr::V4(v4) => b[..4].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => b = v6.octets(),
        }
        m.extend_from_slice(&b);
    }
    m.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    m.extend_from_slice(&u32::MAX.to_ne_bytes()); // INET_DIAG_NOCOOKIE
    m.extend_from_slice(&u32::MAX.to_ne_bytes());
    debug_assert_eq!(m.len(), 72);
    m
}

/// The answer: `Ok(Some(uid))`, `Ok(None)` (no such socket), or the error.
fn parse_diag_reply(buf: &[u8], seq: u32) -> io::Result<Option<u32>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("sock_diag: {what}"));
    let mut off = 0;
    while off + 16 <= buf.len() {
        let u32_at = |o: usize| u32::from_ne_bytes(buf[o..o + 4].try_into().unwrap());
        let len = u32_at(off) as usize;
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        let msg_seq = u32_at(off + 8);
        if len < 16 || off + len > buf.len() {
            return Err(bad("truncated message"));
        }
        if msg_seq == seq {
            match ty {
                NLMSG_ERROR if len >= 20 => {
                    let errno = -(u32_at(off + 16) as i32);
                    return match errno {
                        0 | libc::ENOENT => Ok(None),
                        e => Err(io::Error::from_raw_os_error(e)),
                    };
                }
                SOCK_DIAG_BY_FAMILY if len >= 16 + DIAG_MSG_UID_OFFSET + 4 => {
                    return Ok(Some(u32_at(off + 16 + DIAG_MSG_UID_OFFSET)));
                }
                _ => return Err(bad("unexpected message")),
            }
        }
        off += (len + 3) & !3;
    }
    Err(bad("no answer"))
}

/// Asks the kernel who owns the socket `src` → `dst` (exact lookup, no dump).
fn sock_diag_uid(src: SocketAddr, dst: SocketAddr) -> io::Result<Option<u32>> {
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: setsockopt with a timeval of the size given.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    let seq = 1;
    let req = diag_request(src, dst, seq);
    // SAFETY: sockaddr_nl is plain old data; zeroed then filled in.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: the buffer and the address are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 8192];
    // SAFETY: recv into a buffer of the length given.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    parse_diag_reply(&buf[..n as usize], seq)
}

/// `0100007F:1F91` → 127.0.0.1:8081 (the kernel prints each 32-bit word in host order).
fn hex_addr(s: &str) -> Option<SocketAddr> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let mut b = [0u8; 16];
    let words = a.len() / 8;
    if a.len() % 8 != 0 || !(words == 1 || words == 4) {
        return None;
    }
    for i in 0..words {
        let w = u32::from_str_radix(a.get(i * 8..i * 8 + 8)?, 16).ok()?;
        b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    let ip = if words == 1 {
        IpAddr::from([b[0], b[1], b[2], b[3]])
    } else {
        IpAddr::from(b)
    };
    Some(unmap(SocketAddr::new(ip, port)))
}

/// The uid column of the `/proc/net/tcp`-format line whose local address is `src` and
/// remote address `dst`.
fn find_in_table(text: &str, src: SocketAddr, dst: SocketAddr) -> Option<u32> {
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().take(8).collect();
        if f.len() < 8 || hex_addr(f[1])? != src || hex_addr(f[2])? != dst {
            return None;
        }
        f[7].parse().ok()
    })
}

/// The fallback: both tables (a dual-stack client shows in tcp6 with a mapped address).
fn proc_net_uid(src: SocketAddr, dst: SocketAddr) -> io::Result<Option<u32>> {
    let mut last_err = None;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(table) {
            Ok(text) => {
                if let Some(uid) = find_in_table(&text, src, dst) {
                    return Ok(Some(uid));
                }
            }
            Err(e) => last_err = Some(e),
        }
    }
    match last_err {
        Some(e) if !std::path::Path::new("/proc/net/tcp").exists() => Err(e),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn proc_table_lines_are_matched_by_both_ends() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            0: 0100007F:2711 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1 0\n\
            1: 0100007F:D431 0100007F:2711 01 00000000:00000000 00:00000000 00000000 65534        0 101 1 0\n";
        let client: SocketAddr = "127.0.0.1:54321".parse().unwrap();
        let server: SocketAddr = "127.0.0.1:10001".parse().unwrap();
        assert_eq!(find_in_table(text, client, server), Some(65534));
        assert_eq!(find_in_table(text, server, client), None, "the other end");
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid\n\
            0: 0000000000000000FFFF00000100007F:D431 0000000000000000FFFF00000100007F:2711 01 00000000:00000000 00:00000000 00000000  1000 0 102\n\
            1: 00000000000000000000000001000000:D432 00000000000000000000000001000000:2711 01 00000000:00000000 00:00000000 00000000  1001 0 103\n";
        assert_eq!(find_in_table(v6, client, server), Some(1000), "v4-mapped");
        let c6: SocketAddr = "[::1]:54322".parse().unwrap();
        let s6: SocketAddr = "[::1]:10001".parse().unwrap();
        assert_eq!(find_in_table(v6, c6, s6), Some(1001));
    }

    #[test]
    fn diag_replies_are_parsed() {
        let mut ok = vec![0u8; 16 + 72];
        ok[..4].copy_from_slice(&(88u32).to_ne_bytes());
        ok[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        ok[8..12].copy_from_slice(&7u32.to_ne_bytes());
        ok[16 + DIAG_MSG_UID_OFFSET..16 + DIAG_MSG_UID_OFFSET + 4]
            .copy_from_slice(&4242u32.to_ne_bytes());
        assert_eq!(parse_diag_reply(&ok, 7).unwrap(), Some(4242));
        let mut err = vec![0u8; 36];
        err[..4].copy_from_slice(&36u32.to_ne_bytes());
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err[8..12].copy_from_slice(&7u32.to_ne_bytes());
        err[16..20].copy_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert_eq!(parse_diag_reply(&err, 7).unwrap(), None);
        err[16..20].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        assert!(parse_diag_reply(&err, 7).is_err());
        assert!(parse_diag_reply(&ok[..40], 7).is_err(), "truncated");
    }

    /// Our own connection, looked up both ways: the owner is the test's uid.
    #[test]
    fn own_loopback_connection_is_found_by_both_methods() {
        // SAFETY: getuid(2) cannot fail.
        let me = unsafe { libc::getuid() };
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(l) = TcpListener::bind(bind) else {
                continue; // no IPv6 here
            };
            let server = l.local_addr().unwrap();
            let c = TcpStream::connect(server).unwrap();
            let client = c.local_addr().unwrap();
            assert_eq!(sock_diag_uid(client, server).unwrap(), Some(me), "{bind}");
            assert_eq!(proc_net_uid(client, server).unwrap(), Some(me), "{bind}");
            assert_eq!(tcp_peer(server, client), Peer::Local { uid: me, pid: None });
            // the server's side of the same pair is not what we ask for
            let gone: SocketAddr = SocketAddr::new(client.ip(), 1);
            assert_eq!(sock_diag_uid(gone, server).unwrap(), None);
            assert!(matches!(tcp_peer(server, gone), Peer::Unknown(_)));
        }
        assert_eq!(
            tcp_peer(
                "127.0.0.1:10001".parse().unwrap(),
                "192.0.2.1:4000".parse().unwrap()
            ),
            Peer::Remote("192.0.2.1:4000".parse().unwrap())
        );
    }
}
