//! Finding the TLS libraries to probe: every distinct libssl/libgnutls file on the host's
//! standard library paths, and every file any process maps executable (its own libssl, a
//! library with OpenSSL or BoringSSL linked in, a container's copy reached through
//! `/proc/PID/root`), whose symbols say whether it carries a TLS API. Files are told
//! apart by (device, inode), so each is looked at and probed once.
use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::preadref::{DEFAULT_BUDGET, PreadRef};
use super::safefs::{Found, ReadFile, Root};

/// A library file found on this host, held (found without leaving the root of the
/// process that maps it; see `safefs`): what is read and probed is exactly this file.
#[derive(Clone, Debug)]
pub struct LibFile {
    found: Arc<Found>,
    /// how the daemon reached it, for messages (`/proc/PID/root/...` for another root)
    pub open_path: PathBuf,
    /// path as the process sees it
    pub shown_path: String,
    pub dev: u64,
    pub ino: u64,
}

/// Files larger than this are not looked at (no library or executable comes close).
pub const MAX_FILE_BYTES: u64 = 4 << 30;
/// Names read from one library directory at most.
const MAX_DIR_NAMES: usize = 16_384;
/// `/proc/PID/maps` read at most (65,530 mappings, the default `vm.max_map_count`, take
/// about 8 MiB).
const MAX_MAPS_BYTES: u64 = 32 << 20;

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

impl LibFile {
    /// Opens the file for reading (a regular file, at most [`MAX_FILE_BYTES`]).
    pub fn open(&self) -> std::io::Result<ReadFile> {
        self.found.open_read(MAX_FILE_BYTES)
    }
}

fn lib_file(root: &Root, shown_path: String) -> Option<LibFile> {
    let found = match root.find(&shown_path) {
        Ok(f) if f.is_regular() => f,
        Ok(_) => {
            tracing::debug!(file = %root.shown(&shown_path).display(), "not a regular file: not looked at");
            return None;
        }
        Err(e) => {
            tracing::debug!(file = %root.shown(&shown_path).display(), error = %e, "not looked at");
            return None;
        }
    };
    let st = found.st;
    let (fdev, fino) = (st.st_dev, st.st_ino);
    // The same file under the same path in our mount namespace: shown under that path.
    let open_path = match std::fs::metadata(&shown_path) {
        Ok(m) if m.dev() == fdev && m.ino() == fino => PathBuf::from(&shown_path),
        _ => root.shown(&shown_path),
    };
    let (dev, ino) = if found.fs_type().is_ok_and(|t| t == OVERLAYFS_SUPER_MAGIC) {
        overlay_id(st.st_size as u64, st.st_mtime, st.st_mtime_nsec, fino)
    } else {
        (fdev, fino)
    };
    Some(LibFile {
        found: Arc::new(found),
        open_path,
        shown_path,
        dev,
        ino,
    })
}

/// statfs(2) magic of overlayfs (container roots).
pub const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// Marks identities made by `overlay_id` (no real device number has these bits).
const OVERLAY_TAG: u64 = 0x6f76_6c00_0000_0000;

/// The identity of a file seen through overlayfs. Each overlay mount (each container)
/// shows stat(2) a device of its own, but the kernel maps, and uprobes attach to, the file
/// of the layer underneath, which every container of one image shares. With the layers
/// on one filesystem (Docker's and containerd's default) overlayfs reports that file's
/// own inode number, so (inode, size, mtime) names it across containers; keyed by stat's
/// device, the same library would be probed again for every container.
pub fn overlay_id(size: u64, mtime: i64, mtime_nsec: i64, ino: u64) -> (u64, u64) {
    let stamp = (mtime as u64).wrapping_mul(1_000_000_007) ^ mtime_nsec as u64;
    (OVERLAY_TAG ^ (size.rotate_left(24) ^ stamp), ino)
}

/// libssl files in the standard directories of the host.
pub fn scan_standard_dirs() -> Vec<LibFile> {
    match Root::host() {
        Ok(root) => scan_dirs_under(&root),
        Err(_) => Vec::new(),
    }
}

/// libssl files in the standard directories under `root` (`/`, or a container's root
/// as `/proc/PID/root`), shown with their paths as seen under that root. Files come
/// before symbolic links, so a library reached under several names (`libssl.so` →
/// `libssl.so.3`) is shown under its own, the name `/proc/PID/maps` gives it.
pub fn scan_dirs_under(root: &Root) -> Vec<LibFile> {
    let mut out = Vec::new();
    for dir in STANDARD_DIRS {
        let Ok(d) = root.open_dir_in_root(dir) else {
            continue;
        };
        let Ok(names) = d.names(MAX_DIR_NAMES) else {
            continue;
        };
        for name in names {
            let Some(n) = name.to_str() else { continue };
            if is_tls_library_name(n) {
                let shown = Path::new(dir).join(n).display().to_string();
                let link = d
                    .stat_at(&name)
                    .ok()
                    .flatten()
                    .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK);
                if let Some(f) = lib_file(root, shown) {
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

/// A file of /proc (or /sys), at most `cap` bytes: these are the kernel's, not a user's,
/// but a process with very many mappings has a long `maps`.
pub fn read_proc(path: &Path, cap: u64) -> Option<String> {
    read_proc_bytes(path, cap).map(|b| match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// [`read_proc`], as bytes (`cmdline`, `environ`).
pub fn read_proc_bytes(path: &Path, cap: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut b = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(cap)
        .read_to_end(&mut b)
        .ok()?;
    Some(b)
}

/// The files `pid` maps executable (see `code_paths_in_maps`), opened inside its root.
pub fn scan_pid(proc_root: &Path, pid: u32) -> Vec<LibFile> {
    let base = proc_root.join(pid.to_string());
    let Some(maps) = read_proc(&base.join("maps"), MAX_MAPS_BYTES) else {
        return Vec::new();
    };
    let Ok(root) = Root::of_pid(proc_root, pid) else {
        return Vec::new();
    };
    code_paths_in_maps(&maps)
        .into_iter()
        .filter_map(|p| lib_file(&root, p))
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

/// The executable of `pid`, opened inside its root.
pub fn exe_of(proc_root: &Path, pid: u32) -> Option<LibFile> {
    let base = proc_root.join(pid.to_string());
    let target = std::fs::read_link(base.join("exe")).ok()?;
    let shown = target.to_str()?.trim_end_matches(" (deleted)").to_string();
    if !shown.starts_with('/') {
        return None;
    }
    lib_file(&Root::of_pid(proc_root, pid).ok()?, shown)
}

/// File offsets of the defined functions named in `names`, from `.dynsym` and `.symtab`
/// (uprobes are placed by file offset; this works for large and statically linked
/// binaries alike). Names missing from the file are absent from the result. `path` is a
/// host path (it must be a regular file).
pub fn symbol_offsets(path: &Path, names: &[&str]) -> Result<Vec<(String, u64)>, String> {
    let root = Root::host().map_err(|e| format!("cannot open /: {e}"))?;
    let f = root
        .open_read(&path.to_string_lossy(), MAX_FILE_BYTES)
        .map_err(|e| format!("cannot open: {e}"))?;
    symbol_offsets_in(&f.file, f.size, names)
}

/// As [`symbol_offsets`], for an open file of `size` bytes: read with bounded `pread`s
/// (see `preadref`), never mapped, so its owner truncating it meanwhile is an error here.
pub fn symbol_offsets_in(
    file: &File,
    size: u64,
    names: &[&str],
) -> Result<Vec<(String, u64)>, String> {
    symbol_offsets_measured(file, size, names).map(|(o, _)| o)
}

/// [`symbol_offsets_in`], and the bytes read and held to find them.
fn symbol_offsets_measured(
    file: &File,
    size: u64,
    names: &[&str],
) -> Result<(Vec<(String, u64)>, usize), String> {
    use object::{Object, ObjectSection, ObjectSymbol};
    let file = file
        .try_clone()
        .map_err(|e| format!("cannot duplicate the descriptor: {e}"))?;
    let data = PreadRef::new(file, size, DEFAULT_BUDGET);
    let res = (|| {
        let obj = object::File::parse(&data).map_err(|e| format!("not an ELF file: {e}"))?;
        let mut out: Vec<(String, u64)> = Vec::new();
        for sym in obj.dynamic_symbols().chain(obj.symbols()) {
            if out.len() == names.len() {
                // all found (in .dynsym, usually): the larger .symtab is not read
                break;
            }
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
    })();
    // a failed read (budget, truncation) may look like a short table to the parser: what
    // was found then is not the whole truth, so it is an error
    match data.error() {
        Some(e) => Err(e),
        None => res.map(|o| (o, data.used())),
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
        let f = lib_file(&Root::host().unwrap(), exe.display().to_string()).unwrap();
        assert_eq!((f.dev, f.ino), (md.dev(), md.ino()));
        assert_eq!(f.open_path, exe);
        let id =
            |md: &std::fs::Metadata| overlay_id(md.size(), md.mtime(), md.mtime_nsec(), md.ino());
        let (dev, ino) = id(&md);
        assert_eq!(ino, md.ino());
        assert_ne!(dev, md.dev());
        assert_eq!(id(&md), (dev, ino), "stable");
    }

    #[test]
    fn files_come_before_links_to_them() {
        let dir = std::env::temp_dir().join(format!("qtap-libs-{}", std::process::id()));
        let lib = dir.join("usr/lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("libssl.so.3"), b"not really").unwrap();
        std::os::unix::fs::symlink("libssl.so.3", lib.join("libssl.so")).unwrap();
        // absolute: resolved inside the root, as the process that has it as its root would
        std::os::unix::fs::symlink("/usr/lib/libssl.so.3", lib.join("libssl.so.0")).unwrap();
        let found = scan_dirs_under(&Root::at(&dir).unwrap());
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
    fn links_out_of_the_root_fifos_and_devices_are_not_looked_at() {
        let base = std::env::temp_dir().join(format!("qtap-libs-esc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (root, outside) = (base.join("root"), base.join("outside"));
        let lib = root.join("usr/lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let host_file = outside.join("libssl.so.7");
        std::fs::write(&host_file, b"a host file").unwrap();
        std::os::unix::fs::symlink(&host_file, lib.join("libssl.so.7")).unwrap();
        std::os::unix::fs::symlink("../../../outside/libssl.so.7", lib.join("libssl.so.6"))
            .unwrap();
        std::os::unix::fs::symlink("/dev/zero", lib.join("libssl.so.5")).unwrap();
        let fifo = std::ffi::CString::new(lib.join("libssl.so.8").to_str().unwrap()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let found = scan_dirs_under(&Root::at(&root).unwrap());
        std::fs::remove_dir_all(&base).unwrap();
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn symbols_of_a_file_truncated_after_it_was_opened_are_an_error() {
        let lib = [
            "/usr/lib/x86_64-linux-gnu/libssl.so.3",
            "/lib/x86_64-linux-gnu/libssl.so.3",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("libssl3 (.ci/setup installs it)");
        let copy = std::env::temp_dir().join(format!("qtap-libs-trunc-{}.so", std::process::id()));
        std::fs::copy(lib, &copy).unwrap();
        let f = Root::host()
            .unwrap()
            .open_read(copy.to_str().unwrap(), MAX_FILE_BYTES)
            .unwrap();
        let whole = symbol_offsets_in(&f.file, f.size, &["SSL_read", "SSL_write"]).unwrap();
        assert_eq!(whole.len(), 2, "{whole:?}");
        // its owner truncates it: with a mapping, touching the lost pages would be SIGBUS
        std::fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_len(4096)
            .unwrap();
        let e = symbol_offsets_in(&f.file, f.size, &["SSL_read", "SSL_write"]).unwrap_err();
        std::fs::remove_file(&copy).unwrap();
        assert!(e.contains("shrank"), "{e}");
    }

    /// What finding symbols reads and holds, for the large files a host has: libjvm
    /// (.dynsym of a C++ library) and a Node.js executable with OpenSSL linked in.
    #[test]
    fn symbols_of_large_binaries_within_the_budget() {
        let candidates = [
            "/usr/lib/jvm/java-17-openjdk-amd64/lib/server/libjvm.so",
            "/usr/bin/node",
            "/usr/lib/x86_64-linux-gnu/libssl.so.3",
        ];
        let mut seen = 0;
        for p in candidates {
            let Ok(f) = Root::host().unwrap().open_read(p, MAX_FILE_BYTES) else {
                continue;
            };
            let t = std::time::Instant::now();
            let (found, used) = symbol_offsets_measured(
                &f.file,
                f.size,
                &["SSL_read", "SSL_write", "JNI_CreateJavaVM"],
            )
            .unwrap_or_else(|e| panic!("{p}: {e}"));
            eprintln!(
                "{p}: {} MiB file, {:.1} MiB read and held, {} ms, found {found:?}",
                f.size >> 20,
                used as f64 / (1 << 20) as f64,
                t.elapsed().as_millis()
            );
            assert!(!found.is_empty(), "{p}");
            assert!(used < DEFAULT_BUDGET);
            seen += 1;
        }
        assert!(seen > 0, "none of {candidates:?} is installed");
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
