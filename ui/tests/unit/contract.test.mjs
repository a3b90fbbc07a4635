// The fixtures must match the daemon's event types: this reads daemon/src/events.rs and
// checks every fixture payload against the serde field names (unknown keys, missing
// required keys, timestamps, enums, header pairs). A renamed field fails here first.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { basicScenario, grpcScenario } from '../server.mjs';
import { bulkTransactions, connected } from '../fixtures.mjs';

const EVENTS_RS = fileURLToPath(new URL('../../../daemon/src/events.rs', import.meta.url));

function parseStructs(src) {
  const structs = {};
  const re = /pub struct (\w+) \{([\s\S]*?)\n\}/g;
  let m;
  while ((m = re.exec(src))) {
    const fields = [];
    let flatten = false;
    // a field serde may leave out (`skip_serializing_if`, e.g. a `bool` shown only when true)
    let skippable = false;
    for (const line of m[2].split('\n')) {
      const t = line.trim();
      // `#[serde(flatten)]`, also with other options: `#[serde(flatten, deserialize_with = …)]`
      if (/^#\[serde\((?:[^\]]*[\s,])?flatten\b/.test(t)) flatten = true;
      if (t.startsWith('#[serde(') && t.includes('skip_serializing_if')) skippable = true;
      const f = /^pub (\w+): (.+),$/.exec(t);
      if (f) {
        fields.push({ name: f[1], type: f[2], optional: f[2].startsWith('Option<') || skippable, flatten });
        flatten = false;
        skippable = false;
      }
    }
    structs[m[1]] = fields;
  }
  return structs;
}

const TOPIC_TYPES = {
  'system.connected': 'Connected', 'system.disconnected': 'Disconnected', 'system.dropped': 'Dropped',
  'process.started': 'ProcessStarted', 'process.stopped': 'ProcessStopped',
  'connection.opened': 'ConnectionOpened', 'connection.closed': 'ConnectionClosed',
  'request.http_transaction': 'HttpTransaction',
};
const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/;

function checker(structs) {
  const inner = (type) => type.replace(/^(Option|Vec|Box|Arc)<(.+)>$/, '$2');
  const fieldsOf = (name) => structs[name].flatMap((f) => (f.flatten ? fieldsOf(inner(f.type)) : [f]));
  function checkValue(v, type, where) {
    const t = inner(type);
    if (type.startsWith('Vec<') && t !== 'u8') {
      assert.ok(Array.isArray(v), `${where} is an array`);
      return v.forEach((x, i) => checkValue(x, t, `${where}[${i}]`));
    }
    if (structs[t]) return check(v, t, where);
    if (t === 'Timestamp') return assert.match(v, TS, where);
    if (t === 'Direction') return assert.ok(['egress', 'ingress'].includes(v), where);
    if (t === 'BodyEncoding') return assert.ok(['utf8', 'base64'].includes(v), where);
    if (t === 'Headers') {
      assert.ok(Array.isArray(v), where);
      return v.forEach((h) => assert.ok(Array.isArray(h) && h.length === 2 && h.every((s) => typeof s === 'string'), `${where} pair`));
    }
    if (t === 'String') return assert.equal(typeof v, 'string', where);
    if (t === 'bool') return assert.equal(typeof v, 'boolean', where);
    if (/^[ui]\d+$|^f64$/.test(t)) return assert.equal(typeof v, 'number', where);
  }
  function check(obj, name, where = name) {
    assert.equal(typeof obj, 'object', where);
    const fields = fieldsOf(name);
    const names = new Set(fields.map((f) => f.name));
    for (const k of Object.keys(obj)) assert.ok(names.has(k), `${where}: unknown field "${k}" (not in events.rs ${name})`);
    for (const f of fields) {
      if (!(f.name in obj)) {
        assert.ok(f.optional, `${where}: required field "${f.name}" missing`);
        continue;
      }
      assert.ok(obj[f.name] !== null, `${where}.${f.name}: serde skips None, never writes null`);
      checkValue(obj[f.name], f.type.replace(/^Option<(.+)>$/, '$1'), `${where}.${f.name}`);
    }
  }
  return check;
}

test('fixture events match daemon/src/events.rs', { skip: !existsSync(EVENTS_RS) && 'events.rs not in this checkout' }, () => {
  const structs = parseStructs(readFileSync(EVENTS_RS, 'utf8'));
  for (const t of Object.values(TOPIC_TYPES)) assert.ok(structs[t], `struct ${t} in events.rs`);
  const check = checker(structs);
  const events = [
    ['system.connected', connected()],
    ...basicScenario(),
    ...grpcScenario(),
    ...bulkTransactions(3).map((t) => ['request.http_transaction', t]),
    ['system.dropped', { events: 3, bytes: 4096, reason: 'ringbuf-full' }],
    ['system.disconnected', { reason: 'shutting down' }],
    ['process.stopped', { pid: 1, exit_code: 0 }],
  ];
  for (const [topic, data] of events) check(data, TOPIC_TYPES[topic], topic);
  assert.ok(events.length > 20);
});
