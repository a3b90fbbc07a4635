//! Which container a process lives in, from `/proc/PID/cgroup`.
//!
//! Every runtime puts a container's processes in a cgroup whose path ends with the
//! container id (64 hex digits), in one of these forms:
//!
//! | driver | path (v1 controller lines and the v2 `0::` line alike) | runtime |
//! |---|---|---|
//! | cgroupfs | `/docker/<id>` | docker |
//! | systemd | `/system.slice/docker-<id>.scope` | docker |
//! | systemd | `/system.slice/containerd.service/...` is the daemon, not a container | — |
//! | systemd | `.../cri-containerd-<id>.scope`, `.../nerdctl-<id>.scope` | containerd |
//! | systemd | `.../crio-<id>.scope` (`crio-conmon-<id>.scope` is the monitor) | cri-o |
//! | systemd | `.../libpod-<id>.scope` (`libpod-conmon-<id>.scope` is the monitor) | podman |
//! | cgroupfs | `/libpod_parent/libpod-<id>` | podman |
//! | cgroupfs | `/kubepods/<qos>/pod<uid>/<id>`, `/kubepods/pod<uid>/<id>` | containerd |
//!
//! A bare id under Kubernetes' cgroupfs layout does not name its runtime; containerd is by
//! far the most common one today, so it is assumed. A path with several ids (a container
//! inside a container) names the innermost one. Anything else (host processes, systemd
//! services, user sessions, ids of other lengths) is no container.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `docker`, `containerd`, `cri-o`, `podman`
pub type Runtime = &'static str;

pub const DOCKER: Runtime = "docker";
pub const CONTAINERD: Runtime = "containerd";
pub const CRIO: Runtime = "cri-o";
pub const PODMAN: Runtime = "podman";

/// A container id: 64 lowercase hex digits.
pub fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// systemd scope prefixes → runtime. Monitors (`*-conmon-*`) are checked first.
const SCOPES: &[(&str, Option<Runtime>)] = &[
    ("crio-conmon-", None),
    ("libpod-conmon-", None),
    ("docker-", Some(DOCKER)),
    ("cri-containerd-", Some(CONTAINERD)),
    ("nerdctl-", Some(CONTAINERD)),
    ("crio-", Some(CRIO)),
    ("libpod-", Some(PODMAN)),
];

/// The container named by one path component, given the component before it.
fn component(parent: &str, grandparent: &str, c: &str) -> Option<(Runtime, String)> {
    let unit = c.strip_suffix(".scope").unwrap_or(c);
    for (prefix, runtime) in SCOPES {
        if let Some(id) = unit.strip_prefix(prefix) {
            return match runtime {
                Some(r) if is_container_id(id) => Some((r, id.to_string())),
                _ => None,
            };
        }
    }
    if !is_container_id(c) {
        return None;
    }
    let runtime = match parent {
        "docker" => DOCKER,
        "libpod_parent" => PODMAN,
        p if p.starts_with("pod")
            && ["kubepods", "burstable", "besteffort", "guaranteed"].contains(&grandparent) =>
        {
            CONTAINERD
        }
        _ => return None,
    };
    Some((runtime, c.to_string()))
}

/// The container of one cgroup path (`/docker/<id>`, `/system.slice/docker-<id>.scope`, ...).
pub fn parse_path(path: &str) -> Option<(Runtime, String)> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    (0..parts.len()).rev().find_map(|i| {
        let parent = if i >= 1 { parts[i - 1] } else { "" };
        let grandparent = if i >= 2 { parts[i - 2] } else { "" };
        component(parent, grandparent, parts[i])
    })
}

/// The container of a `/proc/PID/cgroup` text (v1 `N:controllers:/path` lines and the v2
/// `0::/path` line). The first line that names one wins.
pub fn parse_cgroup(text: &str) -> Option<(Runtime, String)> {
    text.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .find_map(parse_path)
}

/// The container `pid` lives in: `Some(None)` for none, `None` when /proc could not say
/// (the process is gone).
pub fn of_pid(proc_root: &Path, pid: u32) -> Option<Option<(Runtime, String)>> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
    Some(parse_cgroup(&text))
}

/// Where the cgroup v2 hierarchy is mounted, from a `/proc/self/mountinfo` text
/// (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid hosts).
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let mount = pre.split_whitespace().nth(4)?;
        (post.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount))
    })
}

/// Walks of the hierarchy at most this often (ids not found in between stay unknown).
const REWALK: Duration = Duration::from_millis(100);
/// Directories read at most per walk.
const MAX_DIRS: usize = 100_000;

/// cgroup v2 ids (what the kernel side reads at exec) → cgroup paths. A v2 cgroup's id is
/// the inode number of its directory, so a walk of the hierarchy maps them; it is redone
/// when an id is not found (a container started since).
pub struct CgroupPaths {
    mount: Option<PathBuf>,
    by_id: HashMap<u64, String>,
    walked: Option<Instant>,
}

impl CgroupPaths {
    pub fn new(mount: Option<PathBuf>) -> Self {
        CgroupPaths {
            mount,
            by_id: HashMap::new(),
            walked: None,
        }
    }

    /// This host's hierarchy.
    pub fn host() -> Self {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Self::new(cgroup2_mount(&info))
    }

    /// The path (`/docker/<id>`) of a cgroup id.
    pub fn path(&mut self, id: u64) -> Option<String> {
        if id == 0 {
            return None;
        }
        if let Some(p) = self.by_id.get(&id) {
            return Some(p.clone());
        }
        if self.walked.is_some_and(|t| t.elapsed() < REWALK) {
            return None;
        }
        self.walk();
        self.by_id.get(&id).cloned()
    }

    fn walk(&mut self) {
        self.walked = Some(Instant::now());
        self.by_id.clear();
        let Some(mount) = self.mount.clone() else {
            return;
        };
        let mut stack = vec![(mount, String::new())];
        let mut seen = 0;
        while let Some((dir, rel)) = stack.pop() {
            seen += 1;
            if seen > MAX_DIRS {
                break;
            }
            if let Ok(md) = std::fs::metadata(&dir) {
                self.by_id.insert(
                    md.ino(),
                    if rel.is_empty() {
                        "/".into()
                    } else {
                        rel.clone()
                    },
                );
            }
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let name = e.file_name().to_string_lossy().into_owned();
                    stack.push((e.path(), format!("{rel}/{name}")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "bb289a9a4c8c60f6543128a90ddd05377a01801ab67821d53a0e59eb046a48ad";

    fn one(text: &str) -> Option<(Runtime, String)> {
        parse_cgroup(text)
    }

    #[test]
    fn docker_cgroupfs_v1_hybrid() {
        // Debian 12 docker.io with the cgroupfs driver on a hybrid host (seen on the CI VM)
        let text = format!(
            "9:name=systemd:/docker/{ID}\n8:pids:/docker/{ID}\n4:memory:/docker/{ID}\n\
             1:cpu:/docker/{ID}\n0::/docker/{ID}\n"
        );
        assert_eq!(one(&text), Some((DOCKER, ID.to_string())));
    }

    #[test]
    fn docker_systemd_v2() {
        let text = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(one(&text), Some((DOCKER, ID.to_string())));
        // v1 systemd driver
        let text = format!(
            "12:pids:/system.slice/docker-{ID}.scope\n1:name=systemd:/system.slice/docker-{ID}.scope\n"
        );
        assert_eq!(one(&text), Some((DOCKER, ID.to_string())));
    }

    #[test]
    fn kubernetes_systemd_containerd_and_crio() {
        let text = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod3c1b1a5e_4f5d_4c84_9bd9_5d5d0e5cc3c6.slice/cri-containerd-{ID}.scope\n"
        );
        assert_eq!(one(&text), Some((CONTAINERD, ID.to_string())));
        let text = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0d2c8e2e_1b4a_4a32_a0b7_c2b1f1e5a0a1.slice/crio-{ID}.scope\n"
        );
        assert_eq!(one(&text), Some((CRIO, ID.to_string())));
        // guaranteed pods sit right under kubepods.slice
        let text = format!(
            "0::/kubepods.slice/kubepods-pod0d2c8e2e_1b4a_4a32_a0b7_c2b1f1e5a0a1.slice/cri-containerd-{ID}.scope\n"
        );
        assert_eq!(one(&text), Some((CONTAINERD, ID.to_string())));
        // dockershim with the systemd driver
        let text = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0d2c8e2e.slice/docker-{ID}.scope\n"
        );
        assert_eq!(one(&text), Some((DOCKER, ID.to_string())));
    }

    #[test]
    fn kubernetes_cgroupfs() {
        for path in [
            format!("/kubepods/burstable/pod3c1b1a5e-4f5d-4c84-9bd9-5d5d0e5cc3c6/{ID}"),
            format!("/kubepods/besteffort/pod3c1b1a5e-4f5d-4c84-9bd9-5d5d0e5cc3c6/{ID}"),
            format!("/kubepods/pod3c1b1a5e-4f5d-4c84-9bd9-5d5d0e5cc3c6/{ID}"),
        ] {
            let text = format!("11:memory:{path}\n0::{path}\n");
            assert_eq!(one(&text), Some((CONTAINERD, ID.to_string())), "{path}");
        }
        // the pod's sandbox cgroup itself is not a container
        assert_eq!(
            one("0::/kubepods/burstable/pod3c1b1a5e-4f5d-4c84-9bd9-5d5d0e5cc3c6\n"),
            None
        );
    }

    #[test]
    fn crio_and_podman() {
        let text = format!("0::/machine.slice/libpod-{ID}.scope\n");
        assert_eq!(one(&text), Some((PODMAN, ID.to_string())));
        let text = format!(
            "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container\n"
        );
        assert_eq!(one(&text), Some((PODMAN, ID.to_string())));
        let text = format!("0::/libpod_parent/libpod-{ID}\n");
        assert_eq!(one(&text), Some((PODMAN, ID.to_string())));
        let text = format!("0::/system.slice/crio-{ID}.scope\n");
        assert_eq!(one(&text), Some((CRIO, ID.to_string())));
        // conmon, the monitor beside the container, is not in it
        assert_eq!(
            one(&format!("0::/machine.slice/libpod-conmon-{ID}.scope\n")),
            None
        );
        assert_eq!(
            one(&format!("0::/system.slice/crio-conmon-{ID}.scope\n")),
            None
        );
    }

    #[test]
    fn containerd_without_kubernetes() {
        let text = format!("0::/system.slice/nerdctl-{ID}.scope\n");
        assert_eq!(one(&text), Some((CONTAINERD, ID.to_string())));
    }

    #[test]
    fn nested_names_the_innermost() {
        let inner = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let text = format!("0::/docker/{ID}/docker/{inner}\n");
        assert_eq!(one(&text), Some((DOCKER, inner.to_string())));
    }

    #[test]
    fn host_processes_are_in_no_container() {
        for text in [
            "0::/\n",
            "0::/init.scope\n",
            "0::/system.slice/ssh.service\n",
            "0::/system.slice/docker.service\n",
            "0::/system.slice/containerd.service\n",
            "0::/user.slice/user-1000.slice/session-3.scope\n",
            // a sandbox's own 32-digit cgroup name (seen on the CI VM)
            "9:name=systemd:/\n4:memory:/process_api/823d5ba5c37f18496d8306def680bf2a\n0::/\n",
            // not hex, wrong length, uppercase
            "0::/docker/xyz\n",
            "0::/docker/bb289a9a4c8c60f6543128a90ddd05377a01801ab67821d53a0e59eb046a48a\n",
            "0::/docker/BB289A9A4C8C60F6543128A90DDD05377A01801AB67821D53A0E59EB046A48AD\n",
            // an id under a parent no runtime uses
            &format!("0::/somewhere/{ID}\n"),
            "",
            "garbage",
        ] {
            assert_eq!(one(text), None, "{text:?}");
        }
    }

    #[test]
    fn this_test_runs_on_the_host_or_is_recognised() {
        // readable, whatever this machine is
        assert!(of_pid(Path::new("/proc"), std::process::id()).is_some());
        assert_eq!(of_pid(Path::new("/nonexistent"), 1), None);
    }

    #[test]
    fn cgroup2_mount_points() {
        let hybrid = "35 25 0:30 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
            36 35 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
            37 35 0:32 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let pure =
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(cgroup2_mount(pure), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(
            cgroup2_mount("37 35 0:32 / /x rw - cgroup cgroup rw,cpu\n"),
            None
        );
    }

    #[test]
    fn cgroup_ids_are_directory_inodes() {
        // a directory tree standing in for the hierarchy
        let root = std::env::temp_dir().join(format!("qtap-cg-{}", std::process::id()));
        let leaf = root.join("docker").join(ID);
        std::fs::create_dir_all(&leaf).unwrap();
        let ino = std::fs::metadata(&leaf).unwrap().ino();
        let mut p = CgroupPaths::new(Some(root.clone()));
        let path = p.path(ino).unwrap();
        assert_eq!(path, format!("/docker/{ID}"));
        assert_eq!(parse_path(&path), Some((DOCKER, ID.to_string())));
        assert_eq!(p.path(0), None);
        // a directory made after the walk is found by the next one (not sooner than REWALK)
        let late = root.join("docker").join("late");
        std::fs::create_dir_all(&late).unwrap();
        let ino = std::fs::metadata(&late).unwrap().ino();
        std::thread::sleep(REWALK);
        assert_eq!(p.path(ino).as_deref(), Some("/docker/late"));
        assert_eq!(CgroupPaths::new(None).path(ino), None);
        let _ = std::fs::remove_dir_all(root);
    }
}
