//! The HotSpot attach mechanism, from the outside (what `jcmd` does), for a JVM in any
//! mount and pid namespace:
//!
//! 1. the JVM opens its attach socket `/tmp/.java_pid<pid>` only when asked: a file
//!    `.attach_pid<pid>` (owned by root or by the JVM's user) in its `/tmp`, then SIGQUIT;
//!    `<pid>` is the JVM's own pid, which differs from ours inside a container (`NSpid`).
//!    A JVM that does not catch SIGQUIT would die of it, so `SigCgt` is checked first.
//! 2. the JVM accepts a connection only from its own effective uid and gid (JDK 8) or
//!    root as it sees root (later JDKs; root of another user namespace is not), so the
//!    connection is made from a short-lived thread of ours whose credentials are set to the
//!    JVM's with the raw `setresgid`/`setresuid` system calls (which, unlike libc's, change
//!    the calling thread only; the thread ends right after).
//! 3. the request `1\0load\0instrument\0false\0<jar>=<options>\0`; the reply is a status
//!    line (`0`) and the agent's `return code: N`.
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Facts about a process that attaching needs, from `/proc/PID/status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub pid: u32,
    /// the pid as the process sees itself (innermost pid namespace)
    pub nspid: u32,
    pub euid: u32,
    pub egid: u32,
    /// the process has a handler for SIGQUIT
    pub catches_sigquit: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AttachError {
    #[error("cannot read /proc/{0}/status: the process is gone")]
    Gone(u32),
    #[error(
        "the JVM does not handle SIGQUIT (yet) and has no attach socket open, so it cannot be asked to open one"
    )]
    NoSigquit,
    #[error(
        "the JVM did not open its attach socket within {0} s (started with -XX:+DisableAttachMechanism, or too busy)"
    )]
    NoSocket(u64),
    #[error("cannot prepare the attach: {0}")]
    Io(String),
    #[error("the JVM refused the connection to its attach socket: {0}")]
    Connect(String),
    #[error("the JVM answered the attach request with: {0}")]
    Refused(String),
}

/// Parses `/proc/PID/status`.
pub fn parse_status(pid: u32, status: &str) -> Option<Target> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    let nums = |v: String| -> Vec<u64> {
        v.split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect()
    };
    let uids = nums(field("Uid:")?);
    let gids = nums(field("Gid:")?);
    let nspid = field("NSpid:")
        .and_then(|v| nums(v).last().copied())
        .unwrap_or(u64::from(pid));
    let sigcgt = u64::from_str_radix(&field("SigCgt:")?, 16).ok()?;
    Some(Target {
        pid,
        nspid: u32::try_from(nspid).ok()?,
        euid: u32::try_from(*uids.get(1)?).ok()?,
        egid: u32::try_from(*gids.get(1)?).ok()?,
        catches_sigquit: sigcgt & (1 << (libc::SIGQUIT - 1)) != 0,
    })
}

pub fn target(proc_root: &Path, pid: u32) -> Result<Target, AttachError> {
    let s = std::fs::read_to_string(proc_root.join(pid.to_string()).join("status"))
        .map_err(|_| AttachError::Gone(pid))?;
    parse_status(pid, &s).ok_or(AttachError::Gone(pid))
}

/// The request bytes of one attach command (protocol 1: command and three arguments).
pub fn request(cmd: &str, args: [&str; 3]) -> Vec<u8> {
    let mut v = b"1\0".to_vec();
    v.extend_from_slice(cmd.as_bytes());
    v.push(0);
    for a in args {
        v.extend_from_slice(a.as_bytes());
        v.push(0);
    }
    v
}

/// Reads the reply of a `load`: `Ok(())`, or what the JVM said.
pub fn parse_load_reply(reply: &str) -> Result<(), AttachError> {
    let mut lines = reply.lines();
    let status = lines.next().unwrap_or("").trim();
    let rest: Vec<&str> = lines.collect();
    let rest = rest.join(" ");
    let rest = rest.trim();
    if status != "0" {
        return Err(AttachError::Refused(if rest.is_empty() {
            format!("status {status:?}")
        } else {
            format!("status {status}: {rest}")
        }));
    }
    match rest.strip_prefix("return code: ") {
        Some("0") => Ok(()),
        Some(code) => Err(AttachError::Refused(format!(
            "the agent failed to start (return code {code}; the JVM's stderr says why)"
        ))),
        // JDK 8 answers the load with the code alone
        None if rest.is_empty() || rest == "0" => Ok(()),
        None => Err(AttachError::Refused(rest.to_string())),
    }
}

/// `/proc/PID/root/tmp`: the JVM's `/tmp`, in its mount namespace (a systemd
/// `PrivateTmp=` or a container's).
pub fn tmp_of(proc_root: &Path, pid: u32) -> PathBuf {
    proc_root.join(pid.to_string()).join("root/tmp")
}

/// Makes the JVM open its attach socket (unless it is open already); returns its path as
/// this daemon reaches it.
pub fn open_socket(proc_root: &Path, t: &Target, wait: Duration) -> Result<PathBuf, AttachError> {
    let tmp = tmp_of(proc_root, t.pid);
    let sock = tmp.join(format!(".java_pid{}", t.nspid));
    if is_socket(&sock) {
        return Ok(sock);
    }
    if !t.catches_sigquit {
        return Err(AttachError::NoSigquit);
    }
    let trigger = tmp.join(format!(".attach_pid{}", t.nspid));
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&trigger)
        .map_err(|e| AttachError::Io(format!("cannot create {}: {e}", trigger.display())))?;
    // SAFETY: kill(2) with a pid and a signal number.
    let rc = unsafe { libc::kill(t.pid as i32, libc::SIGQUIT) };
    let result = if rc != 0 {
        let e = std::io::Error::last_os_error();
        Err(if e.raw_os_error() == Some(libc::ESRCH) {
            AttachError::Gone(t.pid)
        } else {
            AttachError::Io(format!(
                "cannot send SIGQUIT to the JVM: {e} (the daemon needs CAP_KILL for other users' JVMs)"
            ))
        })
    } else {
        let end = Instant::now() + wait;
        loop {
            if is_socket(&sock) {
                break Ok(sock);
            }
            if Instant::now() > end {
                break Err(AttachError::NoSocket(wait.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let _ = std::fs::remove_file(&trigger);
    result
}

fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

/// Sends one command on the attach socket as the JVM's user; returns the whole reply.
pub fn command(
    sock: &Path,
    t: &Target,
    req: Vec<u8>,
    timeout: Duration,
) -> Result<String, AttachError> {
    // The directory is opened as root; the thread reaches the socket through our own
    // /proc/self/fd (always allowed to ourselves), whatever its credentials.
    let dir = sock
        .parent()
        .ok_or_else(|| AttachError::Io("attach socket without a directory".into()))?;
    let name = sock
        .file_name()
        .ok_or_else(|| AttachError::Io("attach socket without a name".into()))?
        .to_owned();
    let dirf = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)
        .map_err(|e| AttachError::Io(format!("cannot open {}: {e}", dir.display())))?;
    use std::os::fd::AsRawFd;
    let mut via = PathBuf::from(format!("/proc/self/fd/{}", dirf.as_raw_fd()));
    via.push(&name);
    if via.as_os_str().as_bytes().len() >= 108 {
        return Err(AttachError::Io("attach socket path too long".into()));
    }
    let (uid, gid) = (t.euid, t.egid);
    let th = std::thread::Builder::new()
        .name("qtap-attach".into())
        .spawn(move || -> Result<String, AttachError> {
            // SAFETY: raw credential system calls change this thread only; it ends below.
            unsafe {
                if libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0
                    || libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0
                {
                    return Err(AttachError::Io(format!(
                        "cannot switch to the JVM's uid {uid} gid {gid}: {} (the daemon needs CAP_SETUID and CAP_SETGID for other users' JVMs)",
                        std::io::Error::last_os_error()
                    )));
                }
            }
            let mut s = std::os::unix::net::UnixStream::connect(&via)
                .map_err(|e| AttachError::Connect(e.to_string()))?;
            s.set_read_timeout(Some(timeout)).ok();
            s.set_write_timeout(Some(timeout)).ok();
            s.write_all(&req)
                .map_err(|e| AttachError::Connect(format!("sending the request: {e}")))?;
            let mut out = Vec::new();
            s.read_to_end(&mut out)
                .map_err(|e| AttachError::Refused(format!("no complete reply: {e}")))?;
            Ok(String::from_utf8_lossy(&out).into_owned())
        })
        .map_err(|e| AttachError::Io(format!("cannot start a thread: {e}")))?;
    let r = th
        .join()
        .unwrap_or_else(|_| Err(AttachError::Io("attach thread panicked".into())));
    drop(dirf);
    r
}

/// Loads the Java agent `jar` (a path as the JVM sees it) with `options`.
pub fn load_agent(
    proc_root: &Path,
    t: &Target,
    jar: &str,
    options: &str,
) -> Result<(), AttachError> {
    let sock = open_socket(proc_root, t, Duration::from_secs(5))?;
    let arg = format!("{jar}={options}");
    let reply = command(
        &sock,
        t,
        request("load", ["instrument", "false", &arg]),
        Duration::from_secs(20),
    )?;
    parse_load_reply(&reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let s = "Name:\tjava\nUid:\t1000\t1001\t1000\t1001\nGid:\t50\t51\t50\t51\nNSpid:\t4242\t7\nSigCgt:\t0000000181005ccf\n";
        let t = parse_status(4242, s).unwrap();
        assert_eq!((t.nspid, t.euid, t.egid), (7, 1001, 51));
        assert!(t.catches_sigquit);
        let s2 = s.replace("0000000181005ccf", "0000000181005cc8");
        assert!(!parse_status(4242, &s2).unwrap().catches_sigquit);
        let no_ns = "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nSigCgt:\t4\n";
        assert_eq!(parse_status(9, no_ns).unwrap().nspid, 9);
    }

    #[test]
    fn request_and_replies() {
        assert_eq!(
            request("load", ["instrument", "false", "/a.jar=x"]),
            b"1\0load\0instrument\0false\0/a.jar=x\0"
        );
        assert_eq!(parse_load_reply("0\nreturn code: 0\n"), Ok(()));
        assert_eq!(parse_load_reply("0\n0\n"), Ok(()));
        assert!(matches!(
            parse_load_reply("0\nreturn code: 102\n"),
            Err(AttachError::Refused(m)) if m.contains("102")
        ));
        assert!(matches!(
            parse_load_reply("101\nagent library failed to init: instrument\n"),
            Err(AttachError::Refused(m)) if m.contains("agent library failed")
        ));
    }
}
