//! Counters for `/devtools/api/health` and the systemd `STATUS=` line.
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// How far back `events_per_second` looks.
const RATE_WINDOW: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(crate) struct Stats {
    /// events handed to `Publisher::publish`
    pub(crate) published: AtomicU64,
    /// events a slow client missed (summed over clients)
    pub(crate) slow_client_events: AtomicU64,
    /// what capture reported lost (`system.dropped` events it published)
    pub(crate) capture_events: AtomicU64,
    pub(crate) capture_bytes: AtomicU64,
    /// (when, `published` then), oldest first, one per second or so
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl Stats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    /// Records the published count now; called about once a second.
    pub(crate) fn sample(&self, now: Instant) {
        let total = Self::get(&self.published);
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        s.push_back((now, total));
        while s.len() > 2
            && s.front()
                .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            s.pop_front();
        }
    }

    /// Average over the last ~10 s (from the oldest sample to now).
    pub(crate) fn events_per_second(&self, now: Instant) -> f64 {
        let total = Self::get(&self.published);
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        match s.front() {
            Some(&(t, n)) => {
                let secs = now.duration_since(t).as_secs_f64();
                if secs < 0.5 {
                    0.0
                } else {
                    total.saturating_sub(n) as f64 / secs
                }
            }
            None => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_window() {
        let s = Stats::default();
        let t0 = Instant::now();
        assert_eq!(s.events_per_second(t0), 0.0);
        s.sample(t0);
        Stats::add(&s.published, 50);
        s.sample(t0 + Duration::from_secs(1));
        Stats::add(&s.published, 50);
        let r = s.events_per_second(t0 + Duration::from_secs(2));
        assert!((r - 50.0).abs() < 1e-9, "{r}");
        // old samples fall out of the window: the rate then reflects recent traffic only
        for i in 3..20 {
            s.sample(t0 + Duration::from_secs(i));
        }
        assert_eq!(s.events_per_second(t0 + Duration::from_secs(20)), 0.0);
    }
}
