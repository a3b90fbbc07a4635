//! A fast hasher for the tracker's maps keyed by small integers the kernel hands out
//! (pids, fds, `SSL*` addresses), which a remote peer does not choose: the Fx multiply-
//! rotate hash instead of SipHash, whose DoS resistance these keys do not need.
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl KeyHasher {
    #[inline]
    fn add(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(26) ^ x).wrapping_mul(K);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn finish(&self) -> u64 {
        // hashbrown takes its control bits from the top of the hash: mix the low bits up
        self.0.rotate_left(26)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

pub(crate) type KeyMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<KeyHasher>>;
pub(crate) type KeySet<K> = std::collections::HashSet<K, BuildHasherDefault<KeyHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_work_and_spread_keys() {
        let mut m: KeyMap<(u32, i32), u32> = KeyMap::default();
        for pid in 0..50u32 {
            for fd in 0..50i32 {
                m.insert((pid, fd), pid * 100 + fd as u32);
            }
        }
        assert_eq!(m.len(), 2500);
        assert_eq!(m.get(&(7, 9)), Some(&709));
        // distinct small keys give distinct hashes (no trivial collisions)
        let mut seen = std::collections::HashSet::new();
        for k in 0..10_000u64 {
            let mut h = KeyHasher::default();
            h.write_u64(k);
            seen.insert(h.finish());
        }
        assert_eq!(seen.len(), 10_000);
    }
}
