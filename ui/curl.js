// "Copy as cURL": a POSIX shell command line that repeats a captured request. Pure.
// The command is pasted into a terminal, and what it holds came from traffic or from an
// imported HAR file, either of which a stranger can shape. So: every such value is one
// quoted shell word on one line; nothing of it reaches a `#` comment line (only fixed text,
// numbers and allow-listed codings do); no raw control character is in the text at all, so
// nothing can end a line or drive the terminal's line editor on paste; and curl gets no argument it would
// read as an option or as a file name (`--url` for an odd URL, `--data-raw`, never a header
// name that is not an HTTP token, since `-H @file` reads a file).
import { b64ToBytes } from './util.js';

// words that need no quotes in bash, zsh, dash (a leading `=` is expanded by zsh, `~` by all)
const SAFE = /^[A-Za-z0-9_/.:@%+,-][A-Za-z0-9_/.:=@%+,-]*$/;
// never raw inside a word: C0 controls (LF too), DEL, C1 controls (NEL), LINE and
// PARAGRAPH SEPARATOR, bidi embeddings/overrides/isolates, BOM
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const CODINGS = /^[A-Za-z0-9._-]{1,24}(?:, ?[A-Za-z0-9._-]{1,24}){0,4}$/;
const PIPE_ABOVE = 64 * 1024; // bodies larger than this go through stdin (one argument is capped at 128 KiB)

/**
 * Quotes one shell word. Plain text goes in '…'; text with a line break or any other control
 * or invisible-format character in $'…' with escapes, so that a word never spans lines: an
 * interactive bash reads a pasted line that starts with `^` as a history substitution, even
 * inside an open quote. NUL cannot be in an argument: it becomes U+FFFD, as does invalid UTF-16.
 */
export function shellQuote(s) {
  s = String(s);
  if (!s.isWellFormed()) s = s.toWellFormed();
  if (s !== '' && SAFE.test(s)) return s;
  if (!UNSAFE.test(s)) return `'${s.replace(/'/g, `'\\''`)}'`;
  return ansiQuote(s);
}

const hex = (b) => '\\x' + b.toString(16).padStart(2, '0');
const utf8 = new TextEncoder();

/**
 * Bash/zsh ANSI-C quoting: $'…' holding only printable ASCII and printable Unicode; `'`, `!`
 * and every control or format character escaped (\n, \r, \t, \xHH of the UTF-8 bytes).
 */
export function ansiQuote(s) {
  s = String(s);
  if (!s.isWellFormed()) s = s.toWellFormed();
  let out = "$'";
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '\\') out += '\\\\';
    else if (ch === "'" || ch === '!') out += hex(c); // no quote inside for history expansion to trip on
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c === 0) out += '\ufffd';
    else if (UNSAFE.test(ch)) for (const b of utf8.encode(ch)) out += hex(b);
    else out += ch;
  }
  return out + "'";
}

/** A count for a comment line: digits only, or `?`. */
const count = (x) => (Number.isSafeInteger(x) && x >= 0 ? String(x) : '?');

/**
 * The command for a transaction (the `transaction` object of an event, or an imported one).
 * Every captured header is kept. A body that is not plain text (binary, or text holding NUL)
 * is piped in from base64 so the bytes arrive exactly; a truncated one gets a warning line.
 */
export function toCurl(tx) {
  tx = tx || {};
  const req = (tx.request && typeof tx.request === 'object' && tx.request) || {};
  const method = String(req.method || tx.method || 'GET').toUpperCase();
  const url = String(req.url || tx.url || '');
  const body = req.body && typeof req.body === 'object' ? req.body : null;
  const hasBody = !!(body && typeof body.text === 'string' && body.text !== '');
  const truncated = !!(body && body.truncated === true);
  const pre = [];
  let stdin = null;

  const decoded = !!(hasBody && body.content_encoding && !body.note);
  if (decoded) {
    const coding = CODINGS.test(String(body.content_encoding)) ? `${body.content_encoding}-encoded` : 'encoded';
    pre.push(`# note: the request body is sent decoded (it was ${coding} on the wire)`);
  }
  if (truncated) pre.push(`# warning: the request body was truncated by the capture (${count(body.captured)} of ${count(body.size)} bytes kept)`);

  let first = 'curl';
  if (!(method === 'GET' && !hasBody) && !(method === 'POST' && hasBody)) first += ` -X ${shellQuote(method)}`;
  // a URL curl could read as an option, or with a scheme other than http(s): named as such
  if (/^https?:\/{2}/i.test(url)) first += ` ${shellQuote(url)}`;
  else first += ` --proto '=http,https' --url ${shellQuote(url)}`;
  const args = [first];
  if (/[[\]{}]/.test(url)) args.push('--globoff'); // curl would expand [1-9] and {a,b} into many requests
  if (req.http_version === 'HTTP/1.0') args.push('--http1.0');
  let compressed = false;
  let oddNames = 0;
  for (const h of Array.isArray(req.headers) ? req.headers : []) {
    if (!Array.isArray(h)) continue;
    const name = String(h[0] ?? '');
    const value = String(h[1] ?? '');
    const lower = name.toLowerCase();
    if (lower.startsWith(':')) continue; // HTTP/2 pseudo headers are not headers for curl
    if (!TOKEN.test(name)) {
      oddNames++; // not a header a server would take; and `-H @name` would read a file
      continue;
    }
    if ((truncated || decoded) && lower === 'content-length') continue; // curl sets the right length
    if (decoded && lower === 'content-encoding') continue; // the body below is already decoded
    if (lower === 'accept-encoding' && /gzip|deflate|br|zstd/.test(value)) compressed = true;
    // curl drops a header given as "Name:"; "Name;" sends it with an empty value
    const line = value === '' ? `${name};` : `${name}: ${value}`;
    args.push(`-H ${shellQuote(line)}`);
  }
  if (oddNames) pre.push(`# left out: ${oddNames} header${oddNames === 1 ? '' : 's'} whose name is not a valid HTTP field name`);
  if (hasBody) {
    if (body.encoding === 'base64' || body.text.includes('\u0000')) {
      const b64 = body.encoding === 'base64' ? body.text.replace(/\s+/g, '') : utf8ToB64(body.text);
      stdin = `printf %s ${shellQuote(b64)} | base64 -d`;
      args.push('--data-binary @-');
    } else if (body.text.length > PIPE_ABOVE) {
      stdin = `printf %s ${shellQuote(body.text)}`;
      args.push('--data-binary @-');
    } else {
      args.push(`--data-raw ${shellQuote(body.text)}`); // --data-binary would read a file for "@name"
    }
  }
  if (compressed) args.push('--compressed');
  const cmd = args.join(' \\\n  ');
  return [...pre, stdin ? `${stdin} | \\\n${cmd}` : cmd].join('\n');
}

function utf8ToB64(text) {
  const bytes = utf8.encode(text);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

// Re-exported for tests that check a piped body decodes back to the captured bytes.
export { b64ToBytes };
