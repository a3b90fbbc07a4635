//! Who made a connection: pid, ppid, exe, cmdline, uid and user name, read from /proc
//! once per process (and again after exec), and the container it lives in: the id and
//! runtime from its cgroup (`container`), the name, image and labels from Docker
//! (`docker`). `exe` is the path as seen inside the container (what /proc/PID/exe
//! says); `pid` is the host's.
pub mod container;
pub mod docker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::events::{Container, ProcessRef, ProcessStarted};
use docker::DockerNames;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub exe: String,
    pub name: String,
    pub cmdline: Vec<String>,
    pub uid: u32,
    pub user: String,
    /// as known when the process was first read (see `Processes::container_of` for the
    /// freshest view)
    pub container: Option<Container>,
}

impl ProcessInfo {
    pub fn to_ref(&self) -> ProcessRef {
        ProcessRef {
            pid: self.pid,
            exe: self.exe.clone(),
            name: self.name.clone(),
            user: self.user.clone(),
        }
    }

    pub fn to_started(&self) -> ProcessStarted {
        ProcessStarted {
            pid: self.pid,
            ppid: self.ppid,
            exe: self.exe.clone(),
            cmdline: self.cmdline.clone(),
            user: self.user.clone(),
            uid: self.uid,
            container: self.container.clone(),
        }
    }
}

/// uid → name from an `/etc/passwd` text.
pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

/// (ppid, real uid) from `/proc/PID/status`.
pub fn parse_status(text: &str) -> (u32, u32) {
    let mut ppid = 0;
    let mut uid = 0;
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("PPid:") {
            ppid = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = l.strip_prefix("Uid:") {
            uid = v
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
        }
    }
    (ppid, uid)
}

/// What the exec record said of a process: used when it exits before /proc is read.
#[derive(Clone, Debug)]
struct ExecHint {
    filename: String,
    comm: String,
    uid: u32,
    /// read at exec, while the process surely lives
    container: Option<Container>,
}

/// Exec hints kept at most (oldest forgotten first).
const MAX_HINTS: usize = 16_384;

pub struct Processes {
    proc_root: PathBuf,
    cache: HashMap<u32, Arc<ProcessInfo>>,
    users: HashMap<u32, String>,
    hints: HashMap<u32, ExecHint>,
    hint_order: std::collections::VecDeque<u32>,
    docker: Option<DockerNames>,
    cgroups: container::CgroupPaths,
}

impl Processes {
    pub fn new(proc_root: &Path) -> Self {
        let users = std::fs::read_to_string("/etc/passwd")
            .map(|t| parse_passwd(&t))
            .unwrap_or_default();
        Processes {
            proc_root: proc_root.to_path_buf(),
            cache: HashMap::new(),
            users,
            hints: HashMap::new(),
            hint_order: Default::default(),
            docker: None,
            cgroups: container::CgroupPaths::host(),
        }
    }

    /// Names Docker containers through `names` (otherwise containers have an id and a
    /// runtime only).
    pub fn with_docker(mut self, names: DockerNames) -> Self {
        self.docker = Some(names);
        self
    }

    /// The container `pid` lives in, as known now; never waits on Docker. `None` when
    /// /proc could not say (the process is gone).
    fn read_container(&self, pid: u32) -> Option<Option<Container>> {
        let found = container::of_pid(&self.proc_root, pid)?;
        Some(found.map(|(runtime, id)| self.name(runtime, &id)))
    }

    fn name(&self, runtime: container::Runtime, id: &str) -> Container {
        match &self.docker {
            Some(d) if runtime == container::DOCKER => d.lookup(id),
            _ => docker::bare(runtime, id),
        }
    }

    /// The freshest view of a process's container: Docker may have named it (or renamed
    /// it) since the process was read.
    pub fn container_of(&self, info: &ProcessInfo) -> Option<Container> {
        let c = info.container.as_ref()?;
        if c.runtime == container::DOCKER
            && let Some(k) = self.docker.as_ref().and_then(|d| d.known(&c.id))
        {
            return Some(k);
        }
        Some(c.clone())
    }

    /// `process.started` for a process, with its container as known now.
    pub fn started(&self, info: &ProcessInfo) -> ProcessStarted {
        ProcessStarted {
            container: self.container_of(info),
            ..info.to_started()
        }
    }

    /// Reads a process from /proc; the exec record (or `comm`) names it when it is
    /// already gone.
    fn read(&self, pid: u32, comm: Option<&str>) -> ProcessInfo {
        let mut info = self.read_proc(pid, comm);
        if let Some(h) = self.hints.get(&pid) {
            if info.exe.is_empty() {
                info.exe = if h.filename.starts_with('/') {
                    h.filename.clone()
                } else {
                    String::new()
                };
                info.name = info
                    .exe
                    .rsplit('/')
                    .next()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(&h.comm)
                    .to_string();
            }
            if info.user.is_empty() && h.uid != u32::MAX {
                info.uid = h.uid;
                info.user = self
                    .users
                    .get(&h.uid)
                    .cloned()
                    .unwrap_or_else(|| h.uid.to_string());
            }
            if info.container.is_none() {
                info.container = h.container.clone();
            }
        }
        info
    }

    fn read_proc(&self, pid: u32, comm: Option<&str>) -> ProcessInfo {
        let base = self.proc_root.join(pid.to_string());
        let exe = std::fs::read_link(base.join("exe"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let cmdline: Vec<String> = std::fs::read(base.join("cmdline"))
            .map(|b| {
                b.split(|&c| c == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let (ppid, uid) = std::fs::read_to_string(base.join("status"))
            .map(|t| parse_status(&t))
            .unwrap_or((0, u32::MAX));
        let comm_now = std::fs::read_to_string(base.join("comm"))
            .map(|s| s.trim().to_string())
            .ok();
        let exe = exe.trim_end_matches(" (deleted)").to_string();
        let name = if !exe.is_empty() {
            exe.rsplit('/').next().unwrap_or(&exe).to_string()
        } else {
            comm_now
                .or(comm.map(str::to_string))
                .unwrap_or_else(|| "?".into())
        };
        let user = if uid == u32::MAX {
            String::new()
        } else {
            self.users
                .get(&uid)
                .cloned()
                .unwrap_or_else(|| uid.to_string())
        };
        ProcessInfo {
            pid,
            ppid,
            exe,
            name,
            cmdline,
            uid: if uid == u32::MAX { 0 } else { uid },
            user,
            container: self.read_container(pid).flatten(),
        }
    }

    /// The process, read once and cached.
    pub fn get(&mut self, pid: u32) -> Arc<ProcessInfo> {
        if let Some(p) = self.cache.get(&pid) {
            return p.clone();
        }
        let info = Arc::new(self.read(pid, None));
        self.cache.insert(pid, info.clone());
        info
    }

    /// After exec the same pid runs another program; remember what exec said.
    /// `cgroup_id` (the kernel's, at exec) names the container when /proc no longer can.
    pub fn exec(&mut self, pid: u32, filename: String, comm: String, uid: u32, cgroup_id: u64) {
        self.cache.remove(&pid);
        let container = match self.read_container(pid) {
            Some(c) => c,
            None => self
                .cgroups
                .path(cgroup_id)
                .and_then(|p| container::parse_path(&p))
                .map(|(runtime, id)| self.name(runtime, &id)),
        };
        if self
            .hints
            .insert(
                pid,
                ExecHint {
                    filename,
                    comm,
                    uid,
                    container,
                },
            )
            .is_none()
        {
            self.hint_order.push_back(pid);
        }
        while self.hint_order.len() > MAX_HINTS {
            if let Some(old) = self.hint_order.pop_front() {
                self.hints.remove(&old);
            }
        }
    }

    /// The task name a connect/accept record carried: names the process if it is gone
    /// before /proc is read and no exec record was seen.
    pub fn comm_hint(&mut self, pid: u32, comm: String) {
        if self.cache.contains_key(&pid) || self.hints.contains_key(&pid) || comm.is_empty() {
            return;
        }
        self.hints.insert(
            pid,
            ExecHint {
                filename: String::new(),
                comm,
                uid: u32::MAX,
                container: None,
            },
        );
        self.hint_order.push_back(pid);
    }

    /// The process is gone: returns what was known (reading /proc one last time if it
    /// was never read), and forgets it.
    pub fn exit(&mut self, pid: u32, comm: &str) -> Arc<ProcessInfo> {
        let info = self
            .cache
            .remove(&pid)
            .unwrap_or_else(|| Arc::new(self.read(pid, Some(comm))));
        self.hints.remove(&pid);
        info
    }

    pub fn cached(&self, pid: u32) -> Option<&Arc<ProcessInfo>> {
        self.cache.get(&pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_status() {
        let u = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\nbad line\n",
        );
        assert_eq!(u[&0], "root");
        assert_eq!(u[&33], "www-data");
        assert_eq!(
            parse_status("Name:\tcurl\nPPid:\t42\nUid:\t1000\t1000\t1000\t1000\n"),
            (42, 1000)
        );
    }

    #[test]
    fn reads_this_process() {
        let mut p = Processes::new(Path::new("/proc"));
        let me = p.get(std::process::id());
        assert_eq!(me.pid, std::process::id());
        assert!(me.exe.starts_with('/'), "exe {:?}", me.exe);
        assert!(!me.cmdline.is_empty());
        // SAFETY: getuid has no preconditions.
        assert_eq!(me.uid, unsafe { libc::getuid() });
    }

    #[test]
    fn a_process_gone_before_proc_is_read_is_named_by_its_exec() {
        let mut p = Processes::new(Path::new("/nonexistent-proc"));
        p.exec(4242, "/usr/bin/curl".into(), "curl".into(), 0, 0);
        let i = p.get(4242);
        assert_eq!(
            (i.exe.as_str(), i.name.as_str(), i.user.as_str()),
            ("/usr/bin/curl", "curl", "root")
        );
    }
}
