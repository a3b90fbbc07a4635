//! Go's function table (`.gopclntab`), which the linker keeps even in stripped binaries
//! (`-ldflags=-s -w` drops `.symtab`, not this): enough of it to find a function's
//! address and extent by name.
//!
//! Layouts read here (all little-endian, `ptr` = pointer size):
//!
//! - Go 1.18–1.19 (magic `0xfffffff0`) and Go 1.20+ (magic `0xfffffff1`): header
//!   `magic u32, 0 u8, 0 u8, minLC u8, ptr u8, nfunc ptr, nfiles ptr, textStart ptr,
//!   funcnameOffset ptr, cuOffset ptr, filetabOffset ptr, pctabOffset ptr, pclnOffset ptr`;
//!   the function table at `pclnOffset` holds `nfunc + 1` pairs `(entryOff u32,
//!   funcOff u32)` — entries relative to `textStart`, the last one the end of the text —
//!   and each `_func` at `pclnOffset + funcOff` starts with `entryOff u32, nameOff i32`
//!   (an offset into the name table at `funcnameOffset`, NUL-terminated names).
//! - Go 1.16–1.17 (magic `0xfffffffa`): the same header without `textStart`; table
//!   pairs are `(entry ptr, funcOff ptr)` with absolute entries; `_func` starts with
//!   `entry ptr, nameOff i32`.
//! - Go 1.2–1.15 (magic `0xfffffffb`) is recognised only to be refused: those versions
//!   pass arguments on the stack, which the probes do not read.

/// Which table layout a pclntab has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Go 1.2–1.15 (recognised, not parsed)
    Go12,
    /// Go 1.16–1.17
    Go116,
    /// Go 1.18–1.19
    Go118,
    /// Go 1.20 and later
    Go120,
}

impl Layout {
    pub fn from_magic(magic: u32) -> Option<Layout> {
        match magic {
            0xffff_fffb => Some(Layout::Go12),
            0xffff_fffa => Some(Layout::Go116),
            0xffff_fff0 => Some(Layout::Go118),
            0xffff_fff1 => Some(Layout::Go120),
            _ => None,
        }
    }

    /// The Go versions that write this layout, for messages.
    pub fn versions(self) -> &'static str {
        match self {
            Layout::Go12 => "Go 1.2–1.15",
            Layout::Go116 => "Go 1.16–1.17",
            Layout::Go118 => "Go 1.18–1.19",
            Layout::Go120 => "Go ≥ 1.20",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PclnError {
    #[error("no Go pclntab header (unknown magic {0:#x})")]
    BadMagic(u32),
    #[error("pclntab of {0} is not read (arguments on the stack)")]
    Unsupported(&'static str),
    #[error("pclntab header is malformed ({0})")]
    Malformed(&'static str),
    #[error("pclntab is truncated")]
    Truncated,
}

/// A function found in the table: `[entry, end)` in virtual addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Func {
    pub name: String,
    pub entry: u64,
    pub end: u64,
}

/// A parsed pclntab header over the table's bytes.
pub struct Pclntab<'a> {
    data: &'a [u8],
    pub layout: Layout,
    ptr: usize,
    nfunc: usize,
    text_start: u64,
    funcnames: usize,
    functab: usize,
}

fn uint(data: &[u8], off: usize, size: usize) -> Result<u64, PclnError> {
    let b = data
        .get(off..off.checked_add(size).ok_or(PclnError::Truncated)?)
        .ok_or(PclnError::Truncated)?;
    Ok(match size {
        4 => u64::from(u32::from_le_bytes(b.try_into().unwrap_or([0; 4]))),
        8 => u64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
        _ => return Err(PclnError::Malformed("pointer size")),
    })
}

fn offset(data: &[u8], off: usize, size: usize) -> Result<usize, PclnError> {
    let v = usize::try_from(uint(data, off, size)?).map_err(|_| PclnError::Truncated)?;
    if v > data.len() {
        return Err(PclnError::Truncated);
    }
    Ok(v)
}

impl<'a> Pclntab<'a> {
    /// Parses the header at the start of `data`. `text_addr` is the address of `.text`,
    /// used when the header's own `textStart` is 0 (position-independent binaries leave
    /// it to a relocation).
    pub fn parse(data: &'a [u8], text_addr: u64) -> Result<Pclntab<'a>, PclnError> {
        let magic = uint(data, 0, 4)? as u32;
        let layout = Layout::from_magic(magic).ok_or(PclnError::BadMagic(magic))?;
        if layout == Layout::Go12 {
            return Err(PclnError::Unsupported(layout.versions()));
        }
        let hdr = data.get(4..8).ok_or(PclnError::Truncated)?;
        if hdr[0] != 0 || hdr[1] != 0 {
            return Err(PclnError::Malformed("padding"));
        }
        if !matches!(hdr[2], 1 | 2 | 4) {
            return Err(PclnError::Malformed("instruction size quantum"));
        }
        let ptr = usize::from(hdr[3]);
        if ptr != 4 && ptr != 8 {
            return Err(PclnError::Malformed("pointer size"));
        }
        let word = |i: usize| uint(data, 8 + i * ptr, ptr);
        let nfunc = usize::try_from(word(0)?).map_err(|_| PclnError::Truncated)?;
        let (text_start, first) = match layout {
            Layout::Go116 => (0, 2),
            _ => (word(2)?, 3),
        };
        let text_start = if text_start == 0 {
            text_addr
        } else {
            text_start
        };
        let funcnames = offset(data, 8 + first * ptr, ptr)?;
        let functab = offset(data, 8 + (first + 4) * ptr, ptr)?;
        let pair = match layout {
            Layout::Go116 => 2 * ptr,
            _ => 8,
        };
        let need = nfunc
            .checked_add(1)
            .and_then(|n| n.checked_mul(pair))
            .and_then(|n| n.checked_add(functab))
            .ok_or(PclnError::Truncated)?;
        if nfunc == 0 || need > data.len() {
            return Err(PclnError::Truncated);
        }
        Ok(Pclntab {
            data,
            layout,
            ptr,
            nfunc,
            text_start,
            funcnames,
            functab,
        })
    }

    /// Number of functions in the table.
    pub fn func_count(&self) -> usize {
        self.nfunc
    }

    /// Entry address of table slot `i` (`i == nfunc` is the end of the text).
    fn entry(&self, i: usize) -> Result<u64, PclnError> {
        match self.layout {
            Layout::Go116 => uint(self.data, self.functab + i * 2 * self.ptr, self.ptr),
            _ => Ok(self.text_start + uint(self.data, self.functab + i * 8, 4)?),
        }
    }

    /// Name of function `i`, as raw bytes.
    fn name(&self, i: usize) -> Result<&'a [u8], PclnError> {
        let (func_off, name_at) = match self.layout {
            Layout::Go116 => (
                uint(
                    self.data,
                    self.functab + i * 2 * self.ptr + self.ptr,
                    self.ptr,
                )?,
                self.ptr,
            ),
            _ => (uint(self.data, self.functab + i * 8 + 4, 4)?, 4),
        };
        let f = usize::try_from(func_off)
            .ok()
            .and_then(|o| o.checked_add(self.functab))
            .ok_or(PclnError::Truncated)?;
        let name_off = uint(self.data, f + name_at, 4)? as u32 as i32;
        let start = usize::try_from(name_off)
            .ok()
            .and_then(|o| o.checked_add(self.funcnames))
            .ok_or(PclnError::Malformed("name offset"))?;
        let rest = self.data.get(start..).ok_or(PclnError::Truncated)?;
        let len = rest
            .iter()
            .take(4096)
            .position(|&b| b == 0)
            .ok_or(PclnError::Malformed("name not terminated"))?;
        Ok(&rest[..len])
    }

    /// The functions named in `names` (one walk over the table), in table order.
    pub fn find(&self, names: &[&str]) -> Result<Vec<Func>, PclnError> {
        let mut out = Vec::new();
        for i in 0..self.nfunc {
            let name = self.name(i)?;
            if let Some(n) = names.iter().find(|n| n.as_bytes() == name) {
                let entry = self.entry(i)?;
                let end = self.entry(i + 1)?;
                if end <= entry {
                    return Err(PclnError::Malformed("function table not sorted"));
                }
                out.push(Func {
                    name: (*n).to_string(),
                    entry,
                    end,
                });
                if out.len() == names.len() {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Every function name (tests and diagnostics).
    pub fn names(&self) -> impl Iterator<Item = Result<&'a [u8], PclnError>> + '_ {
        (0..self.nfunc).map(|i| self.name(i))
    }
}

/// Finds a pclntab header inside `data` (for binaries whose linker merged
/// `.gopclntab` into another section): the first magic at an 8-byte boundary whose
/// header parses and whose table names `runtime.main`. Returns its offset.
pub fn search(data: &[u8], text_addr: u64) -> Option<usize> {
    const MAGICS: [[u8; 4]; 3] = [
        0xffff_fff1u32.to_le_bytes(),
        0xffff_fff0u32.to_le_bytes(),
        0xffff_fffau32.to_le_bytes(),
    ];
    let mut off = 0;
    while off + 16 <= data.len() {
        let w = &data[off..off + 8];
        if MAGICS.iter().any(|m| w[..4] == *m) && w[4] == 0 && w[5] == 0 && w[7] == 8 {
            let found = Pclntab::parse(&data[off..], text_addr)
                .ok()
                .and_then(|t| t.find(&["runtime.main"]).ok())
                .is_some_and(|f| !f.is_empty());
            if found {
                return Some(off);
            }
        }
        off += 8;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made Go 1.18 table: two functions and the end-of-text entry.
    fn table_118(magic: u32) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&magic.to_le_bytes());
        d.extend_from_slice(&[0, 0, 1, 8]);
        let names_off = 8 + 8 * 8;
        let names = b"main.a\0crypto/tls.(*Conn).Read\0";
        let functab = names_off + names.len() + 1; // one byte of slack
        for v in [
            2u64,
            0,
            0x40_1000,
            names_off as u64,
            0,
            0,
            0,
            functab as u64,
        ] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d.extend_from_slice(names);
        d.push(0xaa);
        assert_eq!(d.len(), functab);
        // (entryOff, funcOff) × 3, then the two _func records
        let funcs = 3 * 8;
        for (e, f) in [(0x0u32, funcs as u32), (0x40, funcs as u32 + 8), (0x100, 0)] {
            d.extend_from_slice(&e.to_le_bytes());
            d.extend_from_slice(&f.to_le_bytes());
        }
        for (e, n) in [(0x0u32, 0i32), (0x40, 7)] {
            d.extend_from_slice(&e.to_le_bytes());
            d.extend_from_slice(&n.to_le_bytes());
        }
        d
    }

    #[test]
    fn finds_functions_in_a_go118_table() {
        for magic in [0xffff_fff0, 0xffff_fff1] {
            let d = table_118(magic);
            let t = Pclntab::parse(&d, 0).unwrap();
            assert_eq!(t.func_count(), 2);
            let f = t.find(&["crypto/tls.(*Conn).Read", "nope"]).unwrap();
            assert_eq!(
                f,
                vec![Func {
                    name: "crypto/tls.(*Conn).Read".into(),
                    entry: 0x40_1040,
                    end: 0x40_1100
                }]
            );
        }
    }

    #[test]
    fn finds_functions_in_a_go116_table() {
        let mut d = Vec::new();
        d.extend_from_slice(&0xffff_fffau32.to_le_bytes());
        d.extend_from_slice(&[0, 0, 1, 8]);
        let names_off = 8 + 7 * 8;
        let names = b"crypto/tls.(*Conn).Write\0";
        let functab = names_off + names.len();
        for v in [1u64, 0, names_off as u64, 0, 0, 0, functab as u64] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d.extend_from_slice(names);
        for (e, f) in [(0x45_0000u64, 32u64), (0x45_0200, 0)] {
            d.extend_from_slice(&e.to_le_bytes());
            d.extend_from_slice(&f.to_le_bytes());
        }
        d.extend_from_slice(&0x45_0000u64.to_le_bytes());
        d.extend_from_slice(&0i32.to_le_bytes());
        let t = Pclntab::parse(&d, 0).unwrap();
        let f = t.find(&["crypto/tls.(*Conn).Write"]).unwrap();
        assert_eq!((f[0].entry, f[0].end), (0x45_0000, 0x45_0200));
    }

    #[test]
    fn refuses_old_and_broken_tables() {
        let mut d = table_118(0xffff_fff0);
        d[..4].copy_from_slice(&0xffff_fffbu32.to_le_bytes());
        assert!(matches!(
            Pclntab::parse(&d, 0),
            Err(PclnError::Unsupported(_))
        ));
        d[..4].copy_from_slice(&0x1234u32.to_le_bytes());
        assert_eq!(
            Pclntab::parse(&d, 0).err(),
            Some(PclnError::BadMagic(0x1234))
        );
        let d = table_118(0xffff_fff0);
        for cut in [3, 20, 90, d.len() - 9] {
            // never a panic, whatever is cut off
            let _ = Pclntab::parse(&d[..cut], 0).and_then(|t| t.find(&["main.a"]));
        }
        assert!(Pclntab::parse(&d[..20], 0).is_err());
    }

    #[test]
    fn search_finds_an_embedded_table() {
        // no runtime.main: not taken for a pclntab
        assert_eq!(search(&table_118(0xffff_fff0), 0), None);
        let names_off = 8 + 8 * 8;
        let mut outer = vec![0u8; 64];
        let mut t = table_118(0xffff_fff0);
        let n = b"runtime.main\0";
        // point the first name at a new string appended after the table
        let extra = t.len() as u64 - names_off as u64;
        t.extend_from_slice(n);
        let first_func = t.len() - n.len() - 16 + 4;
        t[first_func..first_func + 4].copy_from_slice(&(extra as i32).to_le_bytes());
        outer.extend_from_slice(&t);
        assert_eq!(search(&outer, 0), Some(64));
    }
}
