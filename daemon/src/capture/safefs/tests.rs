use super::*;
use std::os::unix::fs::PermissionsExt;

/// A tree standing for another process's root, and a file outside it that links in the
/// tree point at (the canary).
struct Tree {
    base: PathBuf,
    root: PathBuf,
    canary: PathBuf,
}

impl Tree {
    fn new(tag: &str) -> Tree {
        let base = std::env::temp_dir().join(format!("qtap-safefs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        let canary = base.join("outside/canary");
        std::fs::write(&canary, b"canary").unwrap();
        Tree { base, root, canary }
    }

    fn canary_intact(&self) -> bool {
        std::fs::read(&self.canary).unwrap() == b"canary"
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn mkfifo(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

#[test]
fn absolute_and_dotdot_links_stay_inside_the_root() {
    let t = Tree::new("links");
    std::os::unix::fs::symlink(&t.canary, t.root.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../outside/canary", t.root.join("dotdot")).unwrap();
    std::fs::write(t.root.join("inside"), b"inside").unwrap();
    std::os::unix::fs::symlink("/inside", t.root.join("ok")).unwrap();
    let root = Root::at(&t.root).unwrap();
    // the canary's absolute path does not exist under the root
    assert!(root.read("abs", 1024).is_err());
    // `..` stops at the root: ../../outside is /outside there
    assert!(root.read("dotdot", 1024).is_err());
    assert_eq!(root.read("ok", 1024).unwrap(), b"inside");
    assert_eq!(root.read("/inside", 1024).unwrap(), b"inside");
}

#[test]
fn fifos_devices_and_large_files_are_refused_without_blocking() {
    let t = Tree::new("fifo");
    mkfifo(&t.root.join("release"));
    std::os::unix::fs::symlink("/dev/zero", t.root.join("zero")).unwrap();
    std::fs::write(t.root.join("big"), vec![b'x'; 10_000]).unwrap();
    let root = Root::at(&t.root).unwrap();
    // opening a FIFO for reading would wait for a writer: never opened, refused at once
    let e = root.read("release", 1024).unwrap_err();
    assert!(e.to_string().contains("FIFO"), "{e}");
    // /dev/zero inside the root does not exist; the host's is never reached
    assert!(root.read("zero", 1024).is_err());
    let dev = Root::host().unwrap().read("/dev/zero", 1024).unwrap_err();
    assert!(dev.to_string().contains("character device"), "{dev}");
    let e = root.read("big", 1024).unwrap_err();
    assert!(e.to_string().contains("more than"), "{e}");
    assert_eq!(root.read("big", 10_000).unwrap().len(), 10_000);
}

#[test]
fn created_files_never_follow_a_planted_link() {
    let t = Tree::new("create");
    let root = Root::at(&t.root).unwrap();
    let tmp = root.open_dir("/tmp").unwrap();
    std::os::unix::fs::symlink(&t.canary, t.root.join("tmp/.attach_pid42")).unwrap();
    let e = tmp.create(OsStr::new(".attach_pid42"), 0o600).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
    assert!(t.canary_intact());
    // a directory link: mkdir sees it there, open_dir refuses to follow it
    std::os::unix::fs::symlink(t.base.join("outside"), t.root.join("tmp/.qtap-java")).unwrap();
    assert!(!tmp.mkdir(OsStr::new(".qtap-java"), 0o755).unwrap());
    assert!(tmp.open_dir(OsStr::new(".qtap-java")).is_err());
    // a new file gets its mode from fchmod, whatever the umask
    let mut f = tmp.create(OsStr::new("new"), 0o644).unwrap();
    std::io::Write::write_all(&mut f, b"x").unwrap();
    let md = std::fs::symlink_metadata(t.root.join("tmp/new")).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o644);
    // names are single components
    assert!(tmp.create(OsStr::new("../escape"), 0o600).is_err());
    assert!(tmp.unlink(OsStr::new("..")).is_err());
}

#[test]
fn a_linked_tmp_is_refused() {
    let t = Tree::new("tmplink");
    std::fs::remove_dir(t.root.join("tmp")).unwrap();
    std::os::unix::fs::symlink(t.base.join("outside"), t.root.join("tmp")).unwrap();
    let root = Root::at(&t.root).unwrap();
    let e = root.open_dir("/tmp").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
    // and through a relative link inside the root too
    std::fs::remove_file(t.root.join("tmp")).unwrap();
    std::fs::create_dir(t.root.join("real")).unwrap();
    std::os::unix::fs::symlink("real", t.root.join("tmp")).unwrap();
    assert!(root.open_dir("/tmp").is_err());
}

#[test]
fn chmod_only_the_socket_itself() {
    let t = Tree::new("chmod");
    let root = Root::at(&t.root).unwrap();
    let tmp = root.open_dir("tmp").unwrap();
    let path = tmp.fd_path(OsStr::new("s.sock")).unwrap();
    let _l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    tmp.chmod(OsStr::new("s.sock"), libc::S_IFSOCK, 0o666)
        .unwrap();
    let md = std::fs::symlink_metadata(t.root.join("tmp/s.sock")).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o666);
    std::os::unix::fs::symlink(&t.canary, t.root.join("tmp/l.sock")).unwrap();
    assert!(
        tmp.chmod(OsStr::new("l.sock"), libc::S_IFSOCK, 0o666)
            .is_err()
    );
    let before = std::fs::metadata(&t.canary).unwrap().permissions().mode();
    assert_eq!(before & 0o777, 0o644);
    assert!(tmp.names(10).unwrap().len() == 2);
}

#[test]
fn the_walk_without_openat2_follows_no_link() {
    let t = Tree::new("walk");
    std::fs::create_dir_all(t.root.join("a/b")).unwrap();
    std::fs::write(t.root.join("a/b/f"), b"f").unwrap();
    std::os::unix::fs::symlink("b", t.root.join("a/l")).unwrap();
    std::os::unix::fs::symlink(&t.canary, t.root.join("a/c")).unwrap();
    let root = Root::at(&t.root).unwrap();
    let fd = walk_nofollow(root.fd.as_raw_fd(), "a/b/f", libc::O_PATH).unwrap();
    assert!(file_type(&fstat(&fd).unwrap()) == libc::S_IFREG);
    assert!(walk_nofollow(root.fd.as_raw_fd(), "a/l/f", libc::O_PATH).is_err());
    assert!(walk_nofollow(root.fd.as_raw_fd(), "a/c", libc::O_PATH).is_err());
    assert!(walk_nofollow(root.fd.as_raw_fd(), "a/../../outside/canary", libc::O_PATH).is_err());
}
