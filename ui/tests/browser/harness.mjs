// Browser test harness: headless Debian Chromium driven by playwright-core.
//
// Default: a fixture server (../server.mjs) serves ui/ with the daemon's CSP and replays
// events shaped like daemon/src/events.rs. With QTAP_URL=http://localhost:10001 the tests
// run against a real daemon instead, and `emit('basic')` makes real traffic with curl to a
// local target server started here (scenarios that only fixtures can produce — 10,000
// rows, drops, a daemon stop — are skipped then; see `h.real`).
import { chromium } from 'playwright-core';
import http from 'node:http';
import https from 'node:https';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startFixtureServer, basicScenario, grpcScenario } from '../server.mjs';
import { bulkTransactions, pngBytes, binaryBytes, GITHUB_JSON, AUTH } from '../fixtures.mjs';

const run = promisify(execFile);

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export async function setup() {
  const real = process.env.QTAP_URL ? process.env.QTAP_URL.replace(/\/+$/, '') : null;
  const server = real ? null : await startFixtureServer();
  const target = real ? await startTrafficTarget() : null;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  const base = real || server.url;
  let clock = Date.now() - 60000;

  const h = {
    base,
    real: !!real,
    server,
    target,
    browser,
    /** Produces traffic: fixture events, or real curl requests in QTAP_URL mode. */
    async emit(name, opts = {}) {
      if (real) {
        if (name !== 'basic') throw new Error(`scenario ${name} needs the fixture server`);
        return target.basic();
      }
      clock += 5000;
      if (name === 'basic') return server.sendMany(basicScenario(clock));
      if (name === 'grpc') return server.sendMany(grpcScenario(clock));
      if (name === 'bulk') {
        const n = opts.n || 100;
        const list = bulkTransactions(n, clock, opts.prefix || 'bulk').map((t) => ['request.http_transaction', t]);
        clock += n * 10;
        return server.sendMany(list);
      }
      if (name === 'dropped') return server.send('system.dropped', { events: opts.events ?? 17, bytes: opts.bytes ?? 40960, reason: opts.reason || 'ringbuf-full' });
      if (name === 'disconnected') {
        server.send('system.disconnected', { reason: opts.reason || 'shutting down (SIGTERM)' });
        return server.endClients();
      }
      throw new Error(`unknown scenario ${name}`);
    },
    /** A fresh page on /devtools/ that records CSP violations, page errors and console errors. */
    async open({ colorScheme = 'light', viewport = { width: 1400, height: 800 } } = {}) {
      const context = await browser.newContext({ acceptDownloads: true, viewport, colorScheme });
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
      const page = await context.newPage();
      const problems = [];
      await page.exposeFunction('__reportCsp', (v) => problems.push(`CSP violation: ${v}`));
      await page.addInitScript(() => {
        document.addEventListener('securitypolicyviolation', (e) => window.__reportCsp(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
      });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error' || /Content.Security.Policy/i.test(m.text())) problems.push(`console ${m.type()}: ${m.text()}`);
      });
      await page.goto(`${base}/devtools/`);
      await page.locator('#conn.state-live').waitFor({ timeout: 10000 });
      page.problems = problems;
      page.done = async () => {
        await page.waitForTimeout(50);
        await context.close();
        return problems;
      };
      return page;
    },
    async close() {
      await browser.close();
      if (server) await server.close();
      if (target) await target.close();
    },
  };
  return h;
}

/** Locator of the table row whose Name column reads exactly `name`. */
export function row(page, name) {
  return page.locator('.grid-rows .row').filter({ has: page.locator('.name-text', { hasText: new RegExp(`^${name.replace(/[.?*+^$()[\]{}|\\]/g, '\\$&')}$`) }) });
}

/** Number of rows the view holds (not the DOM), from the status bar. */
export async function viewCount(page) {
  const t = await page.locator('#count').textContent();
  const m = /^(\d+)(?: \/ (\d+))? requests/.exec(t);
  return m ? Number(m[1]) : NaN;
}

// ---- QTAP_URL mode: real traffic ------------------------------------------------------

export async function startTrafficTarget() {
  const png = pngBytes();
  const bin = binaryBytes();
  const handler = (req, res) => {
    let data = [];
    req.on('data', (c) => data.push(c));
    req.on('end', () => {
      const u = new URL(req.url, 'http://x');
      const json = (status, obj, extra = {}) => {
        let b = Buffer.from(typeof obj === 'string' ? obj : JSON.stringify(obj));
        const h = { 'Content-Type': 'application/json; charset=utf-8', ...extra };
        if (/gzip/.test(req.headers['accept-encoding'] || '')) {
          b = zlib.gzipSync(b);
          h['Content-Encoding'] = 'gzip';
        }
        res.writeHead(status, h);
        res.end(b);
      };
      switch (u.pathname) {
        case '/repos/acme/widgets': return json(200, GITHUB_JSON, { 'X-RateLimit-Remaining': '4999' });
        case '/health': res.writeHead(200, { 'Content-Type': 'text/plain' }); return res.end('ok');
        case '/api/orders': return json(201, { id: 981, status: 'accepted', total: { amount: 39.8, currency: 'EUR' } });
        case '/img/logo.png': res.writeHead(200, { 'Content-Type': 'image/png' }); return res.end(png);
        case '/v1/users/404-nobody': return json(404, { title: 'Not Found', status: 404 });
        case '/api/checkout': res.writeHead(500, { 'Content-Type': 'text/html; charset=utf-8' }); return res.end('<html><body><h1>500</h1><script>alert("xss")</script></body></html>');
        case '/oauth/token': return json(200, { access_token: 'eyJhbGciOi.x.y', token_type: 'Bearer' });
        case '/dl/blob.bin': res.writeHead(200, { 'Content-Type': 'application/octet-stream' }); return res.end(bin);
        case '/slow/report': return req.socket.destroy();
        case '/v2/notes/7': return json(200, { ok: true });
        case '/old-page': res.writeHead(302, { Location: '/new-page', 'Content-Length': '0' }); return res.end();
        case '/secure/ping': return json(200, { secure: true, tls: req.socket.getProtocol?.() || null });
        default: res.writeHead(404); return res.end();
      }
    });
  };
  const server = http.createServer(handler);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const t = `http://127.0.0.1:${server.address().port}`;
  // the same over TLS, with a throw-away self-signed certificate
  const dir = await mkdtemp(join(tmpdir(), 'qtap-ui-tls-'));
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
  const tlsServer = https.createServer({ key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) }, handler);
  await rm(dir, { recursive: true, force: true });
  await new Promise((r) => tlsServer.listen(0, '127.0.0.1', r));
  const tlsPort = tlsServer.address().port;
  const curl = (...args) => run('curl', ['-s', '-o', '/dev/null', '--max-time', '5', ...args]).catch(() => {});
  return {
    url: t,
    async basic() {
      await curl('--compressed', '-H', `Authorization: ${AUTH}`, '-H', 'Accept: application/vnd.github+json', `${t}/repos/acme/widgets`);
      await curl(`${t}/health`);
      await curl('-H', 'Content-Type: application/json', '-H', 'Authorization: Basic YWxpY2U6czNjcmV0', '--data-binary', '{"sku":"WID-1","qty":2,"note":"gift","address":{"city":"Lyon"}}', `${t}/api/orders?dry_run=false`);
      await curl(`${t}/img/logo.png`);
      await curl(`${t}/v1/users/404-nobody`);
      await curl('-H', 'Content-Type: application/json', '--data-binary', '{"cart":17}', `${t}/api/checkout`);
      await curl('--data-binary', 'grant_type=password&username=alice%40example.com&password=s3cr%26t+word&scope=read+write', `${t}/oauth/token`);
      await curl(`${t}/dl/blob.bin`);
      await curl(`${t}/slow/report`);
      await curl('-X', 'PUT', '-H', `X-Note: it's "quoted" $HOME \`x\``, '-H', 'Content-Type: text/plain', '-H', 'X-Empty;', '--data-binary', "line one\nit's line two\n", `${t}/v2/notes/7`);
      await curl(`${t}/old-page`);
    },
    /** One real curl over TLS to `path` with `Authorization: auth`; resolves when curl has exited. */
    async tls(path, auth) {
      await run('curl', ['-sk', '-o', '/dev/null', '--max-time', '5', '--http1.1', '-H', `Authorization: ${auth}`,
        '--resolve', `localhost:${tlsPort}:127.0.0.1`, `https://localhost:${tlsPort}${path}`]);
    },
    close: () => Promise.all([server, tlsServer].map((x) => new Promise((r) => { x.closeAllConnections?.(); x.close(r); }))),
  };
}
