//! Finding the TLS libraries to probe: every distinct libssl/libgnutls file on the host's
//! standard library paths, and every file any process maps executable (its own libssl, a
//! library with OpenSSL or BoringSSL linked in, a container's copy reached through
//! `/proc/PID/root`), whose symbols say whether it carries a TLS API. Files are told
//! apart by (device, inode), so each is looked at and probed once.
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A library file found on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibFile {
    /// path to open from the daemon (`/proc/PID/root/...` for another mount namespace)
    pub open_path: PathBuf,
    /// path as the process sees it
    pub shown_path: String,
    pub dev: u64,
    pub ino: u64,
}

/// Host directories where distributions put libssl.
pub const STANDARD_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/lib64",
    "/usr/lib",
    "/lib",
    "/usr/local/lib",
    "/usr/local/lib64",
    "/usr/local/ssl/lib",
    "/usr/local/ssl/lib64",
];

/// `libssl.so`, `libssl.so.3`, `libssl.so.1.1`, `libssl-abc123.so.3` (vendored wheels),
/// `libgnutls.so.30`.
pub fn is_tls_library_name(name: &str) -> bool {
    (name.starts_with("libssl") || name.starts_with("libgnutls"))
        && name.contains(".so")
        && !name.ends_with(".a")
}

fn lib_file(open_path: PathBuf, shown_path: String) -> Option<LibFile> {
    let md = std::fs::metadata(&open_path).ok()?;
    if !md.is_file() {
        return None;
    }
    // The same file under the same path in our mount namespace: use that path, which
    // stays valid after the process that showed it to us exits.
    let open_path = match std::fs::metadata(&shown_path) {
        Ok(m) if m.dev() == md.dev() && m.ino() == md.ino() => PathBuf::from(&shown_path),
        _ => open_path,
    };
    let (dev, ino) = if on_overlay(&open_path) {
        overlay_id(&md)
    } else {
        (md.dev(), md.ino())
    };
    Some(LibFile {
        open_path,
        shown_path,
        dev,
        ino,
    })
}

/// statfs(2) magic of overlayfs (container roots).
const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

fn on_overlay(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a zeroed statfs for the call to fill.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a valid statfs pointer.
    (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0) && st.f_type == OVERLAYFS_SUPER_MAGIC
}

/// Marks identities made by `overlay_id` (no real device number has these bits).
const OVERLAY_TAG: u64 = 0x6f76_6c00_0000_0000;

/// The identity of a file seen through overlayfs. Each overlay mount (each container)
/// shows stat(2) a device of its own, but the kernel maps, and uprobes attach to, the file
/// of the layer underneath, which every container of one image shares. With the layers
/// on one filesystem (Docker's and containerd's default) overlayfs reports that file's
/// own inode number, so (inode, size, mtime) names it across containers; keyed by stat's
/// device, the same library would be probed again for every container.
pub fn overlay_id(md: &std::fs::Metadata) -> (u64, u64) {
    let stamp = (md.mtime() as u64).wrapping_mul(1_000_000_007) ^ md.mtime_nsec() as u64;
    (OVERLAY_TAG ^ (md.size().rotate_left(24) ^ stamp), md.ino())
}

/// libssl files in the standard directories of the host.
pub fn scan_standard_dirs() -> Vec<LibFile> {
    scan_dirs_under(Path::new("/"))
}

/// libssl files in the standard directories under `root` (`/`, or a container's root
/// as `/proc/PID/root`), shown with their paths as seen under that root. Files come
/// before symbolic links, so a library reached under several names (`libssl.so` →
/// `libssl.so.3`) is shown under its own, the name `/proc/PID/maps` gives it.
pub fn scan_dirs_under(root: &Path) -> Vec<LibFile> {
    let mut out = Vec::new();
    for dir in STANDARD_DIRS {
        let Ok(rd) = std::fs::read_dir(root.join(dir.trim_start_matches('/'))) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if is_tls_library_name(name) {
                let shown = Path::new(dir).join(name).display().to_string();
                let link = e.file_type().is_ok_and(|t| t.is_symlink());
                if let Some(f) = lib_file(e.path(), shown) {
                    out.push((link, f));
                }
            }
        }
    }
    // stable: the directory order stays within each kind
    out.sort_by_key(|(link, _)| *link);
    out.into_iter().map(|(_, f)| f).collect()
}

/// (device, inode) of the root directory of `pid` (of this process's root for `None`),
/// which tells a container's filesystem from the host's.
pub fn root_id(proc_root: &Path, pid: Option<u32>) -> Option<(u64, u64)> {
    let p = match pid {
        Some(pid) => proc_root.join(pid.to_string()).join("root"),
        None => PathBuf::from("/"),
    };
    let md = std::fs::metadata(p).ok()?;
    Some((md.dev(), md.ino()))
}

/// Paths of the files a `/proc/PID/maps` text maps executable: every shared object (and
/// the executable), each once. Any of them may carry a TLS library's API — libssl and
/// libgnutls, but also an OpenSSL or BoringSSL linked into another library — so the
/// caller looks at each file's symbols once (per inode), not at its name.
pub fn code_paths_in_maps(maps: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in maps.lines() {
        // address perms offset dev inode path
        let mut f = line.splitn(6, ' ');
        let perms = f.nth(1).unwrap_or("");
        let Some(path) = f.nth(3).map(str::trim) else {
            continue;
        };
        if !perms.contains('x') || !path.starts_with('/') || path.ends_with(" (deleted)") {
            continue;
        }
        if seen.insert(path.to_string()) {
            out.push(path.to_string());
        }
    }
    out
}

/// The files `pid` maps executable (see `code_paths_in_maps`), opened through its root.
pub fn scan_pid(proc_root: &Path, pid: u32) -> Vec<LibFile> {
    let base = proc_root.join(pid.to_string());
    let Ok(maps) = std::fs::read_to_string(base.join("maps")) else {
        return Vec::new();
    };
    code_paths_in_maps(&maps)
        .into_iter()
        .filter_map(|p| lib_file(base.join("root").join(p.trim_start_matches('/')), p))
        .collect()
}

/// Every numeric entry of /proc.
pub fn pids(proc_root: &Path) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The executable of `pid`, opened through its root.
pub fn exe_of(proc_root: &Path, pid: u32) -> Option<LibFile> {
    let base = proc_root.join(pid.to_string());
    let target = std::fs::read_link(base.join("exe")).ok()?;
    let shown = target.to_str()?.trim_end_matches(" (deleted)").to_string();
    if !shown.starts_with('/') {
        return None;
    }
    lib_file(base.join("root").join(shown.trim_start_matches('/')), shown)
}

/// File offsets of the defined functions named in `names`, from `.dynsym` and `.symtab`
/// (uprobes are placed by file offset; this works for large and statically linked
/// binaries alike). Names missing from the file are absent from the result.
pub fn symbol_offsets(path: &Path, names: &[&str]) -> Result<Vec<(String, u64)>, String> {
    use object::{Object, ObjectSection, ObjectSymbol};
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let map = Mmap::new(&file).map_err(|e| format!("cannot map: {e}"))?;
    let obj = object::File::parse(map.bytes()).map_err(|e| format!("not an ELF file: {e}"))?;
    let mut out: Vec<(String, u64)> = Vec::new();
    for sym in obj.dynamic_symbols().chain(obj.symbols()) {
        if sym.is_undefined() || sym.address() == 0 {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        let name = name.split('@').next().unwrap_or(name);
        if !names.contains(&name) || out.iter().any(|(n, _)| n == name) {
            continue;
        }
        let Some(idx) = sym.section_index() else {
            continue;
        };
        let Ok(sec) = obj.section_by_index(idx) else {
            continue;
        };
        let Some((sec_off, _)) = sec.file_range() else {
            continue;
        };
        let Some(off) = sym
            .address()
            .checked_sub(sec.address())
            .and_then(|d| d.checked_add(sec_off))
        else {
            continue;
        };
        out.push((name.to_string(), off));
    }
    Ok(out)
}

/// A read-only private mapping of a whole file (binaries can be hundreds of MiB; only
/// the pages the symbol tables live on are read).
pub(crate) struct Mmap {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mmap {
    pub(crate) fn new(file: &std::fs::File) -> std::io::Result<Mmap> {
        use std::os::fd::AsRawFd;
        let len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
        if len == 0 {
            return Err(std::io::Error::other("empty file"));
        }
        // SAFETY: a fresh read-only private mapping of an open file; unmapped in Drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mmap { ptr, len })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` bytes long and lives as long as `self`. A file
        // truncated under us would fault; library files are replaced, not truncated.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_tls_library_name("libssl.so.3"));
        assert!(is_tls_library_name("libssl.so.1.1"));
        assert!(is_tls_library_name("libssl-8f1b3c.so.3"));
        assert!(!is_tls_library_name("libssl.a"));
        assert!(!is_tls_library_name("libcrypto.so.3"));
        assert!(is_tls_library_name("libgnutls.so.30"));
    }

    #[test]
    fn identity_of_a_plain_file_is_its_stat_and_overlay_ones_are_tagged() {
        let exe = std::env::current_exe().unwrap();
        let md = std::fs::metadata(&exe).unwrap();
        let name = exe.file_name().unwrap().to_str().unwrap().to_string();
        let f = lib_file(exe.clone(), name).unwrap();
        assert_eq!((f.dev, f.ino), (md.dev(), md.ino()));
        let (dev, ino) = overlay_id(&md);
        assert_eq!(ino, md.ino());
        assert_ne!(dev, md.dev());
        assert_eq!(overlay_id(&md), (dev, ino), "stable");
    }

    #[test]
    fn files_come_before_links_to_them() {
        let dir = std::env::temp_dir().join(format!("qtap-libs-{}", std::process::id()));
        let lib = dir.join("usr/lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("libssl.so.3"), b"not really").unwrap();
        std::os::unix::fs::symlink("libssl.so.3", lib.join("libssl.so")).unwrap();
        std::os::unix::fs::symlink("libssl.so.3", lib.join("libssl.so.0")).unwrap();
        let found = scan_dirs_under(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].shown_path, "/usr/lib/libssl.so.3");
        assert!(
            found
                .iter()
                .all(|f| (f.dev, f.ino) == (found[0].dev, found[0].ino))
        );
    }

    #[test]
    fn maps_lines() {
        let maps = "7f00-7f10 r--p 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3\n\
7f10-7f20 r-xp 00010000 08:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3\n\
7f20-7f30 r-xp 00000000 08:01 124 /usr/lib/x86_64-linux-gnu/libcrypto.so.3\n\
7f30-7f40 r-xp 00000000 00:00 0 [heap]\n\
7f40-7f50 r-xp 00000000 08:01 125 /opt/app/lib/libssl.so.1.1 (deleted)\n";
        assert_eq!(
            code_paths_in_maps(maps),
            vec![
                "/usr/lib/x86_64-linux-gnu/libssl.so.3".to_string(),
                "/usr/lib/x86_64-linux-gnu/libcrypto.so.3".to_string()
            ],
            "executable mappings of files, each once; not data-only, anonymous or deleted ones"
        );
    }
}
