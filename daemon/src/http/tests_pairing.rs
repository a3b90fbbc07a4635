//! Pairing by capture time: a response whose first byte was captured before the request
//! it would pair with answers an earlier request the capture never saw (in flight when the
//! capture started). It is returned on its own, flagged `request_not_captured`, and the
//! request waits for its own response — keep-alive, pipelined, either delivery order.
use super::tests::{req, resp, ts};
use super::*;
use Side::{Client, Server};

const WARM: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nwarm";
const JSON: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";

/// Feeds `(side, bytes, capture time)` in the order given (the delivery order).
fn feed(steps: &[(Side, &[u8], u64)], close: bool) -> Vec<Exchange> {
    let mut c = HttpConn::new(BodyLimits::default());
    let mut out = Vec::new();
    for (side, data, t) in steps {
        out.extend(c.feed(*side, data, ts(*t)));
    }
    if close {
        out.extend(c.close(ts(1000)));
    }
    out
}

fn content_type(e: &Exchange) -> Option<&str> {
    resp(e)
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str())
}

/// The orphan (first) and `/json` with its own response (second).
fn assert_orphan_then_json(ex: &[Exchange]) {
    assert_eq!(ex.len(), 2, "{ex:#?}");
    assert!(ex[0].request.is_none() && ex[0].request_not_captured);
    assert_eq!(resp(&ex[0]).body.text, "warm");
    assert!(
        ex[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("request not captured")),
        "{:?}",
        ex[0].error
    );
    assert_eq!(req(&ex[1]).target, "/json");
    assert_eq!(content_type(&ex[1]), Some("application/json"));
    assert_eq!(resp(&ex[1]).body.text, "{}");
    assert!(!ex[1].request_not_captured && ex[1].error.is_none());
}

#[test]
fn response_captured_before_the_next_request_is_not_its_response() {
    // /warm-up was sent before the capture; its response comes, then /json is sent
    let ex = feed(
        &[
            (Server, WARM, 1),
            (Client, b"GET /json HTTP/1.1\r\nHost: a\r\n\r\n", 2),
            (Server, JSON, 3),
        ],
        false,
    );
    assert_orphan_then_json(&ex);
    // the warm-up response's head and body in two pieces, the last after /json was sent
    // (delivered late): the head's time decides
    let ex = feed(
        &[
            (Server, &WARM[..20], 1),
            (Client, b"GET /json HTTP/1.1\r\nHost: a\r\n\r\n", 3),
            (Server, &WARM[20..], 2),
            (Server, JSON, 4),
        ],
        false,
    );
    assert_orphan_then_json(&ex);
}

#[test]
fn request_delivered_before_an_earlier_response_does_not_take_it() {
    // /json's bytes reach the parser first, but were captured after the warm-up response
    // began (delivery order is not capture order across CPUs)
    let ex = feed(
        &[
            (Client, b"GET /json HTTP/1.1\r\nHost: a\r\n\r\n", 2),
            (Server, WARM, 1),
            (Server, JSON, 3),
        ],
        false,
    );
    assert_orphan_then_json(&ex);
}

#[test]
fn response_delivered_before_its_request_is_held_and_paired() {
    // delivered first, but captured after its request: held until the request arrives
    let ex = feed(
        &[
            (Server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 5),
            (Client, b"HEAD / HTTP/1.1\r\n\r\n", 2),
        ],
        false,
    );
    assert_eq!(ex.len(), 1);
    assert_eq!(
        (
            req(&ex[0]).method.as_str(),
            resp(&ex[0]).status,
            ex[0].error.clone(),
            ex[0].request_not_captured
        ),
        ("HEAD", 200, None, false)
    );
    // the same instant is not "before"
    let ex = feed(
        &[
            (Client, b"GET /x HTTP/1.1\r\n\r\n", 7),
            (Server, b"HTTP/1.1 204 No Content\r\n\r\n", 7),
        ],
        false,
    );
    assert_eq!(
        (req(&ex[0]).target.as_str(), resp(&ex[0]).status),
        ("/x", 204)
    );
    assert!(!ex[0].request_not_captured);
    // no request ever: returned at close without one
    let ex = feed(
        &[(Server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1)],
        true,
    );
    assert_eq!(ex.len(), 1);
    assert!(ex[0].request.is_none() && ex[0].request_not_captured);
    assert_eq!(resp(&ex[0]).body.text, "ok");
    assert!(
        ex[0]
            .error
            .as_deref()
            .unwrap()
            .contains("without a captured request")
    );
}

#[test]
fn pipelined_requests_after_an_unseen_one_each_get_their_own_response() {
    // /a was in flight unseen; its response began before /b and /c were sent (pipelined
    // together); their responses follow in order
    let ex = feed(
        &[
            (Server, &WARM[..30], 1),
            (
                Client,
                b"GET /b HTTP/1.1\r\nHost: a\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n",
                2,
            ),
            (Server, &WARM[30..], 3),
            (Server, JSON, 4),
            (
                Server,
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                5,
            ),
        ],
        false,
    );
    assert_eq!(ex.len(), 3, "{ex:#?}");
    assert!(ex[0].request_not_captured && ex[0].request.is_none());
    assert_eq!(resp(&ex[0]).body.text, "warm");
    assert_eq!(
        (req(&ex[1]).target.as_str(), content_type(&ex[1])),
        ("/b", Some("application/json"))
    );
    assert_eq!(
        (req(&ex[2]).target.as_str(), resp(&ex[2]).status),
        ("/c", 404)
    );
    // pipelined and seen: an earlier request's response does not push later ones out
    let ex = feed(
        &[
            (Client, b"GET /1 HTTP/1.1\r\n\r\n", 1),
            (Client, b"GET /2 HTTP/1.1\r\n\r\n", 3),
            (Server, JSON, 2),
            (Server, WARM, 4),
        ],
        false,
    );
    assert_eq!(ex.len(), 2, "{ex:#?}");
    assert_eq!(
        (req(&ex[0]).target.as_str(), content_type(&ex[0])),
        ("/1", Some("application/json"))
    );
    assert_eq!(
        (req(&ex[1]).target.as_str(), resp(&ex[1]).body.text.as_str()),
        ("/2", "warm")
    );
    assert!(ex.iter().all(|e| !e.request_not_captured));
}

#[test]
fn interim_response_of_an_unseen_request_stays_with_it() {
    // a 100 Continue and the final response of an unseen upload, then a new request
    let ex = feed(
        &[
            (Server, b"HTTP/1.1 100 Continue\r\n\r\n", 1),
            (Client, b"GET /json HTTP/1.1\r\nHost: a\r\n\r\n", 3),
            (Server, WARM, 2),
            (Server, JSON, 4),
        ],
        false,
    );
    assert_orphan_then_json(&ex);
    assert_eq!(resp(&ex[0]).informational, vec![100]);
}
