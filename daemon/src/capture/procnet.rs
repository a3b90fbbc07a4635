//! TCP sockets from `/proc`: which fds are TCP sockets and what their tuples are. Used
//! for connections that were open before the probes attached, and to confirm sockets
//! accepted without a peer address.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpEntry {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// kernel TCP state (1 = ESTABLISHED, 10 = LISTEN, ...)
    pub state: u8,
}

fn hex_addr(s: &str) -> Option<SocketAddr> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let ip = match a.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(a, 16).ok()?.to_le_bytes(),
        )),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                let w = u32::from_str_radix(a.get(i * 8..i * 8 + 8)?, 16).ok()?;
                b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            let v6 = Ipv6Addr::from(b);
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Parses `/proc/net/tcp` or `tcp6` text into inode → entry.
pub fn parse_tcp_table(text: &str, out: &mut HashMap<u64, TcpEntry>) {
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let (Some(local), Some(remote)) = (hex_addr(f[1]), hex_addr(f[2])) else {
            continue;
        };
        let Ok(state) = u8::from_str_radix(f[3], 16) else {
            continue;
        };
        let Ok(inode) = f[9].parse::<u64>() else {
            continue;
        };
        if inode != 0 {
            out.insert(
                inode,
                TcpEntry {
                    local,
                    remote,
                    state,
                },
            );
        }
    }
}

/// TCP sockets visible in the network namespace of `pid`.
pub fn tcp_table(proc_root: &Path, pid: u32) -> HashMap<u64, TcpEntry> {
    let mut out = HashMap::new();
    for f in ["tcp", "tcp6"] {
        if let Ok(t) = std::fs::read_to_string(proc_root.join(pid.to_string()).join("net").join(f))
        {
            parse_tcp_table(&t, &mut out);
        }
    }
    out
}

/// Inodes of the unix sockets in the network namespace of `pid` (`/proc/PID/net/unix`:
/// `Num RefCount Protocol Flags Type St Inode Path`).
pub fn unix_inodes(proc_root: &Path, pid: u32) -> std::collections::HashSet<u64> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("net").join("unix"))
        .unwrap_or_default();
    parse_unix_inodes(&text)
}

fn parse_unix_inodes(text: &str) -> std::collections::HashSet<u64> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(6)?.parse().ok())
        .collect()
}

/// `socket:[12345]` → 12345.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The socket inode behind `/proc/PID/fd/FD`, if it is a socket.
pub fn fd_socket_inode(proc_root: &Path, pid: u32, fd: i32) -> Option<u64> {
    let link = std::fs::read_link(
        proc_root
            .join(pid.to_string())
            .join("fd")
            .join(fd.to_string()),
    )
    .ok()?;
    socket_inode(link.to_str()?)
}

/// Every (fd, entry) of `pid` that is a TCP socket not in LISTEN state.
pub fn tcp_fds(proc_root: &Path, pid: u32, table: &HashMap<u64, TcpEntry>) -> Vec<(i32, TcpEntry)> {
    tcp_fds_where(proc_root, pid, table, |t| t.state != 10)
}

/// The addresses `pid`'s listening TCP sockets are bound to.
pub fn listening(proc_root: &Path, pid: u32, table: &HashMap<u64, TcpEntry>) -> Vec<SocketAddr> {
    tcp_fds_where(proc_root, pid, table, |t| t.state == 10)
        .into_iter()
        .map(|(_, t)| t.local)
        .collect()
}

fn tcp_fds_where(
    proc_root: &Path,
    pid: u32,
    table: &HashMap<u64, TcpEntry>,
    keep: impl Fn(&TcpEntry) -> bool,
) -> Vec<(i32, TcpEntry)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(proc_root.join(pid.to_string()).join("fd")) else {
        return out;
    };
    for e in dir.flatten() {
        let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(link) = std::fs::read_link(e.path()) else {
            continue;
        };
        let Some(inode) = link.to_str().and_then(socket_inode) else {
            continue;
        };
        if let Some(t) = table.get(&inode)
            && keep(t)
        {
            out.push((fd, *t));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_socket_inodes_from_net_unix() {
        let t = "Num       RefCount Protocol Flags    Type St Inode Path\n\
                 0000000021034c1b: 00000002 00000000 00010000 0001 01 1793665 /var/run/docker.sock\n\
                 000000000b555e6a: 00000003 00000000 00000000 0001 03  1146\n\
                 garbage\n";
        let got = parse_unix_inodes(t);
        assert_eq!(got.len(), 2);
        assert!(got.contains(&1_793_665) && got.contains(&1146));
        // this process's own table holds a unix socket it makes
        let dir = std::env::temp_dir().join(format!("qtap-unix-inodes-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let l = std::os::unix::net::UnixListener::bind(&dir).unwrap();
        let me = std::process::id();
        let ino = {
            use std::os::fd::AsRawFd as _;
            fd_socket_inode(Path::new("/proc"), me, l.as_raw_fd()).unwrap()
        };
        assert!(unix_inodes(Path::new("/proc"), me).contains(&ino));
        let _ = std::fs::remove_file(&dir);
    }

    #[test]
    fn parses_v4_and_v6_tables() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 20 4 30 10 -1\n   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1\n";
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000001000000:01BB 0000000000000000FFFF00000100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 5151 1\n";
        let mut m = HashMap::new();
        parse_tcp_table(v4, &mut m);
        parse_tcp_table(v6, &mut m);
        let e = m[&4242];
        assert_eq!(e.local.to_string(), "127.0.0.1:8080");
        assert_eq!(e.remote.to_string(), "127.0.0.1:54000");
        assert_eq!(e.state, 1);
        assert_eq!(m[&77].state, 10);
        let e6 = m[&5151];
        assert_eq!(e6.local.to_string(), "[::1]:443");
        assert_eq!(e6.remote.to_string(), "127.0.0.1:50000");
    }

    #[test]
    fn socket_link() {
        assert_eq!(socket_inode("socket:[123]"), Some(123));
        assert_eq!(socket_inode("/dev/null"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
    }
}
