//! qtap: Chrome DevTools' Network panel for a Linux server, fed by eBPF.
//!
//! One module per stage of the data flow (see DESIGN.md): `capture` (kernel programs and
//! their ring buffer) → `streams` (per-connection reassembly) → `http` (HTTP/1.x) and
//! `http2` (HTTP/2, gRPC) → `attribution` (/proc, cgroups → Docker) → `events` (the
//! contract) → `hub` (fan-out, probe lifecycle) → `server` (SSE over hyper) and `cli`.
pub mod attribution;
pub mod capture;
pub mod cli;
pub mod engine;
pub mod events;
pub mod http;
pub mod http2;
pub mod hub;
pub mod logging;
pub mod server;
pub mod streams;
pub mod trace;
