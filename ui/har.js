// HAR 1.2 export (import: har-import.js), and the header diff between a live request and an imported
// one. Pure: records in, plain objects out (the caller serialises and downloads).
import { msBetween, headerValue, bodyBytes, parseForm, queryPairs, isFormType } from './util.js';

const round3 = (x) => Math.round(x * 1000) / 1000;
const nonNeg = (x) => (Number.isFinite(x) && x > 0 ? round3(x) : 0);

const pairs = (headers) => (headers || []).map(([name, value]) => ({ name: String(name), value: String(value) }));

function cookiesFromHeader(value) {
  if (!value) return [];
  return String(value)
    .split(';')
    .map((c) => c.trim())
    .filter(Boolean)
    .map((c) => {
      const eq = c.indexOf('=');
      return eq >= 0 ? { name: c.slice(0, eq), value: c.slice(eq + 1) } : { name: c, value: '' };
    });
}

function setCookies(headers) {
  const out = [];
  for (const [k, v] of headers || []) {
    if (String(k).toLowerCase() !== 'set-cookie') continue;
    const [first, ...attrs] = String(v).split(';');
    const eq = first.indexOf('=');
    const c = { name: first.slice(0, eq >= 0 ? eq : first.length).trim(), value: eq >= 0 ? first.slice(eq + 1).trim() : '' };
    for (const a of attrs) {
      const [ak, ...av] = a.trim().split('=');
      const key = ak.toLowerCase();
      const val = av.join('=');
      if (key === 'path') c.path = val;
      else if (key === 'domain') c.domain = val;
      else if (key === 'expires') c.expires = val;
      else if (key === 'httponly') c.httpOnly = true;
      else if (key === 'secure') c.secure = true;
    }
    out.push(c);
  }
  return out;
}

function bodyMeta(body) {
  if (!body) return undefined;
  const m = { size: body.size, captured: body.captured, truncated: body.truncated, encoding: body.encoding };
  if (body.content_encoding) m.content_encoding = body.content_encoding;
  if (body.note) m.note = body.note;
  return m;
}

/** One HAR entry for a record (live or imported). */
export function harEntry(rec) {
  const s = rec.summary;
  const tx = rec.tx || {};
  const req = tx.request || { method: s.method, url: s.url, http_version: 'HTTP/1.1', headers: [] };
  const res = tx.response || null;
  const t = tx.timing || { start: s.start };
  const total = Number.isFinite(rec.endMs - rec.startMs) ? rec.endMs - rec.startMs : Number(s.duration_ms) || 0;

  const send = nonNeg(msBetween(t.start, t.request_sent));
  let wait = nonNeg(msBetween(t.request_sent || t.start, t.response_start));
  let receive = nonNeg(msBetween(t.response_start, t.end));
  if (!t.response_start) {
    wait = nonNeg(total - send);
    receive = 0;
  }

  const request = {
    method: req.method || s.method,
    url: req.url || s.url,
    httpVersion: req.http_version || 'HTTP/1.1',
    cookies: cookiesFromHeader(headerValue(req.headers, 'cookie')),
    headers: pairs(req.headers),
    queryString: queryPairs(req.path || s.path).map(([name, value]) => ({ name, value })),
    headersSize: -1,
    bodySize: req.body ? req.body.size : 0,
  };
  if (req.body && req.body.text) {
    const mimeType = headerValue(req.headers, 'content-type') || '';
    request.postData = { mimeType, text: req.body.text };
    if (req.body.encoding === 'base64') request.postData._encoding = 'base64';
    else if (isFormType(mimeType)) request.postData.params = parseForm(req.body.text).map(([name, value]) => ({ name, value }));
  }

  const rb = res && res.body;
  const content = {
    size: rb ? bodyBytes(rb).length : 0,
    mimeType: (res && headerValue(res.headers, 'content-type')) || s.content_type || '',
  };
  if (rb && rb.text) {
    content.text = rb.text;
    if (rb.encoding === 'base64') content.encoding = 'base64';
  }
  if (rb && rb.content_encoding && rb.size < content.size) content.compression = content.size - rb.size;

  const response = {
    status: res ? res.status : 0,
    statusText: res ? res.reason || '' : '',
    httpVersion: res ? res.http_version || 'HTTP/1.1' : '',
    cookies: res ? setCookies(res.headers) : [],
    headers: res ? pairs(res.headers) : [],
    content,
    redirectURL: (res && headerValue(res.headers, 'location')) || '',
    headersSize: -1,
    bodySize: rb ? rb.size : -1,
  };
  if (s.error) response._error = s.error;

  const net = tx.network || {};
  const entry = {
    startedDateTime: t.start || s.start,
    time: round3(send + wait + receive),
    request,
    response,
    cache: {},
    timings: { blocked: -1, dns: -1, connect: -1, send, wait, receive, ssl: -1 },
    _qtap: {
      id: s.id,
      source: rec.source,
      direction: s.direction,
      tls: s.tls,
      process: s.process,
      timing: t,
      network: tx.network,
      request_size: s.request_size,
      response_size: s.response_size,
      request_body: bodyMeta(req.body),
      response_body: bodyMeta(rb),
    },
  };
  if (s.container) entry._qtap.container = s.container;
  if (s.error) entry._qtap.error = s.error;
  const ip = remoteIp(net.remote);
  if (ip) entry.serverIPAddress = ip;
  if (s.connection_id) entry.connection = String(s.connection_id);
  return entry;
}

/** "10.0.0.1:443" / "[::1]:8080" to the bare address. */
export function remoteIp(addr) {
  if (!addr) return '';
  const a = String(addr);
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(a);
  if (m) return m[1];
  const parts = a.split(':');
  return parts.length === 2 ? parts[0] : a;
}

/** A HAR 1.2 document for the given records. */
export function toHar(records, { version = 'dev', comment } = {}) {
  const log = {
    version: '1.2',
    creator: { name: 'qtap-devtools', version },
    entries: records.map(harEntry),
  };
  if (comment) log.comment = comment;
  return { log };
}

// ---- import: har-import.js (untrusted input, checked field by field) -------------------

export { fromHar, importHar } from './har-import.js';

// ---- header diff ----------------------------------------------------------------------

/**
 * Compares two header lists by name (case-insensitive, duplicates grouped in order).
 * Returns rows `{name, kind, before, after}` with kind `same`, `added` (only in `after`),
 * `removed` (only in `before`) or `changed`; names in the order they first appear in
 * `after`, then the removed ones in the order of `before`.
 */
export function headerDiff(before, after) {
  const group = (hs) => {
    const m = new Map();
    for (const [k, v] of hs || []) {
      const key = String(k).toLowerCase();
      if (!m.has(key)) m.set(key, { name: String(k), values: [] });
      m.get(key).values.push(String(v));
    }
    return m;
  };
  const a = group(before);
  const b = group(after);
  const rows = [];
  for (const [key, { name, values }] of b) {
    const old = a.get(key);
    if (!old) rows.push({ name, kind: 'added', before: [], after: values });
    else {
      const same = old.values.length === values.length && old.values.every((v, i) => v === values[i]);
      rows.push({ name, kind: same ? 'same' : 'changed', before: old.values, after: values });
    }
  }
  for (const [key, { name, values }] of a) if (!b.has(key)) rows.push({ name, kind: 'removed', before: values, after: [] });
  return rows;
}

/** The most recent record in `candidates` with the same method + host + path as `rec`. */
export function findCounterpart(rec, candidates) {
  for (let i = candidates.length - 1; i >= 0; i--) {
    const c = candidates[i];
    if (c !== rec && c.key === rec.key) return c;
  }
  return null;
}
