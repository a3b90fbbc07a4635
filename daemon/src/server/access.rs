//! Who may watch: the decision taken for every connection before anything is served.
//!
//! The event stream carries every process's decrypted traffic, root's included, so the
//! peer's uid (found by [`super::peer`]) must be root, the daemon's own user, the user who
//! started it through sudo (`SUDO_UID`), a user named by `--allow-user`, or a member
//! (primary or supplementary group, from the user database) of a group named by
//! `--allow-group`. Anyone else gets a 403 page naming their uid and the flag that would
//! let them in; their connection never reaches routing, so no probe is loaded for them.
use std::ffi::{CStr, CString};
use std::net::SocketAddr;

/// Who is at the other end of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A socket on this host, owned by `uid` (`pid`: the connecting process, known for unix
    /// sockets only).
    Local { uid: u32, pid: Option<i32> },
    /// A TCP peer that is no socket of this host's network namespace (another machine, or
    /// a container with its own network).
    Remote(SocketAddr),
    /// Identification failed; the reason is shown on the refusal page.
    Unknown(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    #[error(
        "--allow-user {0}: no such user in the user database — create it, or give a numeric UID"
    )]
    NoSuchUser(String),
    #[error(
        "--allow-group {0}: no such group in the user database — create it, or give a numeric GID"
    )]
    NoSuchGroup(String),
    #[error("{flag} `{value}`: not a user/group name or number — use e.g. alice or 1000")]
    Bad { flag: &'static str, value: String },
}

/// The allowed uids and gids, each with why (for the logs).
#[derive(Clone, Debug)]
pub struct AccessPolicy {
    users: Vec<(u32, String)>,
    groups: Vec<(u32, String)>,
    /// `--allow-remote`: peers that are no socket of this host are let in unidentified
    allow_remote: bool,
}

/// What to do with a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// allowed, and why (e.g. "uid 0 (root)")
    Allow(String),
    /// refused: the text of the 403 page
    Refuse(String),
}

impl AccessPolicy {
    /// Root and the daemon's own user only (plus `SUDO_UID` from the environment): the
    /// default of `qtap --enable-dev-tools` without `--allow-*` flags.
    pub fn for_this_process(allow_remote: bool) -> Self {
        let sudo = std::env::var("SUDO_UID").ok();
        Self::resolve(&[], &[], sudo.as_deref(), allow_remote)
            .unwrap_or_else(|_| Self::base(allow_remote))
    }

    fn base(allow_remote: bool) -> Self {
        let mut users = vec![(0, "root".to_string())];
        // SAFETY: getuid(2) cannot fail and touches no memory.
        let me = unsafe { libc::getuid() };
        if me != 0 {
            users.push((me, "the daemon's own user".into()));
        }
        AccessPolicy {
            users,
            groups: Vec::new(),
            allow_remote,
        }
    }

    /// The policy from the command line: `--allow-user` (names or uids), `--allow-group`
    /// (names or gids), and `SUDO_UID` (the user who ran `sudo qtap`; ignored, with a
    /// warning, when it is not a number).
    pub fn resolve(
        users: &[String],
        groups: &[String],
        sudo_uid: Option<&str>,
        allow_remote: bool,
    ) -> Result<Self, AccessError> {
        let mut p = Self::base(allow_remote);
        if let Some(s) = sudo_uid.filter(|s| !s.is_empty()) {
            match s.parse::<u32>() {
                Ok(uid) => p.add_user(uid, "the user who started qtap through sudo (SUDO_UID)"),
                Err(_) => tracing::warn!("ignoring SUDO_UID={s:?}: not a number"),
            }
        }
        for u in users {
            let uid = resolve_id(u, "--allow-user", lookup_user_uid)?
                .ok_or_else(|| AccessError::NoSuchUser(u.clone()))?;
            p.add_user(uid, &format!("--allow-user {u}"));
        }
        for g in groups {
            let gid = resolve_id(g, "--allow-group", lookup_group_gid)?
                .ok_or_else(|| AccessError::NoSuchGroup(g.clone()))?;
            if !p.groups.iter().any(|(x, _)| *x == gid) {
                p.groups.push((gid, format!("--allow-group {g}")));
            }
        }
        Ok(p)
    }

    fn add_user(&mut self, uid: u32, why: &str) {
        if !self.users.iter().any(|(x, _)| *x == uid) {
            self.users.push((uid, why.to_string()));
        }
    }

    pub fn allowed_uids(&self) -> Vec<u32> {
        self.users.iter().map(|(u, _)| *u).collect()
    }

    pub fn allowed_gids(&self) -> Vec<u32> {
        self.groups.iter().map(|(g, _)| *g).collect()
    }

    /// The decision for `peer`, with the user database for group membership and names
    /// (call it off the async workers: NSS may ask a directory server).
    pub fn decide(&self, peer: &Peer) -> Decision {
        self.decide_with(peer, &SystemDb)
    }

    pub fn decide_with(&self, peer: &Peer, db: &dyn UserDb) -> Decision {
        let uid = match peer {
            Peer::Local { uid, .. } => *uid,
            Peer::Remote(addr) if self.allow_remote => {
                return Decision::Allow(format!(
                    "remote peer {addr}, unidentified (--allow-remote)"
                ));
            }
            Peer::Remote(addr) => {
                return Decision::Refuse(format!(
                    "403 Forbidden: this connection comes from {addr}, which is no socket of this \
                     host, so its user cannot be identified.\n\nqtap DevTools serves only local \
                     users it can identify (root and the users and groups allowed on its command \
                     line). Reach it through SSH instead:\n\n    ssh -L 10001:localhost:10001 THIS-HOST\n"
                ));
            }
            Peer::Unknown(why) => {
                return Decision::Refuse(format!(
                    "403 Forbidden: qtap DevTools could not identify the user of this connection \
                     ({why}), and serves only users it can identify.\n"
                ));
            }
        };
        if let Some((_, why)) = self.users.iter().find(|(u, _)| *u == uid) {
            return Decision::Allow(format!("uid {uid} ({why})"));
        }
        let name = db.user_name(uid);
        if !self.groups.is_empty() {
            let member_of = db.groups_of(uid);
            if let Some((gid, why)) = self.groups.iter().find(|(g, _)| member_of.contains(g)) {
                return Decision::Allow(format!("uid {uid}, member of gid {gid} ({why})"));
            }
        }
        Decision::Refuse(refusal_page(uid, name.as_deref()))
    }
}

/// The 403 page for a local user who is not allowed: their uid and the flag that would
/// let them in.
pub fn refusal_page(uid: u32, name: Option<&str>) -> String {
    let who = match name {
        Some(n) => format!("uid {uid} ({n})"),
        None => format!("uid {uid}"),
    };
    let flag = match name {
        Some(n) => format!("--allow-user {n}"),
        None => format!("--allow-user {uid}"),
    };
    format!(
        "403 Forbidden: this connection comes from {who}, which may not watch this host.\n\n\
         qtap DevTools shows the decrypted HTTP traffic of every process on the host, root's \
         included, so it serves only root, the user who started it through sudo, and the users \
         and groups allowed on its command line. To allow this user, start qtap with\n\n    \
         {flag}\n\n\
         (or --allow-group GROUP for one of its groups; both repeatable). Under systemd, add it \
         to ExecStart= with `systemctl edit qtap-devtools.service`; on NixOS, use \
         services.qtap.devTools.allowUsers / allowGroups.\n"
    )
}

/// A user or group given by number, or by name through `lookup`. `Ok(None)`: a name the
/// user database does not know.
fn resolve_id(
    s: &str,
    flag: &'static str,
    lookup: fn(&str) -> Option<u32>,
) -> Result<Option<u32>, AccessError> {
    let bad = || AccessError::Bad {
        flag,
        value: s.to_string(),
    };
    if s.is_empty() || s.contains(['\0', ' ', '\n', ':', '/']) {
        return Err(bad());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map(Some).map_err(|_| bad());
    }
    Ok(lookup(s))
}

/// The user database, as far as the decision needs it (a trait for the tests).
pub trait UserDb {
    /// the login name of `uid`
    fn user_name(&self, uid: u32) -> Option<String>;
    /// the gids `uid` is a member of: its primary group and its supplementary groups
    fn groups_of(&self, uid: u32) -> Vec<u32>;
}

/// NSS through libc (`getpwuid_r`, `getgrouplist`): /etc/passwd, /etc/group, and whatever
/// else nsswitch.conf names.
pub struct SystemDb;

impl UserDb for SystemDb {
    fn user_name(&self, uid: u32) -> Option<String> {
        passwd_by_uid(uid).map(|(name, _)| name)
    }

    fn groups_of(&self, uid: u32) -> Vec<u32> {
        let Some((name, gid)) = passwd_by_uid(uid) else {
            return Vec::new();
        };
        let Ok(cname) = CString::new(name) else {
            return vec![gid];
        };
        let mut n: libc::c_int = 64;
        for _ in 0..8 {
            let mut groups = vec![0 as libc::gid_t; n as usize];
            let mut count = n;
            // SAFETY: `cname` is NUL-terminated; `groups` has room for `count` gids, and
            // getgrouplist writes at most that many (updating `count`).
            let r =
                unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
            if r >= 0 {
                groups.truncate(count.max(0) as usize);
                return groups;
            }
            // too small: `count` now holds the size needed
            n = count.max(n * 2).min(1 << 16);
        }
        vec![gid]
    }
}

/// Runs a reentrant NSS lookup with a growing buffer (ERANGE: too small).
fn with_buffer<T>(mut f: impl FnMut(&mut [libc::c_char]) -> Result<Option<T>, i32>) -> Option<T> {
    let mut size = 1024;
    while size <= 1 << 20 {
        let mut buf = vec![0 as libc::c_char; size];
        match f(&mut buf) {
            Ok(v) => return v,
            Err(libc::ERANGE) => size *= 4,
            Err(_) => return None,
        }
    }
    None
}

/// (name, primary gid) of `uid`.
fn passwd_by_uid(uid: u32) -> Option<(String, u32)> {
    with_buffer(|buf| {
        // SAFETY: passwd is plain old data; zeroed is a valid (empty) value.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; strings in `pw` point into `buf`.
        let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
        if r != 0 {
            return Err(r);
        }
        if out.is_null() || pw.pw_name.is_null() {
            return Ok(None);
        }
        // SAFETY: getpwuid_r succeeded: pw_name is a NUL-terminated string inside `buf`.
        let name = unsafe { CStr::from_ptr(pw.pw_name) };
        Ok(Some((name.to_string_lossy().into_owned(), pw.pw_gid)))
    })
}

fn lookup_user_uid(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    with_buffer(|buf| {
        // SAFETY: as in passwd_by_uid.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call.
        let r = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pw,
                buf.as_mut_ptr(),
                buf.len(),
                &mut out,
            )
        };
        if r != 0 {
            return Err(r);
        }
        Ok((!out.is_null()).then_some(pw.pw_uid))
    })
}

fn lookup_group_gid(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    with_buffer(|buf| {
        // SAFETY: group is plain old data; zeroed is a valid (empty) value.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call.
        let r = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut gr,
                buf.as_mut_ptr(),
                buf.len(),
                &mut out,
            )
        };
        if r != 0 {
            return Err(r);
        }
        Ok((!out.is_null()).then_some(gr.gr_gid))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeDb;
    impl UserDb for FakeDb {
        fn user_name(&self, uid: u32) -> Option<String> {
            match uid {
                1000 => Some("alice".into()),
                1001 => Some("bob".into()),
                _ => None,
            }
        }
        fn groups_of(&self, uid: u32) -> Vec<u32> {
            match uid {
                1000 => vec![1000, 27],
                1001 => vec![1001],
                _ => vec![],
            }
        }
    }

    fn local(uid: u32) -> Peer {
        Peer::Local { uid, pid: None }
    }

    fn policy(users: &[&str], groups: &[&str], sudo: Option<&str>) -> AccessPolicy {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        AccessPolicy::resolve(&s(users), &s(groups), sudo, false).unwrap()
    }

    fn allowed(p: &AccessPolicy, peer: &Peer) -> bool {
        matches!(p.decide_with(peer, &FakeDb), Decision::Allow(_))
    }

    #[test]
    fn root_is_allowed_by_default_others_are_not() {
        let p = policy(&[], &[], None);
        assert!(allowed(&p, &local(0)));
        if unsafe { libc::getuid() } == 0 {
            // (as another user the daemon's own uid is allowed too)
            assert!(!allowed(&p, &local(1000)));
        }
        assert!(!allowed(&p, &local(65534)));
    }

    #[test]
    fn sudo_uid_is_honoured_and_garbage_ignored() {
        assert!(allowed(&policy(&[], &[], Some("1000")), &local(1000)));
        let p = policy(&[], &[], Some("alice"));
        assert!(!allowed(&p, &local(65534)) && allowed(&p, &local(0)));
        assert_eq!(
            p.allowed_uids().len(),
            AccessPolicy::base(false).users.len()
        );
    }

    #[test]
    fn users_by_number_and_by_name() {
        let p = policy(&["4242", "root"], &[], None);
        assert!(allowed(&p, &local(4242)));
        assert!(!allowed(&p, &local(4243)));
        // "nobody" exists on every Debian system (65534)
        assert!(allowed(&policy(&["nobody"], &[], None), &local(65534)));
    }

    #[test]
    fn unknown_names_and_garbage_fail_with_the_flag() {
        let s = |v: &str| vec![v.to_string()];
        let e = AccessPolicy::resolve(&s("no-such-user-qtap"), &[], None, false).unwrap_err();
        assert_eq!(e, AccessError::NoSuchUser("no-such-user-qtap".into()));
        assert!(
            e.to_string()
                .contains("--allow-user no-such-user-qtap: no such user")
        );
        let e = AccessPolicy::resolve(&[], &s("no-such-group-qtap"), None, false).unwrap_err();
        assert!(
            e.to_string()
                .contains("--allow-group no-such-group-qtap: no such group")
        );
        for bad in ["", "a b", "a:b", "../x", "99999999999"] {
            assert!(
                matches!(
                    AccessPolicy::resolve(&s(bad), &[], None, false),
                    Err(AccessError::Bad { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn groups_include_supplementary_ones() {
        // alice's primary group is 1000, she is also in 27; bob only in 1001
        let p = policy(&[], &["27"], None);
        assert!(allowed(&p, &local(1000)), "supplementary group");
        assert!(!allowed(&p, &local(1001)));
        let p = policy(&[], &["1001"], None);
        assert!(allowed(&p, &local(1001)), "primary group");
        // by name through the real database: root's primary group
        let p = policy(&[], &["root"], None);
        assert_eq!(p.allowed_gids(), vec![0]);
        assert!(SystemDb.groups_of(0).contains(&0));
    }

    #[test]
    fn refusal_names_the_uid_and_the_flag() {
        let p = policy(&[], &[], None);
        let Decision::Refuse(page) = p.decide_with(&local(1001), &FakeDb) else {
            panic!()
        };
        assert!(page.starts_with("403 Forbidden"), "{page}");
        assert!(
            page.contains("uid 1001 (bob)") && page.contains("--allow-user bob"),
            "{page}"
        );
        let Decision::Refuse(page) = p.decide_with(&local(4242), &FakeDb) else {
            panic!()
        };
        assert!(
            page.contains("uid 4242,") && page.contains("--allow-user 4242"),
            "{page}"
        );
        assert!(page.contains("--allow-group"), "{page}");
    }

    #[test]
    fn remote_and_unknown_peers() {
        let addr: SocketAddr = "10.0.0.7:5555".parse().unwrap();
        let p = policy(&[], &[], None);
        let Decision::Refuse(page) = p.decide_with(&Peer::Remote(addr), &FakeDb) else {
            panic!()
        };
        assert!(
            page.contains("10.0.0.7:5555") && page.contains("ssh -L"),
            "{page}"
        );
        let r = AccessPolicy::resolve(&[], &[], None, true).unwrap();
        assert!(matches!(
            r.decide_with(&Peer::Remote(addr), &FakeDb),
            Decision::Allow(_)
        ));
        // --allow-remote lets unidentified remote peers in, not unidentified local ones
        assert!(matches!(
            r.decide_with(&Peer::Unknown("gone".into()), &FakeDb),
            Decision::Refuse(_)
        ));
        assert!(!allowed(&r, &local(65534)));
    }
}
