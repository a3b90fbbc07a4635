//! Go's `crypto/tls`: Go binaries carry their own TLS, so there is no library to probe;
//! the probes go on `crypto/tls.(*Conn).Read` and `.Write` inside each executable.
//!
//! - Functions are found in `.symtab` when the binary has one, else in `.gopclntab`
//!   (kept by the Go linker in stripped binaries too; see [`pclntab`]).
//! - The probes read arguments from Go's register ABI (`ABIInternal`, Go ≥ 1.17 on
//!   amd64): receiver in RAX, the slice in RBX/RCX, goroutine in R14. The version comes
//!   from `.go.buildinfo`; older binaries are refused with a reason.
//! - Never a uretprobe: the Go runtime moves goroutine stacks, and a uretprobe's
//!   rewritten return address breaks that. Instead an uprobe goes on every `RET`
//!   instruction of the two functions, found by decoding their machine code (iced-x86).
pub mod pclntab;
#[cfg(test)]
mod tests;

use object::{Object, ObjectSection, ObjectSymbol, ReadRef};
use std::os::fd::AsRawFd;
use std::path::Path;

use super::preadref::{DEFAULT_BUDGET, PreadRef};
use super::safefs::ReadFile;
use super::{Capture, error_chain, libs};
use crate::events::ProbeStatus;
use aya::programs::{UProbe, uprobe::UProbeScope};

pub const READ: &str = "crypto/tls.(*Conn).Read";
pub const WRITE: &str = "crypto/tls.(*Conn).Write";
/// Handshakes: only an entry probe, so the handshake's first socket syscall ties the
/// `*tls.Conn` to its fd before any Read (a first Read may be served entirely from
/// bytes the handshake already received, with no syscall of its own).
pub const CLIENT_HANDSHAKE: &str = "crypto/tls.(*Conn).clientHandshake";
pub const SERVER_HANDSHAKE: &str = "crypto/tls.(*Conn).serverHandshake";
const NAMES: [&str; 4] = [READ, WRITE, CLIENT_HANDSHAKE, SERVER_HANDSHAKE];
/// Return probes per function at most (each is a perf event).
const MAX_RETS: usize = 32;
/// Bytes of a function decoded at most.
const MAX_FUNC_BYTES: u64 = 256 * 1024;

/// A function to probe: file offsets of its entry and of each `RET` (none for the
/// handshakes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoFunc {
    pub name: &'static str,
    pub entry: u64,
    pub rets: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoTls {
    /// `go1.19.8`, when the binary says
    pub version: Option<String>,
    /// functions came from `.gopclntab` (no `.symtab`: stripped)
    pub from_pclntab: bool,
    pub funcs: Vec<GoFunc>,
}

/// What an executable is, as far as Go TLS capture goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inspection {
    NotGo,
    /// a Go program without crypto/tls (nothing to say to the user)
    NoTls,
    /// a Go program with TLS the probes cannot read: why
    Unsupported(String),
    Probe(GoTls),
}

/// Reads `len` bytes of the file at `offset`.
type ReadCode<'a> = &'a dyn Fn(u64, usize) -> Option<Vec<u8>>;

/// Inspects an executable, opened with `safefs`: read with bounded `pread`s (see
/// `preadref`), never mapped (its owner may truncate it meanwhile). Machine code is read
/// with `pread` too: the kernel writes its uprobe breakpoints (`int3`) into every mapping of
/// a probed file, so code read through a mapping would show the breakpoints of probes
/// already attached (by this daemon or another tool).
pub fn inspect_file(f: &ReadFile) -> Inspection {
    let Ok(file) = f.file.try_clone() else {
        return Inspection::NotGo;
    };
    let data = PreadRef::new(file, f.size, DEFAULT_BUDGET);
    let read = |off: u64, len: usize| data.read_exact_at(off, len);
    let found = inspect_with(&data, &read);
    match (data.error(), found) {
        // could not even tell: nothing to say
        (Some(_), r @ Inspection::NotGo) => r,
        (Some(e), _) => Inspection::Unsupported(format!("cannot read the executable: {e}")),
        (None, r) => r,
    }
}

/// Inspects an executable's bytes.
pub fn inspect(data: &[u8]) -> Inspection {
    let read = |off: u64, len: usize| {
        let off = usize::try_from(off).ok()?;
        data.get(off..off.checked_add(len)?).map(<[u8]>::to_vec)
    };
    inspect_with(data, &read)
}

fn inspect_with<'data, R: ReadRef<'data>>(data: R, read_code: ReadCode<'_>) -> Inspection {
    let Ok(obj) = object::File::parse(data) else {
        return Inspection::NotGo;
    };
    let is_go = [".go.buildinfo", ".gopclntab", ".note.go.buildid"]
        .iter()
        .any(|s| obj.section_by_name(s).is_some())
        || obj
            .symbols()
            .any(|s| s.name() == Ok("runtime.buildVersion"));
    if !is_go {
        return Inspection::NotGo;
    }
    let version = build_version(&obj);
    let found = find_functions(&obj);
    let (funcs, from_pclntab, layout) = match found {
        Ok(f) => f,
        Err(why) => return Inspection::Unsupported(why),
    };
    if !funcs.iter().any(|(n, _, _)| *n == READ || *n == WRITE) {
        return Inspection::NoTls;
    }
    let v = version.as_deref().unwrap_or("Go (version unknown)");
    if obj.architecture() != object::Architecture::X86_64 {
        return Inspection::Unsupported(format!(
            "{v} for {:?}: only amd64 Go binaries are probed so far",
            obj.architecture()
        ));
    }
    match version.as_deref().and_then(minor_version) {
        Some(m) if m < 17 => {
            return Inspection::Unsupported(format!(
                "{v} passes arguments on the stack; the probes read Go's register ABI (Go ≥ 1.17)"
            ));
        }
        Some(_) => {}
        None => {
            if matches!(layout, Some(pclntab::Layout::Go12 | pclntab::Layout::Go116)) {
                return Inspection::Unsupported(format!(
                    "Go version unknown and the pclntab is from {}: cannot tell whether it uses the register ABI (Go ≥ 1.17)",
                    layout.map(pclntab::Layout::versions).unwrap_or("?")
                ));
            }
        }
    }
    let mut out = Vec::new();
    for (name, addr, size) in funcs {
        match probe_points(&obj, read_code, addr, size, name == READ || name == WRITE) {
            Ok((entry, rets)) => out.push(GoFunc { name, entry, rets }),
            Err(e) => return Inspection::Unsupported(format!("{name}: {e}")),
        }
    }
    out.sort_by_key(|f| f.name);
    Inspection::Probe(GoTls {
        version,
        from_pclntab,
        funcs: out,
    })
}

/// `go1.19.8` → 19; `devel go1.22-abcdef` → 22. Only Go 1.x is known.
pub fn minor_version(v: &str) -> Option<u32> {
    let at = v.find("go1.")?;
    let rest = &v[at + 4..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

type Found = (Vec<(&'static str, u64, u64)>, bool, Option<pclntab::Layout>);

/// (name, address, size) of Read and Write, whether they came from the pclntab, and
/// the pclntab layout when it was read.
fn find_functions<'data, R: ReadRef<'data>>(obj: &object::File<'data, R>) -> Result<Found, String> {
    let names = NAMES;
    if obj.symbols().next().is_some() {
        let mut out = Vec::new();
        for s in obj.symbols() {
            if let Ok(n) = s.name()
                && let Some(name) = names.iter().find(|x| **x == n)
                && s.address() != 0
                && !out.iter().any(|(m, _, _)| m == name)
            {
                out.push((*name, s.address(), s.size()));
            }
        }
        if !out.is_empty() {
            return Ok((out, false, None));
        }
    }
    let text = obj.section_by_name(".text").map_or(0, |s| s.address());
    // `.data.rel.ro.gopclntab` in position-independent binaries
    let named = obj
        .sections()
        .find(|s| s.name().is_ok_and(|n| n.ends_with(".gopclntab")));
    let table = match named {
        Some(s) => s
            .data()
            .map_err(|e| format!("cannot read .gopclntab: {e}"))?,
        None => {
            // some linkers merge it into the read-only data
            let found = [".data.rel.ro", ".rodata"].iter().find_map(|n| {
                let d = obj.section_by_name(n)?.data().ok()?;
                pclntab::search(d, text).map(|o| &d[o..])
            });
            match found {
                Some(d) => d,
                None if obj.symbols().next().is_none() => {
                    return Err("stripped and no pclntab: cannot find crypto/tls".into());
                }
                None => return Ok((Vec::new(), false, None)),
            }
        }
    };
    let t = match pclntab::Pclntab::parse(table, text) {
        Ok(t) => t,
        Err(pclntab::PclnError::Unsupported(v)) => {
            return Err(format!(
                "{v} binary: arguments on the stack; the probes read Go's register ABI (Go ≥ 1.17)"
            ));
        }
        Err(e) => return Err(format!("cannot read the pclntab: {e}")),
    };
    let layout = Some(t.layout);
    let funcs = t
        .find(&names)
        .map_err(|e| format!("cannot read the pclntab: {e}"))?;
    let out = funcs
        .into_iter()
        .filter_map(|f| {
            let name = *names.iter().find(|n| **n == f.name)?;
            Some((name, f.entry, f.end - f.entry))
        })
        .collect();
    Ok((out, true, layout))
}

/// File offsets of a function's entry and (`with_rets`) of each of its `RET`s.
fn probe_points<'data, R: ReadRef<'data>>(
    obj: &object::File<'data, R>,
    read_code: ReadCode<'_>,
    addr: u64,
    size: u64,
    with_rets: bool,
) -> Result<(u64, Vec<u64>), String> {
    if size == 0 || size > MAX_FUNC_BYTES {
        return Err(format!("implausible size {size}"));
    }
    let sec = obj
        .sections()
        .find(|s| s.address() <= addr && addr < s.address() + s.size())
        .ok_or("address outside every section")?;
    let (sec_off, sec_len) = sec.file_range().ok_or("section has no file data")?;
    let rel = addr - sec.address();
    if rel + size > sec_len {
        return Err("function runs past its section".into());
    }
    let entry = sec_off + rel;
    if !with_rets {
        return Ok((entry, Vec::new()));
    }
    let code = read_code(entry, size as usize).ok_or("function bytes outside the file")?;
    let rets = ret_offsets(&code, addr);
    if rets.is_empty() {
        return Err("no RET instruction found".into());
    }
    if rets.len() > MAX_RETS {
        return Err(format!(
            "{} RET instructions (limit {MAX_RETS})",
            rets.len()
        ));
    }
    Ok((entry, rets.into_iter().map(|r| entry + r).collect()))
}

/// Offsets (from the function's start) of every `RET` in `code`, decoded as amd64
/// machine code placed at `addr`.
pub fn ret_offsets(code: &[u8], addr: u64) -> Vec<u64> {
    use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic};
    let mut dec = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut out = Vec::new();
    while dec.can_decode() {
        dec.decode_out(&mut ins);
        if ins.mnemonic() == Mnemonic::Ret {
            out.push(ins.ip() - addr);
        }
    }
    out
}

/// The Go version a binary records: `.go.buildinfo` (inline string from Go 1.18,
/// a pointer to a Go string before), else the `runtime.buildVersion` symbol.
pub fn build_version<'data, R: ReadRef<'data>>(obj: &object::File<'data, R>) -> Option<String> {
    if let Some(sec) = obj.section_by_name(".go.buildinfo")
        && let Ok(d) = sec.data()
        && d.len() >= 32
        && d.starts_with(b"\xff Go buildinf:")
    {
        let ptr = usize::from(d[14]);
        let flags = d[15];
        if flags & 2 != 0 {
            let (len, n) = uvarint(&d[32..])?;
            let s = d.get(32 + n..32 + n + usize::try_from(len).ok()?)?;
            return String::from_utf8(s.to_vec()).ok();
        }
        if ptr == 8 && flags & 1 == 0 {
            let at = u64::from_le_bytes(d[16..24].try_into().ok()?);
            return go_string_at(obj, at);
        }
        return None;
    }
    let sym = obj
        .symbols()
        .find(|s| s.name() == Ok("runtime.buildVersion"))?;
    go_string_at(obj, sym.address())
}

/// Reads the Go string header (pointer, length) at virtual address `at`.
fn go_string_at<'data, R: ReadRef<'data>>(obj: &object::File<'data, R>, at: u64) -> Option<String> {
    let hdr = read_at(obj, at, 16)?;
    let ptr = u64::from_le_bytes(hdr[..8].try_into().ok()?);
    let len = u64::from_le_bytes(hdr[8..].try_into().ok()?);
    if len == 0 || len > 256 {
        return None;
    }
    String::from_utf8(read_at(obj, ptr, len)?.to_vec()).ok()
}

fn read_at<'d, R: ReadRef<'d>>(obj: &object::File<'d, R>, addr: u64, len: u64) -> Option<&'d [u8]> {
    obj.sections()
        .find_map(|s| s.data_range(addr, len).ok().flatten())
}

fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &x) in b.iter().enumerate().take(10) {
        v |= u64::from(x & 0x7f) << (7 * i);
        if x & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The kernel programs of Go TLS capture.
pub const PROGRAMS: [&str; 4] = [
    "go_tls_read",
    "go_tls_write",
    "go_tls_handshake",
    "go_tls_ret",
];

/// Loads (verifies) the Go TLS programs.
pub fn load_programs(ebpf: &mut aya::Ebpf) -> Result<(), String> {
    for prog in PROGRAMS {
        let p: &mut UProbe = ebpf
            .program_mut(prog)
            .ok_or_else(|| format!("program {prog} missing"))?
            .try_into()
            .map_err(|e| format!("{prog}: {e}"))?;
        p.load()
            .map_err(|e| format!("{prog}: {}", error_chain(&e)))?;
    }
    Ok(())
}

impl Capture {
    /// Attaches the Go TLS probes to an executable, when it is a Go program using
    /// crypto/tls. Returns its status (nothing for other executables).
    pub(super) fn attach_go(&mut self, exe: &libs::LibFile) -> Vec<ProbeStatus> {
        let shown = self.shown(exe);
        let Ok(file) = exe.open() else {
            return Vec::new();
        };
        // attached through our descriptor: exactly the file inspected
        let fd_path = std::path::PathBuf::from(format!("/proc/self/fd/{}", file.file.as_raw_fd()));
        let status = match inspect_file(&file) {
            Inspection::NotGo | Inspection::NoTls => return Vec::new(),
            Inspection::Unsupported(why) => format!("failed: {why}"),
            Inspection::Probe(t) => match self.attach_go_probes(&fd_path, &t) {
                Ok(n) => format!(
                    "attached ({}{}; {n} probes)",
                    t.version.as_deref().unwrap_or("Go version unknown"),
                    if t.from_pclntab {
                        ", stripped: found in .gopclntab"
                    } else {
                        ""
                    }
                ),
                Err(e) => format!("failed: {e}"),
            },
        };
        if status.starts_with("failed") {
            tracing::warn!(exe = %shown, %status, "Go TLS not probed");
        } else {
            tracing::info!(exe = %shown, %status, "Go TLS probes attached");
        }
        let st = ProbeStatus {
            library: "go-tls".into(),
            path: shown,
            status,
        };
        self.probes.push(st.clone());
        vec![st]
    }

    fn attach_go_probes(&mut self, path: &Path, t: &GoTls) -> Result<usize, String> {
        let mut n = 0;
        for f in &t.funcs {
            let entry_prog = match f.name {
                READ => "go_tls_read",
                WRITE => "go_tls_write",
                _ => "go_tls_handshake",
            };
            let points = std::iter::once((entry_prog, f.entry))
                .chain(f.rets.iter().map(|r| ("go_tls_ret", *r)));
            for (prog, off) in points {
                let p: &mut UProbe = self
                    .ebpf
                    .program_mut(prog)
                    .ok_or_else(|| format!("program {prog} missing"))?
                    .try_into()
                    .map_err(|e| format!("{e}"))?;
                let id = p
                    .attach(off, path, UProbeScope::AllProcesses)
                    .map_err(|e| format!("{} at {off:#x}: {}", f.name, error_chain(&e)))?;
                self.links.push(super::LinkRef::Uprobe(prog, id));
                n += 1;
            }
        }
        Ok(n)
    }
}
