//! The listening sockets: the ones systemd passes (socket activation), else one per
//! `--listen` (`ADDR:PORT`, or `unix:PATH`, see `listen_unix`).
//!
//! Call [`acquire`] before starting any thread: reading `LISTEN_FDS` unsets it, and
//! changing the environment is only sound while the process has one thread.
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(
        "refusing to listen on {addr}: it is not a loopback address, and the event stream carries \
         credentials and personal data — pass --allow-remote to do it anyway, or keep the default \
         (127.0.0.1:10001) and use `ssh -L 10001:localhost:10001 HOST`"
    )]
    NotLoopback { addr: String },
    #[error(
        "invalid --listen address `{addr}`: {why} — use e.g. 127.0.0.1:10001, [::1]:10001 or unix:/run/qtap/devtools.sock"
    )]
    BadAddress { addr: String, why: String },
    #[error(
        "cannot listen on {addr}: {source} — is another qtap (or another program) using it? Pick another with --listen"
    )]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "the socket passed by systemd (LISTEN_FDS) is neither a TCP nor a unix listening socket: \
         {source} — \
         qtap-devtools.socket must use ListenStream=ADDRESS:PORT or ListenStream=/PATH"
    )]
    Inherited { source: std::io::Error },
    #[error(
        "the socket passed by systemd listens on {addr}, which is not a loopback address — \
         add --allow-remote to the service's ExecStart= if that is intended"
    )]
    InheritedNotLoopback { addr: SocketAddr },
    #[error(
        "the socket passed by systemd (LISTEN_FDS) is a unix socket that cannot be used: {source}"
    )]
    InheritedUnix { source: std::io::Error },
    #[error(transparent)]
    Unix(#[from] super::listen_unix::UnixListenError),
}

/// A listening socket: TCP, or a unix socket (`--listen unix:PATH`).
#[derive(Debug)]
pub enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// Where a [`Socket`] listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[derive(Debug)]
pub struct Listener {
    pub socket: Socket,
    pub addr: ListenAddr,
    /// passed by systemd (then the daemon exits when idle)
    pub socket_activated: bool,
    /// a unix socket file we made (removed at exit)
    pub created: Option<super::listen_unix::Created>,
}

/// The sockets systemd passed if any (all of them: a TCP and a unix socket unit may both
/// start the service), else new ones bound to each `--listen`.
pub fn acquire(listen: &[String], allow_remote: bool) -> Result<Vec<Listener>, ListenError> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() > 0 {
        let mut out = Vec::new();
        for i in 0..fds.len() {
            out.push(inherited(&mut fds, i, allow_remote)?);
        }
        // (one line per socket: "using the socket passed by systemd" is what the VM tests
        // look for in the journal)
        for l in &out {
            tracing::info!(
                "using the socket passed by systemd ({}); --listen is ignored",
                l.addr
            );
        }
        return Ok(out);
    }
    listen.iter().map(|l| bind(l, allow_remote)).collect()
}

fn inherited(
    fds: &mut listenfd::ListenFd,
    i: usize,
    allow_remote: bool,
) -> Result<Listener, ListenError> {
    if let Ok(Some(socket)) = fds.take_unix_listener(i) {
        let path = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(PathBuf::from))
            .ok_or_else(|| ListenError::InheritedUnix {
                source: std::io::Error::other("not bound to a path"),
            })?;
        return Ok(Listener {
            socket: Socket::Unix(socket),
            addr: ListenAddr::Unix(path),
            socket_activated: true,
            created: None,
        });
    }
    let socket = match fds.take_tcp_listener(i) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(ListenError::Inherited {
                source: std::io::Error::other("no descriptor"),
            });
        }
        Err(source) => return Err(ListenError::Inherited { source }),
    };
    let local_addr = socket
        .local_addr()
        .map_err(|source| ListenError::Inherited { source })?;
    if !local_addr.ip().is_loopback() {
        if !allow_remote {
            return Err(ListenError::InheritedNotLoopback { addr: local_addr });
        }
        tracing::warn!(
            "serving on non-loopback {local_addr} (--allow-remote): anyone who can reach it can read the captured traffic"
        );
    }
    Ok(Listener {
        socket: Socket::Tcp(socket),
        addr: ListenAddr::Tcp(local_addr),
        socket_activated: true,
        created: None,
    })
}

/// A new socket for one `--listen` value.
fn bind(listen: &str, allow_remote: bool) -> Result<Listener, ListenError> {
    if let Some(path) = listen.strip_prefix("unix:") {
        let (socket, created) = super::listen_unix::bind(path)?;
        return Ok(Listener {
            socket: Socket::Unix(socket),
            addr: ListenAddr::Unix(created.path.clone()),
            socket_activated: false,
            created: Some(created),
        });
    }
    let addrs = check_listen(listen, allow_remote)?;
    let mut last = None;
    for addr in &addrs {
        match TcpListener::bind(addr) {
            Ok(socket) => {
                let local_addr = socket.local_addr().unwrap_or(*addr);
                return Ok(Listener {
                    socket: Socket::Tcp(socket),
                    addr: ListenAddr::Tcp(local_addr),
                    socket_activated: false,
                    created: None,
                });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(ListenError::Bind {
        addr: listen.to_string(),
        source: last.unwrap_or_else(|| std::io::Error::other("no address")),
    })
}

/// Resolves `--listen` and applies the loopback rule (warning when `--allow-remote` lets a
/// non-loopback address through).
pub fn check_listen(listen: &str, allow_remote: bool) -> Result<Vec<SocketAddr>, ListenError> {
    let bad = |why: String| ListenError::BadAddress {
        addr: listen.to_string(),
        why,
    };
    let addrs: Vec<SocketAddr> = match listen.parse::<SocketAddr>() {
        Ok(a) => vec![a],
        // names (`localhost:10001`) resolve through the system resolver
        Err(_) => listen
            .to_socket_addrs()
            .map_err(|e| bad(e.to_string()))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(bad("it resolves to no address".into()));
    }
    if let Some(a) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        if !allow_remote {
            return Err(ListenError::NotLoopback {
                addr: a.to_string(),
            });
        }
        tracing::warn!(
            "listening on non-loopback {a} (--allow-remote): anyone who can reach it can read the captured traffic"
        );
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_accepted() {
        assert_eq!(
            check_listen("127.0.0.1:10001", false).unwrap(),
            vec!["127.0.0.1:10001".parse().unwrap()]
        );
        assert!(check_listen("[::1]:10001", false).is_ok());
        assert!(
            check_listen("localhost:10001", false)
                .unwrap()
                .iter()
                .all(|a| a.ip().is_loopback())
        );
    }

    #[test]
    fn remote_needs_the_flag() {
        let e = check_listen("0.0.0.0:10001", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a loopback address") && e.contains("--allow-remote"),
            "{e}"
        );
        assert!(check_listen("0.0.0.0:10001", true).is_ok());
        assert!(check_listen("[::]:10001", false).is_err());
    }

    #[test]
    fn garbage_is_explained() {
        let e = check_listen("10001", false).unwrap_err().to_string();
        assert!(e.contains("invalid --listen address `10001`"), "{e}");
    }

    #[test]
    fn busy_port_is_explained() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        // no LISTEN_FDS in the test environment, so this binds
        let e = acquire(std::slice::from_ref(&addr), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("cannot listen on {addr}")), "{e}");
    }
}
