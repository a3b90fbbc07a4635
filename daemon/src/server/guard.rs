//! Which requests we answer: the Host check (DNS rebinding), the Origin check (cross-origin
//! reads), the Fetch Metadata check (requests other sites' pages make), and the headers
//! every response carries. Who may connect at all is `access`.
use hyper::HeaderMap;
use hyper::header::{self, HeaderValue};
use std::net::{IpAddr, SocketAddr};

/// Content-Security-Policy for everything we serve: our own scripts, styles and fetches
/// only; no inline code, no plugins, no framing, no forms.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
    connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Remote {
    /// loopback only
    None,
    /// `--allow-remote` with a specific address: that IP literal too
    Ip(IpAddr),
    /// `--allow-remote` on 0.0.0.0 / [::]: any IP literal (never a name; a DNS-rebinding
    /// page can only make the browser send a name it controls)
    AnyIp,
}

/// What `Host` values are accepted.
#[derive(Clone, Debug)]
pub struct HostPolicy {
    remote: Remote,
    /// for the messages: where to point the browser
    port: u16,
    /// for the messages: the `ssh -L` forwarding that reaches us
    ssh: String,
}

impl HostPolicy {
    pub fn new(allow_remote: bool, listen: SocketAddr) -> Self {
        let ip = listen.ip();
        let remote = match (allow_remote, ip) {
            (false, _) => Remote::None,
            (true, ip) if ip.is_unspecified() => Remote::AnyIp,
            (true, ip) => Remote::Ip(ip),
        };
        let port = listen.port();
        HostPolicy {
            remote,
            port,
            ssh: format!("ssh -L {port}:localhost:{port} THIS-HOST"),
        }
    }

    /// Serving a unix socket: loopback names only; the messages point at `ssh -L` to it.
    pub fn for_unix(path: &std::path::Path) -> Self {
        HostPolicy {
            remote: Remote::None,
            port: 10001,
            ssh: format!("ssh -L 10001:{} THIS-HOST", path.display()),
        }
    }

    /// `localhost`, `127.0.0.1`, `[::1]` (any loopback literal), with or without a port —
    /// any port, since `ssh -L 8080:localhost:10001` makes the browser send `localhost:8080`.
    pub fn allows(&self, host: &str) -> bool {
        let Some((name, _port)) = split_host(host) else {
            return false;
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name == "localhost" {
            return true;
        }
        let ip = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
            Some(v6) => v6.parse::<IpAddr>().ok().filter(IpAddr::is_ipv6),
            None => name.parse::<IpAddr>().ok().filter(IpAddr::is_ipv4),
        };
        let Some(ip) = ip else { return false };
        ip.is_loopback()
            || match self.remote {
                Remote::None => false,
                Remote::Ip(allowed) => ip == allowed,
                Remote::AnyIp => true,
            }
    }
}

/// `host[:port]` → (host, port); `[v6]:port` keeps the brackets on the host.
fn split_host(h: &str) -> Option<(&str, Option<&str>)> {
    let h = h.trim();
    if h.is_empty() || h.contains(['/', '@', ' ', '\\']) {
        return None;
    }
    let (name, port) = if h.starts_with('[') {
        let end = h.find(']')?;
        let rest = &h[end + 1..];
        match rest.strip_prefix(':') {
            Some(p) => (&h[..=end], Some(p)),
            None if rest.is_empty() => (&h[..=end], None),
            None => return None,
        }
    } else {
        match h.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (h, None),
        }
    };
    if port.is_some_and(|p| p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    Some((name, port))
}

/// Why a request is refused (403), with a body that says what to do instead.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

/// The checks run before routing. `authority` is the request target's authority when the
/// client sent an absolute URI (it then takes precedence over `Host`).
pub fn check(
    headers: &HeaderMap,
    authority: Option<&str>,
    policy: &HostPolicy,
) -> Result<(), Refusal> {
    let port = policy.port;
    let ssh = &policy.ssh;
    let how = format!(
        "Open http://localhost:{port}/devtools/ in a browser on this machine. From another machine, \
         forward the port over SSH and open the same address there:\n\n    \
         {ssh}\n\n\
         (To accept another address, start qtap with --listen ADDR --allow-remote; the stream \
         is then readable by anyone who can reach that address.)\n"
    );
    let host = match (
        authority,
        headers.get(header::HOST).map(HeaderValue::to_str),
    ) {
        (Some(a), _) => a,
        (None, Some(Ok(h))) => h,
        (None, _) => {
            return Err(Refusal(format!(
                "403 Forbidden: the request has no usable Host header.\n\n\
                 qtap DevTools answers only requests addressed to localhost, 127.0.0.1 or [::1].\n\n{how}"
            )));
        }
    };
    if !policy.allows(host) {
        return Err(Refusal(format!(
            "403 Forbidden: this request was addressed to host `{}`.\n\n\
             qtap DevTools answers only requests addressed to localhost, 127.0.0.1 or [::1] \
             (with any port). Its event stream carries credentials and personal data, and this \
             check is the protection against DNS rebinding: a web page on another site pointing \
             its own domain name at this machine to read the stream.\n\n{how}",
            host.escape_debug()
        )));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("(not text)");
        if !same_origin(origin, host) {
            return Err(Refusal(format!(
                "403 Forbidden: cross-origin request from `{}` refused.\n\n\
                 qtap DevTools serves its data only to its own page (http://{host}/devtools/); \
                 pages of other origins may not read it, and no CORS header will allow them.\n\n{how}",
                origin.escape_debug()
            )));
        }
    }
    // Requests without an Origin (navigations, <script src>, <img>) still carry Fetch
    // Metadata: another site's page (cross-site), or a page on another port of this host
    // (same-site), made them. Refused, navigations included: a link or a window.open()
    // would otherwise start a capture (probes, Java agents) the operator never asked for.
    // Typing the address (or a bookmark, or a reload) sends `none`; our own page's requests
    // send `same-origin`; clients other than browsers send nothing.
    let site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or("(not text)"));
    if let Some(site) = site.filter(|s| !matches!(*s, "same-origin" | "none")) {
        return Err(Refusal(format!(
            "403 Forbidden: this request was made by another site's page (Sec-Fetch-Site: {}).\n\n\
             qtap DevTools answers only its own page and addresses typed into the browser: \
             type http://localhost:{port}/devtools/ into the address bar (a link from another \
             page, even one on this machine, is refused).\n\n{how}",
            site.escape_debug()
        )));
    }
    Ok(())
}

/// `Origin: http://localhost:10001` for `Host: localhost:10001` (http or https: a TLS
/// proxy in front is fine).
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https")
        && authority
            .trim_end_matches('/')
            .eq_ignore_ascii_case(host.trim())
}

/// Headers on every response: no MIME sniffing, no referrer, strict CSP, no framing, no
/// cross-origin embedding. Never `Access-Control-Allow-Origin`.
pub fn secure_headers(h: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "content-security-policy", CSP);
    set(h, "x-frame-options", "DENY");
    set(h, "cross-origin-resource-policy", "same-origin");
    set(h, "cross-origin-opener-policy", "same-origin");
    h.remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> HostPolicy {
        HostPolicy::new(false, "127.0.0.1:10001".parse().unwrap())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn loopback_names_with_or_without_port() {
        let p = local();
        for ok in [
            "localhost",
            "localhost:10001",
            "LOCALHOST:8080",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:10001",
            "[::1]",
            "[::1]:10001",
            "[0:0:0:0:0:0:0:1]:1",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:10001",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.1:10001",
            "[::1",
            "[::1]x",
            "localhost:abc",
            "",
            "::1",
            "user@localhost",
            "0.0.0.0:10001",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
    }

    #[test]
    fn allow_remote_adds_the_listen_address_only() {
        let p = HostPolicy::new(true, "10.1.2.3:10001".parse().unwrap());
        assert!(p.allows("10.1.2.3:10001") && p.allows("localhost"));
        assert!(!p.allows("10.1.2.4:10001") && !p.allows("myhost.example"));
        let any = HostPolicy::new(true, "[::]:10001".parse().unwrap());
        assert!(any.allows("192.168.1.5:10001") && any.allows("[fe80::1]:10001"));
        assert!(
            !any.allows("attacker.example:10001"),
            "names are never accepted remotely"
        );
        // without the flag the listen address is not enough
        assert!(!HostPolicy::new(false, "10.1.2.3:10001".parse().unwrap()).allows("10.1.2.3"));
    }

    #[test]
    fn host_refusal_explains_dns_rebinding_and_ssh() {
        let Refusal(body) =
            check(&headers(&[("host", "evil.example:10001")]), None, &local()).unwrap_err();
        assert!(body.starts_with("403 Forbidden"), "{body}");
        assert!(
            body.contains("`evil.example:10001`") && body.contains("DNS rebinding"),
            "{body}"
        );
        assert!(
            body.contains("ssh -L 10001:localhost:10001")
                && body.contains("http://localhost:10001/devtools/")
        );
        assert!(
            check(&headers(&[]), None, &local())
                .unwrap_err()
                .0
                .contains("no usable Host")
        );
        // the absolute-form authority wins over Host
        assert!(
            check(
                &headers(&[("host", "localhost")]),
                Some("evil.example"),
                &local()
            )
            .is_err()
        );
    }

    #[test]
    fn origin_must_be_our_own() {
        let p = local();
        let ok = |pairs: &[(&'static str, &str)]| check(&headers(pairs), None, &p).is_ok();
        assert!(ok(&[("host", "localhost:10001")]));
        assert!(ok(&[
            ("host", "localhost:10001"),
            ("origin", "http://localhost:10001")
        ]));
        assert!(
            ok(&[
                ("host", "localhost:8080"),
                ("origin", "http://localhost:8080")
            ]),
            "ssh -L to another port"
        );
        assert!(!ok(&[
            ("host", "localhost:10001"),
            ("origin", "http://localhost:3000")
        ]));
        assert!(!ok(&[
            ("host", "localhost:10001"),
            ("origin", "https://evil.example")
        ]));
        assert!(!ok(&[("host", "localhost:10001"), ("origin", "null")]));
        assert!(
            !ok(&[
                ("host", "localhost:10001"),
                ("origin", "http://127.0.0.1:10001")
            ]),
            "another origin, same machine"
        );
        let Refusal(body) = check(
            &headers(&[
                ("host", "localhost:10001"),
                ("origin", "https://evil.example"),
            ]),
            None,
            &p,
        )
        .unwrap_err();
        assert!(
            body.contains("cross-origin request from `https://evil.example`"),
            "{body}"
        );
    }

    #[test]
    fn fetch_metadata_refuses_other_sites_navigations_included() {
        let p = local();
        let h = |site: &str, mode: &str| {
            headers(&[
                ("host", "localhost:10001"),
                ("sec-fetch-site", site),
                ("sec-fetch-mode", mode),
            ])
        };
        for (site, mode) in [
            ("cross-site", "no-cors"),
            ("cross-site", "navigate"),
            ("cross-site", "cors"),
            ("same-site", "cors"),
            ("same-site", "navigate"),
            ("bogus", "navigate"),
        ] {
            let Refusal(body) = check(&h(site, mode), None, &p).unwrap_err();
            assert!(
                body.contains(&format!("Sec-Fetch-Site: {site}"))
                    && body.contains("type http://localhost:10001/devtools/ into the address bar"),
                "{body}"
            );
        }
        assert!(check(&h("same-origin", "cors"), None, &p).is_ok());
        assert!(check(&h("same-origin", "navigate"), None, &p).is_ok());
        assert!(check(&h("none", "navigate"), None, &p).is_ok());
        assert!(check(&headers(&[("host", "localhost:10001")]), None, &p).is_ok());
    }

    #[test]
    fn unix_socket_messages_point_at_the_socket() {
        let p = HostPolicy::for_unix(std::path::Path::new("/run/qtap/devtools.sock"));
        assert!(p.allows("localhost") && !p.allows("10.0.0.1"));
        let Refusal(body) = check(&headers(&[("host", "evil.example")]), None, &p).unwrap_err();
        assert!(
            body.contains("ssh -L 10001:/run/qtap/devtools.sock THIS-HOST"),
            "{body}"
        );
    }

    #[test]
    fn secure_headers_are_set_and_no_cors() {
        let mut h = headers(&[("access-control-allow-origin", "*")]);
        secure_headers(&mut h);
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(
            !h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("unsafe")
        );
        assert!(h.get("access-control-allow-origin").is_none());
    }
}
