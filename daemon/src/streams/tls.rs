//! What a TLS handshake says in clear: the SNI and the offered ALPN protocols of the
//! ClientHello, and the negotiated version of the ServerHello (`supported_versions` for
//! TLS 1.3) with the server's ALPN choice when the ServerHello carries it (TLS 1.2 and
//! older; TLS 1.3 moves it into the encrypted EncryptedExtensions). Parsed from the raw
//! socket bytes, which for TLS connections carry nothing else of use.

/// True when `data` starts with a TLS handshake or application-data record header.
pub fn looks_like_tls(data: &[u8]) -> bool {
    data.len() >= 3 && matches!(data[0], 0x14..=0x17) && data[1] == 3 && data[2] <= 4
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (a, rest) = self.b.split_at(n);
        self.b = rest;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// The first handshake message inside the first record: (type, body).
fn handshake(data: &[u8]) -> Option<(u8, &[u8])> {
    let mut r = Reader { b: data };
    if r.u8()? != 0x16 {
        return None;
    }
    r.take(2)?;
    let rec = r.vec16()?;
    let mut h = Reader { b: rec };
    let ty = h.u8()?;
    let len = h.u24()?;
    Some((ty, h.take(len)?))
}

fn extensions(r: &mut Reader<'_>) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    let Some(ext) = r.vec16() else { return out };
    let mut e = Reader { b: ext };
    while let (Some(ty), Some(body)) = (e.u16(), e.vec16()) {
        out.push((ty, body.to_vec()));
    }
    out
}

/// The extensions of a ClientHello record (`None` when it is not one, or cut short).
fn client_hello_extensions(data: &[u8]) -> Option<Vec<(u16, Vec<u8>)>> {
    let (ty, body) = handshake(data)?;
    if ty != 1 {
        return None;
    }
    let mut r = Reader { b: body };
    r.take(2 + 32)?; // version, random
    r.vec8()?; // session id
    r.vec16()?; // cipher suites
    r.vec8()?; // compression
    Some(extensions(&mut r))
}

/// The protocol names of an ALPN extension body (RFC 7301: a 16-bit length, then
/// 8-bit-length names). Names that are not UTF-8 are shown lossily.
fn alpn_list(body: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader { b: body };
    let list = r.vec16()?;
    let mut l = Reader { b: list };
    let mut out = Vec::new();
    while !l.b.is_empty() {
        out.push(String::from_utf8_lossy(l.vec8()?).into_owned());
    }
    Some(out)
}

/// ALPN protocol names a ClientHello record offers, in the client's order (`None` when
/// it has no ALPN extension, or is not a whole ClientHello).
pub fn client_hello_alpn(data: &[u8]) -> Option<Vec<String>> {
    let exts = client_hello_extensions(data)?;
    exts.iter()
        .find(|(ty, _)| *ty == EXT_ALPN)
        .and_then(|(_, body)| alpn_list(body))
        .filter(|l| !l.is_empty())
}

const EXT_ALPN: u16 = 16;

/// What a ClientHello record says in clear.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub sni: Option<String>,
    /// ALPN protocols offered, in the client's order (`None` without the extension)
    pub alpn: Option<Vec<String>>,
}

/// SNI and offered ALPN protocols of a whole ClientHello record (`None` until the
/// record is whole, or when it is not a ClientHello).
pub fn client_hello(data: &[u8]) -> Option<ClientHello> {
    client_hello_extensions(data)?;
    Some(ClientHello {
        sni: client_hello_sni(data),
        alpn: client_hello_alpn(data),
    })
}

/// SNI host name from a ClientHello record.
pub fn client_hello_sni(data: &[u8]) -> Option<String> {
    for (ty, body) in client_hello_extensions(data)? {
        if ty == 0 {
            let mut s = Reader { b: &body };
            let list = s.vec16()?;
            let mut l = Reader { b: list };
            while let Some(kind) = l.u8() {
                let name = l.vec16()?;
                if kind == 0 {
                    return std::str::from_utf8(name).ok().map(str::to_string);
                }
            }
        }
    }
    None
}

fn version_name(v: u16) -> Option<&'static str> {
    Some(match v {
        0x0300 => "SSLv3",
        0x0301 => "TLSv1.0",
        0x0302 => "TLSv1.1",
        0x0303 => "TLSv1.2",
        0x0304 => "TLSv1.3",
        _ => return None,
    })
}

/// What a ServerHello record says in clear.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ServerHello {
    /// the negotiated version
    pub version: Option<String>,
    /// the server's ALPN choice, when the ServerHello carries it (TLS 1.2 and older)
    pub alpn: Option<String>,
}

/// Negotiated version and (before TLS 1.3) ALPN protocol from a ServerHello record.
pub fn server_hello(data: &[u8]) -> Option<ServerHello> {
    let (ty, body) = handshake(data)?;
    if ty != 2 {
        return None;
    }
    let mut r = Reader { b: body };
    let legacy = r.u16()?;
    r.take(32)?;
    r.vec8()?;
    r.take(3)?; // cipher suite, compression
    let mut out = ServerHello {
        version: version_name(legacy).map(str::to_string),
        alpn: None,
    };
    for (ty, body) in extensions(&mut r) {
        if ty == 43 && body.len() == 2 {
            out.version = version_name(u16::from_be_bytes([body[0], body[1]])).map(str::to_string);
        }
        if ty == EXT_ALPN {
            // exactly one name (RFC 7301, 3.1)
            out.alpn = alpn_list(&body).and_then(|l| l.into_iter().next());
        }
    }
    Some(out)
}

/// Negotiated version from a ServerHello record.
pub fn server_hello_version(data: &[u8]) -> Option<String> {
    server_hello(data)?.version
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hs_type: u8, body: &[u8]) -> Vec<u8> {
        let mut hs = vec![hs_type, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend_from_slice(body);
        let mut rec = vec![0x16, 3, 1, (hs.len() >> 8) as u8, hs.len() as u8];
        rec.extend_from_slice(&hs);
        rec
    }

    fn ext(ty: u16, body: &[u8]) -> Vec<u8> {
        let mut v = ty.to_be_bytes().to_vec();
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn sni_and_version() {
        let host = b"api.example.test";
        let mut sn = vec![0u8];
        sn.extend_from_slice(&(host.len() as u16).to_be_bytes());
        sn.extend_from_slice(host);
        let mut list = (sn.len() as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&sn);
        let exts = ext(0, &list);
        let mut ch = vec![3, 3];
        ch.extend_from_slice(&[7; 32]);
        ch.push(0);
        ch.extend_from_slice(&[0, 2, 0x13, 0x01]);
        ch.extend_from_slice(&[1, 0]);
        ch.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        ch.extend_from_slice(&exts);
        let rec = record(1, &ch);
        assert!(looks_like_tls(&rec));
        assert_eq!(client_hello_sni(&rec).as_deref(), Some("api.example.test"));
        assert_eq!(client_hello_sni(&rec[..20]), None);

        let sv = ext(43, &[3, 4]);
        let mut sh = vec![3, 3];
        sh.extend_from_slice(&[9; 32]);
        sh.push(0);
        sh.extend_from_slice(&[0x13, 0x01, 0]);
        sh.extend_from_slice(&(sv.len() as u16).to_be_bytes());
        sh.extend_from_slice(&sv);
        assert_eq!(
            server_hello_version(&record(2, &sh)).as_deref(),
            Some("TLSv1.3")
        );
        assert!(!looks_like_tls(b"GET / HTTP/1.1\r\n"));
    }

    fn alpn_ext(names: &[&str]) -> Vec<u8> {
        let mut list = Vec::new();
        for n in names {
            list.push(n.len() as u8);
            list.extend_from_slice(n.as_bytes());
        }
        let mut body = (list.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(&list);
        ext(EXT_ALPN, &body)
    }

    fn client_hello(exts: &[u8]) -> Vec<u8> {
        let mut ch = vec![3, 3];
        ch.extend_from_slice(&[7; 32]);
        ch.push(0);
        ch.extend_from_slice(&[0, 2, 0x13, 0x01]);
        ch.extend_from_slice(&[1, 0]);
        ch.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        ch.extend_from_slice(exts);
        record(1, &ch)
    }

    fn server_hello_rec(legacy: [u8; 2], exts: &[u8]) -> Vec<u8> {
        let mut sh = legacy.to_vec();
        sh.extend_from_slice(&[9; 32]);
        sh.push(0);
        sh.extend_from_slice(&[0xc0, 0x2f, 0]);
        sh.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        sh.extend_from_slice(exts);
        record(2, &sh)
    }

    #[test]
    fn alpn_offered_by_the_client_in_order() {
        let mut exts = ext(0x000b, &[1, 0]); // ec_point_formats, before ALPN
        exts.extend(alpn_ext(&["h2", "http/1.1"]));
        let rec = client_hello(&exts);
        assert_eq!(
            client_hello_alpn(&rec),
            Some(vec!["h2".to_string(), "http/1.1".to_string()])
        );
        // no ALPN extension; an empty list; a record cut short; a ServerHello
        assert_eq!(
            client_hello_alpn(&client_hello(&ext(0x000b, &[1, 0]))),
            None
        );
        assert_eq!(client_hello_alpn(&client_hello(&alpn_ext(&[]))), None);
        assert_eq!(client_hello_alpn(&rec[..rec.len() - 3]), None);
        assert_eq!(client_hello_alpn(&server_hello_rec([3, 3], &[])), None);
        // a name longer than its list: not guessed
        let bad = ext(EXT_ALPN, &[0, 3, 9, b'h', b'2']);
        assert_eq!(client_hello_alpn(&client_hello(&bad)), None);
    }

    #[test]
    fn server_alpn_choice_only_in_clear_before_tls13() {
        // TLS 1.2: the ServerHello says which protocol was chosen
        let sh = server_hello_rec([3, 3], &alpn_ext(&["h2"]));
        assert_eq!(
            server_hello(&sh),
            Some(ServerHello {
                version: Some("TLSv1.2".into()),
                alpn: Some("h2".into())
            })
        );
        // TLS 1.3: supported_versions, and no ALPN (it is in EncryptedExtensions)
        let sh13 = server_hello_rec([3, 3], &ext(43, &[3, 4]));
        assert_eq!(
            server_hello(&sh13),
            Some(ServerHello {
                version: Some("TLSv1.3".into()),
                alpn: None
            })
        );
        assert_eq!(server_hello_version(&sh13).as_deref(), Some("TLSv1.3"));
    }
}
