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
//!    line (`0`) and the agent's `return code: N` (read up to [`MAX_REPLY`] bytes).
//!
//! The JVM's `/tmp` is its user's: it is held open (`safefs::Dir`, reached without following
//! any symlink), the trigger file is created `O_EXCL | O_NOFOLLOW` in it (a file or link
//! planted there is never followed, truncated or removed), and the socket is reached through
//! that descriptor.
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::capture::safefs;

/// Bytes of an attach reply read at most (a real one is a few lines).
pub const MAX_REPLY: u64 = 64 * 1024;

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
    let s =
        crate::capture::libs::read_proc(&proc_root.join(pid.to_string()).join("status"), 64 * 1024)
            .ok_or(AttachError::Gone(pid))?;
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

/// Makes the JVM open its attach socket (unless it is open already); returns its name in
/// `tmp` (the JVM's `/tmp`, held open).
pub fn open_socket(tmp: &safefs::Dir, t: &Target, wait: Duration) -> Result<String, AttachError> {
    let sock = format!(".java_pid{}", t.nspid);
    if is_socket(tmp, &sock) {
        return Ok(sock);
    }
    if !t.catches_sigquit {
        return Err(AttachError::NoSigquit);
    }
    let trigger = format!(".attach_pid{}", t.nspid);
    let made = match tmp.create(OsStr::new(&trigger), 0o600) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // left by another tool (jcmd) or planted: used only when it is what the JVM
            // itself accepts (a regular file of root's or of its user's), never followed
            match tmp.stat_at(OsStr::new(&trigger)) {
                Ok(Some(st))
                    if st.st_mode & libc::S_IFMT == libc::S_IFREG
                        && (st.st_uid == 0 || st.st_uid == t.euid) =>
                {
                    false
                }
                _ => {
                    return Err(AttachError::Io(format!(
                        "/tmp/{trigger} in the JVM's /tmp is a symbolic link or another user's file: refusing to use it (remove it)"
                    )));
                }
            }
        }
        Err(e) => {
            return Err(AttachError::Io(format!(
                "cannot create /tmp/{trigger} in the JVM's /tmp: {e}"
            )));
        }
    };
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
            if is_socket(tmp, &sock) {
                break Ok(sock);
            }
            if Instant::now() > end {
                break Err(AttachError::NoSocket(wait.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    if made {
        let _ = tmp.unlink(OsStr::new(&trigger));
    }
    result
}

fn is_socket(tmp: &safefs::Dir, name: &str) -> bool {
    tmp.stat_at(OsStr::new(name))
        .ok()
        .flatten()
        .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
}

/// Sends one command on the attach socket `sock` (a name in `tmp`) as the JVM's user;
/// returns the reply (at most [`MAX_REPLY`] bytes).
pub fn command(
    tmp: &safefs::Dir,
    sock: &str,
    t: &Target,
    req: Vec<u8>,
    timeout: Duration,
) -> Result<String, AttachError> {
    // The directory is held open by root; the thread reaches the socket through our own
    // /proc/self/fd (always allowed to ourselves), whatever its credentials.
    let via = tmp
        .fd_path(OsStr::new(sock))
        .map_err(|e| AttachError::Io(format!("attach socket {sock}: {e}")))?;
    if via.as_os_str().as_bytes().len() >= 108 {
        return Err(AttachError::Io("attach socket path too long".into()));
    }
    let (uid, gid) = (t.euid, t.egid);
    std::thread::scope(|scope| {
        let th = std::thread::Builder::new()
            .name("qtap-attach".into())
            .spawn_scoped(scope, move || -> Result<String, AttachError> {
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
                s.take(MAX_REPLY)
                    .read_to_end(&mut out)
                    .map_err(|e| AttachError::Refused(format!("no complete reply: {e}")))?;
                Ok(String::from_utf8_lossy(&out).into_owned())
            })
            .map_err(|e| AttachError::Io(format!("cannot start a thread: {e}")))?;
        th.join()
            .unwrap_or_else(|_| Err(AttachError::Io("attach thread panicked".into())))
    })
}

/// Loads the Java agent `jar` (a path as the JVM sees it) with `options`.
pub fn load_agent(
    tmp: &safefs::Dir,
    t: &Target,
    jar: &str,
    options: &str,
) -> Result<(), AttachError> {
    let sock = open_socket(tmp, t, Duration::from_secs(5))?;
    let arg = format!("{jar}={options}");
    let reply = command(
        tmp,
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
