// Test fixtures: events shaped exactly as daemon/src/events.rs serialises them (serde field
// names, optional fields left out when absent, headers as [name, value] pairs, RFC 3339
// nanosecond timestamps). Used by the fixture server and by the unit tests.
import { deflateSync } from 'node:zlib';

const BASE_MS = Date.UTC(2026, 10, 24, 10, 0, 0, 0);

/** RFC 3339 UTC with nanoseconds, as Timestamp::rfc3339 prints it. */
export function rfc3339(ms) {
  const whole = Math.floor(ms);
  const nanos = Math.round((ms - whole) * 1e6) + (whole % 1000) * 1e6;
  const iso = new Date(whole - (whole % 1000)).toISOString().slice(0, 19);
  return `${iso}.${String(nanos).padStart(9, '0')}Z`;
}

export function body(text, { encoding = 'utf8', size, truncated = false, content_encoding, note } = {}) {
  const captured = encoding === 'base64' ? Buffer.from(text, 'base64').length : Buffer.byteLength(text);
  const b = { size: size ?? captured, captured, truncated, encoding, text };
  if (content_encoding) b.content_encoding = content_encoding;
  if (note) b.note = note;
  return b;
}

export const emptyBody = () => body('');

export const PROCESSES = {
  curl: { pid: 4242, ppid: 4100, exe: '/usr/bin/curl', cmdline: ['curl', '-s', 'https://api.github.com/repos/acme/widgets'], user: 'alice', uid: 1000 },
  python: {
    pid: 5151, ppid: 1, exe: '/usr/local/bin/python3.12', cmdline: ['python3', '-m', 'uvicorn', 'shop.api:app'], user: 'app', uid: 999,
    container: { id: '3f9c1a2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8', name: 'shop-api', image: 'shop/api:1.4.2', runtime: 'docker', service: 'api' },
  },
  nginx: { pid: 880, ppid: 1, exe: '/usr/sbin/nginx', cmdline: ['nginx: worker process'], user: 'www-data', uid: 33 },
  node: { pid: 7777, ppid: 1, exe: '/usr/bin/node', cmdline: ['node', 'worker.js'], user: 'svc', uid: 1001 },
};

const procRef = (p) => ({ pid: p.pid, exe: p.exe, name: p.exe.split('/').pop(), user: p.user });

let connCounter = 0;

/**
 * One `request.http_transaction` payload ({summary, transaction}).
 * Timing: start, request_sent = +send, response_start = +wait, end = +download.
 */
export function transaction(o) {
  const p = o.process || PROCESSES.curl;
  const scheme = o.scheme || (o.tls ? 'https' : 'http');
  const authority = o.host;
  const path = o.path || '/';
  const url = `${scheme}://${authority}${path}`;
  const startMs = o.startMs ?? BASE_MS;
  const [send, wait, download] = o.phases || [0.4, 25, 3];
  const reqBody = o.reqBody || emptyBody();
  const resBody = o.resBody || emptyBody();
  const connection_id = o.connection_id || `c${++connCounter}`;
  const summary = {
    id: o.id,
    connection_id,
    start: rfc3339(startMs),
    duration_ms: o.noResponse ? send + wait : send + wait + download,
    direction: o.direction || 'egress',
    method: o.method || 'GET',
    url,
    host: authority,
    path,
  };
  if (!o.noResponse) summary.status = o.status ?? 200;
  const ct = (o.resHeaders || []).find(([k]) => k.toLowerCase() === 'content-type');
  if (ct && !o.noResponse) summary.content_type = ct[1];
  summary.request_size = reqBody.size;
  summary.response_size = o.noResponse ? 0 : resBody.size;
  summary.tls = !!o.tls;
  summary.process = procRef(p);
  if (p.container) summary.container = p.container;
  if (o.noResponse) summary.error = o.error || 'connection closed before response';

  const timing = { start: rfc3339(startMs), request_sent: rfc3339(startMs + send) };
  if (!o.noResponse) timing.response_start = rfc3339(startMs + send + wait);
  timing.end = rfc3339(startMs + summary.duration_ms);
  const network = {
    local: o.local || (o.direction === 'ingress' ? `${o.serverIp || '127.0.0.1'}:${o.port || 8080}` : '10.0.2.15:51234'),
    remote: o.remote || (o.direction === 'ingress' ? '172.17.0.1:40512' : `${o.serverIp || '140.82.112.5'}:${o.tls ? 443 : 80}`),
    bytes_sent: o.bytesSent ?? 180 + reqBody.size,
    bytes_received: o.bytesReceived ?? (o.noResponse ? 0 : 240 + resBody.size),
  };
  if (o.tls) {
    network.tls_version = o.tlsVersion || 'TLSv1.3';
    network.sni = authority.split(':')[0];
  }
  const transaction = {
    ...summary,
    request: {
      method: summary.method,
      url,
      scheme,
      authority,
      path,
      http_version: o.httpVersion || 'HTTP/1.1',
      headers: o.reqHeaders || [['Host', authority], ['User-Agent', 'curl/8.5.0'], ['Accept', '*/*']],
      body: reqBody,
    },
  };
  if (!o.noResponse) {
    transaction.response = {
      status: summary.status,
      reason: o.reason ?? 'OK',
      http_version: o.httpVersion || 'HTTP/1.1',
      headers: o.resHeaders || [],
      body: resBody,
    };
  }
  transaction.timing = timing;
  transaction.network = network;
  if (o.grpc) transaction.grpc = o.grpc;
  return { summary, transaction };
}

// ---- gRPC over HTTP/2 --------------------------------------------------------------------

/** A protobuf message with one length-delimited field 1 (a string). */
function pbString(text) {
  const b = Buffer.from(text);
  return Buffer.concat([Buffer.from([0x0a, b.length]), b]);
}

/** A gRPC body: each message behind its 5-byte prefix (flag, big-endian length). */
function grpcFrames(msgs) {
  return Buffer.concat(msgs.flatMap((m) => {
    const p = Buffer.alloc(5);
    p.writeUInt32BE(m.length, 1);
    return [p, m];
  }));
}

function grpcMessage(from, bytes, dump) {
  return { from, compressed: false, size: bytes.length, captured: bytes.length, data: bytes.toString('base64'), dump };
}

/** A unary gRPC call over HTTP/2 (cleartext), with its trailers and `grpc` view. */
function grpcCall({ id, name, status, statusName, message, startMs }) {
  const req = pbString(name);
  const res = status === 0 ? pbString(`hello ${name}`) : null;
  const trailers = [['grpc-status', String(status)]];
  if (message) trailers.push(['grpc-message', encodeURIComponent(message)]);
  const grpc = {
    service: 'helloworld.Greeter', method: 'SayHello', status, status_name: statusName,
    messages: [grpcMessage('request', req, `1: "${name}"\n`)],
  };
  if (message) grpc.message = message;
  if (res) grpc.messages.push(grpcMessage('response', res, `1: "hello ${name}"\n`));
  return transaction({
    id, method: 'POST', host: 'greeter.internal:50051', path: '/helloworld.Greeter/SayHello', startMs, phases: [0.2, 1.8, 0.3],
    process: PROCESSES.python, connection_id: 'grpc-conn', httpVersion: 'HTTP/2', reason: '',
    reqHeaders: [[':method', 'POST'], [':scheme', 'http'], [':authority', 'greeter.internal:50051'], [':path', '/helloworld.Greeter/SayHello'], ['content-type', 'application/grpc'], ['te', 'trailers'], ['authorization', AUTH]],
    reqBody: body(grpcFrames([req]).toString('base64'), { encoding: 'base64' }),
    resHeaders: [[':status', '200'], ['content-type', 'application/grpc'], ...trailers],
    resBody: body(grpcFrames(res ? [res] : []).toString('base64'), { encoding: 'base64' }),
    grpc,
  });
}

/** Two gRPC calls on one HTTP/2 connection: one OK, one NOT_FOUND (both HTTP 200). */
export function grpcTransactions(t0 = BASE_MS + 30000) {
  return [
    grpcCall({ id: 'tx-grpc-ok', name: 'world', status: 0, statusName: 'OK', startMs: t0 }),
    grpcCall({ id: 'tx-grpc-nf', name: 'nobody', status: 5, statusName: 'NOT_FOUND', message: 'no such greeting: nobody', startMs: t0 + 40 }),
  ];
}

// ---- a small real PNG and a binary blob --------------------------------------------------

function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** A 24×24 RGB PNG: a blue square with an orange diagonal. */
export function pngBytes(size = 24) {
  const raw = Buffer.alloc((size * 3 + 1) * size);
  for (let y = 0; y < size; y++) {
    raw[y * (size * 3 + 1)] = 0;
    for (let x = 0; x < size; x++) {
      const o = y * (size * 3 + 1) + 1 + x * 3;
      const diag = Math.abs(x - y) < 3;
      raw[o] = diag ? 0xf5 : 0x1a;
      raw[o + 1] = diag ? 0x8a : 0x73;
      raw[o + 2] = diag ? 0x00 : 0xe8;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

export function binaryBytes(n = 300) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 37 + 11) & 255;
  b.write('QTAPBIN\0', 0, 'latin1');
  return b;
}

// ---- scenarios ---------------------------------------------------------------------------

export const AUTH = 'Bearer ghp_TESTTOKEN0123456789abcdef';
export const GITHUB_JSON = JSON.stringify({ id: 1296269, name: 'widgets', full_name: 'acme/widgets', private: false, owner: { login: 'acme', id: 42 }, topics: ['http', 'ebpf'], stargazers_count: 80, archived: false, license: null });

/** The realistic mix most browser tests start from; `t0` shifts the clock. */
export function basicTransactions(t0 = BASE_MS) {
  const png = pngBytes();
  const bin = binaryBytes();
  let t = t0;
  const next = (gap = 120) => (t += gap);
  return [
    transaction({
      id: 'tx-github', tls: true, host: 'api.github.com', path: '/repos/acme/widgets', startMs: next(), phases: [0.3, 84.2, 6.1],
      reqHeaders: [['Host', 'api.github.com'], ['User-Agent', 'curl/8.5.0'], ['Accept', 'application/vnd.github+json'], ['Authorization', AUTH], ['Accept-Encoding', 'gzip']],
      resHeaders: [['Date', 'Tue, 24 Nov 2026 10:00:00 GMT'], ['Content-Type', 'application/json; charset=utf-8'], ['Content-Encoding', 'gzip'], ['ETag', 'W/"abc123"'], ['X-RateLimit-Remaining', '4999'], ['Vary', 'Accept-Encoding']],
      resBody: body(GITHUB_JSON, { size: 190, content_encoding: 'gzip' }),
    }),
    transaction({
      id: 'tx-health', host: '127.0.0.1:8080', path: '/health', startMs: next(), phases: [0.1, 1.2, 0.1], serverIp: '127.0.0.1', process: PROCESSES.node,
      resHeaders: [['Content-Type', 'text/plain'], ['Content-Length', '2']], resBody: body('ok'),
    }),
    transaction({
      id: 'tx-order', direction: 'ingress', method: 'POST', host: 'shop.local:8000', path: '/api/orders?dry_run=false', status: 201, reason: 'Created', startMs: next(), process: PROCESSES.python, port: 8000,
      reqHeaders: [['Host', 'shop.local:8000'], ['Content-Type', 'application/json'], ['Authorization', 'Basic YWxpY2U6czNjcmV0'], ['Content-Length', '61']],
      reqBody: body('{"sku":"WID-1","qty":2,"note":"gift","address":{"city":"Lyon"}}'),
      resHeaders: [['Content-Type', 'application/json'], ['Location', '/api/orders/981'], ['Set-Cookie', 'session=abc; Path=/; HttpOnly']],
      resBody: body('{"id":981,"status":"accepted","total":{"amount":39.8,"currency":"EUR"},"items":[{"sku":"WID-1","qty":2}]}'),
    }),
    transaction({
      id: 'tx-logo', tls: true, host: 'cdn.example.com', path: '/img/logo.png', startMs: next(), phases: [0.2, 30, 12],
      resHeaders: [['Content-Type', 'image/png'], ['Cache-Control', 'max-age=86400']], resBody: body(png.toString('base64'), { encoding: 'base64' }),
    }),
    transaction({
      id: 'tx-missing', tls: true, host: 'api.example.com', path: '/v1/users/404-nobody', status: 404, reason: 'Not Found', startMs: next(),
      resHeaders: [['Content-Type', 'application/problem+json']], resBody: body('{"type":"about:blank","title":"Not Found","status":404}'),
    }),
    transaction({
      id: 'tx-crash', direction: 'ingress', host: 'shop.local:8000', path: '/api/checkout', method: 'POST', status: 500, reason: 'Internal Server Error', startMs: next(), process: PROCESSES.python, port: 8000,
      reqHeaders: [['Host', 'shop.local:8000'], ['Content-Type', 'application/json']], reqBody: body('{"cart":17}'),
      resHeaders: [['Content-Type', 'text/html; charset=utf-8']], resBody: body('<html><body><h1>500</h1><script>alert("xss")</script><img src=x onerror=alert(1)></body></html>'),
    }),
    transaction({
      id: 'tx-token', tls: true, method: 'POST', host: 'auth.example.com', path: '/oauth/token', startMs: next(), process: PROCESSES.node,
      reqHeaders: [['Host', 'auth.example.com'], ['Content-Type', 'application/x-www-form-urlencoded'], ['Accept', 'application/json']],
      reqBody: body('grant_type=password&username=alice%40example.com&password=s3cr%26t+word&scope=read+write'),
      resHeaders: [['Content-Type', 'application/json']], resBody: body('{"access_token":"eyJhbGciOi.x.y","token_type":"Bearer","expires_in":3600}'),
    }),
    transaction({
      id: 'tx-blob', tls: true, host: 'files.example.com', path: '/dl/blob.bin', startMs: next(), phases: [0.2, 20, 80],
      resHeaders: [['Content-Type', 'application/octet-stream'], ['Content-Length', '1048576']], resBody: body(bin.toString('base64'), { encoding: 'base64', size: 1048576, truncated: true }),
    }),
    transaction({
      id: 'tx-failed', host: '192.0.2.10:9000', path: '/slow/report', startMs: next(), noResponse: true, phases: [0.2, 3000, 0], serverIp: '192.0.2.10',
      error: 'connection closed before response',
    }),
    transaction({
      id: 'tx-note', method: 'PUT', host: 'notes.internal:8081', path: '/v2/notes/7', startMs: next(), process: PROCESSES.node,
      reqHeaders: [['Host', 'notes.internal:8081'], ['X-Note', `it's "quoted" $HOME \`x\``], ['Content-Type', 'text/plain'], ['X-Empty', '']],
      reqBody: body("line one\nit's line two\n"),
      resHeaders: [['Content-Type', 'application/json']], resBody: body('{"ok":true}'),
    }),
    transaction({
      id: 'tx-redirect', host: 'example.org', path: '/old-page', status: 302, reason: 'Found', startMs: next(), process: PROCESSES.curl,
      resHeaders: [['Location', 'https://example.org/new-page'], ['Content-Length', '0']],
    }),
  ];
}

export const SCENARIO_NAMES = {
  'tx-github': 'widgets', 'tx-health': 'health', 'tx-order': 'orders?dry_run=false', 'tx-logo': 'logo.png', 'tx-missing': '404-nobody',
  'tx-crash': 'checkout', 'tx-token': 'token', 'tx-blob': 'blob.bin', 'tx-failed': 'report', 'tx-note': '7', 'tx-redirect': 'old-page',
};

export function connected() {
  return {
    version: '0.1.0-test',
    hostname: 'fixture-host',
    kernel: '6.1.0-test',
    probes: [
      { library: 'syscalls', path: '', status: 'attached' },
      { library: 'openssl', path: '/usr/lib/x86_64-linux-gnu/libssl.so.3', status: 'attached' },
    ],
    limits: { max_body_bytes: 1048576, chunk_bytes: 16384, max_bytes_per_call: 262144, client_queue: 4096,
      client_queue_bytes: 67108864, max_buffer_bytes: 268435456, max_header_bytes: 262144 },
  };
}

/** Side events for the basic set: process.started, connection.opened/closed. */
export function sideEvents(txs) {
  const out = Object.values(PROCESSES).map((p) => ['process.started', { ...p }]);
  for (const { transaction: t } of txs) {
    const opened = { connection_id: t.connection_id, pid: t.process.pid, local: t.network.local, remote: t.network.remote, direction: t.direction };
    if (t.tls) opened.tls = { version: t.network.tls_version, sni: t.network.sni, library: 'openssl', alpn_offered: ['h2', 'http/1.1'] };
    out.push(['connection.opened', opened]);
  }
  return out;
}

export function closedEvent(t) {
  return ['connection.closed', { connection_id: t.connection_id, bytes_sent: t.network.bytes_sent, bytes_received: t.network.bytes_received, duration_ms: t.duration_ms + 5 }];
}

/** `n` small transactions, one per 10 ms, for the volume tests. */
export function bulkTransactions(n, t0 = BASE_MS + 60000, prefix = 'bulk') {
  const out = [];
  const statuses = [200, 200, 200, 201, 304, 404, 500];
  for (let i = 0; i < n; i++) {
    const status = statuses[i % statuses.length];
    out.push(transaction({
      id: `${prefix}-${i}`, host: `svc${i % 7}.internal:8080`, path: `/items/${prefix}-${i}`, status, reason: 'OK', startMs: t0 + i * 10, phases: [0.1, 2 + (i % 13), 1],
      process: i % 3 ? PROCESSES.node : PROCESSES.curl, connection_id: `bulkc${i % 50}`,
      resHeaders: [['Content-Type', 'application/json']], resBody: body(`{"i":${i}}`),
    }));
  }
  return out;
}
