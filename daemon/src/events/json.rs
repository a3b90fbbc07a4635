//! A compact JSON writer for the event frames: the same bytes `serde_json::to_writer`
//! writes (the tests compare the two), but faster on what frames are made of — strings
//! are scanned for bytes that need escaping a word at a time and copied in runs, and
//! integers are written without `core::fmt`. Floats go through `serde_json` itself so
//! their shortest form is exactly the same.
use serde::ser::{self, Serialize};
use std::fmt;

/// Appends `v` as compact JSON to `out`. On error `out` may hold a partial value.
pub fn to_vec<T: ?Sized + Serialize>(out: &mut Vec<u8>, v: &T) -> Result<(), Error> {
    v.serialize(&mut Writer { out })
}

/// Why a value could not be written (a `Serialize` impl failed, or a map key is not a
/// string or number).
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

const DIGITS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes the decimal digits of `n` at the end of `buf`; returns where they start.
fn digits(mut n: u64, buf: &mut [u8; 20]) -> usize {
    let mut i = buf.len();
    while n >= 100 {
        let d = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGITS[d..d + 2]);
    }
    if n >= 10 {
        let d = n as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGITS[d..d + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    i
}

/// The decimal digits of `n`, in `buf`.
pub fn u64_digits(n: u64, buf: &mut [u8; 20]) -> &str {
    let i = digits(n, buf);
    // ASCII digits only
    std::str::from_utf8(&buf[i..]).unwrap_or("")
}

/// Appends the decimal digits of `n`.
pub fn write_u64(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0; 20];
    let i = digits(n, &mut buf);
    out.extend_from_slice(&buf[i..]);
}

fn write_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    write_u64(out, n.unsigned_abs());
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `w` is `"`, `\` or a control character (< 0x20). Exact as a
/// yes/no (the bit positions past the first hit are not).
#[inline(always)]
fn needs_escape(w: u64) -> bool {
    let ctrl = w.wrapping_sub(LO * 0x20) & !w;
    let q = w ^ (LO * u64::from(b'"'));
    let bs = w ^ (LO * u64::from(b'\\'));
    let quote = q.wrapping_sub(LO) & !q;
    let back = bs.wrapping_sub(LO) & !bs;
    (ctrl | quote | back) & HI != 0
}

/// What serde_json writes after a backslash for byte `b`, or 0 when `b` needs no escape
/// (`u` means `\u00XX`).
const fn escape_of(b: u8) -> u8 {
    match b {
        0x08 => b'b',
        b'\t' => b't',
        b'\n' => b'n',
        0x0c => b'f',
        b'\r' => b'r',
        b'"' => b'"',
        b'\\' => b'\\',
        0..0x20 => b'u',
        _ => 0,
    }
}

static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = escape_of(i as u8);
        i += 1;
    }
    t
};

/// Appends `s` as a JSON string (quotes included), escaped exactly as serde_json does:
/// `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control characters as `\u00xx`, and
/// nothing else.
#[inline]
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    if b.len() <= 32 && b.iter().fold(0u8, |m, &c| m | ESCAPE[c as usize]) == 0 {
        out.reserve(b.len() + 2);
        out.push(b'"');
        out.extend_from_slice(b);
        out.push(b'"');
        return;
    }
    write_str_slow(out, b);
}

fn write_str_slow(out: &mut Vec<u8>, b: &[u8]) {
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut run = 0; // start of the bytes not yet copied
    let mut i = 0;
    while i < b.len() {
        // skip 32 clean bytes at a time (a loop the compiler turns into SIMD compares)
        while let Some(c) = b.get(i..i + 32) {
            if c.iter()
                .fold(false, |m, &x| m | (x < 0x20) | (x == b'"') | (x == b'\\'))
            {
                break;
            }
            i += 32;
        }
        if let Some(c) = b.get(i..i + 8) {
            let x = u64::from_le_bytes(c.try_into().unwrap_or_default());
            if !needs_escape(x) {
                i += 8;
                continue;
            }
        }
        // byte by byte to the end of this word (or of the string)
        let end = (i + 8).min(b.len());
        while i < end {
            let c = b[i];
            let e = ESCAPE[c as usize];
            if e != 0 {
                out.extend_from_slice(&b[run..i]);
                if e == b'u' {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(&[
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[(c >> 4) as usize],
                        HEX[(c & 0xf) as usize],
                    ]);
                } else {
                    out.extend_from_slice(&[b'\\', e]);
                }
                run = i + 1;
            }
            i += 1;
        }
    }
    out.extend_from_slice(&b[run..]);
    out.push(b'"');
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn float<T: Serialize>(&mut self, v: T) -> Result<(), Error> {
        serde_json::to_writer(&mut *self.out, &v).map_err(|e| Error(e.to_string()))
    }
}

impl<'s, 'a> ser::Serializer for &'s mut Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'s, 'a>;
    type SerializeTuple = Compound<'s, 'a>;
    type SerializeTupleStruct = Compound<'s, 'a>;
    type SerializeTupleVariant = Compound<'s, 'a>;
    type SerializeMap = Compound<'s, 'a>;
    type SerializeStruct = Compound<'s, 'a>;
    type SerializeStructVariant = Compound<'s, 'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        write_i64(self.out, v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.out.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        write_u64(self.out, v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.out.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.float(v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.float(v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        use ser::SerializeSeq;
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.serialize_element(b)?;
        }
        seq.end()
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, v: &'static str) -> Result<(), Error> {
        self.serialize_str(v)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.push(b':');
        v.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'s, 'a>, Error> {
        self.out.push(b'[');
        Ok(Compound::new(self, b"]"))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'s, 'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Compound<'s, 'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'s, 'a>, Error> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.extend_from_slice(b":[");
        Ok(Compound::new(self, b"]}"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'s, 'a>, Error> {
        self.out.push(b'{');
        Ok(Compound::new(self, b"}"))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound<'s, 'a>, Error> {
        self.out.push(b'{');
        Ok(Compound::new(self, b"}"))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'s, 'a>, Error> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.extend_from_slice(b":{");
        Ok(Compound::new(self, b"}}"))
    }
}

pub struct Compound<'s, 'a> {
    w: &'s mut Writer<'a>,
    first: bool,
    close: &'static [u8],
}

impl<'s, 'a> Compound<'s, 'a> {
    fn new(w: &'s mut Writer<'a>, close: &'static [u8]) -> Self {
        Compound {
            w,
            first: true,
            close,
        }
    }

    fn comma(&mut self) {
        if !self.first {
            self.w.out.push(b',');
        }
        self.first = false;
    }

    fn element<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        self.comma();
        v.serialize(&mut *self.w)
    }

    fn field<T: ?Sized + Serialize>(&mut self, key: &'static str, v: &T) -> Result<(), Error> {
        let out = &mut *self.w.out;
        let k = key.as_bytes();
        if k.len() <= 32 && k.iter().fold(0u8, |m, &c| m | ESCAPE[c as usize]) == 0 {
            // `,"key":` in one go (field names never need escaping in practice)
            out.reserve(k.len() + 4);
            if !self.first {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(k);
            out.extend_from_slice(b"\":");
            self.first = false;
        } else {
            if !self.first {
                out.push(b',');
            }
            self.first = false;
            write_str(out, key);
            out.push(b':');
        }
        v.serialize(&mut *self.w)
    }

    fn close(self) -> Result<(), Error> {
        self.w.out.extend_from_slice(self.close);
        Ok(())
    }
}

/// Sequences, tuples and tuple structs/variants: elements separated by commas.
macro_rules! seq_like {
    ($($trait:ident :: $method:ident),* $(,)?) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
                self.element(v)
            }
            fn end(self) -> Result<(), Error> {
                self.close()
            }
        }
    )*};
}

seq_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, k: &T) -> Result<(), Error> {
        self.comma();
        k.serialize(KeyWriter { out: self.w.out })
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Error> {
        self.w.out.push(b':');
        v.serialize(&mut *self.w)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.field(key, v)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.field(key, v)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

/// Map keys: strings, and integers and booleans quoted, as serde_json accepts them.
struct KeyWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl KeyWriter<'_> {
    fn quoted(self, f: impl FnOnce(&mut Vec<u8>)) -> Result<(), Error> {
        self.out.push(b'"');
        f(self.out);
        self.out.push(b'"');
        Ok(())
    }
}

fn key_must_be_a_string() -> Error {
    Error("key must be a string".into())
}

impl ser::Serializer for KeyWriter<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ser::Impossible<(), Error>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = ser::Impossible<(), Error>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.quoted(|o| o.extend_from_slice(if v { b"true" } else { b"false" }))
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.quoted(|o| write_i64(o, v))
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.quoted(|o| o.extend_from_slice(v.to_string().as_bytes()))
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.quoted(|o| write_u64(o, v))
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.quoted(|o| o.extend_from_slice(v.to_string().as_bytes()))
    }
    fn serialize_f32(self, _: f32) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_f64(self, _: f64) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_none(self) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, v: &'static str) -> Result<(), Error> {
        self.serialize_str(v)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_must_be_a_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::collections::BTreeMap;

    fn both<T: Serialize>(v: &T) -> (String, String) {
        let mut out = Vec::new();
        to_vec(&mut out, v).unwrap();
        (
            String::from_utf8(out).unwrap(),
            serde_json::to_string(v).unwrap(),
        )
    }

    fn same<T: Serialize>(v: &T) {
        let (a, b) = both(v);
        assert_eq!(a, b);
    }

    #[test]
    fn strings_escape_as_serde_json_does() {
        // every ASCII byte alone, and at every offset of a longer clean run (the word
        // scan must see it wherever it falls)
        for c in 0u8..0x80 {
            let ch = char::from(c);
            same(&ch.to_string());
            for pad in 0..40 {
                let s: String = "x".repeat(pad) + &ch.to_string() + &"y".repeat(40 - pad);
                same(&s);
            }
        }
        for s in [
            "",
            "plain",
            "a\"b\\c\n\u{1}\u{7f} é 😀 </script>",
            "\u{2028}\u{2029}",
            "\u{80}\u{ff}\u{100}\u{fffd}\u{10ffff}",
            "\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"",
            "\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\",
            "\r\n\r\n\t\t\u{8}\u{c}\u{b}\u{1f}\u{0}",
            "ééééééééééééééééééééééééééééééééé\u{1}",
            "😀😀😀😀😀😀😀😀😀😀😀😀\"",
        ] {
            same(&s);
        }
        // all of 0..0x80 in one string, and long mixed strings
        let all: String = (0u8..0x80).map(char::from).collect();
        same(&all);
        same(&all.repeat(7));
        let mut s = String::new();
        for i in 0..5000u32 {
            s.push(char::from_u32((i * 7919) % 0x3000).unwrap_or('?'));
        }
        same(&s);
    }

    #[test]
    fn numbers_and_shapes_as_serde_json() {
        for n in [
            0u64,
            1,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            12345,
            u64::MAX,
            u64::MAX / 7,
        ] {
            same(&n);
            same(&(n as i64));
            same(&-(n as i64 / 3));
        }
        for p in 0..64 {
            same(&(1u64 << p));
            same(&((1u64 << p) - 1));
        }
        same(&i64::MIN);
        same(&(u8::MAX, i8::MIN, u16::MAX, i16::MIN, u32::MAX, i32::MIN));
        same(&(u128::MAX, i128::MIN));
        for f in [
            0.0,
            -0.0,
            0.1 + 0.2,
            1e-7,
            1e300,
            f64::NAN,
            f64::INFINITY,
            3.0,
        ] {
            same(&f);
            same(&(f as f32));
        }
        same(&(true, false, (), Some(1), None::<u8>, 'x', '"'));
        same(&Vec::<u8>::new());
        same(&vec![vec![1, 2], vec![], vec![3]]);
        let mut m = BTreeMap::new();
        m.insert("a\"k", vec![("x".to_string(), "y".to_string())]);
        m.insert("b", vec![]);
        same(&m);
        let mut m = BTreeMap::new();
        m.insert(7u32, true);
        m.insert(8u32, false);
        same(&m);
        same(&BTreeMap::<String, u8>::new());

        #[derive(Serialize)]
        enum E {
            Unit,
            New(u8),
            Tup(u8, String),
            Strukt { a: u8, b: Vec<u8> },
        }
        #[derive(Serialize)]
        struct S {
            e: Vec<E>,
            bytes: serde_bytes_like::Bytes,
            unit: (),
        }
        mod serde_bytes_like {
            pub struct Bytes(pub Vec<u8>);
            impl serde::Serialize for Bytes {
                fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    s.serialize_bytes(&self.0)
                }
            }
        }
        same(&S {
            e: vec![
                E::Unit,
                E::New(3),
                E::Tup(1, "t".into()),
                E::Strukt { a: 1, b: vec![2] },
            ],
            bytes: serde_bytes_like::Bytes(vec![0, 255]),
            unit: (),
        });
    }
}
