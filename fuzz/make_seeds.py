#!/usr/bin/env python3
"""Writes seed inputs for the http_parser fuzz target into seeds/http_parser/.

Each seed is [flags, n-1, schedule[n], payload]: the schedule is built so that each step
feeds exactly one piece of the conversation below (see fuzz_targets/http_parser.rs)."""
import gzip, os, zlib

from seedlib import write_seed

def seed(name, convo, flags=3, gap=None):
    write_seed(os.path.join("seeds/http_parser", name), convo, flags, gap)

C, S = False, True
gz = gzip.compress(b'{"hello":"world","n":[1,2,3]}' * 3, mtime=0)
seed("get", [(C, b"GET /a?b=1 HTTP/1.1\r\nHost: h\r\n\r\n"), (S, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")])
seed("chunked", [(C, b"POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nWiki\r\n0\r\nT: 1\r\n\r\n"),
                 (S, b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")])
seed("pipelined", [(C, b"GET /1 HTTP/1.1\r\n\r\nHEAD /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.0\r\n\r\n"),
                   (S, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"
                       b"HTTP/1.0 200 OK\r\n\r\nclose-delimited")])
seed("continue", [(C, b"PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
                  (S, b"HTTP/1.1 100 Continue\r\n\r\n"), (C, b"data"),
                  (S, b"HTTP/1.1 204 No Content\r\n\r\n")])
seed("gzip", [(C, b"GET / HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n"),
              (S, b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(gz) + gz)], flags=0)
seed("deflate", [(C, b"GET / HTTP/1.1\r\n\r\n"),
                 (S, b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate, identity\r\n\r\n" + zlib.compress(b"abc" * 50))])
seed("upgrade", [(C, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x80"),
                 (S, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00")])
seed("connect", [(C, b"CONNECT h:443 HTTP/1.1\r\n\r\n\x16\x03\x01"), (S, b"HTTP/1.1 407 Auth\r\nContent-Length: 0\r\n\r\n"),
                 (C, b"GET / HTTP/1.1\r\n\r\n")])
seed("gap", [(C, b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123"), (C, b"789GET /b HTTP/1.1\r\n\r\n"),
             (S, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")], gap=(0, False, 2))
seed("server_first", [(S, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), (C, b"GET / HTTP/1.1\r\n\r\n")])
seed("tls", [(C, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")])
