import test from 'node:test';
import assert from 'node:assert/strict';
import { tsToMs, fmtBytes, fmtMs, displayName, rowName, NOT_CAPTURED, shortType, statusClass, isErrorRow, statusText, b64ToBytes, bytesToB64, hexDump, prettyJson, jsonTokens, parseForm } from '../../util.js';

test('RFC 3339 with nanoseconds parses to fractional milliseconds', () => {
  const ms = tsToMs('2026-11-24T10:00:00.123456789Z');
  assert.equal(Math.floor(ms), Date.UTC(2026, 10, 24, 10, 0, 0, 123));
  assert.ok(Math.abs((ms % 1) - 0.456789) < 1e-3);
  assert.equal(tsToMs('2026-11-24T10:00:00Z'), Date.UTC(2026, 10, 24, 10));
  assert.ok(Number.isNaN(tsToMs(undefined)));
});

test('formatting', () => {
  assert.equal(fmtBytes(512), '512 B');
  assert.equal(fmtBytes(1536), '1.5 kB');
  assert.equal(fmtBytes(1048576), '1.0 MB');
  assert.equal(fmtMs(84.6), '85 ms');
  assert.equal(fmtMs(3000.2), '3.00 s');
  assert.equal(displayName('/repos/acme/widgets'), 'widgets');
  assert.equal(displayName('/api/orders?dry_run=false'), 'orders?dry_run=false');
  assert.equal(displayName('/', 'example.org'), 'example.org');
  assert.equal(shortType('application/json; charset=utf-8'), 'json');
  assert.equal(shortType('application/problem+json'), 'json');
  assert.equal(shortType('image/png'), 'png');
  assert.equal(shortType('application/x-www-form-urlencoded'), 'form');
  assert.equal(shortType('application/octet-stream'), 'octet-stream');
});

test('status classes and error rows', () => {
  assert.equal(statusClass(204), '2xx');
  assert.equal(statusClass(undefined), 'failed');
  assert.equal(isErrorRow({ status: 503 }), true);
  assert.equal(isErrorRow({ status: 404 }), true);
  assert.equal(isErrorRow({ status: 302 }), false);
  assert.equal(isErrorRow({ error: 'closed' }), true);
});

test('base64 and hex dump', () => {
  const bytes = new Uint8Array(300).map((_, i) => i & 255);
  const b64 = bytesToB64(bytes);
  assert.equal(b64, Buffer.from(bytes).toString('base64'));
  assert.deepEqual([...b64ToBytes(b64)], [...bytes]);
  assert.deepEqual([...b64ToBytes('AQI')], [1, 2]);
  const dump = hexDump(new TextEncoder().encode('QTAP\0binary data!'));
  assert.equal(dump.split('\n')[0], '00000000  51 54 41 50 00 62 69 6e  61 72 79 20 64 61 74 61  QTAP.binary data');
  assert.equal(dump.split('\n')[1].slice(0, 13), '00000010  21 ');
});

test('JSON pretty printing and tokens', () => {
  const p = prettyJson('{"a":[1,true,null],"b":"x"}');
  assert.equal(p, '{\n  "a": [\n    1,\n    true,\n    null\n  ],\n  "b": "x"\n}');
  assert.equal(prettyJson('<html>'), null);
  const toks = jsonTokens(p);
  assert.equal(toks.map((t) => t.text).join(''), p);
  assert.deepEqual(toks.filter((t) => t.cls === 'key').map((t) => t.text), ['"a"', '"b"']);
  assert.deepEqual(toks.filter((t) => t.cls === 'lit').map((t) => t.text), ['true', 'null']);
});

test('form bodies decode', () => {
  assert.deepEqual(parseForm('a=1&b=x%40y&c=two+words&d'), [['a', '1'], ['b', 'x@y'], ['c', 'two words'], ['d', '']]);
});

test('gRPC calls: the Status column names the gRPC status, and a non-OK one is an error row', () => {
  const ok = { grpc: { service: 's', method: 'm', status: 0, status_name: 'OK', messages: [] } };
  const nf = { grpc: { service: 's', method: 'm', status: 5, status_name: 'NOT_FOUND', messages: [] } };
  const unnamed = { grpc: { service: 's', method: 'm', status: 42, messages: [] } };
  const unseen = { grpc: { service: 's', method: 'm', messages: [] } };
  assert.equal(statusText({ status: 200 }, ok), '200 · OK');
  assert.equal(statusText({ status: 200 }, nf), '200 · NOT_FOUND');
  assert.equal(statusText({ status: 200 }, unnamed), '200 · status 42');
  assert.equal(statusText({ status: 200 }, unseen), '200', 'no grpc-status seen: the HTTP status alone');
  assert.equal(statusText({ status: 200 }, {}), '200');
  assert.equal(statusText({ status: 200 }), '200');
  assert.equal(statusText({ error: 'closed' }, nf), '(failed)');
  assert.equal(isErrorRow({ status: 200 }, ok), false);
  assert.equal(isErrorRow({ status: 200 }, nf), true, 'HTTP 200 carrying NOT_FOUND');
  assert.equal(isErrorRow({ status: 200 }, unseen), false);
  assert.equal(isErrorRow({ status: 503 }, ok), true);
});

test('a response whose request was not captured is named so, never by a path', () => {
  assert.equal(NOT_CAPTURED, '(request not captured)');
  assert.equal(rowName({ path: '', host: '127.0.0.1', request_not_captured: true }), '(request not captured)');
  assert.equal(rowName({ path: '/json', host: 'h', request_not_captured: true }), '(request not captured)');
  assert.equal(rowName({ path: '/api/json', host: 'h' }), 'json');
  assert.equal(rowName({ path: '/', host: 'example.org', request_not_captured: false }), 'example.org');
});
