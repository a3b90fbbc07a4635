//! Request routing: the UI, the event stream, health.
use super::Activity;
use super::assets;
use super::guard::{self, HostPolicy, Refusal};
use crate::events::parse_topics;
use crate::hub::{Hub, Subscription};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Frames gathered into one write when a client is behind.
const SSE_BATCH_BYTES: usize = 64 * 1024;

pub(crate) struct Ctx {
    pub hub: Hub,
    pub policy: HostPolicy,
    pub keep_alive: Duration,
    pub activity: Arc<Activity>,
}

pub(crate) async fn handle<B>(
    req: Request<B>,
    ctx: Arc<Ctx>,
) -> Result<Response<Body>, Infallible> {
    ctx.activity.touch();
    let mut resp = route(&req, &ctx).await;
    guard::secure_headers(resp.headers_mut());
    Ok(resp)
}

async fn route<B>(req: &Request<B>, ctx: &Ctx) -> Response<Body> {
    let authority = req.uri().authority().map(|a| a.as_str());
    if let Err(Refusal(why)) = guard::check(req.headers(), authority, &ctx.policy) {
        tracing::info!(
            path = req.uri().path(),
            "refused a request: {}",
            why.lines().next().unwrap_or("")
        );
        return text(StatusCode::FORBIDDEN, why);
    }
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    match req.uri().path() {
        "/" if read => redirect(StatusCode::FOUND, "/devtools/"),
        "/devtools" if read => redirect(StatusCode::PERMANENT_REDIRECT, "/devtools/"),
        "/devtools/api/events" if req.method() == Method::GET => events(req, ctx).await,
        "/devtools/api/events" => not_allowed("GET"),
        "/devtools/api/health" if read => health(ctx),
        "/" | "/devtools" | "/devtools/api/health" => not_allowed("GET, HEAD"),
        p if p.starts_with("/devtools/api/") => not_found(p),
        p => match p.strip_prefix("/devtools/").map(assets::get) {
            Some(Some(asset)) if read => file(req, asset),
            Some(Some(_)) => not_allowed("GET, HEAD"),
            _ => not_found(p),
        },
    }
}

/// The answer to every request on a connection whose user may not watch (`access`).
pub(crate) fn refused(page: &str) -> Response<Body> {
    let mut r = text(StatusCode::FORBIDDEN, page.to_string());
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    guard::secure_headers(r.headers_mut());
    r
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn redirect(status: StatusCode, to: &'static str) -> Response<Body> {
    let mut r = text(status, format!("{} → {to}\n", status.as_u16()));
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    r
}

fn not_found(path: &str) -> Response<Body> {
    text(
        StatusCode::NOT_FOUND,
        format!(
            "404 Not Found: {}\nThe DevTools page is at /devtools/.\n",
            path.escape_debug()
        ),
    )
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("405 Method Not Allowed: use {allow}\n"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn file<B>(req: &Request<B>, asset: assets::Asset) -> Response<Body> {
    let etag = HeaderValue::from_str(&asset.etag).expect("hex etag");
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut r = if fresh {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(full(Bytes::from(asset.body.into_owned())));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        r
    };
    r.headers_mut().insert(header::ETAG, etag);
    // revalidate every time: a new daemon version brings a new UI
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn health(ctx: &Ctx) -> Response<Body> {
    let body = serde_json::to_string(&ctx.hub.status())
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    let mut r = Response::new(full(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn events<B>(req: &Request<B>, ctx: &Ctx) -> Response<Body> {
    let topics = match query_param(req.uri().query().unwrap_or(""), "topics") {
        None => None,
        Some(list) => match parse_topics(&list) {
            Ok(t) if t.is_empty() => None,
            Ok(t) => Some(t),
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("400 Bad Request: {e}\n")),
        },
    };
    let hub = ctx.hub.clone();
    // attaching the probes may take a while: keep it off the async workers
    match tokio::task::spawn_blocking(move || hub.subscribe(topics)).await {
        Ok(Ok(sub)) => {
            let mut r = Response::new(sse_body(sub, ctx.keep_alive));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            r
        }
        Ok(Err(e)) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("503 Service Unavailable: {e}\n"),
        ),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("500 Internal Server Error: subscribing failed: {e}\n"),
        ),
    }
}

/// The SSE body: frames as they come, several per write when the client is behind, and
/// a `: keep-alive` comment after `keep_alive` without any. Ends after `system.disconnected`.
/// Dropping it (client gone) drops the subscription.
fn sse_body(sub: Subscription, keep_alive: Duration) -> Body {
    let stream = futures_util::stream::unfold(sub, move |mut sub| async move {
        let chunk = tokio::select! {
            f = sub.next() => {
                // each frame's JSON is made once and shared by every client (hub::Entry)
                let mut buf = String::new();
                f?.write_sse(&mut buf);
                while buf.len() < SSE_BATCH_BYTES {
                    let Some(f) = sub.try_next() else { break };
                    f.write_sse(&mut buf);
                }
                Bytes::from(buf)
            }
            _ = tokio::time::sleep(keep_alive) => Bytes::from_static(b": keep-alive\n\n"),
        };
        Some((Ok::<_, Infallible>(Frame::data(chunk)), sub))
    });
    StreamBody::new(stream).boxed_unsync()
}

/// The (percent-decoded) value of `name` in a query string.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(query_param("topics=a,b", "topics").as_deref(), Some("a,b"));
        assert_eq!(
            query_param("x=1&topics=a%2Cb", "topics").as_deref(),
            Some("a,b")
        );
        assert_eq!(query_param("x=1", "topics"), None);
        assert_eq!(query_param("topics", "topics").as_deref(), Some(""));
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%41%zz+"), "A%zz ");
    }
}
