#!/usr/bin/env python3
"""Writes seed inputs for the hpack fuzz target into seeds/hpack/.

Layout (fuzz_targets/hpack.rs): `[flags, (len_hi, len_lo, block[len])...]`; flags bit 0:
seen from the start; bits 1-2: SETTINGS_HEADER_TABLE_SIZE (none, 0, 4096, 65536); bits
3-4: budget per block (64 B, 4 KiB, 64 KiB, 256 KiB).
"""
import os

OUT = "seeds/hpack"
FROM_START = 1


def settings(i):
    return i << 1


def budget(i):
    return i << 3


def h(s):
    return bytes.fromhex("".join(s.split()))


def hint(flags, bits, v):
    mx = (1 << bits) - 1
    if v < mx:
        return bytes([flags | v])
    out = bytes([flags | mx])
    v -= mx
    while v >= 128:
        out += bytes([v % 128 | 0x80])
        v //= 128
    return out + bytes([v])


def bomb(value_len, update, refs):
    b = hint(0x20, 5, update) if update is not None else b""
    b += b"\x40\x01x" + hint(0, 7, value_len) + b"v" * value_len
    return b + b"\xbe" * refs


def seed(name, flags, blocks):
    os.makedirs(OUT, exist_ok=True)
    data = bytes([flags])
    for b in blocks:
        data += len(b).to_bytes(2, "big") + b
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


# RFC 7541 C.3 (requests), C.4 (Huffman), C.5 (responses, 256-byte table)
seed("rfc_c3", FROM_START | budget(3), [
    h("828684410f7777772e6578616d706c652e636f6d"),
    h("828684be58086e6f2d6361636865"),
    h("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"),
])
seed("rfc_c4_huffman", FROM_START | budget(2), [
    h("828684418cf1e3c2e5f23a6ba0ab90f4ff"),
    h("828684be5886a8eb10649cbf"),
    h("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"),
])
seed("rfc_c5_evictions", FROM_START | budget(3), [
    h("3fe101 4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d"),
    h("4803333037c1c0bf"),
])
# the amplification of issue 12, scaled down: within a 64 KiB limit, and above 4096
seed("bomb_within_limit", FROM_START | settings(3) | budget(1), [bomb(4000, 65536, 2000), b"\xbe"])
seed("bomb_above_limit", FROM_START | budget(3), [bomb(4000, 65536, 200)])
# joined mid-way: references to entries never seen, a placeholder insertion
seed("midway_unknown", budget(2), [h("7f070176 be bf"), h("4003782d610131 bebf")])
# an invalid Huffman string inserted, then referred to
seed("bad_huffman", FROM_START | budget(2), [h("4003782d6181ff4003782d620132"), h("bebf")])
print("wrote", len(os.listdir(OUT)), "seeds to", OUT)
