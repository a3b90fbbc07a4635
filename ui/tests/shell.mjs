// Runs a copied command the way a user's shell would, with `curl` replaced: a real bash
// parses and executes it in a fresh empty directory, with PATH starting at a directory that
// holds a fake `curl` script. The fake records each call's argv (and its stdin for
// `--data-binary @-`). Afterwards the directory must hold nothing new: any command smuggled
// in (`touch CANARY`, a redirection) leaves a file behind, or an error on stderr.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readdirSync, readFileSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const FAKE_CURL = `#!/bin/bash
# fake curl: one file per call holding its argv, NUL separated; stdin kept for "@-"
f=$(mktemp "$QTAP_FAKE_CALLS/call.XXXXXX") || exit 97
printf '%s\\0' "$@" > "$f"
prev=
for a in "$@"; do
  if [ "$prev" = --data-binary ] && [ "$a" = @- ]; then cat > "$f.stdin"; fi
  prev=$a
done
`;

/** A sandbox: `run(cmd)` executes one command and reports what it did. Call `close()`. */
export function shellSandbox() {
  const root = mkdtempSync(join(tmpdir(), 'qtap-curl-'));
  const bin = join(root, 'bin');
  const calls = join(root, 'calls');
  mkdirSync(bin);
  mkdirSync(calls);
  writeFileSync(join(bin, 'curl'), FAKE_CURL);
  chmodSync(join(bin, 'curl'), 0o755);
  let n = 0;

  return {
    root,
    /**
     * `{syntaxOk, status, stderr, calls: [{argv, stdin}], leftovers}`: `leftovers` are the
     * files the command created in its working directory (none for a harmless command).
     */
    run(cmd, { interactive = false } = {}) {
      const cwd = join(root, `w${++n}`);
      mkdirSync(cwd);
      for (const f of readdirSync(calls)) rmSync(join(calls, f));
      const env = { PATH: `${bin}:/usr/bin:/bin`, HOME: cwd, LC_ALL: 'C.UTF-8', QTAP_FAKE_CALLS: calls, PS1: '', PS2: '', HISTFILE: '' };
      // from a file: one argument (`bash -c cmd`) may hold only 128 KiB
      const file = join(root, `cmd${n}.sh`);
      writeFileSync(file, cmd);
      const syntax = spawnSync('bash', ['-n', file], { cwd, env, encoding: 'buffer', timeout: 10000 });
      // interactive: the command typed in as a paste without bracketed paste would be, line
      // by line, with history expansion (`!`) on
      const r = interactive
        ? spawnSync('bash', ['--norc', '--noprofile', '-i'], { cwd, env, encoding: 'buffer', input: Buffer.from(`${cmd}\n`, 'utf8'), timeout: 10000, maxBuffer: 64 * 1024 * 1024 })
        : spawnSync('bash', [file], { cwd, env, encoding: 'buffer', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10000, maxBuffer: 64 * 1024 * 1024 });
      rmSync(file);
      const out = [];
      for (const f of readdirSync(calls).filter((x) => !x.endsWith('.stdin')).sort()) {
        const argv = readFileSync(join(calls, f)).toString('utf8').split('\0').slice(0, -1);
        let stdin = null;
        try {
          stdin = readFileSync(join(calls, `${f}.stdin`));
        } catch {
          stdin = null;
        }
        out.push({ argv, stdin });
      }
      const leftovers = readdirSync(cwd);
      rmSync(cwd, { recursive: true, force: true });
      return { syntaxOk: syntax.status === 0, status: r.status, stderr: r.stderr.toString('utf8'), calls: out, leftovers };
    },
    close() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

const WITH_ARG = new Set(['-X', '-H', '--url', '--proto', '--data-raw', '--data-binary']);
const FLAGS = new Set(['--compressed', '--globoff', '--http1.0']);

/**
 * Reads a curl argv as curl would: `{method, url, headers, data, stdinData, proto, flags}`.
 * Throws on an option this UI never emits, or on more than one URL: either would mean an
 * imported value was taken for an option by curl.
 */
export function parseCurlArgv(argv) {
  const r = { method: null, url: null, headers: [], data: null, stdinData: false, proto: null, flags: new Set() };
  const urls = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (WITH_ARG.has(a)) {
      if (i + 1 >= argv.length) throw new Error(`${a} without its argument`);
      const v = argv[++i];
      if (a === '-X') r.method = v;
      else if (a === '-H') r.headers.push(v);
      else if (a === '--url') urls.push(v);
      else if (a === '--proto') r.proto = v;
      else if (a === '--data-raw') r.data = v;
      else if (v === '@-') r.stdinData = true;
      else if (v.startsWith('@')) throw new Error(`--data-binary ${JSON.stringify(v)}: curl would read a file`);
      else r.data = v;
    } else if (FLAGS.has(a)) r.flags.add(a);
    else if (a.startsWith('-')) throw new Error(`unexpected option ${JSON.stringify(a)}`);
    else urls.push(a);
  }
  if (urls.length !== 1) throw new Error(`${urls.length} URLs in ${JSON.stringify(argv)}`);
  [r.url] = urls;
  return r;
}

/**
 * True for a character that must never be raw in copied text: C0 controls but LF, DEL, C1
 * controls (NEL), U+2028/2029, bidi embeddings/overrides/isolates, BOM. Written by code
 * point here, apart from the product's regular expressions.
 */
export function isHazard(ch) {
  const c = ch.codePointAt(0);
  if (c === 0x0a) return false;
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029 || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) || c === 0xfeff;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const norm = (s) => String(s).toWellFormed().replace(/\0/g, '\ufffd');

/**
 * What the copied command for `tx` must make curl do: its method, URL, headers (pseudo
 * headers and names that are not tokens left out; a stale Content-Length and, for a decoded
 * body, Content-Encoding too) and body, exactly.
 */
export function expectedRequest(tx) {
  const req = tx.request || {};
  const body = req.body && typeof req.body === 'object' ? req.body : null;
  const hasBody = !!(body && typeof body.text === 'string' && body.text !== '');
  const truncated = !!(body && body.truncated === true);
  const decoded = !!(hasBody && body.content_encoding && !body.note);
  const method = String(req.method || tx.method || 'GET').toUpperCase();
  const url = String(req.url || tx.url || '');
  const headers = [];
  let compressed = false;
  for (const h of Array.isArray(req.headers) ? req.headers : []) {
    if (!Array.isArray(h)) continue;
    const [name, value] = [String(h[0] ?? ''), String(h[1] ?? '')];
    const lower = name.toLowerCase();
    if (lower.startsWith(':') || !TOKEN.test(name)) continue;
    if ((truncated || decoded) && lower === 'content-length') continue;
    if (decoded && lower === 'content-encoding') continue;
    if (lower === 'accept-encoding' && /gzip|deflate|br|zstd/.test(value)) compressed = true;
    headers.push(norm(value === '' ? `${name};` : `${name}: ${value}`));
  }
  let bytes = null;
  if (hasBody) {
    bytes = body.encoding === 'base64' ? Buffer.from(body.text, 'base64') : Buffer.from(body.text.toWellFormed(), 'utf8');
  }
  return {
    method: (method === 'GET' && !hasBody) || (method === 'POST' && hasBody) ? null : norm(method),
    url: norm(url),
    proto: /^https?:\/{2}/i.test(url) ? null : '=http,https',
    headers,
    bytes,
    flags: new Set([/[[\]{}]/.test(url) && '--globoff', req.http_version === 'HTTP/1.0' && '--http1.0', compressed && '--compressed'].filter(Boolean)),
  };
}

/**
 * Problems with a copied command: it must parse, run as exactly one curl call with the
 * expected argv, print nothing to stderr, leave no file behind, and do the same when typed
 * into an interactive bash; its comment lines must be
 * printable ASCII; no raw control character anywhere.
 */
export function commandProblems(sandbox, cmd, tx) {
  const bad = [];
  const raw = [...cmd].filter(isHazard);
  if (raw.length) bad.push(`raw control characters ${JSON.stringify(raw.join(''))}`);
  // the comment lines are the ones above the command (a `#` inside a quoted word is no comment)
  const lines = cmd.split('\n');
  const comments = lines.slice(0, lines.findIndex((l) => !l.startsWith('#')));
  for (const line of comments) if (!/^# [\x20-\x7e]*$/.test(line)) bad.push(`comment line ${JSON.stringify(line)}`);
  if (!/^(curl|printf) /.test(lines[comments.length])) bad.push(`the first line after the comments is not the command: ${JSON.stringify(lines[comments.length])}`);
  // no word spans lines: each line but the last ends in a continuation (an interactive bash
  // reads a pasted line starting with `^` as a history substitution, inside a quote too)
  const body = lines.slice(comments.length);
  if (!body.slice(0, -1).every((l) => l.endsWith(' \\')) || body.at(-1).endsWith('\\')) bad.push('a line break inside a word');
  const r = sandbox.run(cmd);
  if (!r.syntaxOk) bad.push('bash -n refused it');
  if (r.status !== 0) bad.push(`exit status ${r.status}`);
  if (r.stderr) bad.push(`stderr: ${r.stderr.slice(0, 300)}`);
  if (r.leftovers.length) bad.push(`left files behind: ${r.leftovers.join(', ')}`);
  if (r.calls.length !== 1) return [...bad, `${r.calls.length} curl calls`];
  let got;
  try {
    got = parseCurlArgv(r.calls[0].argv);
  } catch (e) {
    return [...bad, e.message];
  }
  // the same typed into an interactive shell (its stderr holds job-control chatter)
  const ri = sandbox.run(cmd, { interactive: true });
  if (ri.leftovers.length) bad.push(`interactive: left files behind: ${ri.leftovers.join(', ')}`);
  if (JSON.stringify(ri.calls.map((c) => [c.argv, c.stdin && c.stdin.toString('base64')])) !== JSON.stringify(r.calls.map((c) => [c.argv, c.stdin && c.stdin.toString('base64')]))) {
    bad.push(`interactive: other curl calls: ${JSON.stringify(ri.calls.map((c) => c.argv))}`);
  }
  const want = expectedRequest(tx);
  const eq = (a, b, what) => (JSON.stringify(a) === JSON.stringify(b) ? null : bad.push(`${what}: got ${JSON.stringify(a)}, want ${JSON.stringify(b)}`));
  eq(got.method, want.method, 'method');
  eq(got.url, want.url, 'url');
  eq(got.proto, want.proto, '--proto');
  eq(got.headers, want.headers, 'headers');
  eq([...got.flags].sort(), [...want.flags].sort(), 'flags');
  const sent = got.stdinData ? r.calls[0].stdin : got.data !== null ? Buffer.from(got.data, 'utf8') : null;
  if (want.bytes === null) eq(sent, null, 'body');
  else if (!sent || !sent.equals(want.bytes)) bad.push(`body: got ${sent && sent.length} bytes, want ${want.bytes.length}`);
  return bad;
}
