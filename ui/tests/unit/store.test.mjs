import test from 'node:test';
import assert from 'node:assert/strict';
import { Store, View, makeRecord, emptyFilter, compileFilter, parseText, matchKey, MiB } from '../../store.js';
import { transaction, body, basicTransactions, bulkTransactions } from '../fixtures.mjs';

const rec = (t, source = 'live') => makeRecord(t.summary, t.transaction, source);

test('ring buffer evicts the oldest by count', () => {
  const s = new Store({ maxCount: 3, maxBytes: 64 * MiB });
  for (const t of bulkTransactions(5)) s.add(rec(t));
  assert.equal(s.length, 3);
  assert.deepEqual(s.all().map((r) => r.id), ['bulk-2', 'bulk-3', 'bulk-4']);
  assert.equal(s.evictedTotal, 2);
  assert.equal(s.firstSeq, 3);
});

test('ring buffer evicts the oldest by body bytes', () => {
  const s = new Store({ maxCount: 100, maxBytes: 2500 });
  const big = (i) => transaction({ id: `b${i}`, host: 'h', path: `/${i}`, resBody: body('x'.repeat(1000)) });
  for (let i = 0; i < 5; i++) s.add(rec(big(i)));
  assert.equal(s.length, 2);
  assert.deepEqual(s.all().map((r) => r.id), ['b3', 'b4']);
  assert.ok(s.bytes <= 2500);
  // one record larger than the cap is still kept (the newest always stays)
  s.add(rec(transaction({ id: 'huge', host: 'h', resBody: body('y'.repeat(5000)) })));
  assert.deepEqual(s.all().map((r) => r.id), ['huge']);
});

test('lowering the limits evicts at once; duplicates are ignored; clear empties', () => {
  const s = new Store({ maxCount: 100 });
  for (const t of bulkTransactions(10)) s.add(rec(t));
  assert.equal(s.add(rec(bulkTransactions(10)[9])), false, 'replayed id');
  assert.equal(s.setLimits({ maxCount: 4 }), 6);
  assert.equal(s.length, 4);
  s.clear();
  assert.equal(s.length, 0);
  assert.equal(s.bytes, 0);
  assert.equal(s.facets.host.size, 0);
});

test('many pushes and shifts keep order (deque compaction)', () => {
  const s = new Store({ maxCount: 500 });
  const txs = bulkTransactions(5000);
  for (const t of txs) s.add(rec(t));
  assert.equal(s.length, 500);
  assert.equal(s.at(0).id, 'bulk-4500');
  assert.equal(s.at(499).id, 'bulk-4999');
});

test('facets collect what was seen', () => {
  const s = new Store();
  for (const t of basicTransactions()) s.add(rec(t));
  assert.ok(s.facets.method.has('PUT'));
  assert.ok(s.facets.host.has('api.github.com'));
  assert.ok(s.facets.process.has('python3.12'));
  assert.ok(s.facets.container.has('shop-api'));
});

test('text filter: substring of url or host, leading - inverts, terms AND', () => {
  assert.deepEqual(parseText('  api -github  - '), [{ neg: false, s: 'api' }, { neg: true, s: 'github' }]);
  const recs = basicTransactions().map((t) => rec(t));
  const ids = (f) => recs.filter(compileFilter({ ...emptyFilter(), ...f })).map((r) => r.id);
  assert.deepEqual(ids({ text: 'GITHUB' }), ['tx-github']);
  assert.ok(!ids({ text: '-github' }).includes('tx-github'));
  assert.equal(ids({ text: '-github' }).length, recs.length - 1);
  assert.deepEqual(ids({ text: 'example -cdn -files -auth' }), ['tx-missing', 'tx-redirect']);
});

test('status class, method, host, process, container and source filters', () => {
  const recs = basicTransactions().map((t) => rec(t));
  const ids = (f) => recs.filter(compileFilter({ ...emptyFilter(), ...f })).map((r) => r.id);
  assert.deepEqual(ids({ classes: new Set(['5xx']) }), ['tx-crash']);
  assert.deepEqual(ids({ classes: new Set(['4xx', '5xx']) }), ['tx-missing', 'tx-crash']);
  assert.deepEqual(ids({ classes: new Set(['failed']) }), ['tx-failed']);
  assert.deepEqual(ids({ classes: new Set(['3xx']) }), ['tx-redirect']);
  assert.deepEqual(ids({ method: 'PUT' }), ['tx-note']);
  assert.deepEqual(ids({ host: 'cdn.example.com' }), ['tx-logo']);
  assert.deepEqual(ids({ container: 'shop-api' }), ['tx-order', 'tx-crash']);
  assert.deepEqual(ids({ process: 'python3.12', classes: new Set(['2xx']) }), ['tx-order']);
  assert.deepEqual(ids({ source: 'imported' }), []);
});

test('view follows arrivals and evictions incrementally', () => {
  const live = new Store({ maxCount: 5 });
  const imported = new Store();
  const view = new View();
  const f = { ...emptyFilter(), classes: new Set(['2xx']) };
  view.rebuild(live, imported, f);
  for (const t of bulkTransactions(14)) {
    const r = rec(t);
    if (live.add(r)) view.offer(r);
    view.trim(live.firstSeq);
  }
  // statuses cycle 200,200,200,201,304,404,500: the last five are bulk-9..13
  const shown = [];
  for (let i = 0; i < view.length; i++) shown.push(view.at(i).id);
  assert.deepEqual(shown, ['bulk-9', 'bulk-10']); // 11 is 304, 12 is 404
  assert.equal(view.indexOf(live.at(4)), -1); // bulk-13 is 500, filtered out
  assert.equal(view.indexOf(view.at(1)), 1);
});

test('match key ignores the query and case of the host', () => {
  assert.equal(matchKey({ method: 'get', host: 'API.example.com', path: '/a/b?x=1' }), 'GET api.example.com/a/b');
});
