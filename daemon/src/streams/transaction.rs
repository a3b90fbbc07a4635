//! One HTTP exchange on one connection → the contract's `request.http_transaction`.
use super::Conn;
use crate::attribution::ProcessInfo;
use crate::events::json::u64_digits;
use crate::events::{
    Body, Container, Direction, Headers, HttpTransaction, Network, Request, Response, Summary,
    Timing, Transaction,
};
use crate::http::Exchange;
use std::net::SocketAddr;

pub(super) fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// (url, scheme, authority, host, path) for a request target.
pub(super) fn url_parts(
    target: &str,
    host_header: Option<&str>,
    fallback_authority: &str,
    tls: bool,
) -> (String, String, String, String, String) {
    let scheme = if tls { "https" } else { "http" };
    // absolute-form (proxy requests): the target is the URL
    for s in ["http://", "https://"] {
        if let Some(rest) = target.strip_prefix(s) {
            let (auth, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let host = auth.rsplit_once(':').map_or(auth, |(h, _)| h);
            return (
                target.to_string(),
                s.trim_end_matches("://").to_string(),
                auth.to_string(),
                host.to_string(),
                path.to_string(),
            );
        }
    }
    let authority = host_header
        .filter(|h| !h.is_empty())
        .unwrap_or(fallback_authority)
        .to_string();
    let host = if authority.starts_with('[') {
        authority
            .split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(h, _)| h)
            .to_string()
    };
    // CONNECT host:port and OPTIONS * keep their target as the path
    let url = {
        let path = if target.starts_with('/') { target } else { "" };
        let mut url = String::with_capacity(scheme.len() + 3 + authority.len() + path.len());
        url.push_str(scheme);
        url.push_str("://");
        url.push_str(&authority);
        url.push_str(path);
        url
    };
    (url, scheme.to_string(), authority, host, target.to_string())
}

/// `ip:port` as `SocketAddr`'s `Display` writes it, without `core::fmt` for IPv4.
fn addr_string(a: &SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => {
            let mut s = String::with_capacity(21);
            let mut buf = [0u8; 20];
            for (i, o) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                s.push_str(u64_digits(u64::from(o), &mut buf));
            }
            s.push(':');
            s.push_str(u64_digits(u64::from(v4.port()), &mut buf));
            s
        }
        SocketAddr::V6(_) => a.to_string(),
    }
}

pub(super) fn build(
    c: &Conn,
    p: &ProcessInfo,
    container: Option<Container>,
    ex: Exchange,
) -> HttpTransaction {
    let local = c.local.as_ref().map(addr_string).unwrap_or_default();
    let remote = c.remote.as_ref().map(addr_string).unwrap_or_default();
    let fallback = match (c.direction, c.local) {
        (Some(Direction::Ingress), Some(_)) => &local,
        _ => &remote,
    };
    let (method, target, req_version, req_headers, req_body, req_cut) = match ex.request {
        Some(r) => {
            // headers then trailers (`all_headers`), moved rather than copied
            let mut headers = r.headers;
            headers.extend(r.trailers);
            (
                r.method,
                r.target,
                r.version,
                headers,
                r.body,
                r.headers_truncated,
            )
        }
        None => (
            String::new(),
            String::new(),
            String::new(),
            Vec::new(),
            Body::empty(),
            false,
        ),
    };
    // HTTP/2 carries the authority in the `:authority` pseudo-header
    let host_header = header(&req_headers, "host").or(header(&req_headers, ":authority"));
    let (url, scheme, authority, host, path) = url_parts(&target, host_header, fallback, c.tls);
    let response = ex.response.map(|r| Response {
        headers: {
            let mut h = r.headers;
            h.extend(r.trailers);
            h
        },
        status: r.status,
        reason: r.reason,
        http_version: r.version,
        body: r.body,
        headers_truncated: r.headers_truncated,
    });
    let content_type = response
        .as_ref()
        .and_then(|r| header(&r.headers, "content-type"))
        .map(str::to_string);
    let summary = std::sync::Arc::new(Summary {
        id: {
            let mut buf = [0; 20];
            let seq = u64_digits(c.seq, &mut buf);
            let mut id = String::with_capacity(c.id.len() + 1 + seq.len());
            id.push_str(&c.id);
            id.push('-');
            id.push_str(seq);
            id
        },
        connection_id: c.id.clone(),
        start: ex.start,
        duration_ms: ex.start.ms_until(ex.end),
        direction: c.direction.unwrap_or(Direction::Egress),
        method: method.clone(),
        url: url.clone(),
        host,
        path: path.clone(),
        status: response.as_ref().map(|r| r.status),
        content_type,
        request_size: ex.request_wire_bytes,
        response_size: ex.response_wire_bytes,
        tls: c.tls,
        process: p.to_ref(),
        container,
        error: ex.error,
        request_not_captured: ex.request_not_captured,
    });
    let transaction = Transaction {
        summary: summary.clone(),
        request: Request {
            method,
            url,
            scheme,
            authority,
            path,
            http_version: req_version,
            headers: req_headers,
            body: req_body,
            headers_truncated: req_cut,
        },
        response,
        timing: Timing {
            start: ex.start,
            request_sent: ex.request_sent,
            response_start: ex.response_start,
            end: ex.end,
        },
        network: Network {
            local,
            remote,
            bytes_sent: c.bytes_sent,
            bytes_received: c.bytes_recv,
            tls_version: c.tls_version.clone(),
            sni: c.sni.clone(),
        },
        grpc: ex.grpc,
    };
    HttpTransaction {
        summary,
        transaction,
    }
}

#[cfg(test)]
mod tests {
    use super::url_parts;

    #[test]
    fn addresses_as_display_writes_them() {
        for a in [
            "0.0.0.0:0",
            "127.0.0.1:8080",
            "255.255.255.255:65535",
            "10.20.30.40:9",
            "[::1]:443",
            "[fe80::1%2]:80",
        ] {
            let a: std::net::SocketAddr = a.parse().unwrap();
            assert_eq!(super::addr_string(&a), a.to_string());
        }
    }

    #[test]
    fn urls() {
        let (url, scheme, auth, host, path) =
            url_parts("/x?a=1", Some("localhost:8443"), "127.0.0.1:8443", true);
        assert_eq!(
            (
                url.as_str(),
                scheme.as_str(),
                auth.as_str(),
                host.as_str(),
                path.as_str()
            ),
            (
                "https://localhost:8443/x?a=1",
                "https",
                "localhost:8443",
                "localhost",
                "/x?a=1"
            )
        );
        let (url, _, _, host, path) =
            url_parts("http://example.test:81/p", None, "10.0.0.1:3128", false);
        assert_eq!(
            (url.as_str(), host.as_str(), path.as_str()),
            ("http://example.test:81/p", "example.test", "/p")
        );
        let (url, _, auth, host, _) = url_parts("/", None, "[::1]:8080", false);
        assert_eq!(
            (url.as_str(), auth.as_str(), host.as_str()),
            ("http://[::1]:8080/", "[::1]:8080", "[::1]")
        );
    }
}
