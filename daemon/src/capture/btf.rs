//! Just enough of a BTF reader to find where a kernel struct keeps a field, so a program
//! can read it on this kernel without CO-RE relocations (which Rust eBPF programs do not
//! get): the loader looks the offset up in `/sys/kernel/btf/vmlinux` and hands it to the
//! program as a global. Format: the kernel's Documentation/bpf/btf.rst.

const MAGIC: u16 = 0xeb9f;

// BTF_KIND_*
const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BtfError {
    #[error("not BTF (bad magic or header)")]
    NotBtf,
    #[error("BTF is cut short at byte {0}")]
    Short(usize),
    #[error("BTF type kind {0} is unknown to this reader")]
    UnknownKind(u32),
    #[error("no struct {0} in the kernel's BTF")]
    NoStruct(String),
    #[error("struct {0} has no field {1}")]
    NoField(String, String),
    #[error("{0}.{1} is a bit field")]
    BitField(String, String),
}

struct Type {
    name_off: u32,
    kind: u32,
    kind_flag: bool,
    /// size, or the referred type for typedef/const/volatile/…
    size_type: u32,
    /// struct/union members: (name_off, type, offset in bits or bitfield-encoded)
    members: Vec<(u32, u32, u32)>,
}

/// Parsed types of one BTF blob (ids start at 1).
pub struct Btf<'a> {
    strings: &'a [u8],
    types: Vec<Type>,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, BtfError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(BtfError::Short(at))
}

impl<'a> Btf<'a> {
    pub fn parse(b: &'a [u8]) -> Result<Btf<'a>, BtfError> {
        if b.len() < 24 || u16::from_le_bytes([b[0], b[1]]) != MAGIC {
            return Err(BtfError::NotBtf);
        }
        let hdr_len = u32_at(b, 4)? as usize;
        let (type_off, type_len) = (u32_at(b, 8)? as usize, u32_at(b, 12)? as usize);
        let (str_off, str_len) = (u32_at(b, 16)? as usize, u32_at(b, 20)? as usize);
        let sect = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off).ok_or(BtfError::NotBtf)?;
            let end = start.checked_add(len).ok_or(BtfError::NotBtf)?;
            b.get(start..end).ok_or(BtfError::Short(end))
        };
        let (tb, strings) = (sect(type_off, type_len)?, sect(str_off, str_len)?);
        let mut types = Vec::new();
        let mut at = 0usize;
        while at < tb.len() {
            let name_off = u32_at(tb, at)?;
            let info = u32_at(tb, at + 4)?;
            let size_type = u32_at(tb, at + 8)?;
            at += 12;
            let (vlen, kind) = ((info & 0xffff) as usize, (info >> 24) & 0x1f);
            let mut members = Vec::new();
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = at + i * 12;
                        members.push((u32_at(tb, m)?, u32_at(tb, m + 4)?, u32_at(tb, m + 8)?));
                    }
                    vlen * 12
                }
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                2 | 7 | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | 12 | 16
                | KIND_TYPE_TAG => 0,
                k => return Err(BtfError::UnknownKind(k)),
            };
            at += extra;
            if at > tb.len() {
                return Err(BtfError::Short(hdr_len + type_off + at));
            }
            types.push(Type {
                name_off,
                kind,
                kind_flag: info >> 31 == 1,
                size_type,
                members,
            });
        }
        Ok(Btf { strings, types })
    }

    fn name(&self, off: u32) -> &[u8] {
        let s = self.strings.get(off as usize..).unwrap_or_default();
        &s[..s.iter().position(|&c| c == 0).unwrap_or(s.len())]
    }

    fn ty(&self, id: u32) -> Option<&Type> {
        self.types.get((id as usize).checked_sub(1)?)
    }

    /// The byte offset of `field` in `struct name`, looking through anonymous struct and
    /// union members (as `randomized_struct_fields_start` and friends make them).
    pub fn member_offset(&self, name: &str, field: &str) -> Result<u32, BtfError> {
        let st = self
            .types
            .iter()
            .find(|t| t.kind == KIND_STRUCT && self.name(t.name_off) == name.as_bytes())
            .ok_or_else(|| BtfError::NoStruct(name.into()))?;
        self.find_in(st, field, 0, 0)
            .ok_or_else(|| BtfError::NoField(name.into(), field.into()))?
            .map_err(|()| BtfError::BitField(name.into(), field.into()))
    }

    fn find_in(
        &self,
        st: &Type,
        field: &str,
        base_bits: u32,
        depth: u32,
    ) -> Option<Result<u32, ()>> {
        if depth > 8 {
            return None;
        }
        for &(name_off, ty, off) in &st.members {
            let (bits, bitfield) = if st.kind_flag {
                (off & 0xff_ffff, off >> 24 != 0)
            } else {
                (off, false)
            };
            let at = base_bits + bits;
            let name = self.name(name_off);
            if name == field.as_bytes() {
                return Some(if bitfield || !at.is_multiple_of(8) {
                    Err(())
                } else {
                    Ok(at / 8)
                });
            }
            if name.is_empty() {
                let mut id = ty;
                for _ in 0..8 {
                    match self.ty(id) {
                        Some(t)
                            if matches!(
                                t.kind,
                                KIND_TYPEDEF
                                    | KIND_VOLATILE
                                    | KIND_CONST
                                    | KIND_RESTRICT
                                    | KIND_TYPE_TAG
                            ) =>
                        {
                            id = t.size_type
                        }
                        _ => break,
                    }
                }
                if let Some(r) = self
                    .ty(id)
                    .filter(|t| matches!(t.kind, KIND_STRUCT | KIND_UNION))
                    .and_then(|inner| self.find_in(inner, field, at, depth + 1))
                {
                    return Some(r);
                }
            }
        }
        None
    }
}

/// `task_struct.exit_code` on the running kernel, for the exit tracepoint.
pub fn task_exit_code_offset() -> Result<u32, String> {
    let raw = std::fs::read("/sys/kernel/btf/vmlinux")
        .map_err(|e| format!("/sys/kernel/btf/vmlinux: {e}"))?;
    Btf::parse(&raw)
        .and_then(|b| b.member_offset("task_struct", "exit_code"))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with: 1 int, 2 struct inner {int a; int exit_code;}, 3 struct task_struct
    /// {int x; <anonymous inner at byte 8>; int tail}, 4 a bit-field struct.
    fn blob() -> Vec<u8> {
        let strs = b"\0int\0inner\0a\0exit_code\0task_struct\0x\0tail\0bits\0";
        let off = |s: &str| {
            let pos = strs
                .windows(s.len() + 2)
                .position(|w| w[0] == 0 && &w[1..=s.len()] == s.as_bytes() && w[s.len() + 1] == 0)
                .unwrap();
            (pos + 1) as u32
        };
        let mut t = Vec::new();
        let mut push = |v: &[u32]| v.iter().for_each(|x| t.extend_from_slice(&x.to_le_bytes()));
        push(&[off("int"), KIND_INT << 24, 4, 32]);
        push(&[off("inner"), KIND_STRUCT << 24 | 2, 8]);
        push(&[off("a"), 1, 0, off("exit_code"), 1, 32]);
        push(&[off("task_struct"), KIND_STRUCT << 24 | 3, 20]);
        push(&[off("x"), 1, 0, 0, 2, 64, off("tail"), 1, 128]);
        push(&[off("bits"), 1 << 31 | KIND_STRUCT << 24 | 1, 4]);
        push(&[off("exit_code"), 1, 3 << 24 | 5]);
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for v in [24u32, 0, t.len() as u32, t.len() as u32, strs.len() as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&t);
        b.extend_from_slice(strs);
        b
    }

    #[test]
    fn finds_fields_through_anonymous_members() {
        let b = blob();
        let btf = Btf::parse(&b).unwrap();
        assert_eq!(btf.member_offset("task_struct", "x"), Ok(0));
        assert_eq!(btf.member_offset("task_struct", "exit_code"), Ok(12));
        assert_eq!(btf.member_offset("task_struct", "tail"), Ok(16));
        assert_eq!(btf.member_offset("inner", "exit_code"), Ok(4));
        assert_eq!(
            btf.member_offset("task_struct", "nope"),
            Err(BtfError::NoField("task_struct".into(), "nope".into()))
        );
        assert_eq!(
            btf.member_offset("mm_struct", "x"),
            Err(BtfError::NoStruct("mm_struct".into()))
        );
        assert_eq!(
            btf.member_offset("bits", "exit_code"),
            Err(BtfError::BitField("bits".into(), "exit_code".into()))
        );
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        let b = blob();
        assert_eq!(Btf::parse(b"hello").err(), Some(BtfError::NotBtf));
        for cut in 0..b.len() {
            let _ = Btf::parse(&b[..cut]).map(|t| t.member_offset("task_struct", "exit_code"));
        }
        let mut bad = b.clone();
        bad[24 + 7] = 30; // kind 30 in the first type's info
        assert_eq!(Btf::parse(&bad).err(), Some(BtfError::UnknownKind(30)));
    }

    /// The running kernel's own BTF (every kernel qtap supports has it).
    #[test]
    fn this_kernels_task_struct_has_an_exit_code() {
        let off =
            task_exit_code_offset().expect("task_struct.exit_code in /sys/kernel/btf/vmlinux");
        // task_struct starts with thread_info/state/stack…: exit_code is well inside it
        assert!((64..16384).contains(&off), "{off}");
        assert_eq!(off % 4, 0);
    }
}
