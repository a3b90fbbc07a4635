// Random HAR entries for property tests: every field the import reads gets random text with
// hostile pieces mixed in (quotes, substitutions, line breaks, terminal escapes, lone
// surrogates), and now and then a value of the wrong type.

/** mulberry32: a small seeded PRNG, so a failing case can be replayed. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = [
  "'", '"', '`', '$(', ')', "$'", '\\', '\n', '\r', '\r\n', '\t', '\u2028', '\u2029', '\u0085', '\u001b[31m', '\u001b]0;x\u0007',
  '\u0003', '\u0004', '\u0015', '\u0000', '\u007f', '\u009b', '\u202e', '\u2066', '\ufeff', ';', '|', '&', '&&', '>', '<', '>>', '*', '?',
  '[1-3]', '{a,b}', '~', '#', '!', '!!', '!-1', '^', '%', '@', '-', '--', '-o', '-K', '=', ' ', '  ', 'touch CANARY', '$(touch CANARY)',
  '`touch CANARY`', ';touch CANARY;', '\ntouch CANARY\n', '\n# \n', '$HOME', '${IFS}', '$$', 'é', 'ß', '😀', '\ud800', '\udfff', 'a', 'Z',
  '0', '9', '/', ':', ',', '.', '_', 'http://', 'https://h.test/', 'file:///', '@/etc/passwd', '@-', 'gzip', 'base64',
];

export function gen(rnd) {
  const pick = (list) => list[Math.floor(rnd() * list.length)];
  const str = (max = 8) => Array.from({ length: Math.floor(rnd() * (max + 1)) }, () => pick(PIECES)).join('');
  const junk = () => pick([null, undefined, 0, -1, 1.5, 2 ** 60, NaN, true, false, {}, [], ['x'], { name: 'x' }, str()]);
  /** mostly text, sometimes a value of the wrong type */
  const any = (max) => (rnd() < 0.85 ? str(max) : junk());
  const token = () => pick(['X-A', 'x-b', 'Accept-Encoding', 'Content-Length', 'Content-Encoding', 'Content-Type', 'Cookie', 'Authorization']);
  const headers = () => Array.from({ length: Math.floor(rnd() * 5) }, () => (rnd() < 0.9 ? { name: rnd() < 0.6 ? token() : any(3), value: rnd() < 0.2 ? pick(['gzip, br', '12', '']) : any() } : junk()));
  return { pick, str, junk, any, token, headers };
}

/** One HAR entry with random values in every field the import reads. */
export function randomEntry(rnd) {
  const { pick, any, junk, headers } = gen(rnd);
  const b64 = () => Buffer.from(Array.from({ length: Math.floor(rnd() * 40) }, () => Math.floor(rnd() * 256))).toString('base64');
  const maybe = (f) => (rnd() < 0.7 ? f() : junk());
  return {
    startedDateTime: pick(['2026-11-20T08:00:00.000Z', any()]),
    time: pick([12.5, any()]),
    connection: any(),
    serverIPAddress: any(),
    timings: maybe(() => ({ blocked: any(), dns: -1, connect: pick([-1, 3, any()]), send: pick([1, any()]), wait: pick([10, any()]), receive: 1 })),
    request: {
      method: pick(['GET', 'POST', 'PUT', any(), any()]),
      url: pick([`http://h.test/${any()}`, `https://h.test/p?q=${any()}`, any(), any()]),
      httpVersion: pick(['HTTP/1.1', 'HTTP/1.0', any()]),
      headers: maybe(headers),
      bodySize: pick([-1, 0, 7, any()]),
      postData: maybe(() => (rnd() < 0.3 ? { mimeType: any(), text: b64(), _encoding: 'base64' } : { mimeType: any(), text: any(12), _encoding: pick([undefined, 'base64', any()]) })),
    },
    response: maybe(() => ({
      status: pick([200, 404, 0, any()]),
      statusText: any(),
      httpVersion: any(),
      headers: maybe(headers),
      bodySize: pick([-1, 2, any()]),
      content: maybe(() => ({ size: pick([2, any()]), mimeType: any(), text: any(12), encoding: pick([undefined, 'base64', any()]) })),
      _error: any(),
    })),
    _qtap: maybe(() => ({
      direction: pick(['egress', 'ingress', any()]),
      tls: pick([true, false, any()]),
      request_size: pick([10, any()]),
      response_size: pick([10, any()]),
      error: any(),
      process: maybe(() => ({ pid: pick([42, any()]), exe: any(), name: any(), user: any() })),
      container: maybe(() => ({ id: any(), name: any(), image: any(), runtime: any(), service: any(), pod: any(), namespace: any() })),
      network: maybe(() => ({ local: any(), remote: any(), bytes_sent: any(), bytes_received: any(), tls_version: any(), sni: any() })),
      timing: maybe(() => ({ start: pick(['2026-11-20T08:00:00.000Z', any()]), request_sent: any(), response_start: any(), end: pick(['2026-11-20T08:00:01.000Z', any()]) })),
      request_body: maybe(() => ({ size: pick([5, any()]), captured: pick([3, any()]), truncated: pick([true, false, any()]), content_encoding: pick(['gzip', 'br, zstd', any()]), note: pick([undefined, '', any()]) })),
      response_body: maybe(() => ({ size: any(), captured: any(), truncated: any(), content_encoding: any(), note: any() })),
    })),
  };
}
