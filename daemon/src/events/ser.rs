//! The hand-written `Serialize` impls of the transaction event: [`Transaction`] starts with
//! its [`Summary`]'s fields (one flat object) without `#[serde(flatten)]`, which makes serde
//! go through a map, and a summary shared by both halves of an [`HttpTransaction`] is
//! encoded once.
use serde::Serialize;
use serde::ser::SerializeStruct;
use std::sync::Arc;

use super::{HttpTransaction, Summary, Transaction, json};

impl Summary {
    /// The fields of a summary, in order, into `st` (a summary object, or a transaction,
    /// which starts with them).
    fn serialize_fields<S: SerializeStruct>(&self, st: &mut S) -> Result<(), S::Error> {
        // every field named (no `..`): a field added to `Summary` fails to compile here
        // until it is written below
        let Summary {
            id: _,
            connection_id: _,
            start: _,
            duration_ms: _,
            direction: _,
            method: _,
            url: _,
            host: _,
            path: _,
            status: _,
            content_type: _,
            request_size: _,
            response_size: _,
            tls: _,
            process: _,
            container: _,
            error: _,
            request_not_captured: _,
        } = self;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("connection_id", &self.connection_id)?;
        st.serialize_field("start", &self.start)?;
        st.serialize_field("duration_ms", &self.duration_ms)?;
        st.serialize_field("direction", &self.direction)?;
        st.serialize_field("method", &self.method)?;
        st.serialize_field("url", &self.url)?;
        st.serialize_field("host", &self.host)?;
        st.serialize_field("path", &self.path)?;
        if let Some(v) = &self.status {
            st.serialize_field("status", v)?;
        }
        if let Some(v) = &self.content_type {
            st.serialize_field("content_type", v)?;
        }
        st.serialize_field("request_size", &self.request_size)?;
        st.serialize_field("response_size", &self.response_size)?;
        st.serialize_field("tls", &self.tls)?;
        st.serialize_field("process", &self.process)?;
        if let Some(v) = &self.container {
            st.serialize_field("container", v)?;
        }
        if let Some(v) = &self.error {
            st.serialize_field("error", v)?;
        }
        if self.request_not_captured {
            st.serialize_field("request_not_captured", &true)?;
        }
        Ok(())
    }
}

/// Written by hand (as the derive would) so that [`Transaction`] can start with the same
/// fields without `#[serde(flatten)]`, which makes serde go through a map.
impl Serialize for Summary {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Summary", 18)?;
        self.serialize_fields(&mut st)?;
        st.end()
    }
}

impl Serialize for Transaction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Transaction", 23)?;
        self.summary.serialize_fields(&mut st)?;
        self.serialize_own_fields(&mut st)?;
        st.end()
    }
}

/// The fields of a transaction after its summary's, as an object of their own (which
/// [`Envelope`] splices after a summary it has already written).
struct OwnFields<'a>(&'a Transaction);

impl Serialize for OwnFields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Transaction", 5)?;
        self.0.serialize_own_fields(&mut st)?;
        st.end()
    }
}

impl Transaction {
    fn serialize_own_fields<S: SerializeStruct>(&self, st: &mut S) -> Result<(), S::Error> {
        // every field named (no `..`): a field added to `Transaction` fails to compile
        // here until it is written below (`summary` is written by its own impl)
        let Transaction {
            summary: _,
            request: _,
            response: _,
            timing: _,
            network: _,
            grpc: _,
        } = self;
        st.serialize_field("request", &self.request)?;
        if let Some(v) = &self.response {
            st.serialize_field("response", v)?;
        }
        st.serialize_field("timing", &self.timing)?;
        st.serialize_field("network", &self.network)?;
        if let Some(v) = &self.grpc {
            st.serialize_field("grpc", v)?;
        }
        Ok(())
    }
}

/// `{"summary":{…},"transaction":{…}}` with the summary encoded once and its fields
/// copied to the start of the transaction, when both share it (as the tracker builds
/// them); the same bytes as the `Serialize` impl.
pub(super) fn write_http_transaction(
    out: &mut Vec<u8>,
    t: &HttpTransaction,
) -> Result<(), json::Error> {
    if !Arc::ptr_eq(&t.summary, &t.transaction.summary) {
        return json::to_vec(out, t);
    }
    out.extend_from_slice(b"{\"summary\":");
    let start = out.len();
    json::to_vec(out, &*t.summary)?;
    let end = out.len();
    out.extend_from_slice(b",\"transaction\":");
    // `{` and the summary's fields, without its closing `}`
    out.extend_from_within(start..end - 1);
    let rest = out.len();
    json::to_vec(out, &OwnFields(&t.transaction))?;
    // the own fields' `{` becomes the comma after the summary's (it has at least `id`)
    out[rest] = b',';
    out.push(b'}');
    Ok(())
}

impl Serialize for HttpTransaction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("HttpTransaction", 2)?;
        st.serialize_field("summary", &*self.summary)?;
        st.serialize_field("transaction", &self.transaction)?;
        st.end()
    }
}
