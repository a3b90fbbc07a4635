import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toCurl, shellQuote } from '../../curl.js';
import { shellSandbox, commandProblems } from '../shell.mjs';
import { transaction, body, basicTransactions, binaryBytes } from '../fixtures.mjs';

/**
 * Runs the command in bash with `curl` replaced by a function that prints its arguments
 * (NUL separated) and, for `@-`, the bytes it reads from stdin: proves the quoting.
 */
function runCurl(cmd) {
  const script = `curl() { printf '%s\\0' "$@"; for a in "$@"; do if [ "$a" = "@-" ]; then printf 'STDIN\\0'; cat; fi; done; }\n${cmd}\n`;
  // the script goes in a file: one argument (`bash -c script`) may hold only 128 KiB
  const dir = mkdtempSync(join(tmpdir(), 'qtap-curl-test-'));
  writeFileSync(join(dir, 'cmd.sh'), script);
  const r = spawnSync('bash', [join(dir, 'cmd.sh')], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(r.status, 0, r.stderr.toString());
  const out = r.stdout;
  const i = out.indexOf('STDIN\0');
  const argPart = i >= 0 ? out.subarray(0, i) : out;
  const args = argPart.toString('utf8').split('\0').slice(0, -1);
  return { args, stdin: i >= 0 ? out.subarray(i + 6) : null };
}

const headersOf = (args) => args.flatMap((a, i) => (args[i - 1] === '-H' ? [a] : []));

test('shell quoting survives quotes, dollars and backticks', () => {
  for (const s of [`it's "quoted" $HOME \`x\``, "a'b", '', 'plain', 'tab\there', 'new\nline', 'bell\x07', 'ünï©ødé']) {
    const { args } = runCurl(`curl ${shellQuote(s)}`);
    assert.deepEqual(args, [s], `round trip of ${JSON.stringify(s)}`);
  }
});

test('all headers, Authorization included, exact values', () => {
  const tx = basicTransactions().find((t) => t.summary.id === 'tx-note').transaction;
  const cmd = toCurl(tx);
  const { args } = runCurl(cmd);
  assert.equal(args[0], '-X');
  assert.equal(args[1], 'PUT');
  assert.equal(args[2], 'http://notes.internal:8081/v2/notes/7');
  assert.deepEqual(headersOf(args), ['Host: notes.internal:8081', `X-Note: it's "quoted" $HOME \`x\``, 'Content-Type: text/plain', 'X-Empty;']);
  assert.equal(args[args.indexOf('--data-raw') + 1], "line one\nit's line two\n");

  const gh = toCurl(basicTransactions()[0].transaction);
  const a2 = runCurl(gh).args;
  assert.ok(headersOf(a2).includes('Authorization: Bearer ghp_TESTTOKEN0123456789abcdef'));
  assert.ok(a2.includes('--compressed'));
  assert.ok(!a2.includes('-X'), 'GET without body needs no -X');
});

test('binary body is piped from base64 and arrives byte for byte', () => {
  const bin = binaryBytes(200);
  const tx = transaction({ id: 'up', method: 'POST', host: 'h:1', path: '/up', reqHeaders: [['Content-Type', 'application/octet-stream']], reqBody: body(bin.toString('base64'), { encoding: 'base64' }) }).transaction;
  const cmd = toCurl(tx);
  assert.match(cmd, /\| base64 -d \|/);
  const { args, stdin } = runCurl(cmd);
  assert.ok(args.includes('--data-binary') && args.includes('@-'));
  assert.ok(!args.includes('-X'), 'POST with a body needs no -X');
  assert.deepEqual([...stdin], [...bin]);
});

test('text with NUL and control bytes keeps its bytes', () => {
  const text = 'a\u0000b\u0001c';
  const tx = transaction({ id: 'nul', method: 'POST', host: 'h', path: '/', reqBody: body(text) }).transaction;
  const { stdin } = runCurl(toCurl(tx));
  assert.equal(stdin.toString('utf8'), text);
  const tx2 = transaction({ id: 'ctl', method: 'PATCH', host: 'h', path: '/', reqBody: body('x\u0007y\r\n') }).transaction;
  const cmd2 = toCurl(tx2);
  assert.match(cmd2, /\$'x\\x07y\\r\\n'/);
  assert.equal(runCurl(cmd2).args.at(-1), 'x\u0007y\r\n');
});

test('truncated body gets a warning and no stale Content-Length', () => {
  const tx = transaction({ id: 'tr', method: 'POST', host: 'h', path: '/', reqHeaders: [['Content-Length', '999999']], reqBody: body('abc', { size: 999999, truncated: true }) }).transaction;
  const cmd = toCurl(tx);
  assert.match(cmd.split('\n')[0], /^# warning: the request body was truncated/);
  assert.ok(!headersOf(runCurl(cmd).args).some((h) => /content-length/i.test(h)));
});

test('a body over 64 KiB goes through stdin (one argument may hold only 128 KiB) and arrives exact', () => {
  const text = `it's "big" $(x) \n`.repeat(8000); // 144 KB
  const tx = transaction({ id: 'big', method: 'POST', host: 'h', path: '/', reqBody: body(text) }).transaction;
  const cmd = toCurl(tx);
  assert.match(cmd, /^printf %s \$'/);
  const { args, stdin } = runCurl(cmd);
  assert.deepEqual(args.slice(-2), ['--data-binary', '@-']);
  assert.equal(stdin.toString('utf8'), text);
  // and with curl a program (not a shell function), as it is
  const sandbox = shellSandbox();
  try {
    assert.deepEqual(commandProblems(sandbox, cmd, tx), []);
  } finally {
    sandbox.close();
  }
});
