//! An [`object::ReadRef`] over a file read with `pread` into owned, bounded buffers, for
//! parsing executables and libraries other users own. A mapping would be cheaper, but a file
//! truncated under a mapping kills the reader with SIGBUS; here a truncated file is a short
//! read, an error. Only the ranges the parser asks for are read (ELF header, section headers,
//! symbol and string tables, Go's pclntab), each once, and the total is capped: a file whose
//! headers claim more than the budget is refused, whatever its size on disk.
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;

/// What one file may make us read and hold at most (see `docs/security.md`): enough for the
/// symbol tables of a statically linked Node.js (~100 MiB file) and the pclntab of large Go
/// programs; the buffers are freed once the file is parsed.
pub const DEFAULT_BUDGET: usize = 96 << 20;
/// Bytes read at once when a string is looked up (strings come from string tables, so the
/// next lookups are usually in the same block).
const STRING_BLOCK: u64 = 64 * 1024;
/// A string longer than this is an error (object's own reader stops at 4 KiB).
const MAX_STRING: u64 = 4096;
/// Book-keeping charged per cached block, on top of its bytes.
const BLOCK_OVERHEAD: usize = 64;

struct Cache {
    /// (offset, size) → bytes read there; never removed or changed while the reader lives
    blocks: BTreeMap<(u64, u64), Box<[u8]>>,
    used: usize,
    /// set when a read failed for lack of budget or a short read (file truncated)
    error: Option<String>,
}

/// A file, its size when opened, and what was read of it so far.
pub struct PreadRef {
    file: File,
    len: u64,
    budget: usize,
    cache: RefCell<Cache>,
}

impl PreadRef {
    /// `len`: the file's size as `fstat` said when it was opened (reads past it are errors
    /// even if the file grows).
    pub fn new(file: File, len: u64, budget: usize) -> PreadRef {
        PreadRef {
            file,
            len,
            budget,
            cache: RefCell::new(Cache {
                blocks: BTreeMap::new(),
                used: 0,
                error: None,
            }),
        }
    }

    /// Bytes held so far (for measurements and tests).
    pub fn used(&self) -> usize {
        self.cache.borrow().used
    }

    /// Why a read failed, if one did: the budget, or the file shrinking under us.
    pub fn error(&self) -> Option<String> {
        self.cache.borrow().error.clone()
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Exactly `len` bytes at `off`, read now (not cached, not charged: for short reads such
    /// as a function's machine code).
    pub fn read_exact_at(&self, off: u64, len: usize) -> Option<Vec<u8>> {
        if off.checked_add(len as u64)? > self.len {
            return None;
        }
        let mut buf = vec![0; len];
        self.file.read_exact_at(&mut buf, off).ok()?;
        Some(buf)
    }

    /// A cached block that holds `[off, off + size)`, as a slice with the reader's lifetime.
    fn cached(&self, cache: &Cache, off: u64, size: u64) -> Option<&[u8]> {
        let ((start, _), b) = cache.blocks.range(..=(off, u64::MAX)).next_back()?;
        let from = usize::try_from(off - start).ok()?;
        let to = from.checked_add(usize::try_from(size).ok()?)?;
        let s: &[u8] = b.get(from..to)?;
        // SAFETY: a block is never removed, moved out of its Box or changed while `self`
        // lives (only inserted), so its bytes stay where they are for `&self`'s lifetime.
        Some(unsafe { std::mem::transmute::<&[u8], &[u8]>(s) })
    }

    /// Reads `[off, off + size)` into a new cached block, within the budget.
    fn load(&self, off: u64, size: u64) -> Result<&[u8], ()> {
        if let Some(s) = self.cached(&self.cache.borrow(), off, size) {
            return Ok(s);
        }
        let mut cache = self.cache.borrow_mut();
        let n = usize::try_from(size).map_err(|_| ())?;
        if cache.used.saturating_add(n).saturating_add(BLOCK_OVERHEAD) > self.budget {
            cache.error.get_or_insert_with(|| {
                format!(
                    "its tables need more than the {} MiB read at most per file",
                    self.budget >> 20
                )
            });
            return Err(());
        }
        let mut buf = Vec::new();
        buf.try_reserve_exact(n).map_err(|_| ())?;
        buf.resize(n, 0);
        if let Err(e) = self.file.read_exact_at(&mut buf, off) {
            cache.error.get_or_insert_with(|| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    "the file shrank while it was read (truncated by its owner?)".to_string()
                } else {
                    format!("cannot read it: {e}")
                }
            });
            return Err(());
        }
        cache.used += n + BLOCK_OVERHEAD;
        let b = buf.into_boxed_slice();
        let s: &[u8] = &b;
        // SAFETY: as in `cached`: the Box's heap bytes do not move when the Box is moved
        // into the map, and are never freed or changed while `self` lives.
        let s = unsafe { std::mem::transmute::<&[u8], &[u8]>(s) };
        cache.blocks.insert((off, size), b);
        Ok(s)
    }
}

impl<'a> object::ReadRef<'a> for &'a PreadRef {
    fn len(self) -> Result<u64, ()> {
        Ok(self.len)
    }

    fn read_bytes_at(self, offset: u64, size: u64) -> Result<&'a [u8], ()> {
        if size == 0 {
            return Ok(&[]);
        }
        let end = offset.checked_add(size).ok_or(())?;
        if end > self.len {
            return Err(());
        }
        if let Some(s) = self.cached(&self.cache.borrow(), offset, size) {
            return Ok(s);
        }
        self.load(offset, size)
    }

    fn read_bytes_at_until(self, range: Range<u64>, delimiter: u8) -> Result<&'a [u8], ()> {
        if range.start > range.end || range.end > self.len {
            return Err(());
        }
        let want = range.end - range.start;
        let find = |b: &'a [u8]| b.iter().position(|c| *c == delimiter).map(|i| &b[..i]);
        // in a block read before, as far as that block goes
        {
            let cache = self.cache.borrow();
            if let Some(((start, _), b)) =
                cache.blocks.range(..=(range.start, u64::MAX)).next_back()
                && let Ok(from) = usize::try_from(range.start - start)
                && from < b.len()
            {
                let avail = ((b.len() - from) as u64).min(want);
                if let Some(s) = self.cached(&cache, range.start, avail)
                    && let Some(hit) = find(s)
                {
                    return Ok(hit);
                }
            }
        }
        // the aligned block around it (so the strings of a table share blocks), then, for a
        // string running past that block's end, a block of its own
        let chunk = range.start - range.start % STRING_BLOCK;
        let chunk_len = STRING_BLOCK.min(self.len - chunk);
        let block = self.load(chunk, chunk_len)?;
        let from = (range.start - chunk) as usize;
        let upto = (range.end.min(chunk + chunk_len) - chunk) as usize;
        if let Some(hit) = find(&block[from..upto]) {
            return Ok(hit);
        }
        if range.end <= chunk + chunk_len {
            return Err(());
        }
        find(self.load(range.start, want.min(MAX_STRING))?).ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::ReadRef;

    fn temp(tag: &str, bytes: &[u8]) -> (std::path::PathBuf, File) {
        let p = std::env::temp_dir().join(format!("qtap-preadref-{tag}-{}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        let f = File::open(&p).unwrap();
        (p, f)
    }

    #[test]
    fn reads_ranges_once_and_strings_from_blocks() {
        let mut data = vec![0u8; 300_000];
        data[1000..1005].copy_from_slice(b"abcd\0");
        data[1005..1009].copy_from_slice(b"xyz\0");
        let (p, f) = temp("ranges", &data);
        let r = PreadRef::new(f, data.len() as u64, 1 << 20);
        assert_eq!((&r).read_bytes_at_until(1000..2000, 0), Ok(&b"abcd"[..]));
        let used = r.used();
        // the second string is in the block the first one read
        assert_eq!((&r).read_bytes_at_until(1005..2000, 0), Ok(&b"xyz"[..]));
        assert_eq!(r.used(), used);
        assert_eq!((&r).read_bytes_at(1000, 4), Ok(&b"abcd"[..]));
        assert_eq!(r.used(), used, "inside a cached block");
        assert!((&r).read_bytes_at(299_999, 2).is_err(), "past the end");
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn budget_and_truncation_are_errors_not_faults() {
        let data = vec![7u8; 200_000];
        let (p, f) = temp("trunc", &data);
        let r = PreadRef::new(f, data.len() as u64, 100_000);
        assert!((&r).read_bytes_at(0, 150_000).is_err());
        assert!(
            r.error().unwrap().contains("read at most"),
            "{:?}",
            r.error()
        );
        // truncated after open: a short read, reported
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(10)
            .unwrap();
        let r2 = PreadRef::new(File::open(&p).unwrap(), data.len() as u64, 1 << 20);
        assert!((&r2).read_bytes_at(1000, 10).is_err());
        assert!(r2.error().unwrap().contains("shrank"), "{:?}", r2.error());
        std::fs::remove_file(p).unwrap();
    }
}
