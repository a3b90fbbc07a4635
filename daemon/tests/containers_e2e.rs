//! End to end, as root, with a real Docker engine: `qtap trace` with real eBPF, clients
//! inside containers (`--network host`, everything on 127.0.0.1), servers on the host.
//! Asserts what a user reads in the stream: the container's name, image and id on the
//! events of the processes inside it, over plaintext and over TLS (through the
//! container's own libssl), across a rename, and with Docker stopped.
//!
//! Needs root and Docker (`apt-get install docker.io`, `dockerd` running: .ci/setup and
//! .ci/test do both); without them the tests fail, they never skip. The test images are
//! built from this host's own curl and shell (`docker import`); nothing is pulled.
mod docker_support;

use docker_support::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const IMAGE: &str = "qtap-e2e/curl:1";

fn is_id(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `container` of an event: the name and image asked for, Docker's runtime, an id.
fn assert_container(c: &Value, name: &str, image: &str, ctx: &Value) {
    assert_eq!(c["name"], name, "{ctx:#}");
    assert_eq!(c["image"], image, "{ctx:#}");
    assert_eq!(c["runtime"], "docker", "{ctx:#}");
    assert!(is_id(&c["id"]), "{ctx:#}");
}

#[test]
fn named_container_over_plaintext_and_tls() {
    require_docker(HOST_SOCKET);
    image(HOST_SOCKET, &[IMAGE]);
    let trace = Trace::start(&[]);
    let (_plain, plain_port, _d1) = python_server(false);
    let (_tls, tls_port, _d2) = python_server(true);
    let dir = TempDir::new("cid");
    for (scheme, port) in [("http", plain_port), ("https", tls_port)] {
        let ctr = Ctr::named(HOST_SOCKET, "payment-worker");
        let tok = token(scheme);
        let cidfile = dir.0.join(format!("{scheme}.cid"));
        let out = sh(docker(HOST_SOCKET)
            .args(["run", "--rm", "--name", &ctr.name, "--network", "host"])
            .arg("--cidfile")
            .arg(&cidfile)
            .args([IMAGE, "curl", "-sSk", "--http1.1", "-H"])
            .arg(format!("Authorization: Bearer {tok}"))
            .arg(format!("{scheme}://127.0.0.1:{port}/hello")));
        assert_eq!(out, "hello from python");
        let cid = std::fs::read_to_string(&cidfile).unwrap();
        let tx = trace.egress(&tok);
        let s = &tx["summary"];
        assert_container(&s["container"], &ctr.name, IMAGE, &tx);
        assert_eq!(s["container"]["id"], cid.trim(), "{tx:#}");
        assert_eq!(s["tls"], scheme == "https", "{tx:#}");
        assert_eq!(
            tx["transaction"]["response"]["body"]["text"], "hello from python",
            "{scheme}: the plaintext was read (over TLS, from the container's own libssl)"
        );
        // exe as seen inside the container; pid as the host knows it (1 inside)
        assert_eq!(s["process"]["exe"], "/usr/bin/curl", "{tx:#}");
        let pid = s["process"]["pid"].as_u64().unwrap();
        assert!(pid > 1, "host pid expected: {tx:#}");
        let cid_s = cid.trim().to_string();
        let started = trace.wait_for("process.started", &cid_s, Duration::from_secs(5), |d| {
            d["pid"] == pid && d["container"]["id"] == cid_s.as_str()
        });
        assert_eq!(started["exe"], "/usr/bin/curl");
        let conn = s["connection_id"].as_str().unwrap();
        let opened = trace.wait_for("connection.opened", conn, Duration::from_secs(5), |d| {
            d["connection_id"] == conn
        });
        assert_eq!(opened["container"]["id"], cid_s.as_str(), "{opened:#}");
        if scheme == "https" {
            assert_eq!(opened["tls"]["library"], "openssl", "{opened:#}");
        }
        // the host side of the same exchange is in no container
        let ing = trace.side("ingress", &tok);
        assert!(ing["summary"].get("container").is_none(), "{ing:#}");
    }
}

/// A file's identity across overlay mounts (as the product keys it): inode, size, mtime.
fn file_id(path: &str) -> Option<(u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// Identities of the libssl files the processes of container `name` map.
fn container_libssl(name: &str) -> Vec<Option<(u64, u64, i64, i64)>> {
    let mut out = Vec::new();
    for pid in sh(docker(HOST_SOCKET).args(["top", name, "-o", "pid"]))
        .lines()
        .skip(1)
    {
        let pid = pid.trim();
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        for path in maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .filter(|p| p.contains("libssl"))
        {
            out.push(file_id(&format!("/proc/{pid}/root{path}")));
        }
    }
    out
}

#[test]
fn two_containers_each_attributed_and_their_libssl_listed() {
    require_docker(HOST_SOCKET);
    // each image with a layer of its own: each container maps its own libssl file, which
    // the daemon must find and probe (with a shared layer the probe list would name
    // whichever process of any test's container it saw that file in first)
    let (orders_img, billing_img) = ("qtap-e2e/orders:2", "qtap-e2e/billing:2");
    image_own_layer(HOST_SOCKET, orders_img);
    image_own_layer(HOST_SOCKET, billing_img);
    // the serving daemon: its health lists each probe as it is attached
    let devtools = Devtools::start();
    let (_srv, port, _d) = python_server(true);
    let dir = TempDir::new("two-ctrs");
    let mut ctrs = Vec::new();
    // identities of the probed files, read while the process the probe names is alive
    // (the list keeps naming the first process a file was seen in, which may exit)
    let probed_ids = std::cell::RefCell::new(std::collections::HashMap::new());
    for (name, img) in [
        ("qtap-e2e-orders", orders_img),
        ("qtap-e2e-billing", billing_img),
    ] {
        let ctr = Ctr::named(HOST_SOCKET, name);
        let name = ctr.name.clone();
        let tok = token(&name);
        // curl starts (its libssl mapped) and blocks reading its config from a FIFO that
        // the test fills only once the daemon reports that container's libssl probed;
        // then it stays up (for the second trace below)
        let fifo = dir.0.join(format!("{name}.cfg"));
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string; mkfifo has no other precondition.
        assert_eq!(
            unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
            0,
            "mkfifo {fifo:?}"
        );
        sh(docker(HOST_SOCKET)
            .args(["run", "-d", "--name", &name, "--network", "host", "-v"])
            .arg(format!("{}:/trigger", dir.0.display()))
            .args([img, "dash", "-c"])
            .arg(format!(
                "curl -sSk --http1.1 -o /dev/null -K /trigger/{name}.cfg; exec sleep 300"
            )));
        // the libssl file the container's curl maps is probed (the probe is per file;
        // the list names it through whichever process it was first seen in, maybe
        // another container of an image sharing the layer)
        let what = format!("{name}'s libssl");
        let probe = devtools.wait_probe(&what, Duration::from_secs(20), |p| {
            let via = p["path"]
                .as_str()
                .and_then(|s| s.split_once("(via ")?.1.strip_suffix(')'));
            let attached = p["status"]
                .as_str()
                .is_some_and(|s| s.starts_with("attached"));
            let Some(via) = via.filter(|v| attached && v.contains("libssl")) else {
                return false;
            };
            let mut ids = probed_ids.borrow_mut();
            if !ids.contains_key(via) {
                let Some(id) = file_id(via) else { return false };
                ids.insert(via.to_string(), id);
            }
            let probed = Some(ids[via]);
            container_libssl(&name).contains(&probed)
        });
        assert_eq!(probe["library"], "openssl", "{probe:#}");
        std::fs::write(
            &fifo,
            format!(
                "header = \"Authorization: Bearer {tok}\"\nurl = \"https://127.0.0.1:{port}/json\"\n"
            ),
        )
        .unwrap();
        let tx = devtools.egress(&tok);
        assert_container(&tx["summary"]["container"], &name, img, &tx);
        assert_eq!(tx["summary"]["tls"], true);
        assert_eq!(tx["summary"]["content_type"], "application/json", "{tx:#}");
        assert_eq!(tx["summary"]["path"], "/json", "{tx:#}");
        ctrs.push(ctr);
    }
    // a client connecting now is told, in its first frame, that the containers' own
    // libssl is probed (reached through /proc/PID/root)
    let later = Trace::start(&[]);
    let connected = later.wait_for(
        "system.connected",
        "system.connected",
        Duration::from_secs(1),
        |_| true,
    );
    let probes = connected["probes"].as_array().unwrap();
    assert!(
        probes.iter().any(|p| {
            let path = p["path"].as_str().unwrap_or("");
            path.contains("libssl") && path.contains("/root/") && p["status"] == "attached"
        }),
        "no container libssl in the probe list: {connected:#}"
    );
}

#[test]
fn renamed_container_next_request_shows_the_new_name() {
    require_docker(HOST_SOCKET);
    image(HOST_SOCKET, &[IMAGE]);
    let trace = Trace::start(&[]);
    let (_srv, port, _d) = python_server(false);
    let dir = TempDir::new("rename");
    let before = Ctr::named(HOST_SOCKET, "qtap-e2e-before");
    let after = Ctr::named(HOST_SOCKET, "qtap-e2e-after");
    // request N is made when the test writes its token to /trigger/N
    let script = format!(
        "n=1; while :; do if [ -e /trigger/$n ]; then read tok < /trigger/$n; \
         curl -sS -H \"Authorization: Bearer $tok\" http://127.0.0.1:{port}/hello; n=$((n+1)); \
         fi; sleep 0.1; done"
    );
    sh(docker(HOST_SOCKET)
        .args([
            "run",
            "-d",
            "--name",
            &before.name,
            "--network",
            "host",
            "-v",
        ])
        .arg(format!("{}:/trigger", dir.0.display()))
        .args([IMAGE, "dash", "-c", &script]));
    let tok1 = token("before");
    std::fs::write(dir.0.join("1"), format!("{tok1}\n")).unwrap();
    let tx = trace.egress(&tok1);
    assert_container(&tx["summary"]["container"], &before.name, IMAGE, &tx);
    let id = tx["summary"]["container"]["id"].clone();
    sh(docker(HOST_SOCKET).args(["rename", &before.name, &after.name]));
    // Docker's event stream tells qtap within milliseconds
    std::thread::sleep(Duration::from_millis(500));
    let tok2 = token("after");
    std::fs::write(dir.0.join("2"), format!("{tok2}\n")).unwrap();
    let tx = trace.egress(&tok2);
    assert_container(&tx["summary"]["container"], &after.name, IMAGE, &tx);
    assert_eq!(tx["summary"]["container"]["id"], id, "same container");
}

/// Docker stops under a running trace: the stream goes on; a container Docker cannot
/// name any more is shown by id and runtime. Uses an engine of its own, so the other
/// tests (and anyone else on the host) keep theirs.
#[test]
fn docker_stopping_keeps_the_stream_flowing_with_ids_only() {
    let mut dockerd = PrivateDockerd::start();
    let socket = dockerd.socket.clone();
    require_docker(&socket);
    image(&socket, &[IMAGE]);
    let trace = Trace::start(&["--docker-socket", &socket]);
    let (_srv, port, _d) = python_server(false);
    let url = format!("http://127.0.0.1:{port}/hello");
    // named while the engine runs
    let tok1 = token("up");
    sh(docker(&socket)
        .args([
            "run",
            "--rm",
            "--name",
            "qtap-e2e-early",
            "--network",
            "host",
            IMAGE,
        ])
        .args([
            "curl",
            "-sS",
            "-H",
            &format!("Authorization: Bearer {tok1}"),
            &url,
        ]));
    let tx = trace.egress(&tok1);
    assert_container(&tx["summary"]["container"], "qtap-e2e-early", IMAGE, &tx);

    dockerd.stop();
    // A process in a Docker container the engine never told qtap about: a cgroup named
    // as Docker names them (`/docker/<id>`), made here since no engine runs to make one.
    let fake_id = format!("{:0>64}", format!("{:x}e2e", std::process::id()));
    let cg = cgroup2_mount().join("docker").join(&fake_id);
    std::fs::create_dir_all(&cg)
        .unwrap_or_else(|e| panic!("cannot create cgroup {}: {e}", cg.display()));
    let tok2 = token("down");
    let out = sh(Command::new("dash").arg("-c").arg(format!(
        "echo $$ > {}/cgroup.procs && exec curl -sS -H 'Authorization: Bearer {tok2}' {url}",
        cg.display()
    )));
    let _ = std::fs::remove_dir(&cg);
    assert_eq!(out, "hello from python");
    let tx = trace.egress(&tok2);
    let c = &tx["summary"]["container"];
    assert_eq!(c["id"], fake_id.as_str(), "{tx:#}");
    assert_eq!(c["runtime"], "docker", "{tx:#}");
    assert!(
        c.get("name").is_none() && c.get("image").is_none(),
        "{tx:#}"
    );
    // and the host's own traffic keeps flowing, in no container
    let tok3 = token("host");
    sh(Command::new("curl").args(["-sS", "-H", &format!("Authorization: Bearer {tok3}"), &url]));
    let tx = trace.egress(&tok3);
    assert!(tx["summary"].get("container").is_none(), "{tx:#}");
}
