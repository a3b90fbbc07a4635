//! Opening files of other users and containers, as root, without being turned against the
//! host. Every file the capture reads or writes under a process's root (`/proc/PID/root`:
//! libraries, executables, a JDK's `release`, a JVM's `/tmp`) goes through here:
//!
//! - paths are resolved by `openat2(2)` under the process's root with `RESOLVE_IN_ROOT`
//!   (an absolute symlink or `..` cannot leave that root) and `RESOLVE_NO_MAGICLINKS`
//!   (no `/proc/*/fd` jumps); where we create or write (a JVM's `/tmp`), with
//!   `RESOLVE_NO_SYMLINKS` too: no symlink at all is followed there;
//! - a file to read is first opened `O_PATH` (opening a FIFO or a device has no effect then),
//!   must be a regular file (`fstat`) no larger than a cap, and only then is reopened for
//!   reading, `O_NONBLOCK`, through our own `/proc/self/fd`; reads are bounded `pread`s,
//!   never a mapping (a file its owner truncates under a mapping kills the reader with
//!   SIGBUS);
//! - files we create are made with `O_CREAT | O_EXCL | O_NOFOLLOW` in a directory we hold
//!   open, and their mode is set on the descriptor (`fchmod`), never by path.
//!
//! Linux ≥ 5.6 has `openat2`; where it is refused (`ENOSYS`, e.g. an old seccomp profile) a
//! component-by-component `O_NOFOLLOW` walk stands in, which follows no symlink at all.
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How symlinks inside the root are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    /// followed, but only inside the root (reading libraries: `libssl.so` → `libssl.so.3`,
    /// `/lib` → `usr/lib`)
    InRoot,
    /// none followed (where we create or write)
    None,
}

fn cstr(p: &[u8]) -> io::Result<CString> {
    CString::new(p).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
}

fn cvt(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: `fd` was just returned by the kernel for us and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// `openat2(dirfd, path, {flags, mode, resolve})`.
pub fn openat2(
    dirfd: RawFd,
    path: &[u8],
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    let mut how: libc::open_how = {
        // SAFETY: open_how is plain integers; all-zero is valid.
        unsafe { std::mem::zeroed() }
    };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = u64::from(mode);
    how.resolve = resolve;
    loop {
        // SAFETY: a valid C string and a valid open_how of the size we pass.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                c.as_ptr(),
                &raw const how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        match cvt(rc) {
            Ok(fd) => return Ok(owned(fd)),
            // EAGAIN: a rename raced a RESOLVE_IN_ROOT walk; the kernel asks for a retry
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) => {}
            Err(e) => return Err(e),
        }
    }
}

/// `openat(dirfd, name, flags | O_NOFOLLOW)` for one component.
fn openat_nofollow(dirfd: RawFd, name: &[u8], flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: a valid C string.
    let rc = unsafe {
        libc::openat(
            dirfd,
            c.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    cvt(rc as libc::c_long).map(owned)
}

/// One path component: not empty, `.`, `..`, and without `/`.
fn check_name(name: &OsStr) -> io::Result<&[u8]> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a single file name"),
        ));
    }
    Ok(b)
}

/// `fstat(2)`.
pub fn fstat(fd: &impl AsRawFd) -> io::Result<libc::stat> {
    // SAFETY: all-zero is a valid stat to be filled in.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and a valid stat pointer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } as libc::c_long)?;
    Ok(st)
}

/// `fstatfs(2)`'s `f_type`.
pub fn fs_type(fd: &impl AsRawFd) -> io::Result<i64> {
    // SAFETY: all-zero is a valid statfs to be filled in.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and a valid statfs pointer.
    cvt(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) } as libc::c_long)?;
    Ok(st.f_type)
}

fn file_type(st: &libc::stat) -> u32 {
    st.st_mode & libc::S_IFMT
}

fn kind(st: &libc::stat) -> &'static str {
    match file_type(st) {
        libc::S_IFREG => "a regular file",
        libc::S_IFDIR => "a directory",
        libc::S_IFLNK => "a symbolic link",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        _ => "of an unknown type",
    }
}

/// The error for a file that is not what we expected.
fn not_a(what: &str, st: &libc::stat) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("is {}, not {what}", kind(st)),
    )
}

/// A regular file opened for reading, with its `fstat` at the time.
#[derive(Debug)]
pub struct ReadFile {
    pub file: File,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub uid: u32,
}

/// A file found under a root, held by an `O_PATH` descriptor (nothing opened it for
/// reading or writing yet: finding a FIFO or a device has no effect), with its `fstat`.
#[derive(Debug)]
pub struct Found {
    fd: OwnedFd,
    pub st: libc::stat,
}

impl Found {
    pub fn is_regular(&self) -> bool {
        file_type(&self.st) == libc::S_IFREG
    }

    /// `fstatfs(2)`'s `f_type` of the file's filesystem.
    pub fn fs_type(&self) -> io::Result<i64> {
        fs_type(&self.fd)
    }

    /// Opens the file for reading, `O_NONBLOCK`, after checking it is a regular file no
    /// larger than `cap` (through our own `/proc/self/fd`, which names exactly this file).
    pub fn open_read(&self, cap: u64) -> io::Result<ReadFile> {
        let st = self.st;
        if file_type(&st) != libc::S_IFREG {
            return Err(not_a("a regular file", &st));
        }
        if st.st_size as u64 > cap {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("is {} bytes, more than the {cap} read at most", st.st_size),
            ));
        }
        let me = cstr(format!("/proc/self/fd/{}", self.fd.as_raw_fd()).as_bytes())?;
        // SAFETY: a valid C string.
        let rc = unsafe {
            libc::open(
                me.as_ptr(),
                libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC,
            )
        };
        let fd = cvt(rc as libc::c_long).map(owned)?;
        let st2 = fstat(&fd)?;
        if (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino) {
            return Err(io::Error::other("changed while it was opened"));
        }
        Ok(ReadFile {
            file: File::from(fd),
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec,
            uid: st.st_uid,
        })
    }
}

/// The root directory of a process (or ours), held open: paths are resolved inside it.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    /// how it is shown in messages (`/proc/PID/root` or `/`)
    shown: PathBuf,
}

impl Root {
    /// This process's root, `/`.
    pub fn host() -> io::Result<Root> {
        Self::open(Path::new("/"))
    }

    /// `/proc/PID/root`: the root directory of `pid` (a container's, a chroot's).
    pub fn of_pid(proc_root: &Path, pid: u32) -> io::Result<Root> {
        Self::open(&proc_root.join(pid.to_string()).join("root"))
    }

    /// Any directory as a root (tests; a chroot-like tree).
    pub fn at(p: &Path) -> io::Result<Root> {
        Self::open(p)
    }

    fn open(p: &Path) -> io::Result<Root> {
        let c = cstr(p.as_os_str().as_bytes())?;
        // SAFETY: a valid C string. Following the magic link `/proc/PID/root` itself is
        // the point: it names the process's root directory.
        let rc = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        let fd = cvt(rc as libc::c_long).map(owned)?;
        Ok(Root {
            fd,
            shown: p.to_path_buf(),
        })
    }

    /// `(device, inode)` of the root directory.
    pub fn id(&self) -> io::Result<(u64, u64)> {
        let st = fstat(&self.fd)?;
        Ok((st.st_dev, st.st_ino))
    }

    /// `path` (absolute or relative, as the process sees it) as the daemon can show it.
    pub fn shown(&self, path: &str) -> PathBuf {
        self.shown.join(path.trim_start_matches('/'))
    }

    /// Resolves `path` inside the root into an `O_PATH` descriptor (`flags` added).
    fn resolve(&self, path: &str, flags: i32, links: Links) -> io::Result<OwnedFd> {
        let rel = path.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        let resolve = match links {
            Links::InRoot => libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
            Links::None => {
                libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_NO_SYMLINKS
            }
        };
        match openat2(
            self.fd.as_raw_fd(),
            rel.as_bytes(),
            libc::O_PATH | flags,
            0,
            resolve,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                walk_nofollow(self.fd.as_raw_fd(), rel, libc::O_PATH | flags)
            }
            r => r,
        }
    }

    /// Finds `path` (symlinks followed inside the root) without opening it.
    pub fn find(&self, path: &str) -> io::Result<Found> {
        let fd = self.resolve(path, 0, Links::InRoot)?;
        let st = fstat(&fd)?;
        Ok(Found { fd, st })
    }

    /// Opens the regular file `path` for reading; refuses anything else (a FIFO, a
    /// device, a directory) and files larger than `cap` bytes.
    pub fn open_read(&self, path: &str, cap: u64) -> io::Result<ReadFile> {
        self.find(path)?.open_read(cap)
    }

    /// The whole regular file `path`, at most `cap` bytes.
    pub fn read(&self, path: &str, cap: u64) -> io::Result<Vec<u8>> {
        let f = self.open_read(path, cap)?;
        read_all(&f.file, cap)
    }

    /// The directory `path`, following no symlink on the way (e.g. a JVM's `/tmp`).
    pub fn open_dir(&self, path: &str) -> io::Result<Dir> {
        let p = self.resolve(path, libc::O_DIRECTORY, Links::None)?;
        Dir::reopen(p, self.shown(path))
    }

    /// The directory `path`, symlinks followed inside the root (library directories).
    pub fn open_dir_in_root(&self, path: &str) -> io::Result<Dir> {
        let p = self.resolve(path, libc::O_DIRECTORY, Links::InRoot)?;
        Dir::reopen(p, self.shown(path))
    }
}

/// Without openat2: one `O_NOFOLLOW` component at a time; `..` and symlinks are refused.
fn walk_nofollow(root: RawFd, rel: &str, flags: i32) -> io::Result<OwnedFd> {
    let parts: Vec<&str> = rel
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(io::Error::from_raw_os_error(libc::EXDEV));
    }
    let Some((last, dirs)) = parts.split_last() else {
        return openat_nofollow(root, b".", flags, 0);
    };
    let mut cur: Option<OwnedFd> = None;
    for d in dirs {
        let at = cur.as_ref().map_or(root, AsRawFd::as_raw_fd);
        cur = Some(openat_nofollow(
            at,
            d.as_bytes(),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )?);
    }
    let at = cur.as_ref().map_or(root, AsRawFd::as_raw_fd);
    let fd = openat_nofollow(at, last.as_bytes(), flags, 0)?;
    if flags & libc::O_DIRECTORY == 0 && file_type(&fstat(&fd)?) == libc::S_IFLNK {
        // O_PATH | O_NOFOLLOW opens the link itself
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    Ok(fd)
}

/// Reads a whole file from offset 0 with `pread`, refusing more than `cap` bytes (a file
/// that grows while read counts too).
pub fn read_all(f: &File, cap: u64) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match f.read_at(&mut chunk, out.len() as u64) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(out);
        }
        if (out.len() + n) as u64 > cap {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more than the {cap} bytes read at most"),
            ));
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// A directory held open; names in it are resolved without following symlinks.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    shown: PathBuf,
}

impl Dir {
    fn reopen(path_fd: OwnedFd, shown: PathBuf) -> io::Result<Dir> {
        let st = fstat(&path_fd)?;
        if file_type(&st) != libc::S_IFDIR {
            return Err(not_a("a directory", &st));
        }
        let fd = openat_nofollow(
            path_fd.as_raw_fd(),
            b".",
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )?;
        Ok(Dir { fd, shown })
    }

    /// The path as the daemon shows it in messages.
    pub fn shown(&self) -> &Path {
        &self.shown
    }

    /// The directory itself.
    pub fn stat(&self) -> io::Result<libc::stat> {
        fstat(&self.fd)
    }

    /// `name`'s `lstat` (a symlink is reported as one), `None` when absent.
    pub fn stat_at(&self, name: &OsStr) -> io::Result<Option<libc::stat>> {
        let c = cstr(check_name(name)?)?;
        // SAFETY: all-zero is a valid stat to be filled in.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid fd, C string and stat pointer.
        let rc = unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        match cvt(rc as libc::c_long) {
            Ok(_) => Ok(Some(st)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The directory `name` in this one (not a symlink to one).
    pub fn open_dir(&self, name: &OsStr) -> io::Result<Dir> {
        let n = check_name(name)?;
        let fd = openat_nofollow(self.fd.as_raw_fd(), n, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        Dir::reopen(fd, self.shown.join(name))
    }

    /// `mkdir(name, mode)`; true when made, false when something is there already (which
    /// the caller must then check). The mode is set on the descriptor afterwards (no umask).
    pub fn mkdir(&self, name: &OsStr, mode: u32) -> io::Result<bool> {
        let c = cstr(check_name(name)?)?;
        // SAFETY: a valid fd and C string.
        let rc = unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), 0o700) };
        match cvt(rc as libc::c_long) {
            Ok(_) => {
                let d = self.open_dir(name)?;
                fchmod(&d.fd, mode)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A new file `name` (`O_CREAT | O_EXCL | O_NOFOLLOW`: never an existing file or a
    /// symlink's target), open for writing, with `mode` set on its descriptor.
    pub fn create(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let n = check_name(name)?;
        let fd = openat_nofollow(
            self.fd.as_raw_fd(),
            n,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY,
            0o600,
        )?;
        fchmod(&fd, mode)?;
        Ok(File::from(fd))
    }

    /// Removes the file (or socket, or symlink itself) `name`.
    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        let c = cstr(check_name(name)?)?;
        // SAFETY: a valid fd and C string.
        cvt(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) } as libc::c_long).map(drop)
    }

    /// `rename(from, to)` within this directory.
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let a = cstr(check_name(from)?)?;
        let b = cstr(check_name(to)?)?;
        let fd = self.fd.as_raw_fd();
        // SAFETY: a valid fd and C strings.
        cvt(unsafe { libc::renameat(fd, a.as_ptr(), fd, b.as_ptr()) } as libc::c_long).map(drop)
    }

    /// Sets the mode of `name`, which must be of type `want` (`S_IFSOCK`, …) and not a
    /// symlink: opened `O_PATH | O_NOFOLLOW`, checked, then changed through that descriptor.
    pub fn chmod(&self, name: &OsStr, want: u32, mode: u32) -> io::Result<()> {
        let n = check_name(name)?;
        let fd = openat_nofollow(self.fd.as_raw_fd(), n, libc::O_PATH, 0)?;
        let st = fstat(&fd)?;
        if file_type(&st) != want {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("is {}", kind(&st)),
            ));
        }
        let me = cstr(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())?;
        // SAFETY: a valid C string; the magic link names exactly the file opened above.
        cvt(unsafe { libc::chmod(me.as_ptr(), mode) } as libc::c_long).map(drop)
    }

    /// The names in the directory (at most `max`).
    pub fn names(&self, max: usize) -> io::Result<Vec<OsString>> {
        let me = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        let rd = std::fs::read_dir(me)?;
        Ok(rd.flatten().take(max).map(|e| e.file_name()).collect())
    }

    /// A path to `name` through our own `/proc/self/fd` (for `bind`/`connect`, which take
    /// paths): valid while this `Dir` lives, whatever happens to the path it came from.
    pub fn fd_path(&self, name: &OsStr) -> io::Result<PathBuf> {
        check_name(name)?;
        let mut p = PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
        p.push(name);
        Ok(p)
    }
}

/// `fchmod(2)`.
pub fn fchmod(fd: &impl AsRawFd, mode: u32) -> io::Result<()> {
    // SAFETY: a valid fd.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode) } as libc::c_long).map(drop)
}

#[cfg(test)]
mod tests;
