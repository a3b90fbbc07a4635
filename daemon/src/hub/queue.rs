//! One client's bounded queue of frames, with the count of what it missed.
//!
//! Bounded twice: in frames, and in bytes (each entry's [`Entry::weight`]: its event and
//! JSON text), so a client that stops reading holds at most `cap_bytes` however large the
//! captured bodies are. One entry is always accepted into an empty queue.
//!
//! The publisher (any thread, never async) offers entries; when the queue is full the entry
//! is counted instead of queued. The count reaches the client as one `system.dropped
//! {reason: "slow-client"}` placed exactly where the gap is: either by the publisher, in
//! front of the next entry that fits, or by the reader when it has drained the queue and
//! nothing newer came.
use super::Entry;
use crate::events::{Dropped, Envelope, Event};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

pub(crate) const SLOW_CLIENT: &str = "slow-client";

/// What happened to an offered entry.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    Queued,
    /// the queue was full; the entry was counted for a later `system.dropped`
    Dropped,
    /// the client is gone or the hub is shutting down
    Closed,
    /// the client did not ask for this topic
    Filtered,
}

pub(crate) enum Pop {
    Entry(Arc<Entry>),
    Empty,
    Closed,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Arc<Entry>>,
    /// the queued entries' weights
    bytes: usize,
    dropped_events: u64,
    dropped_bytes: u64,
    closed: bool,
}

pub(crate) struct ClientQueue {
    cap: usize,
    cap_bytes: usize,
    /// `None`: every topic. `system.*` frames are always delivered (see `wants`).
    topics: Option<Vec<String>>,
    state: Mutex<State>,
    notify: Notify,
}

impl ClientQueue {
    pub(crate) fn new(cap: usize, cap_bytes: usize, topics: Option<Vec<String>>) -> Self {
        ClientQueue {
            cap: cap.max(1),
            cap_bytes,
            topics,
            state: Mutex::default(),
            notify: Notify::new(),
        }
    }

    /// No room for `entry`: too many frames, or too many bytes (one entry always fits an
    /// empty queue).
    fn full(&self, st: &State, entry: &Entry) -> bool {
        st.frames.len() >= self.cap
            || (!st.frames.is_empty() && st.bytes + entry.weight() > self.cap_bytes)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `system.connected`, `system.dropped` and `system.disconnected` describe the stream
    /// itself, so a topic filter never hides them.
    pub(crate) fn wants(&self, topic: &str) -> bool {
        topic.starts_with("system.")
            || self
                .topics
                .as_ref()
                .is_none_or(|t| t.iter().any(|x| x == topic))
    }

    /// Never waits: either queues the entry or counts it.
    #[cfg(test)]
    pub(crate) fn offer(&self, entry: &Arc<Entry>) -> Offer {
        if !self.wants(entry.topic()) {
            return Offer::Filtered;
        }
        let mut st = self.lock();
        if st.closed {
            return Offer::Closed;
        }
        if self.full(&st, entry) {
            st.dropped_events += 1;
            st.dropped_bytes += entry.envelope().data.body_bytes();
            return Offer::Dropped;
        }
        if let Some(gap) = take_gap(&mut st) {
            // The marker may take the queue one past its capacity; it is one small frame.
            push(&mut st, gap);
        }
        push(&mut st, entry.clone());
        drop(st);
        self.notify.notify_one();
        Offer::Queued
    }

    /// [`ClientQueue::offer`] for several entries in order, under one lock and with one
    /// wake-up of the reader. Returns how many were dropped (queue full).
    pub(crate) fn offer_all(&self, entries: &[Arc<Entry>]) -> u64 {
        let mut st = self.lock();
        if st.closed {
            return 0;
        }
        let (mut queued, mut dropped) = (false, 0);
        for entry in entries {
            if !self.wants(entry.topic()) {
                continue;
            }
            if self.full(&st, entry) {
                st.dropped_events += 1;
                // counted without encoding the event: a client that falls behind must
                // not make the publisher (the capture thread) do more work
                st.dropped_bytes += entry.envelope().data.body_bytes();
                dropped += 1;
                continue;
            }
            if let Some(gap) = take_gap(&mut st) {
                push(&mut st, gap);
            }
            push(&mut st, entry.clone());
            queued = true;
        }
        drop(st);
        if queued {
            self.notify.notify_one();
        }
        dropped
    }

    /// Puts `entries` (in order) before everything queued, ignoring the capacity: the
    /// `system.connected` frame and the snapshot of a new subscription.
    pub(crate) fn push_front_all(&self, entries: Vec<Arc<Entry>>) {
        let mut st = self.lock();
        for e in entries.into_iter().rev() {
            st.bytes += e.weight();
            st.frames.push_front(e);
        }
        drop(st);
        self.notify.notify_one();
    }

    /// Ends the stream after a last frame (`system.disconnected`), which is queued whatever
    /// the capacity, after the count of anything missed.
    pub(crate) fn close_with(&self, last: Arc<Entry>) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        if let Some(gap) = take_gap(&mut st) {
            push(&mut st, gap);
        }
        push(&mut st, last);
        st.closed = true;
        drop(st);
        self.notify.notify_one();
    }

    pub(crate) fn try_pop(&self) -> Pop {
        let mut st = self.lock();
        if let Some(e) = st.frames.pop_front() {
            st.bytes = st.bytes.saturating_sub(e.weight());
            return Pop::Entry(e);
        }
        if let Some(gap) = take_gap(&mut st) {
            return Pop::Entry(gap);
        }
        if st.closed { Pop::Closed } else { Pop::Empty }
    }

    /// Waits for the next entry; `None` once the stream is closed and drained.
    /// Cancel-safe: nothing is taken from the queue unless it is returned.
    pub(crate) async fn pop(&self) -> Option<Arc<Entry>> {
        loop {
            match self.try_pop() {
                Pop::Entry(e) => return Some(e),
                Pop::Closed => return None,
                // `notify_one` stores a permit when nobody waits, so a frame offered
                // between `try_pop` and here still wakes us.
                Pop::Empty => self.notify.notified().await,
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().frames.len()
    }
}

fn push(st: &mut State, e: Arc<Entry>) {
    st.bytes += e.weight();
    st.frames.push_back(e);
}

fn take_gap(st: &mut State) -> Option<Arc<Entry>> {
    if st.dropped_events == 0 {
        return None;
    }
    let d = Dropped {
        events: std::mem::take(&mut st.dropped_events),
        bytes: std::mem::take(&mut st.dropped_bytes),
        reason: SLOW_CLIENT.into(),
    };
    Some(Arc::new(Entry::new(Envelope::new(Event::Dropped(d)))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Disconnected, ProcessStopped};

    fn ev(pid: u32) -> Arc<Entry> {
        Arc::new(Entry::new(Envelope::new(Event::ProcessStopped(
            ProcessStopped::from_raw(pid, None),
        ))))
    }

    fn drain(q: &ClientQueue) -> Vec<Arc<Entry>> {
        let mut out = Vec::new();
        while let Pop::Entry(e) = q.try_pop() {
            out.push(e);
        }
        out
    }

    fn pid(e: &Entry) -> Option<u32> {
        match &e.envelope().data {
            Event::ProcessStopped(p) => Some(p.pid),
            _ => None,
        }
    }

    #[test]
    fn full_queue_counts_and_reports_the_gap_in_place() {
        let q = ClientQueue::new(2, usize::MAX, None);
        let (a, b, c) = (ev(1), ev(2), ev(3));
        // a transaction with a 300-byte response body (docs/events.md's example)
        let doc = include_str!("../../../docs/events.md");
        let example = doc
            .split("```json\n")
            .find(|b| b.starts_with("{\"summary\""))
            .and_then(|b| b.split("\n```").next())
            .unwrap();
        let tx: crate::events::HttpTransaction = serde_json::from_str(example).unwrap();
        let d = Arc::new(Entry::new(Envelope::new(Event::HttpTransaction(Box::new(
            tx,
        )))));
        assert_eq!(q.offer(&a), Offer::Queued);
        assert_eq!(q.offer(&b), Offer::Queued);
        assert_eq!(q.offer(&c), Offer::Dropped);
        assert_eq!(q.offer(&d), Offer::Dropped);
        assert_eq!(q.len(), 2);
        // the reader drains the two, then hears about the two it missed
        let got = drain(&q);
        assert_eq!(got.len(), 3);
        assert_eq!((pid(&got[0]), pid(&got[1])), (Some(1), Some(2)));
        assert!(
            c.json.get().is_none() && d.json.get().is_none(),
            "a dropped frame is not encoded"
        );
        match &got[2].envelope().data {
            Event::Dropped(dr) => {
                assert_eq!(dr.events, 2);
                // the body bytes the missed frames carried (a process event has none)
                assert_eq!(dr.bytes, 300);
                assert_eq!(dr.reason, "slow-client");
            }
            other => panic!("expected system.dropped, got {other:?}"),
        }
    }

    #[test]
    fn bytes_bound_the_queue_whatever_the_frame_count() {
        let w = ev(1).weight();
        // room for three small entries by bytes, a thousand by frames
        let q = ClientQueue::new(1000, 3 * w, None);
        let offered: Vec<Offer> = (0..10).map(|i| q.offer(&ev(i))).collect();
        assert_eq!(offered.iter().filter(|o| **o == Offer::Queued).count(), 3);
        assert_eq!(q.len(), 3);
        assert!(q.lock().bytes <= 3 * w);
        // one entry larger than the bound still goes through an empty queue
        let big = ClientQueue::new(1000, 1, None);
        assert_eq!(big.offer(&ev(1)), Offer::Queued);
        assert_eq!(big.offer(&ev(2)), Offer::Dropped);
        // popping gives the room back, and the reader hears of the 7 it missed
        let got = drain(&q);
        assert_eq!(got.len(), 4);
        match &got[3].envelope().data {
            Event::Dropped(d) => assert_eq!((d.events, d.reason.as_str()), (7, "slow-client")),
            other => panic!("expected system.dropped, got {other:?}"),
        }
        assert_eq!(q.lock().bytes, 0);
        assert_eq!(q.offer(&ev(20)), Offer::Queued);
    }

    #[test]
    fn gap_marker_goes_before_the_next_entry_that_fits() {
        let q = ClientQueue::new(1, usize::MAX, None);
        q.offer(&ev(1));
        assert_eq!(q.offer(&ev(2)), Offer::Dropped);
        assert!(matches!(q.try_pop(), Pop::Entry(e) if pid(&e) == Some(1)));
        assert_eq!(q.offer(&ev(3)), Offer::Queued);
        let got = drain(&q);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].topic(), "system.dropped");
        assert_eq!(pid(&got[1]), Some(3));
        assert!(matches!(q.try_pop(), Pop::Empty));
    }

    #[test]
    fn topics_filter_but_system_frames_always_pass() {
        let q = ClientQueue::new(8, usize::MAX, Some(vec!["request.http_transaction".into()]));
        assert_eq!(q.offer(&ev(1)), Offer::Filtered);
        let dr = Arc::new(Entry::new(Envelope::new(Event::Dropped(Dropped {
            events: 1,
            bytes: 1,
            reason: "ringbuf-full".into(),
        }))));
        assert_eq!(q.offer(&dr), Offer::Queued);
        assert!(q.wants("system.connected") && q.wants("request.http_transaction"));
        assert!(!q.wants("connection.opened"));
    }

    #[test]
    fn front_entries_come_first_and_close_ends_after_last_frame() {
        let q = ClientQueue::new(1, usize::MAX, None);
        q.offer(&ev(10));
        q.offer(&ev(11)); // dropped
        q.push_front_all(vec![ev(1), ev(2)]);
        let bye = Arc::new(Entry::new(Envelope::new(Event::Disconnected(
            Disconnected { reason: "x".into() },
        ))));
        q.close_with(bye);
        assert_eq!(q.offer(&ev(12)), Offer::Closed);
        let topics: Vec<_> = drain(&q).iter().map(|e| (e.topic(), pid(e))).collect();
        assert_eq!(
            topics,
            vec![
                ("process.stopped", Some(1)),
                ("process.stopped", Some(2)),
                ("process.stopped", Some(10)),
                ("system.dropped", None),
                ("system.disconnected", None),
            ]
        );
        assert!(matches!(q.try_pop(), Pop::Closed));
    }

    #[tokio::test]
    async fn pop_wakes_on_offer_from_another_thread() {
        let q = Arc::new(ClientQueue::new(4, usize::MAX, None));
        let q2 = q.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            q2.offer(&ev(7));
        });
        let e = tokio::time::timeout(std::time::Duration::from_secs(5), q.pop())
            .await
            .unwrap();
        assert_eq!(e.and_then(|e| pid(&e)), Some(7));
        t.join().unwrap();
    }
}
