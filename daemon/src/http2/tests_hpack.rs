//! HPACK: RFC 7541 Appendix C, checked against the crate's own decoder; dynamic table
//! size updates and eviction; and the promise that a decoder joined mid-way never shows a
//! wrong field.
use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

type Fields = Vec<(String, String)>;

fn pairs(f: &[(&str, &str)]) -> Vec<(String, String)> {
    f.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Decodes `blocks` with ours and with loona-hpack's decoder; both must agree and be
/// complete. Returns our fields and (entries, size) after each block.
fn both(blocks: &[Vec<u8>], max: Option<usize>) -> Vec<(Fields, usize, usize)> {
    let mut ours = Hpack::new(true);
    let mut theirs = loona_hpack::Decoder::new();
    if let Some(m) = max {
        theirs.set_max_table_size(m);
    }
    blocks
        .iter()
        .map(|b| {
            let got = ours.decode(b);
            assert_eq!(got.undecodable, 0, "{:?}", got.problems);
            let want: Vec<(String, String)> = theirs
                .decode(b)
                .unwrap()
                .into_iter()
                .map(|(n, v)| (lossy(&n), lossy(&v)))
                .collect();
            assert_eq!(got.fields, want);
            (got.fields, ours.len(), ours.size())
        })
        .collect()
}

#[test]
fn rfc7541_c3_requests_without_huffman() {
    let out = both(
        &[
            hex("828684410f7777772e6578616d706c652e636f6d"),
            hex("828684be58086e6f2d6361636865"),
            hex("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"),
        ],
        None,
    );
    assert_eq!(
        out[0].0,
        pairs(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com")
        ])
    );
    assert_eq!(out[1].0[4], ("cache-control".into(), "no-cache".into()));
    assert_eq!(out[2].0[4], ("custom-key".into(), "custom-value".into()));
    let sizes: Vec<(usize, usize)> = out.iter().map(|o| (o.1, o.2)).collect();
    assert_eq!(sizes, [(1, 57), (2, 110), (3, 164)]);
}

#[test]
fn rfc7541_c4_requests_with_huffman() {
    let out = both(
        &[
            hex("828684418cf1e3c2e5f23a6ba0ab90f4ff"),
            hex("828684be5886a8eb10649cbf"),
            hex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"),
        ],
        None,
    );
    assert_eq!(out[0].0[3], (":authority".into(), "www.example.com".into()));
    assert_eq!(out[2].0[4], ("custom-key".into(), "custom-value".into()));
    assert_eq!((out[2].1, out[2].2), (3, 164));
}

#[test]
fn rfc7541_c5_responses_evict_at_256_bytes() {
    // the encoder announces a 256-byte table first (size update 256: 3f e1 01)
    let mut first = hex("3fe101");
    first.extend(hex(
        "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
    ));
    let out = both(
        &[
            first,
            hex("4803333037c1c0bf"),
            hex(
                "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31",
            ),
        ],
        Some(256),
    );
    assert_eq!(out[0].0[0], (":status".into(), "302".into()));
    assert_eq!(out[1].0[0], (":status".into(), "307".into()));
    assert_eq!(out[1].0[3].1, "https://www.example.com");
    assert_eq!(out[2].0[4], ("content-encoding".into(), "gzip".into()));
    let sizes: Vec<(usize, usize)> = out.iter().map(|o| (o.1, o.2)).collect();
    assert_eq!(sizes, [(4, 222), (4, 222), (3, 215)]);
}

#[test]
fn table_size_update_evicts_and_zero_empties() {
    let mut d = Hpack::new(true);
    // literal with indexing, new name: x-a: 1
    d.decode(&hex("4003782d610131"));
    d.decode(&hex("4003782d620132"));
    assert_eq!((d.len(), d.size()), (2, 72));
    // size update to 40 keeps only the newest entry
    let b = d.decode(&hex("3f09be"));
    assert_eq!(b.fields, pairs(&[("x-b", "2")]));
    assert_eq!((d.len(), d.size()), (1, 36));
    // size update to 0 empties it: index 62 is now past the table
    let b = d.decode(&hex("20be"));
    assert_eq!((b.fields.len(), b.undecodable, d.len()), (0, 1, 0));
    assert!(b.problems[0].contains("past the table"), "{:?}", b.problems);
}

#[test]
fn a_size_update_above_the_limit_is_a_connection_error_not_obeyed() {
    // from the start, before any SETTINGS: the limit is the default 4096
    let mut d = Hpack::new(true);
    let b = d.decode(&bomb(5000, Some(65536), 3));
    let why = b.fatal.expect("a connection error");
    assert!(why.contains("65536") && why.contains("4096"), "{why}");
    assert!(
        b.fields.is_empty(),
        "nothing decoded past it: {:?}",
        b.fields
    );
    assert_eq!(d.len(), 0, "the literal after it was not inserted");
    // within the announced limit it is obeyed; one byte above is refused
    let mut d = Hpack::new(true);
    d.set_settings_max(100);
    assert!(d.decode(&hex("3f45")).fatal.is_none()); // 100
    assert!(d.decode(&hex("3f46")).fatal.is_some()); // 101
    // a peer that lowers its limit later: the older, larger one stays allowed (the
    // encoder may not have seen the new one yet)
    let mut d = Hpack::new(true);
    d.set_settings_max(65536);
    d.set_settings_max(0);
    assert_eq!(d.update_limit(), 65536);
    // joined mid-way, the limit is unknown: our own table cap
    let mut d = Hpack::new(false);
    assert!(d.decode(&update(MAX_TABLE_BYTES)).fatal.is_none());
    assert!(d.decode(&update(MAX_TABLE_BYTES + 1)).fatal.is_some());
}

#[test]
fn restart_keeps_the_settings_limit() {
    let mut d = Hpack::new(false);
    d.set_settings_max(8192);
    d.restart();
    assert_eq!(d.update_limit(), 8192);
    assert!(d.decode(&update(8192)).fatal.is_none());
}

/// RFC 7541 5.1 integer with an `n`-bit prefix, `flags` in the first byte's other bits.
fn int_bytes(flags: u8, n: u32, v: usize) -> Vec<u8> {
    let max = (1usize << n) - 1;
    if v < max {
        return vec![flags | v as u8];
    }
    let mut out = vec![flags | max as u8];
    let mut rest = v - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
    out
}

fn update(size: usize) -> Vec<u8> {
    int_bytes(0x20, 5, size)
}

/// The amplification of issue 12: a table size update (`update`), one literal with
/// incremental indexing whose value is `value_len` bytes, then `refs` one-byte
/// references to it (index 62).
pub(crate) fn bomb(value_len: usize, update_to: Option<usize>, refs: usize) -> Vec<u8> {
    let mut b = update_to.map(update).unwrap_or_default();
    b.extend([0x40, 1, b'x']);
    b.extend(int_bytes(0, 7, value_len));
    b.extend(std::iter::repeat_n(b'v', value_len));
    b.extend(std::iter::repeat_n(0xbe, refs));
    b
}

#[test]
fn references_count_against_the_budget() {
    let mut d = Hpack::new(true);
    d.set_settings_max(65536);
    // 8,000 references to a 60,000-byte field: 480 MB of text if each were copied
    let block = bomb(60_000, Some(65536), 8000);
    let budget = 256 * 1024;
    let b = d.decode_within(&block, budget);
    assert!(b.fatal.is_none());
    let kept: usize = b.fields.iter().map(|(n, v)| field_size(n, v)).sum();
    assert_eq!(kept, b.decoded);
    assert!(kept <= budget, "{kept} > {budget}");
    // the literal and three references fit (4 × 60,033), the rest are left out
    assert_eq!((b.fields.len(), b.cut), (4, 7997));
    assert!(b.problems.iter().any(|p| p.contains("not kept")), "{b:?}");
    // the table still follows the peer's: a later block reads the entry
    assert_eq!(d.len(), 1);
    let next = d.decode_within(&[0xbe], budget);
    assert_eq!((next.fields.len(), next.cut), (1, 0));
    // references past the budget are not copied, so a small budget keeps a prefix
    let b = d.decode_within(&[0x82, 0xbe, 0x82], 50);
    assert_eq!(b.fields, pairs(&[(":method", "GET")]));
    assert_eq!(
        b.cut, 2,
        "fields after a cut one are left out too: a prefix"
    );
}

#[test]
fn cut_block_resets_the_table() {
    let mut d = Hpack::new(true);
    d.decode(&hex("4003782d610131"));
    // a literal whose value length runs past the block
    let b = d.decode(&hex("4003782d62053132"));
    assert_eq!(b.undecodable, 1);
    assert!(b.problems[0].contains("cut short"));
    assert_eq!(d.len(), 0);
    let b = d.decode(&hex("be"));
    assert!(b.problems[0].contains("joined mid-way"), "{:?}", b.problems);
}

#[test]
fn bad_huffman_keeps_the_table_aligned() {
    let mut d = Hpack::new(true);
    // x-a: <huffman string of one 0xff byte: invalid padding / EOS>, then x-b: 2
    let b = d.decode(&hex("4003782d6181ff4003782d620132"));
    assert_eq!(b.fields, pairs(&[("x-b", "2")]));
    assert_eq!(b.undecodable, 1);
    // 62 = x-b (decodable), 63 = the placeholder (not)
    let b = d.decode(&hex("bebf"));
    assert_eq!(b.fields, pairs(&[("x-b", "2")]));
    assert_eq!(b.undecodable, 1);
}

#[test]
fn joined_midway_unknown_name_index_inserts_a_placeholder() {
    let mut d = Hpack::new(false);
    // literal with incremental indexing, name index 70 (unknown), value "v"
    let b = d.decode(&hex("7f070176"));
    assert_eq!((b.fields.len(), b.undecodable), (0, 1));
    assert!(b.problems[0].contains("joined mid-way"));
    // then a literal with a new name: it is index 62, the placeholder 63
    let b = d.decode(&hex("4003782d610131"));
    assert_eq!(b.fields, pairs(&[("x-a", "1")]));
    let b = d.decode(&hex("bebf"));
    assert_eq!(b.fields, pairs(&[("x-a", "1")]));
    assert_eq!(b.undecodable, 1);
}

/// Headers of a plausible client over many requests, encoded by loona-hpack's encoder.
fn conversation() -> (Vec<Vec<u8>>, Vec<Fields>) {
    let mut enc = loona_hpack::Encoder::new();
    let mut blocks = Vec::new();
    let mut truth = Vec::new();
    for i in 0..40 {
        let path = format!("/api/items/{}", i % 7);
        let tok = format!("Bearer token-{}", i % 3);
        let id = format!("req-{i}");
        let big = "x".repeat(300 + (i % 5) * 200);
        let fields: Vec<(&str, &str)> = vec![
            (":method", if i % 4 == 0 { "POST" } else { "GET" }),
            (":scheme", "https"),
            (":authority", "api.example"),
            (":path", &path),
            ("authorization", &tok),
            ("x-request-id", &id),
            ("x-big", &big),
            ("user-agent", "qtap-test/1.0"),
        ];
        blocks.push(enc.encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))));
        truth.push(pairs(&fields));
    }
    (blocks, truth)
}

#[test]
fn joined_at_any_block_never_shows_a_wrong_field() {
    let (blocks, truth) = conversation();
    for start in 0..blocks.len() {
        let mut d = Hpack::new(start == 0);
        for k in start..blocks.len() {
            let b = d.decode(&blocks[k]);
            // every decoded field is the true one, in order; the rest are counted
            let mut want = truth[k].iter();
            for f in &b.fields {
                assert!(
                    want.any(|t| t == f),
                    "start {start}, block {k}: {f:?} is not in {:?}",
                    truth[k]
                );
            }
            assert_eq!(b.fields.len() + b.undecodable, truth[k].len());
            if start == 0 {
                assert_eq!(b.undecodable, 0);
            }
            // what needs no earlier state is decoded: static names with literal values
            assert!(b.fields.len() >= 6, "start {start}, block {k}: {b:?}");
        }
    }
}

#[test]
fn fields_per_block_are_bounded_and_the_table_kept() {
    let mut d = Hpack::new(true);
    let mut b = vec![0x82; MAX_FIELDS + 5];
    b.extend(hex("4003782d610131"));
    let out = d.decode(&b);
    assert_eq!((out.fields.len(), out.undecodable), (MAX_FIELDS, 6));
    assert_eq!(d.len(), 1, "the insertion after the cap still happened");
}
