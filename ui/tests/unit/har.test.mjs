import test from 'node:test';
import assert from 'node:assert/strict';
import { toHar, fromHar, headerDiff, findCounterpart } from '../../har.js';
import { makeRecord } from '../../store.js';
import { basicTransactions } from '../fixtures.mjs';

const recs = () => basicTransactions().map((t) => makeRecord(t.summary, t.transaction, 'live'));

/** Checks the fields HAR 1.2 requires (http://www.softwareishard.com/blog/har-12-spec/). */
function assertHar12(har) {
  assert.equal(har.log.version, '1.2');
  assert.equal(typeof har.log.creator.name, 'string');
  assert.equal(typeof har.log.creator.version, 'string');
  assert.ok(Array.isArray(har.log.entries));
  for (const e of har.log.entries) {
    assert.ok(!Number.isNaN(Date.parse(e.startedDateTime)), e.startedDateTime);
    assert.equal(typeof e.time, 'number');
    for (const k of ['method', 'url', 'httpVersion']) assert.equal(typeof e.request[k], 'string', k);
    for (const k of ['cookies', 'headers', 'queryString']) assert.ok(Array.isArray(e.request[k]), k);
    assert.equal(typeof e.request.headersSize, 'number');
    assert.equal(typeof e.request.bodySize, 'number');
    if (e.request.postData) assert.equal(typeof e.request.postData.mimeType, 'string');
    assert.equal(typeof e.response.status, 'number');
    for (const k of ['statusText', 'httpVersion', 'redirectURL']) assert.equal(typeof e.response[k], 'string', k);
    for (const k of ['cookies', 'headers']) assert.ok(Array.isArray(e.response[k]), k);
    assert.equal(typeof e.response.content.size, 'number');
    assert.equal(typeof e.response.content.mimeType, 'string');
    assert.equal(typeof e.response.headersSize, 'number');
    assert.equal(typeof e.response.bodySize, 'number');
    assert.equal(typeof e.cache, 'object');
    for (const k of ['send', 'wait', 'receive']) assert.ok(e.timings[k] >= 0, k);
    const sum = ['blocked', 'dns', 'connect', 'send', 'wait', 'receive'].reduce((a, k) => a + (e.timings[k] > 0 ? e.timings[k] : 0), 0);
    assert.ok(Math.abs(sum - e.time) < 0.01, `time ${e.time} = sum of timings ${sum}`);
    for (const h of [...e.request.headers, ...e.response.headers]) assert.deepEqual(Object.keys(h), ['name', 'value']);
  }
}

test('HAR export has every required HAR 1.2 field and survives JSON', () => {
  const har = JSON.parse(JSON.stringify(toHar(recs(), { version: '0.1.0' })));
  assertHar12(har);
  assert.equal(har.log.entries.length, 11);
  const gh = har.log.entries[0];
  assert.equal(gh.startedDateTime, '2026-11-24T10:00:00.120000000Z');
  assert.ok(gh.request.headers.some((h) => h.name === 'Authorization' && h.value.startsWith('Bearer ')));
  assert.equal(gh.timings.wait, 84.2);
  assert.equal(gh.response.content.mimeType, 'application/json; charset=utf-8');
  const logo = har.log.entries.find((e) => e.request.url.endsWith('logo.png'));
  assert.equal(logo.response.content.encoding, 'base64');
  const token = har.log.entries.find((e) => e.request.url.endsWith('/oauth/token'));
  assert.deepEqual(token.request.postData.params.find((p) => p.name === 'password'), { name: 'password', value: 's3cr&t word' });
  const order = har.log.entries.find((e) => e.request.url.includes('orders'));
  assert.deepEqual(order.request.queryString, [{ name: 'dry_run', value: 'false' }]);
  assert.deepEqual(order.response.cookies[0], { name: 'session', value: 'abc', path: '/', httpOnly: true });
  const failed = har.log.entries.find((e) => e.request.url.endsWith('report'));
  assert.equal(failed.response.status, 0);
  assert.equal(failed.response._error, 'connection closed before response');
});

test('HAR import round trip keeps what the UI shows', () => {
  const original = recs();
  const back = fromHar(JSON.stringify(toHar(original)), { idPrefix: 'x' });
  assert.equal(back.length, original.length);
  back.forEach(({ summary, tx }, i) => {
    const o = original[i];
    for (const k of ['method', 'url', 'host', 'path', 'status', 'direction', 'tls', 'content_type', 'request_size', 'response_size', 'error']) {
      assert.deepEqual(summary[k], o.summary[k], `${o.id}.${k}`);
    }
    assert.deepEqual(summary.process, o.summary.process);
    assert.deepEqual(summary.container, o.summary.container);
    assert.deepEqual(tx.request.headers, o.tx.request.headers);
    assert.deepEqual(tx.request.body, o.tx.request.body);
    assert.deepEqual(tx.response && tx.response.headers, o.tx.response && o.tx.response.headers);
    assert.deepEqual(tx.response && tx.response.body, o.tx.response && o.tx.response.body);
    assert.deepEqual(tx.timing, o.tx.timing);
    assert.deepEqual(tx.network, o.tx.network);
    const r = makeRecord(summary, tx, 'imported');
    assert.equal(r.key, o.key);
    assert.ok(Math.abs(r.endMs - r.startMs - (o.endMs - o.startMs)) < 0.01);
  });
});

test('a foreign HAR (no _qtap fields) imports with sensible defaults', () => {
  const har = {
    log: {
      version: '1.2', creator: { name: 'WebInspector', version: '537.36' },
      entries: [{
        startedDateTime: '2026-11-23T09:00:00.000Z', time: 50,
        request: { method: 'GET', url: 'https://api.example.com/v1/users?page=2', httpVersion: 'HTTP/2', headers: [{ name: 'accept', value: 'application/json' }], queryString: [], cookies: [], headersSize: -1, bodySize: 0 },
        response: { status: 200, statusText: '', httpVersion: 'HTTP/2', headers: [{ name: 'content-type', value: 'application/json' }], cookies: [], content: { size: 2, mimeType: 'application/json', text: '[]' }, redirectURL: '', headersSize: -1, bodySize: 2 },
        cache: {}, timings: { blocked: 1, dns: -1, connect: -1, send: 1, wait: 40, receive: 8, ssl: -1 },
      }],
    },
  };
  const [{ summary, tx }] = fromHar(har);
  assert.equal(summary.host, 'api.example.com');
  assert.equal(summary.path, '/v1/users?page=2');
  assert.equal(summary.tls, true);
  assert.equal(summary.status, 200);
  assert.equal(tx.response.body.text, '[]');
  assert.equal(tx.timing.response_start, '2026-11-23T09:00:00.042Z');
  assert.throws(() => fromHar('{"foo":1}'), /not a HAR file/);
});

test('header diff: added, removed, changed, same (case-insensitive, duplicates)', () => {
  const before = [['Accept', '*/*'], ['Authorization', 'Bearer old'], ['X-Trace', '1'], ['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2']];
  const after = [['accept', '*/*'], ['Authorization', 'Bearer new'], ['X-New', 'yes'], ['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2']];
  const d = headerDiff(before, after);
  const kinds = Object.fromEntries(d.map((r) => [r.name.toLowerCase(), r.kind]));
  assert.deepEqual(kinds, { accept: 'same', authorization: 'changed', 'x-new': 'added', 'set-cookie': 'same', 'x-trace': 'removed' });
  assert.deepEqual(d.find((r) => r.kind === 'changed').before, ['Bearer old']);
  assert.deepEqual(headerDiff([['A', '1']], [['A', '1'], ['A', '2']])[0].kind, 'changed');
  assert.deepEqual(d.map((r) => r.name), ['accept', 'Authorization', 'X-New', 'Set-Cookie', 'X-Trace']);
});

test('counterpart: same method + host + path, newest first', () => {
  const live = recs();
  const imp = fromHar(toHar(live)).map(({ summary, tx }) => makeRecord(summary, tx, 'imported'));
  const c = findCounterpart(live[0], imp);
  assert.equal(c.summary.url, live[0].summary.url);
  assert.equal(findCounterpart(live[0], imp.slice(1)), null);
});
