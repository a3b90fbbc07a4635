#!/usr/bin/env python3
"""Open-loop HTTPS load at a fixed rate, for daemon/benches/capture.sh.

Request i is due at t0 + i/rate and goes to connection i % conns (keep-alive). A
connection still busy with an earlier request sends the next one as soon as it is
free; lateness is reported, not hidden. Prints one JSON object with the counts.
Uses the ssl module (OpenSSL's SSL_read_ex/SSL_write_ex), so qtap sees the client
side of every exchange as well as nginx's.
"""
import argparse
import asyncio
import json
import ssl
import time


async def worker(k, args, ctx, t0, n_total, stats):
    reader, writer = await asyncio.open_connection(args.host, args.port, ssl=ctx)
    req = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
           f"User-Agent: qtap-bench\r\n\r\n").encode()
    i = k
    while i < n_total:
        due = t0 + i / args.rate
        now = time.monotonic()
        if due > now:
            await asyncio.sleep(due - now)
        else:
            stats["late"] = max(stats["late"], now - due)
        start = time.monotonic()
        writer.write(req)
        stats["sent"] += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if length:
            await reader.readexactly(length)
        if head.startswith(b"HTTP/1.1 200"):
            stats["ok"] += 1
        else:
            stats["bad"] += 1
        stats["lat"].append(time.monotonic() - start)
        i += args.conns
    writer.close()
    try:
        await writer.wait_closed()
    except (ssl.SSLError, ConnectionError):
        pass


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--rate", type=float, default=1000)
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--conns", type=int, default=16)
    args = p.parse_args()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    n_total = int(args.rate * args.duration)
    stats = {"sent": 0, "ok": 0, "bad": 0, "late": 0.0, "lat": []}
    t0 = time.monotonic() + 0.2
    tasks = [worker(k, args, ctx, t0, n_total, stats) for k in range(args.conns)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - t0
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    lat = sorted(stats.pop("lat")) or [0.0]
    late = stats.pop("late")
    out = dict(stats, planned=n_total, elapsed_s=round(elapsed, 3),
               achieved_rps=round(stats["ok"] / elapsed, 1),
               p50_ms=round(lat[len(lat) // 2] * 1e3, 3),
               p99_ms=round(lat[int(len(lat) * 0.99)] * 1e3, 3),
               max_late_ms=round(late * 1e3, 3), errors=errors[:3],
               conns=args.conns)
    print(json.dumps(out))


asyncio.run(main())
