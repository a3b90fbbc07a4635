// The detail pane of one transaction: Headers, Payload, Response, gRPC (for gRPC calls),
// Timing, Connection and, when the other source holds the same request, Compare. Everything captured is rendered
// with textContent; images are shown from a blob: URL built from the base64 body.
import { el, clear } from './dom.js';
import {
  b64ToBytes, bodyBytes, fmtBytes, fmtMs, fmtClock, hexDump, isFormType, isImageType, isJsonType, jsonTokens, mimeOf,
  parseForm, prettyJson, queryPairs, headerValue, tsToMs, msBetween, grpcWithStatus, grpcStatusName, NOT_CAPTURED,
} from './util.js';
import { headerDiff } from './har.js';

const HEX_LIMIT = 64 * 1024;
const TEXT_LIMIT = 2 * 1024 * 1024;
const COLOR_LIMIT = 256 * 1024; // past this, pretty JSON is shown without colours

const TABS = [
  ['headers', 'Headers'],
  ['payload', 'Payload'],
  ['response', 'Response'],
  ['grpc', 'gRPC'],
  ['timing', 'Timing'],
  ['connection', 'Connection'],
  ['compare', 'Compare'],
];

export class DetailPane {
  /**
   * @param root  the <aside> to fill
   * @param ctx   { onClose(), copy(text, what), curl(rec), counterpart(rec), process(pid), connection(id) }
   */
  constructor(root, ctx) {
    this.root = root;
    this.ctx = ctx;
    this.rec = null;
    this.tab = 'headers';
    this.modes = {}; // body view mode per tab (pretty/raw/hex/preview), kept across rows
    this.urls = [];
    this.hexAll = false;

    this.tabBar = el('div', { className: 'tabs', role: 'tablist' });
    this.tabButtons = {};
    for (const [id, label] of TABS) {
      const b = el('button', { className: 'tab', type: 'button', role: 'tab', dataset: { tab: id }, on: { click: () => this.show(id) } }, label);
      this.tabButtons[id] = b;
      this.tabBar.append(b);
    }
    const closeBtn = el('button', { className: 'icon close', type: 'button', title: 'Close (Esc)', on: { click: () => ctx.onClose() } }, '✕');
    const curlBtn = el('button', { className: 'btn copy-curl', type: 'button', title: 'Copy this request as a curl command', on: { click: () => this.rec && ctx.curl(this.rec) } }, 'Copy as cURL');
    this.bar = el('div', { className: 'detail-bar' }, closeBtn, this.tabBar, el('span', { className: 'spacer' }), curlBtn);
    this.body = el('div', { className: 'detail-body', tabIndex: 0 });
    root.append(this.bar, this.body);
  }

  open(rec) {
    this.rec = rec;
    this.hexAll = false;
    this.root.hidden = false;
    this.render();
  }

  close() {
    this.rec = null;
    this.root.hidden = true;
    this.revoke();
    clear(this.body);
  }

  show(tab) {
    this.tab = tab;
    this.render();
  }

  revoke() {
    for (const u of this.urls) URL.revokeObjectURL(u);
    this.urls = [];
  }

  render() {
    const rec = this.rec;
    if (!rec) return;
    this.other = this.ctx.counterpart(rec);
    this.tabButtons.compare.hidden = !this.other;
    if (this.tab === 'compare' && !this.other) this.tab = 'headers';
    const grpc = rec.tx && rec.tx.grpc;
    this.tabButtons.grpc.hidden = !grpc;
    if (this.tab === 'grpc' && !grpc) this.tab = 'headers';
    for (const [id, b] of Object.entries(this.tabButtons)) {
      b.classList.toggle('active', id === this.tab);
      b.setAttribute('aria-selected', String(id === this.tab));
    }
    this.revoke();
    clear(this.body);
    this.body.dataset.tab = this.tab;
    const fn = {
      headers: () => this.headersTab(rec),
      payload: () => this.payloadTab(rec),
      response: () => this.responseTab(rec),
      grpc: () => this.grpcTab(rec),
      timing: () => this.timingTab(rec),
      connection: () => this.connectionTab(rec),
      compare: () => this.compareTab(rec, this.other),
    }[this.tab];
    this.body.append(...[].concat(fn()));
    this.body.scrollTop = 0;
  }

  // ---- building blocks ----------------------------------------------------------------

  section(title, content, { copy, cls } = {}) {
    const head = el('div', { className: 'section-head' }, el('span', { className: 'section-title' }, title));
    if (copy) {
      head.append(
        el('button', { className: 'btn small copy', type: 'button', title: `Copy ${title.toLowerCase()}`, on: { click: () => this.ctx.copy(copy(), title) } }, 'Copy'),
      );
    }
    return el('section', { className: `section ${cls || ''}` }, head, content);
  }

  kvList(pairs, cls = '') {
    const dl = el('div', { className: `kv ${cls}` });
    for (const [k, v] of pairs) {
      if (v === undefined || v === null || v === '') continue;
      dl.append(el('div', { className: 'kv-row' }, el('span', { className: 'kv-k' }, k), el('span', { className: 'kv-v' }, String(v))));
    }
    return dl;
  }

  headerList(headers) {
    if (!headers || !headers.length) return el('div', { className: 'muted' }, 'No headers');
    const box = el('div', { className: 'kv headers' });
    for (const [k, v] of headers) {
      box.append(el('div', { className: 'kv-row' }, el('span', { className: 'kv-k' }, `${k}:`), el('span', { className: 'kv-v' }, String(v))));
    }
    return box;
  }

  // ---- tabs ---------------------------------------------------------------------------

  headersTab(rec) {
    const s = rec.summary;
    const tx = rec.tx || {};
    const req = tx.request || {};
    const res = tx.response;
    const net = tx.network || {};
    const status = s.status != null ? `${s.status}${res && res.reason ? ` ${res.reason}` : ''}` : `(failed) ${s.error || 'no response'}`;
    const tls = s.tls ? [net.tls_version || 'TLS', net.sni && `SNI ${net.sni}`].filter(Boolean).join(', ') : 'no (plaintext)';
    const g = grpcWithStatus(tx);
    const unseen = s.request_not_captured === true;
    const general = this.kvList([
      ['Request URL', unseen ? `${s.url} ${NOT_CAPTURED}` : s.url],
      ['Request Method', unseen ? NOT_CAPTURED : s.method],
      ['Status Code', status],
      ['gRPC Status', g ? `${g.status} ${grpcStatusName(g)}${g.message ? ` (${g.message})` : ''}` : undefined],
      ['Remote Address', net.remote],
      ['Direction', s.direction === 'ingress' ? 'ingress (this host served it)' : 'egress (this host sent it)'],
      ['HTTP Version', req.http_version],
      ['TLS', tls],
      ['Source', rec.source === 'imported' ? `imported${rec.file ? ` from ${rec.file}` : ''}` : 'live capture'],
    ], 'general');
    general.querySelector('.kv-row:nth-child(3) .kv-v')?.classList.toggle('status-error', s.status == null || s.status >= 400);
    if (g) general.querySelector('.kv-row:nth-child(4) .kv-v')?.classList.toggle('status-error', g.status !== 0);
    const headerText = (hs) => (hs || []).map(([k, v]) => `${k}: ${v}`).join('\n');
    const out = [this.section('General', general, { copy: () => `Request URL: ${s.url}\nRequest Method: ${s.method}\nStatus Code: ${status}\nRemote Address: ${net.remote || ''}` })];
    out.push(
      unseen
        ? this.section('Request Headers', el('div', { className: 'muted not-captured' }, `${NOT_CAPTURED}: the request was sent before the capture started (or joined mid-way); only its response was seen, and it is not paired with any other request.`), { cls: 'req-headers' })
        : this.section(`Request Headers (${(req.headers || []).length})`, this.headerList(req.headers), { copy: () => headerText(req.headers), cls: 'req-headers' }),
    );
    out.push(
      res
        ? this.section(`Response Headers (${res.headers.length})`, this.headerList(res.headers), { copy: () => headerText(res.headers), cls: 'res-headers' })
        : this.section('Response Headers', el('div', { className: 'muted' }, s.error || 'No response was seen'), { cls: 'res-headers' }),
    );
    if (rec.source === 'imported' && Array.isArray(tx.import_notes) && tx.import_notes.length) out.unshift(this.importNotes(tx.import_notes));
    return out;
  }

  /** What the HAR import dropped or changed in this entry (har-import.js). */
  importNotes(notes) {
    const list = el('ul', { className: 'import-notes' }, notes.map((n) => el('li', {}, n)));
    const why = el('div', { className: 'note warn' }, 'This HAR entry held fields of the wrong type, too large, or with control characters; they were dropped or changed:');
    return this.section('Changed on import', [why, list], { cls: 'import-notes-section' });
  }

  payloadTab(rec) {
    const req = (rec.tx && rec.tx.request) || {};
    const out = [];
    const q = queryPairs(req.path || rec.summary.path);
    if (q.length) out.push(this.section(`Query String Parameters (${q.length})`, this.kvList(q, 'query')));
    const ct = headerValue(req.headers, 'content-type');
    if (!req.body || !req.body.text) {
      const note = req.body && req.body.size ? `The request body (${fmtBytes(req.body.size)}) was not captured.` : 'This request has no body.';
      out.push(el('div', { className: 'muted empty-body' }, note));
      return out;
    }
    out.push(this.section('Request Payload', this.bodyView(req.body, ct, 'payload')));
    return out;
  }

  responseTab(rec) {
    const res = rec.tx && rec.tx.response;
    if (!res) return el('div', { className: 'muted empty-body' }, rec.summary.error || 'No response was seen.');
    if (!res.body || (!res.body.text && !res.body.size)) return [this.bodyNotes(res.body), el('div', { className: 'muted empty-body' }, 'This response has no body.')];
    const ct = headerValue(res.headers, 'content-type') || rec.summary.content_type;
    return this.bodyView(res.body, ct, 'response');
  }

  bodyNotes(body) {
    const notes = el('div', { className: 'notes' });
    if (!body) return notes;
    if (body.truncated) {
      notes.append(el('div', { className: 'note warn truncated' }, `Truncated: ${fmtBytes(body.captured)} of ${fmtBytes(body.size)} captured.`));
    }
    if (body.content_encoding) notes.append(el('div', { className: 'note' }, `Decoded from ${body.content_encoding} (${fmtBytes(body.size)} on the wire).`));
    if (body.note) notes.append(el('div', { className: 'note warn' }, body.note));
    if (body.size && !body.text) notes.append(el('div', { className: 'note warn' }, `${fmtBytes(body.size)} on the wire, none captured.`));
    return notes;
  }

  /** A body with its view modes: preview (images), pretty (JSON, forms), raw, hex. */
  bodyView(body, contentType, slot) {
    const mime = mimeOf(contentType);
    const binary = body.encoding === 'base64';
    const modes = [];
    const pretty = !binary && (isJsonType(mime) || !isFormType(mime)) ? prettyJson(body.text) : null;
    if (isImageType(mime)) modes.push('preview'); // <img> never runs scripts, SVG included
    if (pretty !== null) modes.push('pretty');
    if (!binary && isFormType(mime)) modes.push('form');
    modes.push(binary ? 'base64' : 'raw');
    modes.push('hex');
    let mode = this.modes[slot];
    if (!modes.includes(mode)) mode = binary && !modes.includes('preview') ? 'hex' : modes[0];

    const bar = el('div', { className: 'modes', role: 'tablist' });
    for (const m of modes) {
      bar.append(
        el('button', {
          className: `btn small mode${m === mode ? ' active' : ''}`,
          type: 'button',
          dataset: { mode: m },
          on: { click: () => { this.modes[slot] = m; this.render(); } },
        }, { preview: 'Preview', pretty: 'Pretty', form: 'Parsed', raw: 'Raw', base64: 'Base64', hex: 'Hex' }[m]),
      );
    }
    const view = el('div', { className: `body-view mode-${mode}` });
    if (mode === 'preview') {
      const bytes = bodyBytes(body);
      const url = URL.createObjectURL(new Blob([bytes], { type: mime }));
      this.urls.push(url);
      const img = el('img', { className: 'preview', src: url, alt: 'response image' });
      const dims = el('div', { className: 'muted dims' }, `${mime}, ${fmtBytes(bytes.length)}`);
      img.addEventListener('load', () => (dims.textContent = `${img.naturalWidth} × ${img.naturalHeight}, ${mime}, ${fmtBytes(bytes.length)}`));
      img.addEventListener('error', () => (dims.textContent = `${mime}: not a picture the browser can show (see Hex)`));
      view.append(el('div', { className: 'preview-box' }, img), dims);
    } else if (mode === 'pretty') {
      view.append(this.jsonPre(pretty));
    } else if (mode === 'form') {
      view.append(this.kvList(parseForm(body.text), 'form'));
    } else if (mode === 'hex') {
      const bytes = bodyBytes(body);
      const limit = this.hexAll ? bytes.length : HEX_LIMIT;
      view.append(el('pre', { className: 'hex' }, hexDump(bytes, limit)));
      if (bytes.length > limit) {
        view.append(el('button', { className: 'btn small', type: 'button', on: { click: () => { this.hexAll = true; this.render(); } } }, `Show all ${fmtBytes(bytes.length)}`));
      }
    } else {
      const text = body.text.length > TEXT_LIMIT ? body.text.slice(0, TEXT_LIMIT) : body.text;
      view.append(el('pre', { className: 'raw' }, text));
      if (text !== body.text) view.append(el('div', { className: 'note' }, `Showing the first ${fmtBytes(TEXT_LIMIT)}.`));
    }
    return el('div', { className: 'body' }, this.bodyNotes(body), bar, view);
  }

  jsonPre(text) {
    const pre = el('pre', { className: 'json' });
    if (text.length > COLOR_LIMIT) {
      pre.textContent = text;
      return pre;
    }
    for (const t of jsonTokens(text)) {
      if (t.cls === 'punct') pre.append(t.text);
      else pre.append(el('span', { className: `j-${t.cls}` }, t.text));
    }
    return pre;
  }

  /** The call (service, method, status) and its length-prefixed messages with their field dumps. */
  grpcTab(rec) {
    const g = rec.tx.grpc;
    const call = this.kvList([
      ['Service', g.service],
      ['Method', g.method],
      ['Status', g.status != null ? `${g.status} ${grpcStatusName(g)}` : 'not seen (the call did not end where it could be seen)'],
      ['Message', g.message],
    ], 'grpc-call');
    call.querySelector('.kv-row:nth-child(3) .kv-v')?.classList.toggle('status-error', g.status != null && g.status !== 0);
    const out = [this.section('Call', call, { cls: 'grpc-call-section' })];
    if (g.note) out.push(el('div', { className: 'note warn grpc-note' }, g.note));
    const list = el('div', { className: 'grpc-messages' });
    const count = { request: 0, response: 0 };
    for (const m of g.messages || []) {
      const n = (count[m.from] = (count[m.from] || 0) + 1);
      const bytes = b64ToBytes(m.data || '');
      const facts = [
        `${fmtBytes(m.size)}${m.compressed ? ' compressed' : ''} on the wire`,
        m.compressed ? `${fmtBytes(bytes.length)} decompressed` : null,
        m.captured < m.size ? `${fmtBytes(m.captured)} captured` : null,
      ].filter(Boolean).join(', ');
      const head = el('div', { className: 'grpc-msg-head' },
        el('span', { className: 'dir' }, m.from === 'request' ? '↑' : '↓'),
        el('span', { className: 'grpc-msg-title' }, `${m.from === 'request' ? 'Request' : 'Response'} #${n}`),
        el('span', { className: 'muted' }, facts));
      const box = el('div', { className: `grpc-msg from-${m.from}`, dataset: { from: m.from } }, head);
      if (m.note) box.append(el('div', { className: 'note warn' }, m.note));
      if (m.dump != null) box.append(el('pre', { className: 'grpc-dump' }, m.dump || '(empty message)'));
      else box.append(el('div', { className: 'muted' }, 'Not a whole protobuf message: raw bytes'), el('pre', { className: 'hex' }, hexDump(bytes, HEX_LIMIT)));
      list.append(box);
    }
    if (!(g.messages || []).length) list.append(el('div', { className: 'muted' }, 'No message was seen.'));
    out.push(this.section(`Messages (${(g.messages || []).length})`, list, { cls: 'grpc-messages-section' }));
    out.push(el('div', { className: 'muted explain' }, 'Field dumps are read without the .proto schema: field numbers, wire values, nested messages in braces.'));
    return out;
  }

  timingTab(rec) {
    const t = (rec.tx && rec.tx.timing) || { start: rec.summary.start };
    const start = tsToMs(t.start);
    const sending = msBetween(t.start, t.request_sent);
    const waiting = msBetween(t.request_sent, t.response_start);
    const download = msBetween(t.response_start, t.end);
    const total = Number.isFinite(msBetween(t.start, t.end)) ? msBetween(t.start, t.end) : rec.summary.duration_ms;
    const d = new Date(start);
    const rows = [
      ['Request sent', sending, 'send'],
      ['Waiting (TTFB)', waiting, 'wait'],
      ['Content download', download, 'download'],
    ];
    const table = el('div', { className: 'timing' });
    table.append(el('div', { className: 'timing-row started' }, el('span', { className: 'kv-k' }, 'Started at'), el('span', { className: 'kv-v' }, `${d.toLocaleDateString()} ${fmtClock(start)}`)));
    let offset = 0;
    for (const [label, ms, cls] of rows) {
      const bar = el('div', { className: `tbar tbar-${cls}` });
      if (Number.isFinite(ms) && total > 0) {
        bar.style.marginLeft = `${(offset / total) * 100}%`;
        bar.style.width = `${Math.max(0.5, (ms / total) * 100)}%`;
        offset += ms;
      }
      table.append(
        el('div', { className: `timing-row ${cls}` },
          el('span', { className: 'kv-k' }, label),
          el('span', { className: 'tbar-track' }, bar),
          el('span', { className: 'kv-v num' }, Number.isFinite(ms) ? fmtMs(ms) : '—')),
      );
    }
    table.append(el('div', { className: 'timing-row total' }, el('span', { className: 'kv-k' }, 'Total'), el('span', { className: 'tbar-track' }), el('span', { className: 'kv-v num' }, fmtMs(total))));
    const notes = [];
    if (!t.response_start) notes.push(el('div', { className: 'note warn' }, rec.summary.error || 'No response byte was seen.'));
    return [this.section('Timing', table), ...notes, el('div', { className: 'muted explain' }, 'Waiting = first response byte − request sent; download = end − first response byte.')];
  }

  connectionTab(rec) {
    const s = rec.summary;
    const tx = rec.tx || {};
    const net = tx.network || {};
    const p = s.process || {};
    const proc = this.ctx.process(p.pid) || {};
    const conn = this.ctx.connection(s.connection_id) || {};
    const opened = conn.opened || {};
    const closed = conn.closed || null;
    const c = s.container || proc.container || opened.container;
    const out = [
      this.section('Process', this.kvList([
        ['Executable', p.exe || proc.exe],
        ['Name', p.name],
        ['PID', p.pid],
        ['Parent PID', proc.ppid],
        ['User', p.user || proc.user],
        ['UID', proc.uid],
        ['Command line', proc.cmdline && proc.cmdline.join(' ')],
        ['Exit code', proc.exit_code != null ? proc.exit_code : proc.stopped ? 'exited' : undefined],
      ], 'process')),
      this.section('Container', c
        ? this.kvList([['Name', c.name], ['Image', c.image], ['ID', c.id], ['Runtime', c.runtime], ['Compose service', c.service], ['Pod', c.pod], ['Namespace', c.namespace]], 'container')
        : el('div', { className: 'muted' }, 'Not in a container (or not known).')),
      this.section('Connection', this.kvList([
        ['Connection ID', s.connection_id],
        ['Direction', s.direction],
        ['Local address', net.local || opened.local],
        ['Remote address', net.remote || opened.remote],
        ['TLS', s.tls ? [net.tls_version || (opened.tls && opened.tls.version), (net.sni || (opened.tls && opened.tls.sni)) && `SNI ${net.sni || opened.tls.sni}`, opened.tls && opened.tls.library && `via ${opened.tls.library}`].filter(Boolean).join(', ') || 'yes' : 'no'],
        ['ALPN offered', opened.tls && opened.tls.alpn_offered && opened.tls.alpn_offered.join(', ')],
        ['ALPN chosen', opened.tls && opened.tls.alpn],
        ['Bytes sent', net.bytes_sent != null ? `${net.bytes_sent} (${fmtBytes(net.bytes_sent)})` : undefined],
        ['Bytes received', net.bytes_received != null ? `${net.bytes_received} (${fmtBytes(net.bytes_received)})` : undefined],
        ['Connection totals', closed ? `sent ${fmtBytes(closed.bytes_sent)}, received ${fmtBytes(closed.bytes_received)}, open ${fmtMs(closed.duration_ms)}` : undefined],
      ], 'connection')),
    ];
    return out;
  }

  compareTab(rec, other) {
    const imported = rec.source === 'imported' ? rec : other;
    const live = rec.source === 'imported' ? other : rec;
    const when = (r) => `${new Date(r.startMs).toLocaleString()}`;
    const status = (r) => (r.summary.status != null ? String(r.summary.status) : '(failed)');
    const head = el('div', { className: 'compare-head' },
      el('div', {}, `Same method + host + path: ${rec.key}`),
      el('div', { className: 'muted' }, `imported (${when(imported)}) → live (${when(live)})`),
      el('div', { className: `compare-status${status(imported) !== status(live) ? ' changed' : ''}` }, `Status: ${status(imported)} → ${status(live)}`));
    const reqDiff = headerDiff(imported.tx && imported.tx.request && imported.tx.request.headers, live.tx && live.tx.request && live.tx.request.headers);
    const resDiff = headerDiff(imported.tx && imported.tx.response && imported.tx.response.headers, live.tx && live.tx.response && live.tx.response.headers);
    return [
      head,
      this.section('Request headers', this.diffTable(reqDiff), { cls: 'diff-req' }),
      this.section('Response headers', this.diffTable(resDiff), { cls: 'diff-res' }),
      el('div', { className: 'legend' },
        el('span', { className: 'diff-added' }, '+ added in live'), el('span', { className: 'diff-removed' }, '− removed since import'), el('span', { className: 'diff-changed' }, '~ changed')),
    ];
  }

  diffTable(rows) {
    if (!rows.length) return el('div', { className: 'muted' }, 'No headers on either side');
    const t = el('div', { className: 'diff' }, el('div', { className: 'diff-row diff-headrow' }, el('span', {}, ''), el('span', {}, 'Name'), el('span', {}, 'Imported'), el('span', {}, 'Live')));
    const mark = { same: ' ', added: '+', removed: '−', changed: '~' };
    for (const r of rows) {
      t.append(el('div', { className: `diff-row diff-${r.kind}`, dataset: { kind: r.kind, name: r.name.toLowerCase() } },
        el('span', { className: 'diff-mark' }, mark[r.kind]),
        el('span', { className: 'diff-name' }, r.name),
        el('span', { className: 'diff-before' }, r.before.join('\n')),
        el('span', { className: 'diff-after' }, r.after.join('\n'))));
    }
    return t;
  }
}
