//! Tests against real Go binaries, built here from a tiny program with Debian's
//! `golang-go` (standard library only, no network), stripped and not.
use super::*;
use std::path::PathBuf;
use std::process::Command;

const TLS_PROGRAM: &str = r#"package main

import (
	"crypto/tls"
	"fmt"
	"os"
)

func main() {
	c, err := tls.Dial("tcp", os.Args[1], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	buf := make([]byte, 100)
	n, _ := c.Read(buf)
	fmt.Println(string(buf[:n]))
}
"#;

const PLAIN_PROGRAM: &str = r#"package main

import "fmt"

func main() { fmt.Println("no tls here") }
"#;

/// Builds `src` as a Go program; `-ldflags=-s -w` when `stripped`.
fn go_build(tag: &str, src: &str, stripped: bool) -> (PathBuf, Vec<u8>) {
    go_build_with(tag, src, stripped, &[])
}

fn go_build_with(tag: &str, src: &str, stripped: bool, extra: &[&str]) -> (PathBuf, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("qtap-gounit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.go"), src).unwrap();
    std::fs::write(dir.join("go.mod"), "module qtaptest\n\ngo 1.17\n").unwrap();
    let out = dir.join("prog");
    let mut cmd = Command::new("go");
    cmd.arg("build").arg("-o").arg(&out);
    if stripped {
        cmd.arg("-ldflags=-s -w");
    }
    let res = cmd
        .args(extra)
        .arg(".")
        .current_dir(&dir)
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", std::env::temp_dir().join("qtap-test-gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `go` ({e}): install golang-go (.ci/setup does)"));
    assert!(
        res.status.success(),
        "go build failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (out, bytes)
}

fn probe(i: Inspection) -> GoTls {
    match i {
        Inspection::Probe(t) => t,
        other => panic!("expected probe points, got {other:?}"),
    }
}

/// Replaces every occurrence of `from` (the version is in `.rodata` and in
/// `.go.buildinfo`).
fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut n = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + to.len()].copy_from_slice(to);
            n += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(n > 0, "{} not in the binary", String::from_utf8_lossy(from));
}

#[test]
fn finds_read_write_and_every_ret_in_real_go_binaries() {
    let (_, full) = go_build("full", TLS_PROGRAM, false);
    let (_, stripped) = go_build("stripped", TLS_PROGRAM, true);

    let a = probe(inspect(&full));
    assert!(!a.from_pclntab);
    let v = a.version.clone().expect("version from .go.buildinfo");
    assert!(minor_version(&v).unwrap() >= 17, "{v}");
    // a client: no server handshake in the binary
    let names: Vec<&str> = a.funcs.iter().map(|f| f.name).collect();
    assert_eq!(names, [READ, WRITE, CLIENT_HANDSHAKE], "{a:?}");
    for f in &a.funcs {
        assert_eq!(f.rets.is_empty(), f.name == CLIENT_HANDSHAKE);
        for r in &f.rets {
            assert!(*r > f.entry);
            assert_eq!(full[*r as usize], 0xc3, "{} RET at {r:#x}", f.name);
        }
        // Go's amd64 prologue compares the stack pointer with the goroutine's stack
        // guard through R14 (g): `cmp rsp, [r14+16]` (49 3b 66 10), or `lea r12,
        // [rsp-N]; cmp r12, [r14+16]` (4d 3b 66 10) for larger frames
        let head = &full[f.entry as usize..f.entry as usize + 16];
        assert!(
            head.windows(3).any(|w| w == [0x3b, 0x66, 0x10]),
            "{}: unexpected prologue {head:02x?}",
            f.name
        );
    }

    // stripped: no .symtab, the same functions from .gopclntab
    let b = probe(inspect(&stripped));
    assert!(b.from_pclntab);
    assert_eq!(b.version, a.version);
    assert_eq!(b.funcs.len(), 3);
    for (fa, fb) in a.funcs.iter().zip(&b.funcs) {
        assert_eq!(fa.name, fb.name);
        // same code, same RETs (the pclntab extent includes the padding after the
        // function; the padding holds no RET)
        let rel = |f: &GoFunc| f.rets.iter().map(|r| r - f.entry).collect::<Vec<_>>();
        assert_eq!(rel(fa), rel(fb), "{}", fa.name);
        assert_eq!(
            stripped[fb.entry as usize..][..32],
            full[fa.entry as usize..][..32]
        );
    }
}

#[test]
fn stripped_position_independent_binary() {
    // the pclntab is in `.data.rel.ro.gopclntab` there
    let (_, pie) = go_build_with("pie", TLS_PROGRAM, true, &["-buildmode=pie"]);
    let obj = object::File::parse(&*pie).unwrap();
    assert!(obj.section_by_name(".data.rel.ro.gopclntab").is_some());
    let t = probe(inspect(&pie));
    assert!(t.from_pclntab);
    assert_eq!(t.funcs.len(), 3);
    for f in t.funcs.iter().filter(|f| f.name != CLIENT_HANDSHAKE) {
        assert!(!f.rets.is_empty());
        assert!(f.rets.iter().all(|r| pie[*r as usize] == 0xc3), "{f:?}");
        let head = &pie[f.entry as usize..f.entry as usize + 16];
        assert!(
            head.windows(3).any(|w| w == [0x3b, 0x66, 0x10]),
            "{head:02x?}"
        );
    }
}

#[test]
fn pclntab_agrees_with_the_symbol_table() {
    let (_, full) = go_build("agree", TLS_PROGRAM, false);
    let obj = object::File::parse(&*full).unwrap();
    let text = obj.section_by_name(".text").unwrap().address();
    let t = pclntab::Pclntab::parse(
        obj.section_by_name(".gopclntab").unwrap().data().unwrap(),
        text,
    )
    .unwrap();
    assert!(t.func_count() > 1000);
    let names = ["runtime.main", "main.main", READ, WRITE];
    let found = t.find(&names).unwrap();
    assert_eq!(found.len(), 4);
    for f in found {
        let sym = obj
            .symbols()
            .find(|s| s.name() == Ok(f.name.as_str()))
            .unwrap();
        assert_eq!(f.entry, sym.address(), "{}", f.name);
        assert!(f.end >= sym.address() + sym.size(), "{}", f.name);
        assert!(f.end - sym.address() - sym.size() < 64, "{}", f.name);
    }
    // every name in the table reads
    assert!(t.names().all(|n| n.is_ok()));
}

#[test]
fn go_programs_without_tls_and_other_executables() {
    let (_, plain) = go_build("plain", PLAIN_PROGRAM, true);
    assert_eq!(inspect(&plain), Inspection::NoTls);
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert_eq!(inspect(&me), Inspection::NotGo);
    assert_eq!(inspect(b"#!/bin/sh\necho hi\n"), Inspection::NotGo);
}

#[test]
fn refuses_what_it_cannot_read_and_says_why() {
    let (_, mut bin) = go_build("refuse", TLS_PROGRAM, true);
    let v = probe(inspect(&bin)).version.unwrap();
    // a Go 1.16 binary: stack ABI
    let old = format!("go1.16{}", &v[6..]);
    patch(&mut bin, v.as_bytes(), old.as_bytes());
    match inspect(&bin) {
        Inspection::Unsupported(why) => assert!(why.contains("register ABI"), "{why}"),
        other => panic!("{other:?}"),
    }
    patch(&mut bin, old.as_bytes(), v.as_bytes());
    // stripped, and the pclntab gone too
    patch(&mut bin, b".gopclntab\0", b".xopclntab\0");
    match inspect(&bin) {
        Inspection::Unsupported(why) => {
            assert!(why.contains("stripped and no pclntab"), "{why}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ret_decoding_follows_instruction_boundaries() {
    // mov rbx, rax; ret; nop dword [rax]; mov eax, 0xc3; ret 8; int3 int3
    let code = [
        0x48, 0x89, 0xc3, 0xc3, 0x0f, 0x1f, 0x00, 0xb8, 0xc3, 0x00, 0x00, 0x00, 0xc2, 0x08, 0x00,
        0xcc, 0xcc,
    ];
    assert_eq!(ret_offsets(&code, 0x40_1000), vec![3, 12]);
    assert!(ret_offsets(&[0x90, 0x90], 0).is_empty());
}

#[test]
fn go_versions() {
    assert_eq!(minor_version("go1.19.8"), Some(19));
    assert_eq!(minor_version("go1.17"), Some(17));
    assert_eq!(minor_version("devel go1.22-abcdef Tue"), Some(22));
    assert_eq!(minor_version("go2"), None);
    assert_eq!(uvarint(&[0x08]), Some((8, 1)));
    assert_eq!(uvarint(&[0x96, 0x01]), Some((150, 2)));
}
