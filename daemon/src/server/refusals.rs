//! How often a refused connection is logged. Any local user can knock on the listener as
//! often as they like; each refusal must not become a journal line (a user could flood the
//! journal, and drown the one line that matters). Per uid: the first refusal is logged,
//! then at most one line a minute, which says how many were not.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines per uid at most this often (after the first).
pub const EVERY: Duration = Duration::from_secs(60);
/// Distinct refused uids remembered; past it the memory is reset (a new uid is logged).
const MAX_UIDS: usize = 1024;

#[derive(Default)]
pub struct Refusals {
    /// uid → (when its last line was written, refusals not logged since)
    seen: Mutex<HashMap<u32, (Instant, u64)>>,
}

/// What to say of one refusal.
#[derive(Debug, PartialEq, Eq)]
pub enum Say {
    /// write a line; `u64`: refusals of this uid left unlogged since the last line
    Log(u64),
    /// nothing: a line for this uid was written less than `EVERY` ago
    Quiet,
}

impl Refusals {
    pub fn refused(&self, uid: u32, now: Instant) -> Say {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_UIDS && !seen.contains_key(&uid) {
            seen.clear();
        }
        match seen.get_mut(&uid) {
            Some((last, quiet)) if now.duration_since(*last) < EVERY => {
                *quiet += 1;
                Say::Quiet
            }
            Some((last, quiet)) => {
                let n = std::mem::take(quiet);
                *last = now;
                Say::Log(n)
            }
            None => {
                seen.insert(uid, (now, 0));
                Say::Log(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_knocking_all_the_time_gets_a_line_a_minute_with_the_count() {
        let r = Refusals::default();
        let t0 = Instant::now();
        assert_eq!(r.refused(65534, t0), Say::Log(0));
        for i in 1..=1000u64 {
            assert_eq!(r.refused(65534, t0 + Duration::from_millis(i)), Say::Quiet);
        }
        // another uid is not silenced by the first
        assert_eq!(r.refused(1000, t0 + Duration::from_secs(1)), Say::Log(0));
        assert_eq!(r.refused(65534, t0 + EVERY), Say::Log(1000));
        assert_eq!(
            r.refused(65534, t0 + EVERY + Duration::from_secs(1)),
            Say::Quiet
        );
    }

    #[test]
    fn many_uids_keep_the_memory_bounded() {
        let r = Refusals::default();
        let t0 = Instant::now();
        for uid in 0..(3 * MAX_UIDS as u32) {
            assert_eq!(r.refused(uid, t0), Say::Log(0));
        }
        assert!(r.seen.lock().unwrap().len() <= MAX_UIDS);
    }
}
