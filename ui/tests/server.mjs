// Test-only stand-in for the daemon's HTTP side: serves ui/ under /devtools/ with the same
// Content-Security-Policy the daemon sends, and an SSE endpoint that replays fixture events
// framed as the daemon frames them. Run directly for a demo:
//   node ui/tests/server.mjs [port]      → http://127.0.0.1:PORT/devtools/
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { rfc3339, connected, basicTransactions, grpcTransactions, sideEvents, closedEvent, bulkTransactions } from './fixtures.mjs';

export const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";
const UI_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

/**
 * Starts the fixture server on 127.0.0.1. Returns { url, port, send(topic, data),
 * sendMany([[topic, data]...]), dropClients(), clients(), close() }.
 */
export async function startFixtureServer({ port = 0, onConnect } = {}) {
  const clients = new Set();

  const frame = (c, topic, data) => {
    c.id += 1;
    c.res.write(`id: ${c.id}\nevent: ${topic}\ndata: ${JSON.stringify({ ts: rfc3339(Date.now()), data })}\n\n`);
  };

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    const common = { 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer', 'Cache-Control': 'no-store' };
    if (url.pathname === '/devtools') {
      res.writeHead(308, { ...common, Location: '/devtools/' });
      return res.end();
    }
    if (url.pathname === '/devtools/api/events') {
      res.writeHead(200, { ...common, 'Content-Type': 'text/event-stream', Connection: 'keep-alive' });
      res.flushHeaders();
      const c = { res, id: 0 };
      clients.add(c);
      req.on('close', () => clients.delete(c));
      frame(c, 'system.connected', connected());
      if (onConnect) onConnect((topic, data) => frame(c, topic, data));
      return;
    }
    const m = /^\/devtools\/([A-Za-z0-9_-]*\.(?:html|js|css))?$/.exec(url.pathname);
    if (m) {
      const name = m[1] || 'index.html';
      try {
        const data = await readFile(path.join(UI_DIR, name));
        res.writeHead(200, { ...common, 'Content-Type': TYPES[path.extname(name)] });
        return res.end(data);
      } catch {
        /* 404 below */
      }
    }
    res.writeHead(404, { ...common, 'Content-Type': 'text/plain' });
    res.end('not found');
  });

  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actual = server.address().port;

  return {
    port: actual,
    url: `http://127.0.0.1:${actual}`,
    clients: () => clients.size,
    send(topic, data) {
      for (const c of clients) frame(c, topic, data);
    },
    sendMany(list) {
      for (const c of clients) {
        let chunk = '';
        for (const [topic, data] of list) {
          c.id += 1;
          chunk += `id: ${c.id}\nevent: ${topic}\ndata: ${JSON.stringify({ ts: rfc3339(Date.now()), data })}\n\n`;
          if (chunk.length > 1 << 20) {
            c.res.write(chunk);
            chunk = '';
          }
        }
        if (chunk) c.res.write(chunk);
      }
    },
    /** Ends every event stream cleanly, as a daemon that shuts down does. */
    endClients() {
      for (const c of clients) c.res.end();
      clients.clear();
    },
    /** Cuts every event stream, as a network failure would. */
    dropClients() {
      for (const c of clients) c.res.destroy();
      clients.clear();
    },
    close() {
      for (const c of clients) c.res.destroy();
      server.closeAllConnections?.();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The events of the basic scenario, in the order the daemon would send them. */
export function basicScenario(t0) {
  const txs = basicTransactions(t0);
  const out = sideEvents(txs);
  for (const t of txs) {
    out.push(['request.http_transaction', t]);
    out.push(closedEvent(t.transaction));
  }
  return out;
}

/** Two gRPC calls on one HTTP/2 connection (OK and NOT_FOUND), as the daemon would send them. */
export function grpcScenario(t0) {
  const txs = grpcTransactions(t0);
  // both calls share one connection: one connection.opened
  const out = sideEvents(txs.slice(0, 1)).filter(([topic]) => topic === 'connection.opened');
  for (const t of txs) out.push(['request.http_transaction', t]);
  out.push(closedEvent(txs[1].transaction));
  return out;
}

export { bulkTransactions };

// demo mode: `node ui/tests/server.mjs 10001`
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2] || 10001);
  const s = await startFixtureServer({ port, onConnect: (send) => basicScenario(Date.now()).forEach(([t, d]) => send(t, d)) });
  console.log(`fixture server: ${s.url}/devtools/`);
  let n = 0;
  setInterval(() => {
    const t = bulkTransactions(1, Date.now(), `demo${n++}`)[0];
    s.send('request.http_transaction', t);
  }, 1500);
}
