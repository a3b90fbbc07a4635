//! `--listen unix:/run/qtap/devtools.sock`: a unix socket, created safely.
//!
//! - The directory is created if missing (mode 0755, one level only). Whether new or not,
//!   it must be a real directory (not a symlink) owned by us and writable by nobody else,
//!   so no other user can swap the socket for a link between our checks and our use.
//! - An existing path is removed only when it is a socket nobody listens on (a stale one
//!   left by a daemon that died); anything else is an error, left alone.
//! - The socket is mode 0666: anyone may connect, because connecting gives nothing: every
//!   connection is identified (`SO_PEERCRED`) and refused unless its uid is allowed, with a
//!   page that says so. A tighter mode would only hide that page.
//! - At exit the socket is removed if it is still the one we made (same inode and change
//!   time).
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Mode of the socket file (see the module comment).
pub const SOCKET_MODE: u32 = 0o666;

#[derive(Debug, thiserror::Error)]
pub enum UnixListenError {
    #[error(
        "invalid --listen unix:{path}: the path must be absolute, e.g. unix:/run/qtap/devtools.sock"
    )]
    Relative { path: String },
    #[error("cannot create the socket directory {dir}: {source}")]
    Mkdir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "refusing to listen in {dir}: {why} — another user could replace the socket; use a \
         directory owned by root and writable only by it (e.g. /run/qtap)"
    )]
    UnsafeDir { dir: PathBuf, why: String },
    #[error(
        "refusing to listen on {path}: it exists and is {what}, not a stale socket — remove it \
         yourself or pick another path"
    )]
    Occupied { path: PathBuf, what: String },
    #[error(
        "cannot listen on {path}: another process is serving on it (another qtap?) — stop it or pick another path"
    )]
    InUse { path: PathBuf },
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What we created, removed again at exit if it is still ours.
#[derive(Debug)]
pub struct Created {
    pub path: PathBuf,
    dev: u64,
    ino: u64,
    /// (inode numbers are reused at once on tmpfs: the change time tells a successor apart)
    ctime: (i64, i64),
}

impl Created {
    /// Removes the socket file if it is the one we bound (not one a successor made).
    pub fn remove(&self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path)
            && m.dev() == self.dev
            && m.ino() == self.ino
            && (m.ctime(), m.ctime_nsec()) == self.ctime
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds a listening unix socket at `path` (see the module comment for the rules).
pub fn bind(path: &str) -> Result<(UnixListener, Created), UnixListenError> {
    let p = Path::new(path);
    if !p.is_absolute() || p.file_name().is_none() {
        return Err(UnixListenError::Relative { path: path.into() });
    }
    let dir = p.parent().unwrap_or(Path::new("/"));
    check_dir(dir)?;
    remove_stale(p)?;
    let listener = UnixListener::bind(p).map_err(|source| UnixListenError::Bind {
        path: p.into(),
        source,
    })?;
    let bind_err = |source| UnixListenError::Bind {
        path: p.into(),
        source,
    };
    // The directory is ours and closed to others, so the path still names our socket.
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(SOCKET_MODE)).map_err(bind_err)?;
    let m = std::fs::symlink_metadata(p).map_err(bind_err)?;
    Ok((
        listener,
        Created {
            path: p.into(),
            dev: m.dev(),
            ino: m.ino(),
            ctime: (m.ctime(), m.ctime_nsec()),
        },
    ))
}

fn check_dir(dir: &Path) -> Result<(), UnixListenError> {
    let unsafe_dir = |why: String| UnixListenError::UnsafeDir {
        dir: dir.into(),
        why,
    };
    let m = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(dir)
                .map_err(|source| UnixListenError::Mkdir {
                    dir: dir.into(),
                    source,
                })?;
            std::fs::symlink_metadata(dir).map_err(|source| UnixListenError::Mkdir {
                dir: dir.into(),
                source,
            })?
        }
        Err(source) => {
            return Err(UnixListenError::Mkdir {
                dir: dir.into(),
                source,
            });
        }
    };
    if m.file_type().is_symlink() {
        return Err(unsafe_dir("it is a symbolic link".into()));
    }
    if !m.is_dir() {
        return Err(unsafe_dir("it is not a directory".into()));
    }
    // SAFETY: geteuid(2) cannot fail.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me {
        return Err(unsafe_dir(format!(
            "it is owned by uid {}, not by us ({me})",
            m.uid()
        )));
    }
    if m.mode() & 0o022 != 0 {
        return Err(unsafe_dir(format!(
            "it is writable by others (mode {:o})",
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

fn remove_stale(p: &Path) -> Result<(), UnixListenError> {
    let m = match std::fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(_) => return Ok(()),
    };
    let ft = m.file_type();
    use std::os::unix::fs::FileTypeExt;
    if !ft.is_socket() {
        let what = if ft.is_symlink() {
            "a symbolic link"
        } else if ft.is_dir() {
            "a directory"
        } else {
            "a file"
        };
        return Err(UnixListenError::Occupied {
            path: p.into(),
            what: what.into(),
        });
    }
    match UnixStream::connect(p) {
        Ok(_) => Err(UnixListenError::InUse { path: p.into() }),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            tracing::info!("removing the stale socket {}", p.display());
            std::fs::remove_file(p).map_err(|source| UnixListenError::Bind {
                path: p.into(),
                source,
            })
        }
        Err(source) => Err(UnixListenError::Bind {
            path: p.into(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("qtap-ul-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn creates_dir_and_socket_and_removes_only_its_own() {
        let d = tmpdir("create");
        let sock = d.join("devtools.sock");
        let (l, created) = bind(sock.to_str().unwrap()).unwrap();
        let dm = std::fs::metadata(&d).unwrap();
        assert_eq!(dm.mode() & 0o777, 0o755);
        let sm = std::fs::symlink_metadata(&sock).unwrap();
        assert_eq!(sm.mode() & 0o777, SOCKET_MODE);
        // a second daemon on the same path is told someone serves there
        let e = bind(sock.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("another process is serving"), "{e}");
        drop(l);
        // the listener is gone: the file is stale now and is replaced
        let (l2, created2) = bind(sock.to_str().unwrap()).unwrap();
        drop(created);
        // a successor's socket (a distinct inode: the old one is kept alive under another
        // name) is left alone
        let old = d.join("old.sock");
        std::fs::rename(&sock, &old).unwrap();
        drop(l2);
        let (_l3, created3) = bind(sock.to_str().unwrap()).unwrap();
        created2.remove();
        assert!(sock.exists(), "a successor's socket was removed");
        created3.remove();
        assert!(!sock.exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn refuses_files_links_and_open_directories() {
        let d = tmpdir("refuse");
        std::fs::DirBuilder::new().mode(0o755).create(&d).unwrap();
        let f = d.join("file");
        std::fs::write(&f, "keep me").unwrap();
        let e = bind(f.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("is a file, not a stale socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "keep me");
        let link = d.join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        let e = bind(link.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        // a symlinked directory
        let ld = tmpdir("refuse-linkdir");
        std::os::unix::fs::symlink(&d, &ld).unwrap();
        let e = bind(ld.join("s.sock").to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link"), "{e}");
        // a world-writable directory (like /tmp)
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = bind(d.join("s.sock").to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("writable by others"), "{e}");
        assert!(bind("relative.sock").is_err());
        let _ = std::fs::remove_file(&ld);
        let _ = std::fs::remove_dir_all(&d);
    }
}
