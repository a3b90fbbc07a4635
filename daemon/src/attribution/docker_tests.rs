//! The Docker client against sockets that are missing, refuse, hang, or speak a small
//! fake of Docker's API (the real engine is driven by tests/containers_e2e.rs).
use super::*;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Mutex;
use std::sync::mpsc as std_mpsc;

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

fn dir(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("qtap-docker-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn cfg(socket: PathBuf) -> DockerConfig {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::DEBUG)
        .try_init();
    DockerConfig {
        socket,
        timeout: Duration::from_millis(300),
        retry: Duration::from_millis(200),
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Lookups answer at once with the id only, however Docker fails; one warning in all;
/// the client stops promptly.
fn degrades(names: DockerNames) {
    let t = Instant::now();
    for id in [A, B, C, A] {
        assert_eq!(names.lookup(id), bare(DOCKER, id));
    }
    assert!(
        t.elapsed() < Duration::from_millis(50),
        "lookups waited {:?}",
        t.elapsed()
    );
    wait_until("one warning", Duration::from_secs(3), || {
        names.warnings() == 1
    });
    // several retries later, and more lookups: still one warning
    std::thread::sleep(Duration::from_millis(900));
    for _ in 0..100 {
        assert_eq!(names.lookup(B).name, None);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(names.warnings(), 1);
    assert!(!names.reachable());
    let t = Instant::now();
    drop(names);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "stop took {:?}",
        t.elapsed()
    );
}

#[test]
fn missing_socket() {
    degrades(DockerNames::start(cfg(PathBuf::from(
        "/nonexistent/qtap-test/docker.sock",
    ))));
}

#[test]
fn socket_that_refuses() {
    let d = dir("refuse");
    let path = d.join("docker.sock");
    drop(UnixListener::bind(&path).unwrap()); // the file stays, nobody listens
    degrades(DockerNames::start(cfg(path)));
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn socket_that_accepts_and_never_answers() {
    let d = dir("hang");
    let path = d.join("docker.sock");
    let l = UnixListener::bind(&path).unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h2 = held.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            h2.lock().unwrap().push(s); // read nothing, answer nothing, close nothing
        }
    });
    degrades(DockerNames::start(cfg(path)));
    assert!(!held.lock().unwrap().is_empty(), "the client did connect");
    let _ = std::fs::remove_dir_all(d);
}

/// A small fake of Docker 20.10's API (API 1.41 at most, refuses 1.49).
fn fake_docker(path: &Path, events: std_mpsc::Receiver<String>) {
    let l = UnixListener::bind(path).unwrap();
    let events = Arc::new(Mutex::new(Some(events)));
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let events = events.clone();
            std::thread::spawn(move || serve(s, &events));
        }
    });
}

use std::path::Path;

fn serve(mut s: UnixStream, events: &Mutex<Option<std_mpsc::Receiver<String>>>) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).unwrap_or(0) == 0 {
            return;
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split(' ').nth(1).unwrap_or("").to_string();
    let path = target.split('?').next().unwrap_or("");
    // API versions in the path are optional (bollard 0.19 sends none); newer than
    // 1.41 is refused, as Docker 20.10 does
    let (version, path) = match path.strip_prefix("/v").and_then(|r| r.split_once('/')) {
        Some((v, rest)) => (parse_api_version(v), format!("/{rest}")),
        None => (None, path.to_string()),
    };
    let path = path.as_str();
    let reply = |s: &mut UnixStream, status: u16, body: &str| {
        let _ = write!(
            s,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    if version.is_some_and(|v| (v.major_version, v.minor_version) > (1, 41)) {
        return reply(
            &mut s,
            400,
            r#"{"message":"client version is too new. Maximum supported API version is 1.41"}"#,
        );
    }
    match path {
        "/version" => reply(&mut s, 200, r#"{"ApiVersion":"1.41","Version":"20.10.24"}"#),
        "/containers/json" => {
            assert!(target.contains("all=true"), "{target}");
            let body = format!(
                r#"[{{"Id":"{A}","Names":["/alpha"],"Image":"shop/web:1","Labels":{{"com.docker.compose.service":"web"}},"State":"running"}}]"#
            );
            reply(&mut s, 200, &body)
        }
        p if p == format!("/containers/{B}/json") => {
            let body = format!(
                r#"{{"Id":"{B}","Name":"/k8s_app_pod-1","Image":"sha256:0123","Config":{{"Image":"registry.local/app:2","Labels":{{"io.kubernetes.pod.name":"pod-1","io.kubernetes.pod.namespace":"shop"}}}}}}"#
            );
            reply(&mut s, 200, &body)
        }
        p if p.starts_with("/containers/") => {
            reply(&mut s, 404, r#"{"message":"No such container"}"#)
        }
        "/events" => {
            assert!(target.contains("filters="), "{target}");
            let Some(rx) = events.lock().unwrap().take() else {
                return reply(&mut s, 500, r#"{"message":"one subscriber"}"#);
            };
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            let _ = s.flush();
            for line in rx {
                let line = format!("{line}\n");
                if write!(s, "{:x}\r\n{line}\r\n", line.len()).is_err() {
                    return;
                }
                let _ = s.flush();
            }
            let _ = write!(s, "0\r\n\r\n");
        }
        _ => reply(&mut s, 404, r#"{"message":"page not found"}"#),
    }
}

#[test]
fn names_from_list_inspect_and_events() {
    let d = dir("fake");
    let path = d.join("docker.sock");
    let (ev_tx, ev_rx) = std_mpsc::channel();
    fake_docker(&path, ev_rx);
    let names = DockerNames::start(cfg(path));
    // listed when the client connects
    wait_until("A listed", Duration::from_secs(3), || {
        names.known(A).is_some()
    });
    assert!(names.reachable());
    let a = names.lookup(A);
    assert_eq!(
        (a.name.as_deref(), a.image.as_deref(), a.service.as_deref()),
        (Some("alpha"), Some("shop/web:1"), Some("web"))
    );
    assert_eq!(a.runtime, "docker");
    // an unlisted id: id only at once, named once inspected
    assert_eq!(names.lookup(B), bare(DOCKER, B));
    wait_until("B inspected", Duration::from_secs(3), || {
        names.known(B).is_some()
    });
    let b = names.lookup(B);
    assert_eq!(
        (b.name.as_deref(), b.image.as_deref()),
        (Some("k8s_app_pod-1"), Some("registry.local/app:2"))
    );
    assert_eq!(
        (b.pod.as_deref(), b.namespace.as_deref(), b.service),
        (Some("pod-1"), Some("shop"), None)
    );
    // a container gone before inspection: id only, one warning, asked once
    assert_eq!(names.lookup(C), bare(DOCKER, C));
    wait_until("C warned", Duration::from_secs(3), || names.warnings() == 1);
    assert_eq!(names.lookup(C), bare(DOCKER, C));
    // renamed: the event stream says so
    ev_tx
        .send(format!(
            r#"{{"status":"rename","id":"{A}","Type":"container","Action":"rename","Actor":{{"ID":"{A}","Attributes":{{"image":"shop/web:1","name":"omega","oldName":"/alpha","com.docker.compose.service":"web"}}}},"scope":"local","time":1,"timeNano":1}}"#
        ))
        .unwrap();
    wait_until("A renamed", Duration::from_secs(3), || {
        names.known(A).and_then(|c| c.name).as_deref() == Some("omega")
    });
    // a container created later is named from its event, before any lookup
    let new = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
    ev_tx
        .send(format!(
            r#"{{"Type":"container","Action":"create","Actor":{{"ID":"{new}","Attributes":{{"image":"busybox","name":"late"}}}}}}"#
        ))
        .unwrap();
    wait_until("created", Duration::from_secs(3), || {
        names.known(new).is_some()
    });
    assert_eq!(names.lookup(new).name.as_deref(), Some("late"));
    assert_eq!(names.warnings(), 1);
    // Docker goes away (the event stream ends, nothing answers): one warning more, and
    // what was known stays known
    drop(ev_tx);
    let _ = std::fs::remove_file(d.join("docker.sock"));
    wait_until("outage warned", Duration::from_secs(3), || {
        names.warnings() == 2
    });
    assert!(!names.reachable());
    assert_eq!(names.lookup(A).name.as_deref(), Some("omega"));
    drop(names);
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn api_versions() {
    let v = parse_api_version("1.41").unwrap();
    assert_eq!((v.major_version, v.minor_version), (1, 41));
    assert!(parse_api_version("x").is_none());
    assert!(parse_api_version("1.").is_none());
}
