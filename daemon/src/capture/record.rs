//! Decoding ring-buffer records into plain data (no kernel needed: unit-tested here).
use qtap_common::{
    Addr, CloseEvent, ConnEvent, DATA_HEADER_LEN, EstablishedEvent, Header, ProcEvent, direction,
    kind, source,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// the process received these bytes
    Recv,
    /// the process sent these bytes
    Send,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Syscall,
    OpenSsl,
    GnuTls,
    /// Go `crypto/tls` (`ssl` is the `*tls.Conn`)
    GoTls,
    /// JSSE, from the Java agent (`ssl` is the agent's id of the engine or socket)
    Java,
}

impl Source {
    /// The TLS library name shown to users, for library plaintext.
    pub fn library(self) -> Option<&'static str> {
        match self {
            Source::Syscall => None,
            Source::OpenSsl => Some("openssl"),
            Source::GnuTls => Some("gnutls"),
            Source::GoTls => Some("go-tls"),
            Source::Java => Some("java"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Data {
        pid: u32,
        tid: u32,
        fd: i32,
        ts_ns: u64,
        ssl: u64,
        /// stream position of `bytes[0]` (or of the unseen run)
        pos: u64,
        dir: Dir,
        source: Source,
        /// empty with `unseen > 0` for bytes moved without a copy (sendfile)
        bytes: Vec<u8>,
        unseen: u64,
    },
    Connect {
        pid: u32,
        tid: u32,
        fd: i32,
        ts_ns: u64,
        local: Option<SocketAddr>,
        remote: Option<SocketAddr>,
        sk: u64,
        comm: String,
    },
    Accept {
        pid: u32,
        tid: u32,
        fd: i32,
        ts_ns: u64,
        remote: Option<SocketAddr>,
        comm: String,
    },
    Close {
        pid: u32,
        fd: i32,
        ts_ns: u64,
        bytes_sent: u64,
        bytes_recv: u64,
    },
    Exec {
        pid: u32,
        ts_ns: u64,
        comm: String,
        uid: u32,
        filename: String,
        /// cgroup v2 id of the process
        cgroup_id: u64,
    },
    Exit {
        pid: u32,
        ts_ns: u64,
        comm: String,
        /// the task's exit code as the kernel keeps it, when read
        exit_code: Option<u32>,
    },
    /// `outgoing`: from SYN_SENT (this host connected); else from SYN_RECV
    Established {
        local: Option<SocketAddr>,
        remote: Option<SocketAddr>,
        sk: u64,
        outgoing: bool,
        ts_ns: u64,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("ring-buffer record of {len} bytes is too short for kind {kind}")]
    Short { kind: u32, len: usize },
    #[error("ring-buffer record of unknown kind {0}")]
    UnknownKind(u32),
}

fn read<T: Copy>(buf: &[u8]) -> Option<T> {
    if buf.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked; T is a #[repr(C)] plain-old-data record; unaligned read.
    Some(unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<T>()) })
}

pub fn addr(a: &Addr) -> Option<SocketAddr> {
    let ip = match a.family {
        2 => IpAddr::V4(Ipv4Addr::new(a.addr[0], a.addr[1], a.addr[2], a.addr[3])),
        10 => {
            let v6 = Ipv6Addr::from(a.addr);
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, a.port))
}

fn comm(c: &[u8; 16]) -> String {
    let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
    String::from_utf8_lossy(&c[..end]).into_owned()
}

pub fn parse(buf: &[u8]) -> Result<Record, RecordError> {
    let h: Header = read(buf).ok_or(RecordError::Short {
        kind: 0,
        len: buf.len(),
    })?;
    let short = || RecordError::Short {
        kind: h.kind,
        len: buf.len(),
    };
    Ok(match h.kind {
        kind::DATA => {
            if buf.len() < DATA_HEADER_LEN {
                return Err(short());
            }
            // DataEvent header fields after Header: ssl u64, stream_pos u64, call_len u32,
            // offset u32, len u32, direction u8, source u8.
            let off = std::mem::size_of::<Header>();
            let ssl: u64 = read(&buf[off..]).ok_or_else(short)?;
            let pos: u64 = read(&buf[off + 8..]).ok_or_else(short)?;
            let call_len: u32 = read(&buf[off + 16..]).ok_or_else(short)?;
            let len: u32 = read(&buf[off + 24..]).ok_or_else(short)?;
            let dir = if buf[off + 28] == direction::SEND {
                Dir::Send
            } else {
                Dir::Recv
            };
            let src = match buf[off + 29] {
                source::OPENSSL => Source::OpenSsl,
                source::GNUTLS => Source::GnuTls,
                source::GO_TLS => Source::GoTls,
                _ => Source::Syscall,
            };
            let payload = buf
                .get(DATA_HEADER_LEN..DATA_HEADER_LEN + len as usize)
                .ok_or_else(short)?;
            Record::Data {
                pid: h.pid,
                tid: h.tid,
                fd: h.fd,
                ts_ns: h.ts_ns,
                ssl,
                pos,
                dir,
                source: src,
                bytes: payload.to_vec(),
                unseen: if len == 0 { u64::from(call_len) } else { 0 },
            }
        }
        kind::CONNECT | kind::ACCEPT => {
            let e: ConnEvent = read(buf).ok_or_else(short)?;
            if h.kind == kind::CONNECT {
                Record::Connect {
                    pid: h.pid,
                    tid: h.tid,
                    fd: h.fd,
                    ts_ns: h.ts_ns,
                    local: addr(&e.local),
                    remote: addr(&e.remote),
                    sk: e.sk,
                    comm: comm(&e.comm),
                }
            } else {
                Record::Accept {
                    pid: h.pid,
                    tid: h.tid,
                    fd: h.fd,
                    ts_ns: h.ts_ns,
                    remote: addr(&e.remote),
                    comm: comm(&e.comm),
                }
            }
        }
        kind::CLOSE => {
            let e: CloseEvent = read(buf).ok_or_else(short)?;
            Record::Close {
                pid: h.pid,
                fd: h.fd,
                ts_ns: h.ts_ns,
                bytes_sent: e.bytes_sent,
                bytes_recv: e.bytes_recv,
            }
        }
        kind::EXEC | kind::EXIT => {
            let e: ProcEvent = read(buf).ok_or_else(short)?;
            if h.kind == kind::EXEC {
                let end = e
                    .filename
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(e.filename.len());
                let filename = String::from_utf8_lossy(&e.filename[..end]).into_owned();
                Record::Exec {
                    pid: h.pid,
                    ts_ns: h.ts_ns,
                    comm: comm(&e.comm),
                    uid: e.uid,
                    filename,
                    cgroup_id: e.cgroup_id,
                }
            } else {
                Record::Exit {
                    pid: h.pid,
                    ts_ns: h.ts_ns,
                    comm: comm(&e.comm),
                    exit_code: (e.exit_code != qtap_common::EXIT_CODE_UNKNOWN)
                        .then_some(e.exit_code),
                }
            }
        }
        kind::ESTABLISHED => {
            let e: EstablishedEvent = read(buf).ok_or_else(short)?;
            Record::Established {
                local: addr(&e.local),
                remote: addr(&e.remote),
                sk: e.sk,
                outgoing: e.old_state == 2,
                ts_ns: h.ts_ns,
            }
        }
        k => return Err(RecordError::UnknownKind(k)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use qtap_common::DataEvent;

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: test-only view of a #[repr(C)] record.
        unsafe {
            std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>())
        }
        .to_vec()
    }

    #[test]
    fn data_record_round_trip() {
        let mut ev = Box::new(DataEvent {
            header: Header {
                kind: kind::DATA,
                pid: 42,
                tid: 43,
                fd: 7,
                ts_ns: 99,
            },
            ssl: 0xdead,
            stream_pos: 1000,
            call_len: 5,
            offset: 0,
            len: 5,
            direction: direction::SEND,
            source: source::OPENSSL,
            _pad: [0; 2],
            data: [0; qtap_common::CHUNK_SIZE],
        });
        ev.data[..5].copy_from_slice(b"hello");
        let raw = bytes_of(&*ev);
        let rec = parse(&raw[..DATA_HEADER_LEN + 5]).unwrap();
        match rec {
            Record::Data {
                pid,
                fd,
                pos,
                dir,
                source,
                bytes,
                unseen,
                ssl,
                ..
            } => {
                assert_eq!((pid, fd, pos, ssl), (42, 7, 1000, 0xdead));
                assert_eq!((dir, source), (Dir::Send, Source::OpenSsl));
                assert_eq!(bytes, b"hello");
                assert_eq!(unseen, 0);
            }
            other => panic!("unexpected {other:?}"),
        }
        // a record shorter than its declared payload is an error, not a panic
        assert!(matches!(
            parse(&raw[..DATA_HEADER_LEN + 2]),
            Err(RecordError::Short { .. })
        ));
    }

    #[test]
    fn go_tls_source() {
        let mut ev = Box::new(DataEvent {
            header: Header {
                kind: kind::DATA,
                pid: 1,
                tid: 2,
                fd: 3,
                ts_ns: 4,
            },
            ssl: 0xc000_1a2000,
            stream_pos: 0,
            call_len: 2,
            offset: 0,
            len: 2,
            direction: direction::RECV,
            source: source::GO_TLS,
            _pad: [0; 2],
            data: [0; qtap_common::CHUNK_SIZE],
        });
        ev.data[..2].copy_from_slice(b"ok");
        let raw = bytes_of(&*ev);
        match parse(&raw[..DATA_HEADER_LEN + 2]).unwrap() {
            Record::Data { source, ssl, .. } => {
                assert_eq!((source, ssl), (Source::GoTls, 0xc000_1a2000));
                assert_eq!(source.library(), Some("go-tls"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn connect_record_with_mapped_v6() {
        let mut remote = Addr {
            family: 10,
            port: 443,
            ..Default::default()
        };
        remote.addr[10] = 0xff;
        remote.addr[11] = 0xff;
        remote.addr[12..].copy_from_slice(&[127, 0, 0, 1]);
        let ev = ConnEvent {
            header: Header {
                kind: kind::CONNECT,
                pid: 1,
                tid: 1,
                fd: 3,
                ts_ns: 0,
            },
            local: Addr {
                family: 2,
                port: 5555,
                _pad: 0,
                addr: [127, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            },
            remote,
            ret: 0,
            sk: 0,
            comm: [0; 16],
        };
        match parse(&bytes_of(&ev)).unwrap() {
            Record::Connect { local, remote, .. } => {
                assert_eq!(local.unwrap().to_string(), "127.0.0.2:5555");
                assert_eq!(remote.unwrap().to_string(), "127.0.0.1:443");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse(&[1, 2, 3]).is_err());
        let mut junk = vec![0u8; 64];
        junk[0] = 200;
        assert_eq!(parse(&junk), Err(RecordError::UnknownKind(200)));
    }
}
