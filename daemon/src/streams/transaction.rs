//! One HTTP exchange on one connection → the contract's `request.http_transaction`.
use super::Conn;
use crate::attribution::ProcessInfo;
use crate::events::{
    Body, Container, Direction, Headers, HttpTransaction, Network, Request, Response, Summary,
    Timing, Transaction,
};
use crate::http::Exchange;

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
    let url = if target.starts_with('/') {
        format!("{scheme}://{authority}{target}")
    } else {
        format!("{scheme}://{authority}")
    };
    (url, scheme.to_string(), authority, host, target.to_string())
}

pub(super) fn build(
    c: &Conn,
    p: &ProcessInfo,
    container: Option<Container>,
    ex: Exchange,
) -> HttpTransaction {
    let fallback = match (c.direction, c.remote, c.local) {
        (Some(Direction::Ingress), _, Some(l)) => l.to_string(),
        (_, Some(r), _) => r.to_string(),
        _ => String::new(),
    };
    let (method, target, req_version, req_headers, req_body) = match ex.request {
        Some(r) => {
            let headers = r.all_headers();
            (r.method, r.target, r.version, headers, r.body)
        }
        None => (
            String::new(),
            String::new(),
            String::new(),
            Vec::new(),
            Body::empty(),
        ),
    };
    // HTTP/2 carries the authority in the `:authority` pseudo-header
    let host_header = header(&req_headers, "host").or(header(&req_headers, ":authority"));
    let (url, scheme, authority, host, path) = url_parts(&target, host_header, &fallback, c.tls);
    let response = ex.response.map(|r| Response {
        headers: r.all_headers(),
        status: r.status,
        reason: r.reason,
        http_version: r.version,
        body: r.body,
    });
    let content_type = response
        .as_ref()
        .and_then(|r| header(&r.headers, "content-type"))
        .map(str::to_string);
    let summary = std::sync::Arc::new(Summary {
        id: format!("{}-{}", c.id, c.seq),
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
        },
        response,
        timing: Timing {
            start: ex.start,
            request_sent: ex.request_sent,
            response_start: ex.response_start,
            end: ex.end,
        },
        network: Network {
            local: c.local.map(|a| a.to_string()).unwrap_or_default(),
            remote: c.remote.map(|a| a.to_string()).unwrap_or_default(),
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
