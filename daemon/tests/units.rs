//! `systemd/` unit files: `systemd-analyze verify` is clean (no unknown keys, no warnings)
//! and the settings the product relies on are there.
use std::path::Path;
use std::process::Command;

fn unit(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../systemd")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn units_verify_cleanly() {
    if !Path::new("/usr/bin/systemd-analyze").exists() {
        eprintln!("skipping: systemd-analyze not found");
        return;
    }
    let dir = std::env::temp_dir().join(format!("qtap-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // verify checks that ExecStart= exists: point it at the binary under test
    let service = unit("qtap-devtools.service").replace(
        "ExecStart=/usr/bin/qtap ",
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_qtap")),
    );
    std::fs::write(dir.join("qtap-devtools.service"), service).unwrap();
    for socket in ["qtap-devtools.socket", "qtap-devtools-unix.socket"] {
        std::fs::write(dir.join(socket), unit(socket)).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .current_dir(&dir)
        .args([
            "verify",
            "./qtap-devtools.socket",
            "./qtap-devtools-unix.socket",
            "./qtap-devtools.service",
        ])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{err}"
    );
    assert!(
        err.trim().is_empty(),
        "systemd-analyze verify warned:\n{err}"
    );
}

#[test]
fn units_say_what_the_daemon_needs() {
    let socket = unit("qtap-devtools.socket");
    let has_in = |text: &str, l: &str| text.lines().any(|x| x == l);
    for l in [
        "ListenStream=127.0.0.1:10001",
        "IPAddressDeny=any",
        "IPAddressAllow=localhost",
    ] {
        assert!(has_in(&socket, l), "qtap-devtools.socket lacks `{l}`");
    }
    let unix = unit("qtap-devtools-unix.socket");
    for l in [
        "ListenStream=/run/qtap/devtools.sock",
        "SocketMode=0666",
        "DirectoryMode=0755",
        "Service=qtap-devtools.service",
    ] {
        assert!(has_in(&unix, l), "qtap-devtools-unix.socket lacks `{l}`");
    }
    let service = unit("qtap-devtools.service");
    let has = |l: &str| has_in(&service, l);
    for l in [
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=/usr/bin/qtap --enable-dev-tools --log-level info",
        "Restart=on-failure",
        "WatchdogSec=30s",
        "CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_SYS_ADMIN CAP_SYS_PTRACE CAP_DAC_READ_SEARCH CAP_KILL CAP_SETUID CAP_SETGID",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        // issue 12: read-only /sys, /proc/sys and cgroup tree; loopback IP only; a memory
        // ceiling; only the address families the code uses
        "ProtectKernelTunables=yes",
        "ProtectControlGroups=yes",
        "IPAddressDeny=any",
        "IPAddressAllow=localhost",
        "MemoryMax=1G",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    ] {
        assert!(has(l), "service lacks `{l}`");
    }
    // settings that would hide other processes from the daemon or void its capabilities
    for key in [
        "PrivatePIDs=",
        "ProcSubset=",
        "ProtectProc=",
        "PrivateUsers=",
        "PrivateNetwork=",
    ] {
        assert!(
            !service.lines().any(|l| l.starts_with(key)),
            "service must not set {key}"
        );
    }
    // either socket may start it alone: no hard dependency on the TCP one
    assert!(!service.lines().any(|l| l.starts_with("Requires=")));
}
