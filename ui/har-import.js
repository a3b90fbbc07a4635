// HAR import. A HAR file is untrusted input (anyone can mail one, or craft one): every
// field read here is type-checked, bounded in bytes and cleaned of control characters
// before the table, the detail pane or Copy as cURL sees it. What does not fit is dropped
// or coerced, and every change becomes a note shown with the request (`tx.import_notes`).
// Pure: JSON text or an object in, `{summary, tx}` pairs shaped like the daemon's events out.
import { tsToMs, headerValue } from './util.js';

const KiB = 1024;
const MiB = 1024 * KiB;

export const IMPORT_LIMITS = Object.freeze({
  fileBytes: 256 * MiB, // the whole file, checked before it is read (app.js) and here
  entries: 100000, // entries imported from one file; the rest are left out with a note
  headers: 1000, // per request or response
  shortBytes: 256, // a method, an HTTP version, an id, an address, a timestamp
  textBytes: 4 * KiB, // a status text, a MIME type, process and container fields, notes, errors
  valueBytes: 64 * KiB, // a URL, a header value
  bodyBytes: 32 * MiB, // the text of one body (base64 text counts as its characters)
  notes: 40, // notes kept per entry (their number is always counted)
});

/** An HTTP token (RFC 9110 §5.6.2): what a method and a header name must be. */
export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const CODINGS = /^[A-Za-z0-9._-]+(?:\s*,\s*[A-Za-z0-9._-]+)*$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/; // standard alphabet, padded to a multiple of 4

// C0 controls, DEL, C1 controls (NEL among them), LINE/PARAGRAPH SEPARATOR and the bidi
// embedding/override/isolate controls (they reorder how a URL reads on screen). Tab is
// handled apart: it is legal inside a header value.
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const REPLACEMENT = '\ufffd';

const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const kind = (v) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`);
const fmtLimit = (n) => (n >= MiB ? `${n / MiB} MiB` : n >= KiB ? `${n / KiB} KiB` : `${n} bytes`);

/** Notes of one entry (or of the file): `path: what happened`, at most `max` kept. */
class Notes {
  constructor(max = IMPORT_LIMITS.notes) {
    this.list = [];
    this.count = 0;
    this.max = max;
  }
  add(path, msg) {
    this.count++;
    if (this.list.length < this.max) this.list.push(`${path}: ${msg}`);
  }
  done() {
    const out = this.list.slice();
    if (this.count > out.length) out.push(`… and ${this.count - out.length} more changes`);
    return out;
  }
}

const encoder = new TextEncoder();

/** UTF-8 length of a string, counting no further than `stop`. */
function utf8Length(s, stop = Infinity) {
  let n = 0;
  for (let i = 0; i < s.length && n <= stop; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** `s` cut to at most `max` UTF-8 bytes, never inside a character. */
function capBytes(s, max) {
  if (s.length * 3 <= max || utf8Length(s, max) <= max) return { s, cut: false };
  const { read } = encoder.encodeInto(s, new Uint8Array(max));
  return { s: s.slice(0, read), cut: true };
}

/**
 * Text read from the file. Numbers and booleans are converted, anything else is dropped;
 * invalid UTF-16 is repaired; in one-line text every control character becomes U+FFFD;
 * longer than `max` bytes is cut. Each change is noted under `path`.
 */
export function readText(v, path, notes, { max = IMPORT_LIMITS.textBytes, line = true, tab = false, def = '' } = {}) {
  if (v === undefined || v === null) return def;
  let s;
  if (typeof v === 'string') s = v;
  else if ((typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean') {
    s = String(v);
    notes.add(path, `${kind(v)} where text was expected: converted to text`);
  } else {
    notes.add(path, `${kind(v)} where text was expected: left out`);
    return def;
  }
  if (!s.isWellFormed()) {
    s = s.toWellFormed();
    notes.add(path, 'invalid UTF-16 (a lone surrogate) replaced with \ufffd');
  }
  if (line) {
    let n = 0;
    s = s.replace(CONTROLS, () => (n++, REPLACEMENT));
    if (!tab) s = s.replace(/\t/g, () => (n++, REPLACEMENT));
    if (n) notes.add(path, `${n} control character${n === 1 ? '' : 's'} (line breaks, escapes…) replaced with \ufffd`);
  }
  const c = capBytes(s, max);
  if (c.cut) notes.add(path, `longer than ${fmtLimit(max)}: cut`);
  return c.s;
}

/** A number in [min, max] (an integer when `int`); numeric text is converted; else `def`. */
export function readNumber(v, path, notes, { min = -Infinity, max = Number.MAX_SAFE_INTEGER, int = false, def } = {}) {
  if (v === undefined || v === null) return def;
  let x = v;
  if (typeof v === 'string' && v.trim() !== '' && v.length < 32 && Number.isFinite(Number(v))) {
    x = Number(v);
    notes.add(path, 'a number written as text: converted');
  }
  if (typeof x !== 'number' || !Number.isFinite(x) || (int && !Number.isSafeInteger(x)) || x < min || x > max) {
    notes.add(path, `${typeof x === 'number' ? `${x}` : kind(v)} is not ${int ? 'an integer' : 'a number'} in ${min}…${max}: left out`);
    return def;
  }
  return x;
}

function readBool(v, path, notes, def) {
  if (v === undefined || v === null) return def;
  if (typeof v === 'boolean') return v;
  notes.add(path, `${kind(v)} where true/false was expected: left out`);
  return def;
}

function readObject(v, path, notes) {
  if (v === undefined || v === null) return {};
  if (isObj(v)) return v;
  notes.add(path, `${kind(v)} where an object was expected: left out`);
  return {};
}

function readStamp(v, path, notes) {
  const s = readText(v, path, notes, { max: IMPORT_LIMITS.shortBytes });
  if (!s) return undefined;
  if (!Number.isFinite(tsToMs(s))) {
    notes.add(path, 'not a date and time: left out');
    return undefined;
  }
  return s;
}

/** HAR `[{name, value}]` to `[[name, value]]`; a name that is not a token is noted. */
function readHeaders(v, path, notes) {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    notes.add(path, `${kind(v)} where a list of {name, value} was expected: left out`);
    return [];
  }
  let list = v;
  if (list.length > IMPORT_LIMITS.headers) {
    notes.add(path, `${list.length} headers, more than ${IMPORT_LIMITS.headers}: the rest left out`);
    list = list.slice(0, IMPORT_LIMITS.headers);
  }
  const out = [];
  list.forEach((h, i) => {
    const p = `${path}[${i}]`;
    if (!isObj(h)) {
      notes.add(p, `${kind(h)} where {name, value} was expected: left out`);
      return;
    }
    const name = readText(h.name, `${p}.name`, notes, { max: IMPORT_LIMITS.textBytes });
    if (!name) {
      notes.add(p, 'a header without a name: left out');
      return;
    }
    if (!TOKEN.test(name) && !/^:[a-z]+$/.test(name)) notes.add(`${p}.name`, 'not a valid HTTP field name: shown, but left out of Copy as cURL');
    out.push([name, readText(h.value, `${p}.value`, notes, { max: IMPORT_LIMITS.valueBytes, tab: true })]);
  });
  return out;
}

function readStrings(o, keys, path, notes, max = IMPORT_LIMITS.textBytes) {
  const out = {};
  for (const k of keys) if (o[k] !== undefined && o[k] !== null) out[k] = readText(o[k], `${path}.${k}`, notes, { max });
  return out;
}

function readProcess(v, path, notes) {
  const o = readObject(v, path, notes);
  return {
    pid: readNumber(o.pid, `${path}.pid`, notes, { min: 0, max: 2 ** 32 - 1, int: true, def: 0 }),
    exe: readText(o.exe, `${path}.exe`, notes),
    name: readText(o.name, `${path}.name`, notes),
    user: readText(o.user, `${path}.user`, notes),
  };
}

function readNetwork(v, path, notes) {
  const o = readObject(v, path, notes);
  const n = {
    local: readText(o.local, `${path}.local`, notes, { max: IMPORT_LIMITS.shortBytes }),
    remote: readText(o.remote, `${path}.remote`, notes, { max: IMPORT_LIMITS.shortBytes }),
    bytes_sent: readNumber(o.bytes_sent, `${path}.bytes_sent`, notes, { min: 0, int: true, def: 0 }),
    bytes_received: readNumber(o.bytes_received, `${path}.bytes_received`, notes, { min: 0, int: true, def: 0 }),
  };
  return Object.assign(n, readStrings(o, ['tls_version', 'sni'], path, notes, IMPORT_LIMITS.shortBytes));
}

function readTiming(v, path, notes) {
  const o = readObject(v, path, notes);
  const t = {};
  for (const k of ['start', 'request_sent', 'response_start', 'end']) {
    const s = readStamp(o[k], `${path}.${k}`, notes);
    if (s) t[k] = s;
  }
  return t.start && t.end ? t : null;
}

/** A body: its text (capped), encoding, and the `_qtap` body fields (size, captured, …). */
function readBody(textV, encodingV, size, metaV, path, metaPath, notes) {
  let text = readText(textV, `${path}.text`, notes, { line: false, max: Infinity });
  let encoding = readText(encodingV, `${path}.encoding`, notes, { max: IMPORT_LIMITS.shortBytes });
  if (encoding && encoding !== 'base64') {
    notes.add(`${path}.encoding`, 'not "base64": the text is read as it is');
    encoding = '';
  }
  const b64 = encoding === 'base64' ? text.replace(/\s+/g, '') : '';
  if (encoding === 'base64' && !(BASE64.test(b64) && b64.length % 4 === 0)) {
    notes.add(`${path}.text`, 'not base64: shown as text');
    encoding = '';
  }
  if (encoding === 'base64') text = b64;
  let cut = false;
  const c = encoding === 'base64' ? { s: text.slice(0, IMPORT_LIMITS.bodyBytes), cut: text.length > IMPORT_LIMITS.bodyBytes } : capBytes(text, IMPORT_LIMITS.bodyBytes);
  if (c.cut) {
    notes.add(`${path}.text`, `longer than ${fmtLimit(IMPORT_LIMITS.bodyBytes)}: cut`);
    text = c.s;
    cut = true;
  }
  const bytes = encoding === 'base64' ? Math.floor((text.replace(/[\s=]/g, '').length * 3) / 4) : utf8Length(text);
  const body = { size: size >= 0 ? size : bytes, captured: bytes, truncated: false, encoding: encoding || 'utf8', text };
  if (metaV !== undefined && metaV !== null) {
    const m = readObject(metaV, metaPath, notes);
    const num = (k) => readNumber(m[k], `${metaPath}.${k}`, notes, { min: 0, int: true });
    const size2 = num('size');
    const captured = num('captured');
    const truncated = readBool(m.truncated, `${metaPath}.truncated`, notes);
    if (size2 !== undefined) body.size = size2;
    if (captured !== undefined) body.captured = captured;
    if (truncated !== undefined) body.truncated = truncated;
    const ce = readText(m.content_encoding, `${metaPath}.content_encoding`, notes, { max: 64 });
    if (ce && CODINGS.test(ce)) body.content_encoding = ce;
    else if (ce) notes.add(`${metaPath}.content_encoding`, 'not a list of content codings: left out');
    const note = readText(m.note, `${metaPath}.note`, notes);
    if (note) body.note = note;
  }
  if (cut) {
    body.truncated = true;
    body.captured = encoding === 'base64' ? Math.floor((text.length * 3) / 4) : utf8Length(text);
    body.size = Math.max(body.size, body.captured);
  }
  return body;
}

const iso = (ms) => (Number.isFinite(ms) ? new Date(ms).toISOString() : undefined);

/**
 * Parses a HAR document (JSON text or an object). Returns `{entries, notes}`: the entries as
 * `{summary, tx}` pairs (each with `tx.import_notes` when a field was dropped or changed) and
 * the file's own notes (entries left out). Throws an Error that says what is wrong when the
 * input is not a HAR at all.
 */
export function importHar(input, { idPrefix = 'har' } = {}) {
  let har = input;
  if (typeof input === 'string') {
    if (input.length > IMPORT_LIMITS.fileBytes) throw new Error(`the file is larger than ${fmtLimit(IMPORT_LIMITS.fileBytes)}`);
    try {
      har = JSON.parse(input);
    } catch (e) {
      throw new Error(`not a HAR file: not JSON (${String(e.message).slice(0, 120)})`);
    }
  }
  if (!isObj(har)) throw new Error(`not a HAR file: the top level is ${kind(har)}, not an object with "log"`);
  if (!isObj(har.log)) throw new Error('not a HAR file: no "log" object');
  if (!Array.isArray(har.log.entries)) throw new Error('not a HAR file: no log.entries array');
  const fileNotes = new Notes();
  let list = har.log.entries;
  if (list.length > IMPORT_LIMITS.entries) {
    fileNotes.add('log.entries', `${list.length} entries, more than ${IMPORT_LIMITS.entries}: only the first ${IMPORT_LIMITS.entries} imported`);
    list = list.slice(0, IMPORT_LIMITS.entries);
  }
  const entries = [];
  list.forEach((e, i) => {
    const p = `entries[${i}]`;
    if (!isObj(e)) fileNotes.add(p, `${kind(e)}, not an entry: left out`);
    else if (!isObj(e.request)) fileNotes.add(p, 'no request object: left out');
    else entries.push(importEntry(e, `${idPrefix}:${i}`));
  });
  if (list.length && !entries.length) throw new Error(`not a HAR file: none of its ${list.length} entries has a request`);
  return { entries, notes: fileNotes.done() };
}

/** The entries of a HAR document as `{summary, tx}` pairs (see importHar). */
export function fromHar(input, opts) {
  return importHar(input, opts).entries;
}

function importEntry(e, id) {
  const notes = new Notes();
  const L = IMPORT_LIMITS;
  const q = readObject(e._qtap, '_qtap', notes);
  const rq = e.request;
  const rs = readObject(e.response, 'response', notes);

  let method = readText(rq.method, 'request.method', notes, { max: L.shortBytes });
  if (!method) {
    notes.add('request.method', 'missing: GET assumed');
    method = 'GET';
  } else if (!TOKEN.test(method)) notes.add('request.method', 'not an HTTP method (a token): kept as text');
  const url = readText(rq.url, 'request.url', notes, { max: L.valueBytes });
  let u = null;
  try {
    u = new URL(url);
  } catch {
    u = null;
  }
  if (!u || !/^https?:$/.test(u.protocol)) {
    notes.add('request.url', 'not an absolute http(s) URL');
    u = { host: '', pathname: u ? u.pathname : url || '/', search: u ? u.search : '', protocol: 'http:' };
  }
  const path = (u.pathname || '/') + (u.search || '');

  const start = readStamp(e.startedDateTime, 'startedDateTime', notes) || '';
  const startMs = tsToMs(start);
  const time = readNumber(e.time, 'time', notes, { min: 0, max: 1e12, def: 0 });
  const tm = readObject(e.timings, 'timings', notes);
  const phase = (k) => {
    const x = readNumber(tm[k], `timings.${k}`, notes, { min: -1, max: 1e12, def: -1 });
    return x > 0 ? x : 0;
  };
  const pre = phase('blocked') + phase('dns') + phase('connect');
  const send = phase('send');
  const wait = phase('wait');
  const timing = (q.timing !== undefined && readTiming(q.timing, '_qtap.timing', notes)) || {
    start,
    request_sent: iso(startMs + pre + send),
    response_start: iso(startMs + pre + send + wait),
    end: iso(startMs + time),
  };

  const status = readNumber(rs.status, 'response.status', notes, { min: 0, max: 999, int: true, def: 0 }) || undefined;
  const reqHeaders = readHeaders(rq.headers, 'request.headers', notes);
  const resHeaders = readHeaders(rs.headers, 'response.headers', notes);
  const content = readObject(rs.content, 'response.content', notes);
  const pd = readObject(rq.postData, 'request.postData', notes);
  const reqBodySize = readNumber(rq.bodySize, 'request.bodySize', notes, { min: -1, int: true, def: -1 });
  const resBodySize = readNumber(rs.bodySize, 'response.bodySize', notes, { min: -1, int: true, def: -1 });
  const reqBody = readBody(pd.text, pd._encoding, reqBodySize, q.request_body, 'request.postData', '_qtap.request_body', notes);
  const resBody = readBody(content.text, content.encoding, resBodySize, q.response_body, 'response.content', '_qtap.response_body', notes);
  const ct = readText(content.mimeType, 'response.content.mimeType', notes) || (headerValue(resHeaders, 'content-type') || '').replace(/\t/g, ' ');
  const contentSize = readNumber(content.size, 'response.content.size', notes, { min: -1, int: true, def: 0 });
  const size = (k) => readNumber(q[k], `_qtap.${k}`, notes, { min: 0, int: true });
  const direction = readText(q.direction, '_qtap.direction', notes, { max: L.shortBytes });
  if (direction && direction !== 'egress' && direction !== 'ingress') notes.add('_qtap.direction', 'neither egress nor ingress: egress assumed');
  const tls = readBool(q.tls, '_qtap.tls', notes);
  const error = readText(rs._error, 'response._error', notes) || readText(q.error, '_qtap.error', notes);

  const summary = {
    id,
    connection_id: readText(e.connection, 'connection', notes, { max: L.shortBytes }),
    start,
    duration_ms: time,
    direction: direction === 'ingress' ? 'ingress' : 'egress',
    method,
    url,
    host: u.host,
    path,
    request_size: size('request_size') ?? reqBody.size,
    response_size: size('response_size') ?? (resBodySize >= 0 ? resBodySize : contentSize > 0 ? contentSize : 0),
    tls: tls !== undefined ? tls : u.protocol === 'https:',
    process: readProcess(q.process, '_qtap.process', notes),
  };
  if (status !== undefined) summary.status = status;
  if (ct) summary.content_type = ct;
  if (q.container !== undefined && q.container !== null) {
    const c = readObject(q.container, '_qtap.container', notes);
    // id and runtime are always there in an event (docs/events.md); the rest when known
    if (Object.keys(c).length) summary.container = { id: '', runtime: '', ...readStrings(c, ['id', 'name', 'image', 'runtime', 'service', 'pod', 'namespace'], '_qtap.container', notes) };
  }
  if (status === undefined) summary.error = error || 'no response in the HAR entry';

  const remote = readText(e.serverIPAddress, 'serverIPAddress', notes, { max: L.shortBytes });
  const tx = {
    ...summary,
    request: {
      method,
      url,
      scheme: String(u.protocol).replace(/:$/, ''),
      authority: u.host,
      path,
      http_version: readText(rq.httpVersion, 'request.httpVersion', notes, { max: L.shortBytes }) || 'HTTP/1.1',
      headers: reqHeaders,
      body: reqBody,
    },
    timing,
    network: q.network !== undefined && q.network !== null ? readNetwork(q.network, '_qtap.network', notes) : { local: '', remote, bytes_sent: 0, bytes_received: 0 },
  };
  if (status !== undefined) {
    tx.response = {
      status,
      reason: readText(rs.statusText, 'response.statusText', notes),
      http_version: readText(rs.httpVersion, 'response.httpVersion', notes, { max: L.shortBytes }) || 'HTTP/1.1',
      headers: resHeaders,
      body: resBody,
    };
  }
  if (notes.count) tx.import_notes = notes.done();
  return { summary, tx };
}
