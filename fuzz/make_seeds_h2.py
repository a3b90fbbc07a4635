#!/usr/bin/env python3
"""Writes seed inputs for the http2_parser fuzz target into seeds/http2_parser/.

Each seed is [flags, n-1, schedule[n], payload] (see fuzz_targets/http2_parser.rs): flags
bit 2 prepends the client preface, bit 3 a server SETTINGS frame; each schedule step feeds
one piece of the conversation below. Header blocks use the HPACK static table, literals
(with and without indexing), dynamic table references and Huffman strings (RFC 7541 C.4)."""
import os

from seedlib import write_seed

OUT = "seeds/http2_parser"
DATA, HEADERS, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONT = 0, 1, 3, 4, 5, 6, 7, 8, 9
END_STREAM, END_HEADERS, PADDED, PRIORITY = 1, 4, 8, 0x20


def frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def lit(name, value, indexing=False):
    """Literal field, new name, no Huffman."""
    return bytes([0x40 if indexing else 0]) + bytes([len(name)]) + name + bytes([len(value)]) + value


def lit_idx(index, value):
    """Literal without indexing, name from the static table (index < 15)."""
    return bytes([index]) + bytes([len(value)]) + value


GET = b"\x82\x87\x84" + lit_idx(1, b"api.test")  # :method GET, :scheme https, :path /, :authority
OK = b"\x88"  # :status 200


def seed(name, convo, flags=3 | 4 | 8, gap=None):
    write_seed(os.path.join(OUT, name), convo, flags, gap)


C, S = False, True
os.makedirs(OUT, exist_ok=True)
seed("get", [(C, frame(SETTINGS, 0, 0) + frame(HEADERS, END_STREAM | END_HEADERS, 1, GET)),
             (S, frame(SETTINGS, 1, 0) + frame(HEADERS, END_HEADERS, 1, OK + lit(b"content-type", b"text/plain"))
              + frame(DATA, 0, 1, b"hel") + frame(DATA, END_STREAM, 1, b"lo"))])
block = GET + lit(b"x-long", b"v" * 40)
seed("continuation_padding", [
    (C, frame(HEADERS, PADDED | PRIORITY, 1, b"\x03" + b"\0\0\0\0\x10" + block[:6] + b"\0\0\0")
     + frame(CONT, 0, 1, block[6:20]) + frame(CONT, END_HEADERS, 1, block[20:])
     + frame(DATA, PADDED | END_STREAM, 1, b"\x02up\0\0")),
    (S, frame(HEADERS, END_HEADERS, 1, OK) + frame(DATA, PADDED | END_STREAM, 1, b"\x01ok\0"))])
seed("dynamic_table_interleaved", [
    (C, frame(HEADERS, END_HEADERS | END_STREAM, 1, GET + lit(b"x-id", b"one", True))
     + frame(HEADERS, END_HEADERS, 3, b"\x83\x87\x84\xbe" + lit_idx(1, b"api.test"))
     + frame(DATA, 0, 3, b"a") + frame(DATA, END_STREAM, 3, b"b")),
    (S, frame(HEADERS, END_HEADERS, 3, OK + lit(b"x-srv", b"s", True)) + frame(HEADERS, END_HEADERS, 1, b"\x3f\x09\xbe\x88")
     + frame(DATA, END_STREAM, 1, b"one") + frame(DATA, END_STREAM, 3, b"three"))])
seed("rst_mid_body", [
    (C, frame(HEADERS, END_HEADERS | END_STREAM, 1, GET)),
    (S, frame(HEADERS, END_HEADERS, 1, OK) + frame(DATA, 0, 1, b"partial")),
    (C, frame(RST, 0, 1, (8).to_bytes(4, "big")) + frame(WINDOW, 0, 0, (1000).to_bytes(4, "big")))])
grpc_req = b"\x83\x86" + lit_idx(4, b"/helloworld.Greeter/SayHello") + lit(b"content-type", b"application/grpc")
seed("grpc", [
    (C, frame(HEADERS, END_HEADERS, 1, grpc_req) + frame(DATA, END_STREAM, 1, b"\0\0\0\0\x07\x0a\x05world")),
    (S, frame(HEADERS, END_HEADERS, 1, OK + lit(b"content-type", b"application/grpc"))
     + frame(DATA, 0, 1, b"\0\0\0\0\x0d\x0a\x0bhello world")
     + frame(HEADERS, END_HEADERS | END_STREAM, 1, lit(b"grpc-status", b"5") + lit(b"grpc-message", b"no%20such")))])
seed("joined_midway", [
    (S, frame(DATA, 0, 5, b"tail of a body") + frame(HEADERS, END_HEADERS | END_STREAM, 5, b"\xbf\xc0")),
    (C, frame(HEADERS, END_HEADERS | END_STREAM, 7, b"\x82\xbe\xc1" + lit(b"x-new", b"1", True))),
    (S, frame(HEADERS, END_HEADERS | END_STREAM, 7, OK + b"\xbe"))], flags=3)
seed("gap_in_data", [
    (C, frame(HEADERS, END_HEADERS | END_STREAM, 1, GET)),
    (S, frame(HEADERS, END_HEADERS, 1, OK) + frame(DATA, END_STREAM, 1, b"0123456789")[:12]),
    (S, frame(DATA, END_STREAM, 1, b"0123456789")[16:])], gap=(1, True, 3))
seed("push_goaway_ping", [
    (C, frame(HEADERS, END_HEADERS | END_STREAM, 1, GET) + frame(HEADERS, END_HEADERS | END_STREAM, 3, GET)
     + frame(PING, 0, 0, b"12345678")),
    (S, frame(PUSH, END_HEADERS, 1, (2).to_bytes(4, "big") + b"\x82\x87" + lit_idx(4, b"/style.css") + lit_idx(1, b"a"))
     + frame(HEADERS, END_HEADERS | END_STREAM, 1, OK) + frame(HEADERS, END_HEADERS, 2, OK)
     + frame(DATA, END_STREAM, 2, b"body{}") + frame(PING, 1, 0, b"12345678")
     + frame(GOAWAY, 0, 0, (1).to_bytes(4, "big") + (0).to_bytes(4, "big") + b"bye"))])
# RFC 7541 C.4.1-C.4.3: Huffman strings and dynamic table entries across requests
c4 = [bytes.fromhex(h) for h in ("828684418cf1e3c2e5f23a6ba0ab90f4ff", "828684be5886a8eb10649cbf",
                                "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf")]
seed("huffman_rfc7541", [
    (C, frame(HEADERS, END_HEADERS | END_STREAM, 1, c4[0]) + frame(HEADERS, END_HEADERS | END_STREAM, 3, c4[1])
     + frame(HEADERS, END_HEADERS | END_STREAM, 5, c4[2])),
    (S, frame(HEADERS, END_HEADERS | END_STREAM, 1, OK) + frame(HEADERS, END_HEADERS | END_STREAM, 3, OK)
     + frame(HEADERS, END_HEADERS | END_STREAM, 5, b"\x8d"))])
print("wrote", len(os.listdir(OUT)), "seeds to", OUT)
