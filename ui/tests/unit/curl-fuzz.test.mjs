// Property test: for many random values, hostile pieces mixed in, in every field a HAR
// import reads (and in every field of a live transaction), the "Copy as cURL" command run
// by a real bash with a fake curl first in PATH is exactly one curl call with the expected
// argv and body, writes nothing to stderr and leaves no file behind.
// QTAP_FUZZ_SEED=n reproduces a run (the seed is in every failure message); QTAP_FUZZ_CASES
// sets the number of cases per test (default 100).
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { importHar } from '../../har-import.js';
import { toCurl } from '../../curl.js';
import { shellSandbox, commandProblems } from '../shell.mjs';
import { shapeProblems, expectedLine } from '../malicious-har.mjs';
import { prng, gen, randomEntry } from '../har-fuzz.mjs';

const SEED = Number(process.env.QTAP_FUZZ_SEED) || Date.now() % 2 ** 31;
const CASES = Number(process.env.QTAP_FUZZ_CASES) || 100;
const sandbox = shellSandbox();
after(() => sandbox.close());

test(`random HAR fields import typed and faithful, and copy as one harmless command (seed ${SEED})`, () => {
  const rnd = prng(SEED);
  for (let i = 0; i < CASES; i++) {
    const raw = randomEntry(rnd);
    const what = `seed ${SEED}, case ${i}: ${JSON.stringify(raw)}`;
    let entries;
    assert.doesNotThrow(() => ({ entries } = importHar(JSON.parse(JSON.stringify({ log: { entries: [raw] } })))), what);
    assert.equal(entries.length, 1, what);
    const [e] = entries;
    assert.deepEqual(shapeProblems(e), [], what);
    // what is shown is what was in the file, control characters aside
    const rq = JSON.parse(JSON.stringify(raw.request));
    if (typeof rq.method === 'string' && rq.method) assert.equal(e.tx.request.method, expectedLine(rq.method), what);
    if (typeof rq.url === 'string') assert.equal(e.tx.request.url, expectedLine(rq.url), what);
    if (Array.isArray(rq.headers)) {
      const kept = rq.headers.filter((h) => h && typeof h === 'object' && !Array.isArray(h) && typeof h.name === 'string' && h.name && typeof h.value === 'string');
      for (const h of kept) assert.ok(e.tx.request.headers.some(([k, v]) => k === expectedLine(h.name) && v === expectedLine(h.value, { tab: true })), `${what}\nheader ${JSON.stringify(h)}`);
    }
    const cmd = toCurl(e.tx);
    assert.deepEqual(commandProblems(sandbox, cmd, e.tx), [], `${what}\n${cmd}`);
  }
});

test(`random live transactions copy as one harmless command (seed ${SEED})`, () => {
  const rnd = prng(SEED ^ 0x5bd1e995);
  const { pick, str, token } = gen(rnd);
  for (let i = 0; i < CASES; i++) {
    const text = rnd() < 0.3 ? Buffer.from(str(6)).toString('base64') : str(12);
    const tx = {
      request: {
        method: pick(['GET', 'POST', str(4)]),
        url: pick([`http://h.test/${str()}`, str()]),
        http_version: pick(['HTTP/1.1', 'HTTP/1.0', 'HTTP/2']),
        headers: Array.from({ length: Math.floor(rnd() * 5) }, () => [rnd() < 0.6 ? token() : str(3), str()]),
        body: {
          text,
          encoding: /^[A-Za-z0-9+/]*={0,2}$/.test(text) && text.length % 4 === 0 && rnd() < 0.5 ? 'base64' : 'utf8',
          truncated: rnd() < 0.3,
          size: pick([5, 2 ** 60, -1]),
          captured: 3,
          content_encoding: pick([undefined, 'gzip', str(3)]),
          note: pick([undefined, str(3)]),
        },
      },
    };
    const cmd = toCurl(tx);
    assert.deepEqual(commandProblems(sandbox, cmd, tx), [], `seed ${SEED}, case ${i}: ${JSON.stringify(tx)}\n${cmd}`);
  }
});
