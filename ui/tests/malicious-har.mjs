// A HAR file crafted to turn "Copy as cURL" into more than one harmless command, to break
// the import with ill-typed fields, and to inject HTML. Every attempt tries to create the
// file CANARY in the shell's working directory. Used by the unit and the browser tests.

const T = 'touch CANARY';
const entry = (request, extra = {}) => ({
  startedDateTime: '2026-11-20T08:00:00.000Z',
  time: 12,
  request: { httpVersion: 'HTTP/1.1', cookies: [], queryString: [], headersSize: -1, bodySize: 0, headers: [], ...request },
  response: {
    status: 200, statusText: 'OK', httpVersion: 'HTTP/1.1', cookies: [], headers: [{ name: 'Content-Type', value: 'text/plain' }],
    content: { size: 2, mimeType: 'text/plain', text: 'ok' }, redirectURL: '', headersSize: -1, bodySize: 2,
  },
  cache: {},
  timings: { blocked: -1, dns: -1, connect: -1, send: 1, wait: 10, receive: 1, ssl: -1 },
  ...extra,
});

/** The entries, each named (its URL's last segment) for the tests to find it. */
export function maliciousHar() {
  const entries = [
    // the reproduction: a newline in _qtap content_encoding ended the `#` comment
    entry(
      { method: 'POST', url: 'http://victim.test/comment-inject', headers: [{ name: 'Content-Type', value: 'text/plain' }], postData: { mimeType: 'text/plain', text: 'hello' }, bodySize: 5 },
      { _qtap: { request_body: { size: '1\ntouch CANARY\n', captured: `$(${T})`, truncated: true, content_encoding: `gzip\n${T}\n#`, note: '' }, direction: 'egress' } },
    ),
    // the same through a note, U+2028, U+2029 and NEL instead of LF
    entry(
      { method: 'PUT', url: 'http://victim.test/separators', postData: { mimeType: 'text/plain', text: 'x' }, bodySize: 1 },
      { _qtap: { request_body: { truncated: true, captured: 1, size: 2, content_encoding: `br\u2028${T}\u2029${T}\u0085${T}\r${T}` } } },
    ),
    // header names and values with CR/LF, other controls, quotes and substitutions
    entry({
      method: 'GET',
      url: 'http://victim.test/headers',
      headers: [
        { name: 'X-Crlf', value: `a\r\n${T}\r\nb` },
        { name: `X-Name\n${T}`, value: 'v' },
        { name: '@CANARY', value: 'read a file' },
        { name: 'X-Quotes', value: `it's "$(${T})" \`${T}\` $'\\x41' \${IFS}; ${T} | ${T} & ${T}` },
        { name: 'X-Controls', value: `\u0003\u001b[2J\u0015\u007f\u0085\u2028\u2029\u202e${T}` },
        { name: 'X-Html', value: '<img src=x onerror=alert(1)>' },
        { name: 'X-Empty', value: '' },
      ],
    }),
    // methods with spaces and shell metacharacters
    entry({ method: `GET; ${T}`, url: 'http://victim.test/method-semicolon' }),
    entry({ method: `DELETE $(${T}) \`${T}\``, url: 'http://victim.test/method-subst' }),
    entry({ method: `P\nOST ${T}`, url: 'http://victim.test/method-newline' }),
    // URLs with quotes, $'…', backticks, $(…), globs, and ones curl would take for options
    entry({ method: 'GET', url: `http://victim.test/url-quotes?q='$(${T})'&r=\`${T}\`&s=$'\\x27'` }),
    entry({ method: 'GET', url: 'http://victim.test/url-glob[1-9]{a,b}' }),
    entry({ method: 'GET', url: '-oCANARY' }),
    entry({ method: 'GET', url: 'file:///etc/passwd' }),
    // a body curl would read a file for (`--data-binary @name`)
    entry({ method: 'POST', url: 'http://victim.test/body-at', postData: { mimeType: 'text/plain', text: '@CANARY' }, bodySize: 7 }),
    entry({ method: 'POST', url: 'http://victim.test/body-shell', postData: { mimeType: 'text/plain', text: `'\n${T}\n'$(${T})\u0003\n${T}\n` }, bodySize: 30 }),
    // ill-typed fields everywhere
    entry(
      {
        method: 7, url: 'http://victim.test/ill-typed', httpVersion: { v: 1 }, headers: [{ name: 5, value: { x: 1 } }, 'X-Str: 1', null, { name: 'X-Num', value: 42 }],
        postData: { mimeType: 'text/plain', text: ['array'] }, bodySize: 'many',
      },
      {
        time: 'slow', startedDateTime: 'yesterday', serverIPAddress: `1.2.3.4\n${T}`, connection: { id: 1 }, timings: 'none',
        _qtap: { process: 'root', tls: 'yes', direction: `in\n${T}`, request_size: -5, response_size: '12', container: [1], network: { remote: 7, bytes_sent: 'lots' }, timing: { start: 'x', end: 3 } },
      },
    ),
    // HTML where text is expected
    entry(
      { method: 'GET', url: 'http://victim.test/html-<b>bold</b>' },
      { _qtap: { process: { pid: 1, exe: '/bin/<script>alert(1)</script>', name: '<img src=x onerror=alert(2)>', user: '<i>root</i>' } } },
    ),
    // not entries at all
    null,
    5,
    { startedDateTime: '2026-11-20T08:00:00.000Z' },
  ];
  entries[13].response.statusText = '<img src=x onerror=alert(3)>';
  entries[13].response.content = { size: 30, mimeType: 'text/html', text: '<img src=x onerror=alert(4)><script>alert(5)</script>' };
  return { log: { version: '1.2', creator: { name: 'crafted', version: '1' }, entries } };
}

/** How many entries of maliciousHar() are real entries (the last three are not). */
export const MALICIOUS_ENTRIES = 14;

const isHazardOrLf = (ch) => {
  const c = ch.codePointAt(0);
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029 || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
};

/** What the import must make of one-line text: each control character (tab too, unless `tab`) becomes U+FFFD. */
export function expectedLine(s, { tab = false } = {}) {
  return [...String(s).toWellFormed()].map((ch) => (isHazardOrLf(ch) && !(tab && ch === '\t') ? '\ufffd' : ch)).join('');
}

/**
 * Problems with the shape of one imported `{summary, tx}`: every field the UI reads has its
 * type, and no text but a body holds a control character (a header value may hold a tab).
 */
export function shapeProblems({ summary, tx }) {
  const bad = [];
  const str = (v, p, tab = false) => {
    if (typeof v !== 'string') bad.push(`${p} is ${typeof v}`);
    else if ([...v].some((ch) => isHazardOrLf(ch) && !(tab && ch === '\t'))) bad.push(`${p} holds a control character`);
    else if (!v.isWellFormed()) bad.push(`${p} is not well-formed`);
  };
  const num = (v, p) => (typeof v === 'number' && Number.isFinite(v) ? null : bad.push(`${p} is ${typeof v}`));
  for (const k of ['id', 'connection_id', 'start', 'direction', 'method', 'url', 'host', 'path']) str(summary[k], `summary.${k}`);
  for (const k of ['duration_ms', 'request_size', 'response_size']) num(summary[k], `summary.${k}`);
  if (typeof summary.tls !== 'boolean') bad.push('summary.tls');
  if (summary.status !== undefined && !Number.isInteger(summary.status)) bad.push('summary.status');
  if (summary.content_type !== undefined) str(summary.content_type, 'summary.content_type');
  if (summary.error !== undefined) str(summary.error, 'summary.error');
  num(summary.process.pid, 'process.pid');
  for (const k of ['exe', 'name', 'user']) str(summary.process[k], `process.${k}`);
  if (summary.container) for (const k of ['id', 'runtime']) str(summary.container[k], `container.${k}`); // required in events
  for (const [k, v] of Object.entries(summary.container || {})) str(v, `container.${k}`);
  for (const [side, m] of [['request', tx.request], ['response', tx.response]]) {
    if (!m) continue;
    str(m.http_version, `${side}.http_version`);
    if (!Array.isArray(m.headers)) bad.push(`${side}.headers`);
    for (const h of m.headers || []) {
      if (!Array.isArray(h) || h.length !== 2) bad.push(`${side}.headers entry`);
      else {
        str(h[0], `${side}.header name`);
        str(h[1], `${side}.header value`, true);
      }
    }
    const b = m.body;
    if (typeof b.text !== 'string' || !b.text.isWellFormed()) bad.push(`${side}.body.text`);
    if (b.encoding !== 'utf8' && b.encoding !== 'base64') bad.push(`${side}.body.encoding`);
    for (const k of ['size', 'captured']) if (!Number.isSafeInteger(b[k]) || b[k] < 0) bad.push(`${side}.body.${k} = ${b[k]}`);
    if (typeof b.truncated !== 'boolean') bad.push(`${side}.body.truncated`);
    if (b.content_encoding !== undefined && !/^[A-Za-z0-9._-]+(?:\s*,\s*[A-Za-z0-9._-]+)*$/.test(b.content_encoding)) bad.push(`${side}.body.content_encoding`);
    if (b.note !== undefined) str(b.note, `${side}.body.note`);
  }
  if (tx.response) str(tx.response.reason, 'response.reason');
  for (const k of ['local', 'remote']) str(tx.network[k], `network.${k}`);
  for (const k of ['bytes_sent', 'bytes_received']) num(tx.network[k], `network.${k}`);
  for (const [k, v] of Object.entries(tx.timing)) if (v !== undefined) str(v, `timing.${k}`);
  for (const n of tx.import_notes || []) str(n, 'import note');
  return bad;
}
