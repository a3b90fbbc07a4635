//! HPACK (RFC 7541) header block decoding for one direction of one connection, built to
//! survive a capture that started late or lost bytes: it never shows a wrong header.
//!
//! Huffman decoding is the `loona-hpack` crate's; so is the static table (read once from
//! its decoder). The representation layer and the dynamic table are here because a
//! capture needs what a protocol decoder does not give: decoding goes on past a field it
//! cannot resolve, keeping the dynamic table aligned with the peer's encoder.
//!
//! Why no field is ever wrong: the peer's table is "entries inserted before we looked"
//! followed by "entries inserted since". Ours holds only the latter (placeholders where a
//! name or value could not be read), and we never evict sooner than the peer: entry sizes
//! are exact or lower bounds, and before a size update is seen the limit is generous. An
//! index in our table is then the same entry in the peer's; an index past our table is
//! reported as undecodable, never guessed. Anything that may have broken the alignment
//! (bytes lost in capture, a block that could not be walked to its end, a skipped block)
//! empties our table ([`Hpack::desync`]), which restores the invariant.
//!
//! Bounded: a block costs at most its own length plus `budget` bytes of output (fields
//! count their RFC 7541 size, name + value + 32, before any text is copied; table entries
//! are shared, never copied per reference), and a table size update above the limit the
//! peer's decoder announced (SETTINGS_HEADER_TABLE_SIZE, 4096 before any) is refused as
//! the connection error RFC 7541 4.2 makes it: the block reports it in [`Block::fatal`].
use loona_hpack::huffman::HuffmanDecoder;
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

/// Most bytes a dynamic table may hold here (an encoder told to use more is followed
/// with this much: older entries then read as undecodable, never wrong).
pub const MAX_TABLE_BYTES: usize = 64 * 1024;
/// The table size an HTTP/2 encoder starts with.
const DEFAULT_TABLE_BYTES: usize = 4096;
/// Most fields kept from one header block (the rest are walked, for the table, and counted).
pub const MAX_FIELDS: usize = 8192;
/// Largest integer accepted in a representation (lengths, indexes, sizes).
const MAX_INT: u64 = 1 << 28;
const STATIC_LEN: usize = 61;

/// The static table (RFC 7541 Appendix A), read from the crate's decoder.
fn static_table() -> &'static [(String, String)] {
    static T: OnceLock<Vec<(String, String)>> = OnceLock::new();
    T.get_or_init(|| {
        let mut d = loona_hpack::Decoder::new();
        (1..=STATIC_LEN as u8)
            .map(|i| {
                let f = d.decode(&[0x80 | i]).unwrap_or_default();
                f.into_iter()
                    .next()
                    .map(|(n, v)| (lossy(&n), lossy(&v)))
                    .unwrap_or_default()
            })
            .collect()
    })
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Decoded bytes kept per header block and per stream unless configured otherwise
/// (`--max-header-bytes`), in RFC 7541 sizes (name + value + 32 per field).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 256 * 1024;

/// RFC 7541 4.1 size of a field.
pub fn field_size(name: &str, value: &str) -> usize {
    name.len() + value.len() + 32
}

#[derive(Clone, Debug)]
struct Entry {
    /// `None`: inserted with a name or value that could not be read
    name: Option<Arc<str>>,
    value: Option<Arc<str>>,
    /// RFC 7541 size (name + value + 32), a lower bound when a part is unknown
    size: usize,
}

/// The outcome of decoding one header block.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Block {
    /// Fields decoded, in order (names as sent: lower case in HTTP/2).
    pub fields: Vec<(String, String)>,
    /// Fields that could not be decoded (left out of `fields`).
    pub undecodable: usize,
    /// Why, when `undecodable > 0` or the block was cut short.
    pub problems: Vec<String>,
    /// Fields left out because the decoded-bytes budget was spent (walked for the table,
    /// not kept): the header list is cut.
    pub cut: usize,
    /// RFC 7541 size of the fields kept.
    pub decoded: usize,
    /// A connection error (a table size update above the peer's limit): the block was
    /// not decoded past it and the table no longer follows the peer's.
    pub fatal: Option<String>,
}

impl Block {
    fn problem(&mut self, p: String) {
        if self.problems.len() < 4 && !self.problems.contains(&p) {
            self.problems.push(p);
        }
    }
}

/// HPACK decoder state of one direction.
pub struct Hpack {
    table: VecDeque<Entry>,
    size: usize,
    max: usize,
    /// The peer's decoder limit from SETTINGS_HEADER_TABLE_SIZE, when seen (the largest
    /// seen: an encoder may use the older, larger one until it sees the new one).
    settings_max: Option<usize>,
    /// This direction was seen from its first byte (so the limit before any SETTINGS is
    /// the HTTP/2 default; joined mid-way, it is unknown).
    from_start: bool,
    /// Our table may lack entries the peer's has (joined mid-way, or bytes were lost).
    partial: bool,
    huff: HuffmanDecoder,
}

impl std::fmt::Debug for Hpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hpack")
            .field("entries", &self.table.len())
            .field("size", &self.size)
            .field("max", &self.max)
            .field("partial", &self.partial)
            .finish()
    }
}

enum Ref {
    Known(Arc<str>),
    /// index, and whether it points past our table (rather than at a placeholder)
    Unknown(usize),
}

/// A string literal: `Ok(text)`, or `Err(size lower bound)` when it could not be read.
type Lit = Result<Arc<str>, usize>;

/// Why a block could not be walked to its end.
enum Stop {
    /// The block is malformed or cut: the rest cannot be walked.
    Cut(&'static str),
    /// A connection error: decoding must not go on.
    Fatal(String),
}

impl From<&'static str> for Stop {
    fn from(s: &'static str) -> Stop {
        Stop::Cut(s)
    }
}

impl Hpack {
    /// `from_start`: the direction was seen from its first byte, so the table starts empty
    /// at the HTTP/2 default size; otherwise entries may be missing and the limit is unknown.
    pub fn new(from_start: bool) -> Self {
        Hpack {
            table: VecDeque::new(),
            size: 0,
            max: if from_start {
                DEFAULT_TABLE_BYTES
            } else {
                MAX_TABLE_BYTES
            },
            settings_max: None,
            from_start,
            partial: !from_start,
            huff: HuffmanDecoder::new(),
        }
    }

    /// The direction's first byte is here after all (a preface): start over from an empty
    /// table at the default size, keeping a SETTINGS limit already seen.
    pub fn restart(&mut self) {
        let settings = self.settings_max;
        *self = Hpack::new(true);
        self.settings_max = settings;
    }

    /// Largest dynamic table size update the encoder may send.
    pub fn update_limit(&self) -> usize {
        match self.settings_max {
            Some(m) => m.max(if self.from_start { 0 } else { MAX_TABLE_BYTES }),
            None if self.from_start => DEFAULT_TABLE_BYTES,
            None => MAX_TABLE_BYTES,
        }
    }

    /// Entries currently in the dynamic table.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The table's current size in RFC 7541 terms.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The peer that decodes this direction announced SETTINGS_HEADER_TABLE_SIZE.
    pub fn set_settings_max(&mut self, v: u32) {
        let v = v as usize;
        self.settings_max = Some(self.settings_max.map_or(v, |m| m.max(v)));
    }

    /// Our table can no longer be trusted to match the peer's (bytes lost, a block not
    /// decoded): forget it. Later references to older entries read as undecodable.
    pub fn desync(&mut self) {
        self.table.clear();
        self.size = 0;
        self.max = MAX_TABLE_BYTES;
        self.partial = true;
    }

    fn set_max(&mut self, v: usize) {
        self.max = v.min(MAX_TABLE_BYTES);
        self.evict(0);
    }

    fn evict(&mut self, room: usize) {
        while self.size + room > self.max {
            match self.table.pop_back() {
                Some(e) => self.size -= e.size,
                None => break,
            }
        }
    }

    fn insert(&mut self, name: Option<Arc<str>>, value: Option<Arc<str>>, size: usize) {
        if size > self.max {
            // RFC 7541 4.4: an entry larger than the table empties it
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.table.push_front(Entry { name, value, size });
    }

    fn entry(&self, index: usize) -> Option<&Entry> {
        index
            .checked_sub(STATIC_LEN + 1)
            .and_then(|i| self.table.get(i))
    }

    /// The name at `index`, shared (not copied).
    fn name_ref(&self, index: usize) -> Ref {
        if (1..=STATIC_LEN).contains(&index) {
            return Ref::Known(Arc::from(static_table()[index - 1].0.as_str()));
        }
        match self.entry(index).and_then(|e| e.name.clone()) {
            Some(n) => Ref::Known(n),
            None => Ref::Unknown(index),
        }
    }

    fn unknown_problem(&self, index: usize) -> String {
        if index == 0 {
            "index 0 in a header block".to_string()
        } else if self.entry(index).is_some() {
            "a field refers to a table entry whose text could not be read".to_string()
        } else if self.partial {
            "fields refer to HPACK table entries added before the capture saw them (connection \
             joined mid-way or bytes lost)"
                .to_string()
        } else {
            format!("HPACK index {index} is past the table (peer error?)")
        }
    }

    /// [`Hpack::decode_within`] without a budget.
    #[cfg(test)]
    pub fn decode(&mut self, buf: &[u8]) -> Block {
        self.decode_within(buf, usize::MAX)
    }

    /// Decodes one complete header block (HEADERS/PUSH_PROMISE and its CONTINUATIONs),
    /// keeping fields while their RFC 7541 sizes add up to at most `budget`; the rest are
    /// walked (the table follows the peer's) and counted in [`Block::cut`].
    pub fn decode_within(&mut self, mut buf: &[u8], budget: usize) -> Block {
        let mut out = Block::default();
        while let Some(&first) = buf.first() {
            match self.field(first, &mut buf, &mut out, budget) {
                Ok(()) if out.fields.len() > MAX_FIELDS => {
                    out.fields.pop();
                    out.undecodable += 1;
                    out.problem(format!("more than {MAX_FIELDS} fields in a header block"));
                }
                Ok(()) => {}
                Err(Stop::Cut(why)) => {
                    // the rest of the block cannot be walked: insertions in it are lost
                    out.undecodable += 1;
                    out.problem(format!("header block cut short: {why}"));
                    self.desync();
                    break;
                }
                Err(Stop::Fatal(why)) => {
                    self.desync();
                    out.fatal = Some(why);
                    break;
                }
            }
        }
        if out.cut > 0 {
            out.problem(format!(
                "header fields past {budget} decoded bytes not kept ({} left out)",
                out.cut
            ));
        }
        out
    }

    /// Keeps a field of `size` when the budget allows; `text` gives it (called only then).
    fn keep(out: &mut Block, budget: usize, size: usize, text: impl FnOnce() -> (String, String)) {
        if out.cut == 0 && out.decoded.saturating_add(size) <= budget {
            out.decoded += size;
            out.fields.push(text());
        } else {
            out.cut += 1;
        }
    }

    fn field(
        &mut self,
        first: u8,
        buf: &mut &[u8],
        out: &mut Block,
        budget: usize,
    ) -> Result<(), Stop> {
        if first & 0x80 != 0 {
            // indexed field
            let i = int(buf, 7)?;
            if (1..=STATIC_LEN).contains(&i) {
                let (n, v) = &static_table()[i - 1];
                Self::keep(out, budget, field_size(n, v), || (n.clone(), v.clone()));
                return Ok(());
            }
            match self.entry(i) {
                Some(Entry {
                    name: Some(n),
                    value: Some(v),
                    ..
                }) => Self::keep(out, budget, field_size(n, v), || {
                    (n.to_string(), v.to_string())
                }),
                _ => {
                    out.undecodable += 1;
                    out.problem(self.unknown_problem(i));
                }
            }
            return Ok(());
        }
        if first & 0xe0 == 0x20 {
            // dynamic table size update
            let v = int(buf, 5)?;
            let limit = self.update_limit();
            if v > limit {
                return Err(Stop::Fatal(format!(
                    "HPACK table size update to {v} bytes, above the {limit} the peer's \
                     decoder allows (SETTINGS_HEADER_TABLE_SIZE): a connection error"
                )));
            }
            self.set_max(v);
            return Ok(());
        }
        // literal: with incremental indexing (01), without (0000), never indexed (0001)
        let (indexing, prefix) = if first & 0xc0 == 0x40 {
            (true, 6)
        } else {
            (false, 4)
        };
        let idx = int(buf, prefix)?;
        let name: Lit = if idx == 0 {
            self.string(buf)?
        } else {
            match self.name_ref(idx) {
                Ref::Known(n) => Ok(n),
                Ref::Unknown(i) => {
                    out.problem(self.unknown_problem(i));
                    Err(0)
                }
            }
        };
        let value = self.string(buf)?;
        if indexing {
            let lower = |p: &Lit| match p {
                Ok(s) => s.len(),
                Err(n) => *n,
            };
            let size = lower(&name) + lower(&value) + 32;
            self.insert(name.clone().ok(), value.clone().ok(), size);
        }
        match (name, value) {
            (Ok(n), Ok(v)) => Self::keep(out, budget, field_size(&n, &v), || {
                (n.to_string(), v.to_string())
            }),
            _ => out.undecodable += 1,
        }
        Ok(())
    }

    /// A string literal. `Ok(Err(lower bound of its length))` when it could not be read
    /// (bad Huffman code); `Err` when the block ends inside it.
    fn string(&mut self, buf: &mut &[u8]) -> Result<Lit, &'static str> {
        let huffman = buf.first().ok_or("block ends before a string")? & 0x80 != 0;
        let n = int(buf, 7)?;
        if n > buf.len() {
            return Err("string longer than the block");
        }
        let (raw, rest) = buf.split_at(n);
        *buf = rest;
        if !huffman {
            return Ok(Ok(Arc::from(lossy(raw))));
        }
        match self.huff.decode(raw) {
            Ok(b) => Ok(Ok(Arc::from(lossy(&b)))),
            // the shortest Huffman code is 5 bits
            Err(_) => Ok(Err(n * 8 / 30)),
        }
    }
}

/// RFC 7541 5.1 integer with an `n`-bit prefix; advances `buf` past it.
fn int(buf: &mut &[u8], n: u32) -> Result<usize, &'static str> {
    let (&first, mut rest) = buf.split_first().ok_or("block ends inside an integer")?;
    let mask = (1u16 << n) as u8 - 1;
    let mut v = u64::from(first & mask);
    if v == u64::from(mask) {
        let mut shift = 0;
        loop {
            let (&b, r) = rest.split_first().ok_or("block ends inside an integer")?;
            rest = r;
            v += u64::from(b & 0x7f) << shift;
            if v > MAX_INT {
                return Err("integer too large");
            }
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 28 {
                return Err("integer too large");
            }
        }
    }
    *buf = rest;
    Ok(v as usize)
}

#[cfg(test)]
#[path = "tests_hpack.rs"]
pub(super) mod tests;
