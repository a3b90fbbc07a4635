// "Copy as cURL": a POSIX shell command line that repeats a captured request. Pure.
import { b64ToBytes } from './util.js';

const SAFE = /^[A-Za-z0-9_\/.:=@%+,-]+$/;

/** Quotes one shell word. Plain text goes in '…'; control characters need $'…'. */
export function shellQuote(s) {
  s = String(s);
  if (s !== '' && SAFE.test(s)) return s;
  // eslint-disable-next-line no-control-regex
  if (!/[\x00-\x08\x0b-\x1f\x7f]/.test(s) && !/\r/.test(s)) return `'${s.replace(/'/g, `'\\''`)}'`;
  return ansiQuote(s);
}

/** Bash/zsh ANSI-C quoting: $'…' with \xHH escapes for control bytes. NUL cannot be passed. */
export function ansiQuote(s) {
  let out = "$'";
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '\\') out += '\\\\';
    else if (ch === "'") out += "\\'";
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + "'";
}

/**
 * The command for a transaction (the `transaction` object of an event, or an imported one).
 * Every captured header is kept. A body that is not plain text (binary, or text holding NUL)
 * is piped in from base64 so the bytes arrive exactly; a truncated one gets a warning line.
 */
export function toCurl(tx) {
  const req = tx.request || {};
  const method = String(req.method || tx.method || 'GET').toUpperCase();
  const url = req.url || tx.url;
  const body = req.body || null;
  const hasBody = !!(body && body.text);
  const truncated = !!(body && body.truncated);
  const lines = [];
  const pre = [];
  let stdin = null;

  const decoded = !!(body && body.content_encoding && body.text && !body.note);
  if (decoded) pre.push(`# note: the request body is sent decoded (it was ${body.content_encoding}-encoded on the wire)`);
  if (truncated) {
    pre.push(`# warning: the request body was truncated by the capture (${body.captured} of ${body.size} bytes kept)`);
  }
  let first = 'curl';
  if (!(method === 'GET' && !hasBody) && !(method === 'POST' && hasBody)) first += ` -X ${shellQuote(method)}`;
  first += ` ${shellQuote(url)}`;
  const args = [first];
  if (req.http_version === 'HTTP/1.0') args.push('--http1.0');
  let compressed = false;
  for (const [name, value] of req.headers || []) {
    const lower = String(name).toLowerCase();
    if (lower.startsWith(':')) continue; // HTTP/2 pseudo headers are not headers for curl
    if ((truncated || decoded) && lower === 'content-length') continue; // curl sets the right length
    if (decoded && lower === 'content-encoding') continue; // the body below is already decoded
    if (lower === 'accept-encoding' && /gzip|deflate|br|zstd/.test(value)) compressed = true;
    // curl drops a header given as "Name:"; "Name;" sends it with an empty value
    const h = value === '' ? `${name};` : `${name}: ${value}`;
    args.push(`-H ${shellQuote(h)}`);
  }
  if (hasBody) {
    if (body.encoding === 'base64' || body.text.includes('\u0000')) {
      const b64 = body.encoding === 'base64' ? body.text.replace(/\s+/g, '') : utf8ToB64(body.text);
      stdin = `printf %s ${shellQuote(b64)} | base64 -d`;
      args.push('--data-binary @-');
    } else {
      args.push(`--data-binary ${shellQuote(body.text)}`);
    }
  }
  if (compressed) args.push('--compressed');
  lines.push(...pre);
  const cmd = args.join(' \\\n  ');
  lines.push(stdin ? `${stdin} | \\\n${cmd}` : cmd);
  return lines.join('\n');
}

function utf8ToB64(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

// Re-exported for tests that check a piped body decodes back to the captured bytes.
export { b64ToBytes };
