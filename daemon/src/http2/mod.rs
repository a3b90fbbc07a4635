//! HTTP/2 over one connection (RFC 9113): the bytes each side sent, in order, become one
//! [`Exchange`](crate::http::Exchange) per stream, the same type the HTTP/1.x parser
//! gives, so the rest of the pipeline does not care which version it was.
//!
//! - Frames are parsed per direction across any feed boundaries: HEADERS, CONTINUATION and
//!   PUSH_PROMISE (header blocks decoded with HPACK, see [`hpack`]), DATA (padding removed,
//!   bodies reassembled and capped, Content-Encoding decoded as for HTTP/1.x), RST_STREAM,
//!   GOAWAY, SETTINGS (header table size); PRIORITY, PING, WINDOW_UPDATE and unknown
//!   types are skipped.
//! - A stream is one exchange: pseudo-header fields give method, path (the target),
//!   authority and status, and stay in the header lists as DevTools shows them; a second
//!   header block on a side is its trailers; 1xx responses are listed as informational.
//! - gRPC streams (`content-type: application/grpc*`) also get the call's details
//!   ([`grpc`]).
//! - A connection first seen mid-way (no preface) is decoded from the first frame
//!   boundary on; header fields that refer to HPACK state from before that are counted
//!   as undecodable in the exchange's `error`, never guessed. Bytes lost in capture inside
//!   a DATA frame are counted in the body; elsewhere the side waits for a feed that starts
//!   with a frame header and its HPACK table is reset.
//!
//! Memory per connection is bounded: at most [`MAX_STREAMS`] streams, each with bodies of
//! at most `max_body_bytes` per side, header blocks of at most [`MAX_HEADER_BLOCK`], and
//! HPACK tables of at most [`hpack::MAX_TABLE_BYTES`] per direction.
mod conn;
mod frame;
pub mod grpc;
pub mod hpack;
mod stream;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_conn;
#[cfg(test)]
mod tests_limits;

pub use conn::{H2Conn, MAX_HEADER_BLOCK, MAX_STREAMS};
pub use frame::{PREFACE, looks_like_h2, starts_with_preface};
