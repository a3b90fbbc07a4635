// A HAR file is untrusted: a crafted one must import as plain, typed, bounded data, and its
// "Copy as cURL" must be one harmless command (issue 12 item 8).
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { importHar, fromHar, IMPORT_LIMITS } from '../../har-import.js';
import { toHar } from '../../har.js';
import { toCurl } from '../../curl.js';
import { makeRecord } from '../../store.js';
import { basicTransactions } from '../fixtures.mjs';
import { maliciousHar, MALICIOUS_ENTRIES, shapeProblems, expectedLine } from '../malicious-har.mjs';
import { shellSandbox, commandProblems, parseCurlArgv } from '../shell.mjs';

const sandbox = shellSandbox();
after(() => sandbox.close());

const byName = (entries) => Object.fromEntries(entries.map((e) => [e.tx.request.url.split('/').pop().split('?')[0] || e.tx.request.url, e]));

test('a crafted HAR imports as typed data: no control character left, every change noted', () => {
  const { entries, notes } = importHar(JSON.stringify(maliciousHar()), { idPrefix: 'evil' });
  assert.equal(entries.length, MALICIOUS_ENTRIES);
  assert.deepEqual(notes, ['entries[14]: null, not an entry: left out', 'entries[15]: a number, not an entry: left out', 'entries[16]: no request object: left out']);
  for (const e of entries) assert.deepEqual(shapeProblems(e), [], e.tx.request.url);
  const m = byName(entries);

  // the reproduction: the content coding with a newline is dropped, with a note
  const ci = m['comment-inject'].tx;
  assert.equal(ci.request.body.content_encoding, undefined);
  assert.ok(ci.import_notes.some((n) => /^_qtap\.request_body\.content_encoding: .*control character/.test(n)), ci.import_notes.join('\n'));
  assert.ok(ci.import_notes.some((n) => /^_qtap\.request_body\.content_encoding: not a list of content codings: left out$/.test(n)));
  assert.ok(ci.import_notes.some((n) => /^_qtap\.request_body\.captured: .*left out$/.test(n)));
  assert.equal(ci.request.body.captured, 5, 'the ill-typed captured count is not used');

  const hs = m.headers.tx.request.headers;
  assert.deepEqual(hs.find(([k]) => k === 'X-Crlf'), ['X-Crlf', 'a\ufffd\ufffdtouch CANARY\ufffd\ufffdb']);
  assert.deepEqual(hs.find(([k]) => k.startsWith('X-Name')), ['X-Name\ufffdtouch CANARY', 'v']);
  assert.ok(m.headers.tx.import_notes.includes('request.headers[2].name: not a valid HTTP field name: shown, but left out of Copy as cURL'));
  assert.equal(hs.find(([k]) => k === 'X-Controls')[1], expectedLine('\u0003\u001b[2J\u0015\u007f\u0085\u2028\u2029\u202etouch CANARY'));
  assert.equal(hs.find(([k]) => k === 'X-Html')[1], '<img src=x onerror=alert(1)>', 'HTML is kept as text (the UI renders text nodes only)');

  assert.equal(m['method-newline'].tx.request.method, 'P\ufffdOST touch CANARY');
  assert.ok(m['method-semicolon'].tx.import_notes.includes('request.method: not an HTTP method (a token): kept as text'));

  // ill-typed fields: converted when they are numbers, else left out; never thrown on
  const it = m['ill-typed'];
  assert.equal(it.summary.method, '7');
  assert.equal(it.tx.request.http_version, 'HTTP/1.1');
  assert.deepEqual(it.tx.request.headers, [['5', ''], ['X-Num', '42']]);
  assert.equal(it.tx.request.body.text, '');
  assert.equal(it.summary.start, '');
  assert.equal(it.summary.duration_ms, 0);
  assert.equal(it.summary.direction, 'egress');
  assert.equal(it.summary.tls, false);
  assert.equal(it.summary.response_size, 12);
  assert.deepEqual(it.summary.process, { pid: 0, exe: '', name: '', user: '' });
  assert.equal(it.summary.container, undefined, 'an ill-typed container is left out');
  assert.deepEqual(it.tx.network, { local: '', remote: '7', bytes_sent: 0, bytes_received: 0 });
  for (const want of [
    'request.method: a number where text was expected: converted to text',
    'request.httpVersion: an object where text was expected: left out',
    'request.headers[0].value: an object where text was expected: left out',
    'request.headers[1]: a string where {name, value} was expected: left out',
    'request.headers[2]: null where {name, value} was expected: left out',
    'request.postData.text: an array where text was expected: left out',
    'startedDateTime: not a date and time: left out',
    '_qtap.process: a string where an object was expected: left out',
    '_qtap.tls: a string where true/false was expected: left out',
    '_qtap.request_size: -5 is not an integer in 0…9007199254740991: left out',
    '_qtap.container: an array where an object was expected: left out',
    '_qtap.timing.start: not a date and time: left out',
  ]) assert.ok(it.tx.import_notes.includes(want), `${want}\nin:\n${it.tx.import_notes.join('\n')}`);
});

test('Copy as cURL of every crafted entry is one command with the expected argv, and runs nothing else', () => {
  const { entries } = importHar(maliciousHar());
  for (const { tx } of entries) {
    const cmd = toCurl(tx);
    assert.deepEqual(commandProblems(sandbox, cmd, tx), [], `${tx.request.url}:\n${cmd}`);
  }
  const m = byName(entries);
  const argv = (name) => parseCurlArgv(sandbox.run(toCurl(m[name].tx)).calls[0].argv);
  // the reproduction: the comment lines hold only fixed text and digits
  const ci = toCurl(m['comment-inject'].tx);
  assert.deepEqual(ci.split('\n').filter((l) => l.startsWith('#')), ['# warning: the request body was truncated by the capture (5 of 5 bytes kept)']);
  assert.equal(argv('-oCANARY').url, '-oCANARY', 'a URL that looks like an option is passed with --url');
  assert.equal(argv('-oCANARY').proto, '=http,https');
  assert.equal(argv('passwd').proto, '=http,https', 'file: URLs are refused by curl');
  assert.ok(argv('url-glob[1-9]{a,b}').flags.has('--globoff'));
  assert.equal(argv('body-at').data, '@CANARY', 'a body starting with @ is data, not a file name');
  assert.deepEqual(argv('headers').headers.filter((h) => /CANARY/.test(h) && !/touch/.test(h)), [], '-H @file is never emitted');
  assert.equal(argv('method-subst').method, 'DELETE $(TOUCH CANARY) `TOUCH CANARY`');
  assert.match(toCurl(m['method-newline'].tx), /^curl -X 'P\ufffdOST TOUCH CANARY' /);
});

test('toCurl itself never lets a value out of its quotes, even ill-typed or unimported', () => {
  const nasty = `a\nb\r\u2028\u2029\u0085\u001b\u0003'"\`$(touch CANARY)`;
  const tx = {
    request: {
      method: nasty, url: `-o${nasty}`, http_version: 'HTTP/1.1',
      headers: [['X-A', nasty], ['@CANARY', 'x'], ['X\nB', 'y'], 'junk', [':path', '/'], ['X-Nul', 'a\u0000b']],
      body: { text: '@CANARY', encoding: 'utf8', truncated: true, captured: `1\n${nasty}`, size: {}, content_encoding: `gzip\n${nasty}` },
    },
  };
  const cmd = toCurl(tx);
  assert.deepEqual(commandProblems(sandbox, cmd, tx), [], cmd);
  assert.deepEqual(cmd.split('\n').filter((l) => l.startsWith('#')), [
    '# note: the request body is sent decoded (it was encoded on the wire)',
    '# warning: the request body was truncated by the capture (? of ? bytes kept)',
    '# left out: 2 headers whose name is not a valid HTTP field name',
  ]);
});

test('not a HAR: a clear error, never a crash', () => {
  for (const [input, msg] of [
    ['', /^not a HAR file: not JSON/],
    ['{"log": ', /^not a HAR file: not JSON/],
    ['[]', /^not a HAR file: the top level is an array, not an object with "log"$/],
    ['null', /^not a HAR file: the top level is null/],
    ['"text"', /^not a HAR file: the top level is a string/],
    ['{"foo": 1}', /^not a HAR file: no "log" object$/],
    ['{"log": []}', /^not a HAR file: no "log" object$/],
    ['{"log": {"entries": {}}}', /^not a HAR file: no log.entries array$/],
    ['{"log": {"entries": [1, null, {"request": 5}]}}', /^not a HAR file: none of its 3 entries has a request$/],
  ]) assert.throws(() => importHar(input), (e) => e instanceof Error && msg.test(e.message), JSON.stringify(input));
  assert.deepEqual(importHar('{"log": {"entries": []}}'), { entries: [], notes: [] }, 'an empty HAR is a HAR');
});

test('sizes are capped in bytes, with a note; a cut body is marked truncated', () => {
  const big = 'é'.repeat(40 * 1024); // 80 KiB of UTF-8
  const headers = Array.from({ length: IMPORT_LIMITS.headers + 5 }, (_, i) => ({ name: `X-${i}`, value: i === 0 ? big : 'v' }));
  const body = 'x'.repeat(IMPORT_LIMITS.bodyBytes + 10);
  const b64 = Buffer.alloc(IMPORT_LIMITS.bodyBytes).toString('base64');
  const entry = (request, response) => ({ startedDateTime: '2026-11-20T08:00:00.000Z', time: 1, request, response: response || { status: 200, headers: [], content: { size: 0, mimeType: '' } } });
  const { entries } = importHar({
    log: {
      entries: [
        entry({ method: 'POST', url: `http://a.test/${'p'.repeat(70 * 1024)}`, headers, postData: { mimeType: 'text/plain', text: body } }),
        entry({ method: 'GET', url: 'http://a.test/b64', headers: [] }, { status: 200, headers: [], content: { size: IMPORT_LIMITS.bodyBytes, mimeType: 'application/octet-stream', text: b64, encoding: 'base64' } }),
      ],
    },
  });
  const [a, b] = entries.map((e) => e.tx);
  assert.equal(a.request.headers.length, IMPORT_LIMITS.headers);
  assert.ok(Buffer.byteLength(a.request.headers[0][1]) <= IMPORT_LIMITS.valueBytes);
  assert.ok(Buffer.byteLength(a.request.headers[0][1]) > IMPORT_LIMITS.valueBytes - 2, 'cut at the cap, not before');
  assert.ok(!a.request.headers[0][1].includes('\ufffd'), 'never inside a character');
  assert.ok(Buffer.byteLength(a.request.url) <= IMPORT_LIMITS.valueBytes);
  assert.equal(a.request.body.text.length, IMPORT_LIMITS.bodyBytes);
  assert.equal(a.request.body.truncated, true);
  assert.equal(a.request.body.captured, IMPORT_LIMITS.bodyBytes);
  for (const want of [
    `request.headers: ${IMPORT_LIMITS.headers + 5} headers, more than ${IMPORT_LIMITS.headers}: the rest left out`,
    'request.headers[0].value: longer than 64 KiB: cut',
    'request.url: longer than 64 KiB: cut',
    'request.postData.text: longer than 32 MiB: cut',
  ]) assert.ok(a.import_notes.includes(want), `${want}\nin:\n${a.import_notes.join('\n')}`);
  const tail = Buffer.from(b.response.body.text.slice(-8), 'base64');
  assert.equal(b.response.body.text.length % 4, 0, 'base64 is cut on a 4-character boundary');
  assert.equal(tail.length, 6);
  assert.equal(b.response.body.truncated, true);

  const many = { log: { entries: Array.from({ length: IMPORT_LIMITS.entries + 3 }, () => ({ request: { method: 'GET', url: 'http://a.test/' } })) } };
  const r = importHar(many);
  assert.equal(r.entries.length, IMPORT_LIMITS.entries);
  assert.deepEqual(r.notes, [`log.entries: ${IMPORT_LIMITS.entries + 3} entries, more than ${IMPORT_LIMITS.entries}: only the first ${IMPORT_LIMITS.entries} imported`]);
});

test('our own export imports back with no note at all', () => {
  const recs = basicTransactions().map((t) => makeRecord(t.summary, t.transaction, 'live'));
  const { entries, notes } = importHar(JSON.stringify(toHar(recs)));
  assert.deepEqual(notes, []);
  assert.deepEqual(entries.map((e) => e.tx.import_notes).filter(Boolean), []);
  for (const e of entries) assert.deepEqual(shapeProblems(e), []);
  assert.equal(fromHar(toHar(recs)).length, recs.length);
});
