//! What an [`H2Conn`] holds in memory, for the daemon's global budget
//! (`--max-buffer-bytes`, see `streams::budget`).
use super::super::stream::{Half, Stream};
use super::{H2Conn, Rx};
use crate::http::headers_bytes;
use std::mem::size_of;

fn half_bytes(h: &Half) -> usize {
    h.headers.as_ref().map_or(0, headers_bytes) + headers_bytes(&h.trailers) + h.body.held_bytes()
}

fn stream_bytes(s: &Stream) -> usize {
    // a BTreeMap entry costs about its key and value
    size_of::<(u32, Stream)>()
        + half_bytes(&s.req)
        + half_bytes(&s.resp)
        + s.informational.capacity() * size_of::<u16>()
        + s.h1_body.as_ref().map_or(0, |b| b.text.capacity())
}

impl H2Conn {
    /// Heap bytes held beyond the struct itself: frames and header blocks being read,
    /// both HPACK tables, and every stream in flight (headers, bodies). One pass over the
    /// streams (at most [`super::MAX_STREAMS`]).
    pub fn buffered_bytes(&self) -> usize {
        let mut n = self.closed.capacity() * size_of::<u32>();
        for d in &self.dirs {
            // an HPACK entry costs its RFC 7541 size (name + value + 32) plus its strings
            n += d.buf.capacity() + 2 * d.hpack.size();
            n += d.block.as_ref().map_or(0, |b| b.buf.capacity());
        }
        n + self.streams.values().map(stream_bytes).sum::<usize>()
    }

    /// Streams in flight, for reports of what an eviction dropped.
    pub fn in_flight(&self) -> usize {
        self.streams.len()
    }
}

impl H2Conn {
    /// Nothing in flight: no stream, no header block or frame half read.
    pub fn is_idle(&self) -> bool {
        self.streams.is_empty()
            && self
                .dirs
                .iter()
                .all(|d| d.block.is_none() && matches!(d.rx, Rx::Start | Rx::Head) && d.hn == 0)
    }

    /// A parser to go on with once this one's state is dropped (the memory budget evicted
    /// it): the streams in flight and the HPACK tables are gone (later header fields that
    /// refer to them are counted as undecodable, as for a connection joined mid-way); a
    /// side inside a frame waits for a feed that starts with a frame header.
    pub fn restart(&self) -> H2Conn {
        let mut h = H2Conn::new(self.limits);
        h.frames_ok = self.frames_ok;
        h.max_id = self.max_id;
        h.not_h2 = self.not_h2;
        for (new, old) in h.dirs.iter_mut().zip(&self.dirs) {
            new.rx = match old.rx {
                Rx::Start if old.hn == 0 => Rx::Start,
                Rx::Head if old.hn == 0 && old.block.is_none() => Rx::Head,
                _ => Rx::Lost,
            };
        }
        h
    }
}
