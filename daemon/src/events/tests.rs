use super::*;

#[test]
fn rfc3339_round_trip() {
    let t = Timestamp(1_795_600_000_123_456_789);
    let s = t.rfc3339();
    assert_eq!(s, "2026-11-25T09:46:40.123456789Z");
    assert_eq!(Timestamp::parse_rfc3339(&s), Some(t));
    assert_eq!(Timestamp(0).rfc3339(), "1970-01-01T00:00:00.000000000Z");
    assert_eq!(
        Timestamp::parse_rfc3339("2000-02-29T23:59:59Z").map(|t| t.rfc3339()),
        Some("2000-02-29T23:59:59.000000000Z".to_string())
    );
    assert_eq!(Timestamp::parse_rfc3339("garbage"), None);
}

#[test]
fn topics_parse_and_reject_unknown() {
    assert_eq!(
        parse_topics("request.http_transaction, system.dropped")
            .unwrap()
            .len(),
        2
    );
    assert!(
        parse_topics("request.http")
            .unwrap_err()
            .contains("unknown topic")
    );
}

#[test]
fn ndjson_has_topic_ts_and_data() {
    let e = Envelope::new(Event::Dropped(Dropped {
        events: 1,
        bytes: 2,
        reason: "ringbuf-full".into(),
    }));
    let v: serde_json::Value = serde_json::from_str(&e.to_ndjson()).unwrap();
    assert_eq!(v["topic"], "system.dropped");
    assert_eq!(v["data"]["reason"], "ringbuf-full");
    assert!(v["ts"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn exit_codes_and_signals_from_the_kernels_encoding() {
    let j = |raw| serde_json::to_string(&ProcessStopped::from_raw(7, raw)).unwrap();
    assert_eq!(j(Some(0)), r#"{"pid":7,"exit_code":0}"#);
    assert_eq!(j(Some(3 << 8)), r#"{"pid":7,"exit_code":3}"#);
    assert_eq!(j(Some(255 << 8)), r#"{"pid":7,"exit_code":255}"#);
    assert_eq!(j(Some(9)), r#"{"pid":7,"signal":"SIGKILL"}"#);
    assert_eq!(
        j(Some(11 | 0x80)),
        r#"{"pid":7,"signal":"SIGSEGV","core_dumped":true}"#
    );
    assert_eq!(j(Some(40)), r#"{"pid":7,"signal":"SIG40"}"#);
    assert_eq!(j(None), r#"{"pid":7}"#);
}

/// Every event of docs/events.md (each topic, a transaction with and without a
/// response, gRPC) and a few edge cases.
fn sample_events() -> Vec<Event> {
    let doc = include_str!("../../../docs/events.md");
    let b: Vec<&str> = doc
        .split("```json\n")
        .skip(1)
        .map(|b| b.split("\n```").next().unwrap())
        .collect();
    let mut out = vec![
        Event::Connected(serde_json::from_str(b[0]).unwrap()),
        Event::Disconnected(serde_json::from_str(b[1]).unwrap()),
        Event::Dropped(serde_json::from_str(b[2]).unwrap()),
        Event::ProcessStarted(serde_json::from_str(b[3]).unwrap()),
        Event::ProcessStopped(serde_json::from_str(b[4]).unwrap()),
        Event::ConnectionOpened(serde_json::from_str(b[5]).unwrap()),
        Event::ConnectionClosed(serde_json::from_str(b[6]).unwrap()),
        Event::HttpTransaction(Box::new(serde_json::from_str(b[7]).unwrap())),
        Event::HttpTransaction(Box::new(serde_json::from_str(b[8]).unwrap())),
        Event::HttpTransaction(Box::new(serde_json::from_str(b[9]).unwrap())),
    ];
    let Event::HttpTransaction(t) = &out[7] else {
        unreachable!()
    };
    let mut t = t.clone();
    // no response, an error, awkward text (quotes, control bytes, non-ASCII)
    t.transaction.response = None;
    let summary = Arc::make_mut(&mut t.summary);
    summary.status = None;
    summary.error = Some("connection closed before response".into());
    summary.duration_ms = 0.1 + 0.2;
    summary.path = "/\u{2028}\u{0}\"".into();
    t.transaction.summary = t.summary.clone();
    t.transaction.request.body.text = "a\"b\\c\n\u{1}\u{7f} é 😀 </script>".into();
    t.transaction.request.headers_truncated = true;
    t.transaction
        .request
        .headers
        .push(("X-Dup".into(), "1".into()));
    t.transaction
        .request
        .headers
        .push(("x-dup".into(), "\t2".into()));
    out.push(Event::HttpTransaction(t.clone()));
    // a summary that differs from the transaction's (only possible when parsed)
    Arc::make_mut(&mut t.summary).content_type = Some("text/\"x\"".into());
    out.push(Event::HttpTransaction(t));
    out.push(Event::ProcessStopped(ProcessStopped {
        pid: u32::MAX,
        exit_code: Some(-1),
        signal: None,
        core_dumped: false,
    }));
    out.push(Event::ProcessStopped(ProcessStopped::from_raw(
        9,
        Some(11 | 0x80),
    )));
    out.push(Event::ConnectionClosed(ConnectionClosed {
        connection_id: String::new(),
        bytes_sent: u64::MAX,
        bytes_received: 0,
        duration_ms: 1e-7,
    }));
    out
}

/// The former `write_ndjson`: the line through serde_json's serializer.
#[derive(Serialize)]
struct NdjsonLine<'a> {
    topic: &'static str,
    ts: Timestamp,
    data: &'a Event,
}

/// The event types through [`json`] and through serde_json: the same bytes (this
/// covers the hand-written `Serialize` of summaries and transactions too, against
/// the derived one they replace, through the docs' examples as `Value`s).
#[test]
fn json_writer_matches_serde_json_on_every_event() {
    for ev in sample_events() {
        let mut out = Vec::new();
        json::to_vec(&mut out, &ev).unwrap();
        assert_eq!(out, serde_json::to_vec(&ev).unwrap());
    }
    // the transaction object is the summary's fields then its own, as the derive
    // with `#[serde(flatten)]` wrote it
    let Event::HttpTransaction(t) = &sample_events()[7] else {
        unreachable!()
    };
    let mut obj = serde_json::to_value(&*t.summary).unwrap();
    let rest = serde_json::json!({
        "request": t.transaction.request,
        "response": t.transaction.response,
        "timing": t.transaction.timing,
        "network": t.transaction.network,
    });
    let (serde_json::Value::Object(m), serde_json::Value::Object(r)) = (&mut obj, rest) else {
        unreachable!()
    };
    m.extend(r);
    assert_eq!(serde_json::to_value(&t.transaction).unwrap(), obj);
    // and the docs' examples (compact, in field order) read back byte for byte
    let doc = include_str!("../../../docs/events.md");
    for block in doc.split("```json\n").skip(8) {
        let example = block.split("\n```").next().unwrap();
        let t: HttpTransaction = serde_json::from_str(example).unwrap();
        let mut out = Vec::new();
        json::to_vec(&mut out, &t).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), example);
    }
}

#[test]
fn rfc3339_digits_match_the_formatter() {
    let mut buf = [0u8; RFC3339_MAX];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut check = |t: u64| {
        let t = Timestamp(t);
        assert_eq!(t.write_rfc3339(&mut buf), t.rfc3339_via_fmt());
    };
    for t in [0, 1, 999_999_999, 1_000_000_000, u64::MAX, u64::MAX - 1] {
        check(t);
    }
    for _ in 0..200_000 {
        // xorshift: values over the whole range, and near today
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        check(x);
        check(1_700_000_000_000_000_000 + x % 400_000_000_000_000_000);
    }
    // every day boundary over 2000..2100 (leap years, month ends)
    for day in 10_957..47_482u64 {
        check(day * 86_400_000_000_000);
        check(day * 86_400_000_000_000 - 1);
    }
}

/// The direct encoder says exactly what the former `Value` path said, for every
/// event type, and puts `topic` first.
#[test]
fn ndjson_matches_the_value_encoding() {
    for (i, ev) in sample_events().into_iter().enumerate() {
        let e = Envelope {
            ts: Timestamp(1_795_600_000_000_000_001 + i as u64),
            data: ev,
        };
        let new = e.to_ndjson();
        let old = e.to_ndjson_via_value();
        let (a, b): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(&new).unwrap(),
            serde_json::from_str(&old).unwrap(),
        );
        assert_eq!(a, b, "event {i}:\nnew {new}\nold {old}");
        assert!(!new.contains('\n'), "one line: {new}");
        let prefix = format!(r#"{{"topic":"{}","ts":""#, e.data.topic());
        assert!(new.starts_with(&prefix), "{new}");
        // the SSE encoding is the same object without the topic
        let mut sse: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        sse["topic"] = e.data.topic().into();
        assert_eq!(sse, a);
        // byte for byte what serde_json says of the same object
        let mut via_serde = serde_json::to_vec(&NdjsonLine {
            topic: e.data.topic(),
            ts: e.ts,
            data: &e.data,
        })
        .unwrap();
        assert_eq!(new.as_bytes(), via_serde, "event {i}");
        via_serde = serde_json::to_vec(&e).unwrap();
        assert_eq!(e.to_json().as_bytes(), via_serde, "event {i}");
        // appending keeps what is already in the buffer
        let mut buf = b"x".to_vec();
        e.write_ndjson(&mut buf);
        assert_eq!(&buf[1..], new.as_bytes());
    }
}

#[test]
fn rfc3339_without_allocation_fits_every_timestamp() {
    let mut buf = [0u8; RFC3339_MAX];
    assert_eq!(
        Timestamp(u64::MAX).write_rfc3339(&mut buf),
        "2554-07-21T23:34:33.709551615Z"
    );
    assert_eq!(
        Timestamp(1_795_600_000_123_456_789).write_rfc3339(&mut buf),
        "2026-11-25T09:46:40.123456789Z"
    );
}

/// Every example in docs/events.md deserialises into its type and serialises back
/// with the same field names: a renamed or undocumented field fails here.
#[test]
fn docs_examples_match_types() {
    fn keys(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let p = format!("{path}.{k}");
                    out.push(p.clone());
                    keys(v, &p, out);
                }
            }
            serde_json::Value::Array(a) => {
                if let Some(first) = a.first() {
                    keys(first, &format!("{path}[]"), out);
                }
            }
            _ => {}
        }
    }
    fn check<T: serde::de::DeserializeOwned + Serialize>(example: &str) {
        let original: serde_json::Value = serde_json::from_str(example).expect("example is JSON");
        let typed: T = serde_json::from_value(original.clone()).unwrap_or_else(|e| {
            panic!(
                "example does not fit {}: {e}\n{example}",
                std::any::type_name::<T>()
            )
        });
        let back = serde_json::to_value(&typed).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        keys(&original, "", &mut a);
        keys(&back, "", &mut b);
        a.sort();
        b.sort();
        assert_eq!(
            a,
            b,
            "fields of {} differ from docs/events.md",
            std::any::type_name::<T>()
        );
    }
    let doc = include_str!("../../../docs/events.md");
    let blocks: Vec<&str> = doc
        .split("```json\n")
        .skip(1)
        .map(|b| b.split("\n```").next().unwrap())
        .collect();
    assert_eq!(
        blocks.len(),
        10,
        "one example per topic payload, an HTTP/2 gRPC transaction and a response whose \
         request was not captured"
    );
    check::<Connected>(blocks[0]);
    check::<Disconnected>(blocks[1]);
    check::<Dropped>(blocks[2]);
    check::<ProcessStarted>(blocks[3]);
    check::<ProcessStopped>(blocks[4]);
    check::<ConnectionOpened>(blocks[5]);
    check::<ConnectionClosed>(blocks[6]);
    check::<HttpTransaction>(blocks[7]);
    check::<HttpTransaction>(blocks[8]);
    check::<HttpTransaction>(blocks[9]);
    let t: HttpTransaction = serde_json::from_str(blocks[9]).unwrap();
    assert!(t.summary.request_not_captured && t.transaction.summary.request_not_captured);
    let t: HttpTransaction = serde_json::from_str(blocks[7]).unwrap();
    assert!(!t.summary.request_not_captured, "absent means false");
}
