//! The messages the Java agent (`daemon/java-agent`) writes to the daemon's socket, and
//! their decoding. Each message: `u32` length of what follows (big-endian), `u8` type, fields
//! (big-endian integers; an address is `u8` length + 0, 4 or 16 bytes; a string is `u16`
//! length + UTF-8). Unit-tested here without a JVM.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::capture::Dir;

pub const HELLO: u8 = 1;
pub const OPEN: u8 = 2;
pub const DATA: u8 = 3;
pub const DROPS: u8 = 5;
pub const HEARTBEAT: u8 = 6;
/// the protocol version this daemon speaks
pub const PROTOCOL: u16 = 1;
/// a message longer than this is a broken stream (the agent sends at most 64 KiB of data)
pub const MAX_MESSAGE: usize = 1 << 20;

/// What an engine or socket is, as the agent knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JavaOpen {
    pub id: u64,
    /// this end started the handshake (egress)
    pub client: bool,
    /// an `SSLSocket` (addresses exact) rather than an `SSLEngine` (peer hints only)
    pub socket: bool,
    pub local: Option<SocketAddr>,
    pub remote: Option<SocketAddr>,
    /// `SSLEngine.getPeerHost()` (a name or an address literal)
    pub peer_host: Option<String>,
    /// `SSLEngine.getPeerPort()`, or the socket's remote port; 0 when unknown
    pub peer_port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Hello {
        protocol: u16,
        pid: u64,
        version: String,
    },
    Open(JavaOpen),
    Data {
        id: u64,
        dir: Dir,
        pos: u64,
        bytes: Vec<u8>,
    },
    Drops {
        messages: u64,
        bytes: u64,
    },
    Heartbeat,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    #[error("message of {0} bytes is too long")]
    TooLong(usize),
    #[error("message of type {0} is truncated")]
    Short(u8),
    #[error("unknown message type {0}")]
    Unknown(u8),
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
    }
    fn addr(&mut self) -> Option<Option<IpAddr>> {
        let n = self.u8()?;
        let b = self.take(usize::from(n))?;
        Some(match n {
            4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
            16 => {
                let a: [u8; 16] = b.try_into().ok()?;
                let v6 = Ipv6Addr::from(a);
                Some(match v6.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => IpAddr::V6(v6),
                })
            }
            _ => None,
        })
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u16()?;
        let b = self.take(usize::from(n))?;
        Some(String::from_utf8_lossy(b).into_owned())
    }
}

fn sock(ip: Option<IpAddr>, port: u16) -> Option<SocketAddr> {
    ip.map(|ip| SocketAddr::new(ip, port))
}

/// Takes whole messages off the front of `buf`.
pub fn parse(buf: &mut Vec<u8>, out: &mut Vec<Message>) -> Result<(), ProtoError> {
    let mut at = 0;
    let res = loop {
        let rest = &buf[at..];
        if rest.len() < 4 {
            break Ok(());
        }
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if n > MAX_MESSAGE || n == 0 {
            break Err(ProtoError::TooLong(n));
        }
        if rest.len() < 4 + n {
            break Ok(());
        }
        let msg = &rest[4..4 + n];
        at += 4 + n;
        match decode(msg) {
            Ok(Some(m)) => out.push(m),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
    };
    buf.drain(..at);
    res
}

fn decode(msg: &[u8]) -> Result<Option<Message>, ProtoError> {
    let ty = msg[0];
    let mut r = R(&msg[1..]);
    let short = ProtoError::Short(ty);
    Ok(Some(match ty {
        HELLO => Message::Hello {
            protocol: r.u16().ok_or(short.clone())?,
            pid: r.u64().ok_or(short.clone())?,
            version: r.str().ok_or(short)?,
        },
        OPEN => {
            let id = r.u64().ok_or(short.clone())?;
            let flags = r.u8().ok_or(short.clone())?;
            let local = r.addr().ok_or(short.clone())?;
            let lport = r.u16().ok_or(short.clone())?;
            let remote = r.addr().ok_or(short.clone())?;
            let rport = r.u16().ok_or(short.clone())?;
            let host = r.str().ok_or(short)?;
            Message::Open(JavaOpen {
                id,
                client: flags & 1 != 0,
                socket: flags & 2 != 0,
                local: sock(local, lport),
                remote: sock(remote, rport),
                peer_host: (!host.is_empty()).then_some(host),
                peer_port: rport,
            })
        }
        DATA => Message::Data {
            id: r.u64().ok_or(short.clone())?,
            dir: if r.u8().ok_or(short.clone())? == 1 {
                Dir::Send
            } else {
                Dir::Recv
            },
            pos: r.u64().ok_or(short)?,
            bytes: r.0.to_vec(),
        },
        DROPS => Message::Drops {
            messages: r.u64().ok_or(short.clone())?,
            bytes: r.u64().ok_or(short)?,
        },
        HEARTBEAT => Message::Heartbeat,
        // a newer agent's message this daemon does not know: skipped
        t if t > HEARTBEAT => return Ok(None),
        t => return Err(ProtoError::Unknown(t)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        v.push(ty);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn messages_split_anywhere() {
        let mut hello = 1u16.to_be_bytes().to_vec();
        hello.extend_from_slice(&77u64.to_be_bytes());
        hello.extend_from_slice(&2u16.to_be_bytes());
        hello.extend_from_slice(b"17");
        let mut open = 5u64.to_be_bytes().to_vec();
        open.push(3);
        open.extend_from_slice(&[4, 127, 0, 0, 1]);
        open.extend_from_slice(&40000u16.to_be_bytes());
        open.extend_from_slice(&[4, 127, 0, 0, 2]);
        open.extend_from_slice(&443u16.to_be_bytes());
        open.extend_from_slice(&9u16.to_be_bytes());
        open.extend_from_slice(b"localhost");
        let mut data = 5u64.to_be_bytes().to_vec();
        data.push(1);
        data.extend_from_slice(&10u64.to_be_bytes());
        data.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut all = frame(HELLO, &hello);
        all.extend(frame(OPEN, &open));
        all.extend(frame(DATA, &data));
        all.extend(frame(HEARTBEAT, &[]));
        all.extend(frame(99, b"future"));
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for b in &all {
            buf.push(*b);
            parse(&mut buf, &mut out).unwrap();
        }
        assert!(buf.is_empty());
        assert_eq!(out.len(), 4);
        assert_eq!(
            out[0],
            Message::Hello {
                protocol: 1,
                pid: 77,
                version: "17".into()
            }
        );
        let Message::Open(o) = &out[1] else {
            panic!("{out:?}")
        };
        assert!(o.client && o.socket);
        assert_eq!(o.local.unwrap().to_string(), "127.0.0.1:40000");
        assert_eq!(o.remote.unwrap().to_string(), "127.0.0.2:443");
        assert_eq!(o.peer_host.as_deref(), Some("localhost"));
        assert_eq!(
            out[2],
            Message::Data {
                id: 5,
                dir: Dir::Send,
                pos: 10,
                bytes: b"GET / HTTP/1.1\r\n".to_vec()
            }
        );
        assert_eq!(out[3], Message::Heartbeat);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        let mut buf = vec![0xff, 0xff, 0xff, 0xff, 1];
        assert!(parse(&mut buf, &mut out).is_err());
        let mut buf = frame(OPEN, &[1, 2]);
        assert_eq!(parse(&mut buf, &mut out), Err(ProtoError::Short(OPEN)));
        let mut buf = frame(0, &[]);
        assert_eq!(parse(&mut buf, &mut out), Err(ProtoError::Unknown(0)));
    }
}
