// Small pure helpers shared by the UI modules: time, sizes, names, bodies.
// Nothing here touches the DOM, so every function runs under `node --test` too.

const RFC3339 = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/;

/** RFC 3339 (nanoseconds allowed) to milliseconds since the epoch, as a float. */
export function tsToMs(s) {
  if (typeof s !== 'string') return NaN;
  const m = RFC3339.exec(s);
  if (!m) return Date.parse(s);
  const base = Date.parse(m[1] + (m[3] === 'Z' ? 'Z' : m[3]));
  const frac = m[2] ? Number('0.' + m[2]) * 1000 : 0;
  return base + frac;
}

/** Milliseconds between two RFC 3339 stamps, or NaN when one is missing. */
export function msBetween(a, b) {
  if (!a || !b) return NaN;
  return tsToMs(b) - tsToMs(a);
}

export function fmtBytes(n) {
  if (n == null || !Number.isFinite(n)) return '—';
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(n < 1e4 ? 1 : 0)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} MB`;
  return `${(n / 1e9).toFixed(1)} GB`;
}

export function fmtMs(ms) {
  if (ms == null || !Number.isFinite(ms)) return '—';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Local wall-clock time with milliseconds: 10:00:00.123 */
export function fmtClock(ms) {
  if (!Number.isFinite(ms)) return '—';
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Splits a request target into path and query (fragment dropped). */
export function splitTarget(target) {
  const t = String(target || '');
  const hash = t.indexOf('#');
  const noHash = hash >= 0 ? t.slice(0, hash) : t;
  const q = noHash.indexOf('?');
  return q >= 0 ? { path: noHash.slice(0, q), query: noHash.slice(q + 1) } : { path: noHash, query: '' };
}

/** What the Name column shows: the last path segment (and the query), like DevTools. */
export function displayName(path, host) {
  const { path: p, query } = splitTarget(path);
  const segs = p.split('/').filter(Boolean);
  const last = segs.length ? segs[segs.length - 1] : (host || '/');
  return query ? `${last}?${query}` : last;
}

/** What a response whose request the capture never saw shows in place of a name or method. */
export const NOT_CAPTURED = '(request not captured)';

/** The Name column: `(request not captured)` for such a response, else {@link displayName}. */
export function rowName(summary) {
  return summary.request_not_captured === true ? NOT_CAPTURED : displayName(summary.path, summary.host);
}

export function mimeOf(contentType) {
  return String(contentType || '').split(';')[0].trim().toLowerCase();
}

/** Short content type for the Type column: json, html, png, form, js ... */
export function shortType(contentType) {
  const mime = mimeOf(contentType);
  if (!mime) return '';
  const [type, sub = ''] = mime.split('/');
  if (sub.endsWith('+json') || sub === 'json') return 'json';
  if (sub.endsWith('+xml') && type !== 'image') return 'xml';
  if (sub === 'x-www-form-urlencoded') return 'form';
  if (sub === 'javascript' || sub === 'x-javascript' || sub === 'ecmascript') return 'js';
  if (sub === 'svg+xml') return 'svg';
  if (type === 'text' && sub === 'plain') return 'text';
  if (sub.startsWith('x-')) return sub.slice(2);
  return sub || type;
}

export const isJsonType = (ct) => /(^|\/|\+)json$/.test(mimeOf(ct));
export const isFormType = (ct) => mimeOf(ct) === 'application/x-www-form-urlencoded';
export const isImageType = (ct) => mimeOf(ct).startsWith('image/');

/** "2xx" … "5xx", or "failed" when no response status was seen. */
export function statusClass(status) {
  if (!status) return 'failed';
  const c = Math.floor(status / 100);
  return c >= 1 && c <= 5 ? `${c}xx` : 'other';
}

/** The `grpc` part of a transaction when it is a gRPC call whose status was seen, else null. */
export function grpcWithStatus(tx) {
  const g = tx && tx.grpc;
  return g && g.status != null ? g : null;
}

/** A gRPC status as a name: `NOT_FOUND`, or `status 17` for a code without a known name. */
export function grpcStatusName(g) {
  return g.status_name || `status ${g.status}`;
}

/**
 * Text of the Status column: the HTTP status, `(failed)` without a response, and for a
 * gRPC call whose status was seen `200 · OK` / `200 · NOT_FOUND`.
 */
export function statusText(summary, tx) {
  if (!summary || summary.status == null) return '(failed)';
  const g = grpcWithStatus(tx);
  return g ? `${summary.status} · ${grpcStatusName(g)}` : String(summary.status);
}

/**
 * A row is shown red when the server failed it, when the exchange did not complete, or
 * when a gRPC call ended with a status other than OK (0) — over HTTP 200.
 */
export function isErrorRow(summary, tx) {
  if (!summary) return false;
  if (summary.status == null) return true;
  const g = grpcWithStatus(tx);
  if (g && g.status !== 0) return true;
  return summary.status >= 400;
}

/** First value of a header, case-insensitive; undefined when absent. */
export function headerValue(headers, name) {
  const n = name.toLowerCase();
  for (const [k, v] of headers || []) if (String(k).toLowerCase() === n) return v;
  return undefined;
}

// ---- bodies ---------------------------------------------------------------------------

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64REV = (() => {
  const r = new Int16Array(256).fill(-1);
  for (let i = 0; i < 64; i++) r[B64.charCodeAt(i)] = i;
  r['-'.charCodeAt(0)] = 62;
  r['_'.charCodeAt(0)] = 63;
  return r;
})();

/** Base64 (standard or URL-safe, padding and whitespace tolerated) to bytes. */
export function b64ToBytes(s) {
  const str = String(s || '');
  const out = new Uint8Array(Math.floor((str.length * 3) / 4) + 3);
  let acc = 0, bits = 0, n = 0;
  for (let i = 0; i < str.length; i++) {
    const v = B64REV[str.charCodeAt(i) & 255];
    if (v < 0) continue;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 255;
    }
  }
  return out.subarray(0, n);
}

export function bytesToB64(bytes) {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64[v >> 18] + B64[(v >> 12) & 63] + B64[(v >> 6) & 63] + B64[v & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const v = bytes[i] << 16;
    out += B64[v >> 18] + B64[(v >> 12) & 63] + '==';
  } else if (rest === 2) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += B64[v >> 18] + B64[(v >> 12) & 63] + B64[(v >> 6) & 63] + '=';
  }
  return out;
}

/** The bytes of a captured body, whatever its encoding. */
export function bodyBytes(body) {
  if (!body || !body.text) return new Uint8Array(0);
  if (body.encoding === 'base64') return b64ToBytes(body.text);
  return new TextEncoder().encode(body.text);
}

/** Classic hex dump: offset, 16 bytes in hex, printable ASCII. */
export function hexDump(bytes, limit = bytes.length) {
  const n = Math.min(bytes.length, limit);
  const lines = [];
  for (let off = 0; off < n; off += 16) {
    let hex = '';
    let asc = '';
    for (let i = 0; i < 16; i++) {
      if (off + i < n) {
        const b = bytes[off + i];
        hex += b.toString(16).padStart(2, '0') + ' ';
        asc += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.';
      } else {
        hex += '   ';
      }
      if (i === 7) hex += ' ';
    }
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hex} ${asc}`);
  }
  return lines.join('\n');
}

/** Memory a body costs in the page (roughly what the ring buffer's byte cap counts). */
export function bodyCost(body) {
  if (!body) return 0;
  return Math.max(Number(body.captured) || 0, body.text ? body.text.length : 0);
}

/** Pretty JSON text, or null when `text` is not JSON. */
export function prettyJson(text) {
  if (typeof text !== 'string' || !/^\s*[[{"\d\-tfn]/.test(text)) return null;
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return null;
  }
}

const JSON_TOKEN = /("(?:[^"\\\n]|\\.)*")(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|\b(true|false|null)\b|([^"\d\-tfn]+|.)/gy;

/** Splits (pretty) JSON text into classed tokens for colouring; the texts concatenate back. */
export function jsonTokens(text) {
  const out = [];
  JSON_TOKEN.lastIndex = 0;
  let m;
  while (JSON_TOKEN.lastIndex < text.length && (m = JSON_TOKEN.exec(text))) {
    if (m[1] !== undefined) {
      out.push({ cls: m[2] !== undefined ? 'key' : 'str', text: m[1] });
      if (m[2] !== undefined) out.push({ cls: 'punct', text: m[2] });
    } else if (m[3] !== undefined) out.push({ cls: 'num', text: m[3] });
    else if (m[4] !== undefined) out.push({ cls: 'lit', text: m[4] });
    else out.push({ cls: 'punct', text: m[5] });
  }
  return out;
}

/** Decoded key/value pairs of an x-www-form-urlencoded body. */
export function parseForm(text) {
  const out = [];
  for (const part of String(text || '').split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const dec = (s) => {
      try {
        return decodeURIComponent(s.replace(/\+/g, ' '));
      } catch {
        return s;
      }
    };
    out.push(eq >= 0 ? [dec(part.slice(0, eq)), dec(part.slice(eq + 1))] : [dec(part), '']);
  }
  return out;
}

/** Query-string pairs of a request target (for HAR and the Payload tab). */
export function queryPairs(target) {
  return parseForm(splitTarget(target).query);
}

/** File-name friendly local time stamp: 20261124-100000 */
export function fileStamp(d = new Date()) {
  return `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}-${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`;
}
