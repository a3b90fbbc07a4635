// Wires the page: stream → ring buffer → filtered view → table and detail pane.
import { Store, View, makeRecord, emptyFilter, DEFAULTS, MiB, processLabel, containerLabel } from './store.js';
import { Stream } from './stream.js';
import { VirtualTable } from './table.js';
import { DetailPane } from './detail.js';
import { toCurl } from './curl.js';
import { toHar, findCounterpart } from './har.js';
import { importHar, IMPORT_LIMITS } from './har-import.js';
import { el, clear, copyText, download, toast } from './dom.js';
import { fmtBytes, fileStamp } from './util.js';

const $ = (sel) => document.querySelector(sel);
const MAX_SIDE_MAP = 20000; // processes and connections remembered for the Connection tab

const live = new Store(DEFAULTS);
const imported = new Store({ maxCount: 1e6, maxBytes: 1024 * MiB });
const view = new View();
const filter = emptyFilter();
const processes = new Map();
const connections = new Map();
const dropped = { events: 0, bytes: 0, reasons: new Map() };
let inbox = [];
let held = [];
let paused = false;
let flushTimer = 0;
let hostInfo = null;
let importCount = 0;
let facetsSeen = -1;

// ---- table and detail -----------------------------------------------------------------

const main = $('#main');
const table = new VirtualTable($('#grid'), {
  onSelect: (rec) => {
    if (rec) {
      detail.open(rec);
      main.classList.add('with-detail');
    }
  },
});
table.setEmptyText('Waiting for HTTP traffic on this host… requests appear here as they complete.');

const detail = new DetailPane($('#detail'), {
  onClose: closeDetail,
  copy: async (text, what) => toast((await copyText(text)) ? `Copied ${what}` : 'Copy failed: the browser refused the clipboard'),
  curl: async (rec) => toast((await copyText(toCurl(rec.tx || rec.summary))) ? 'Copied as cURL' : 'Copy failed: the browser refused the clipboard'),
  counterpart: (rec) => (rec.source === 'imported' ? findCounterpart(rec, live.all()) : imported.length ? findCounterpart(rec, imported.all()) : null),
  process: (pid) => processes.get(pid),
  connection: (id) => connections.get(id),
});

// drag the splitter to resize the list beside the detail pane (CSSOM, allowed by the CSP)
const splitter = $('#splitter');
splitter.addEventListener('pointerdown', (e) => {
  splitter.setPointerCapture(e.pointerId);
  splitter.classList.add('dragging');
  const box = main.getBoundingClientRect();
  const move = (ev) => {
    const w = Math.max(200, Math.min(box.width - 320, ev.clientX - box.left));
    $('#grid').style.flexBasis = `${w}px`;
  };
  const up = () => {
    splitter.classList.remove('dragging');
    splitter.removeEventListener('pointermove', move);
    splitter.removeEventListener('pointerup', up);
  };
  splitter.addEventListener('pointermove', move);
  splitter.addEventListener('pointerup', up);
});

function closeDetail() {
  detail.close();
  table.select(null);
  main.classList.remove('with-detail');
  table.scroller.focus({ preventScroll: true });
}

// ---- events ---------------------------------------------------------------------------

function remember(map, key, value) {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_SIDE_MAP) map.delete(map.keys().next().value);
}

function onEvent(topic, env) {
  const d = env && env.data;
  if (!d) return;
  switch (topic) {
    case 'request.http_transaction':
      if (!d.summary) return;
      (paused ? held : inbox).push(d);
      if (paused) {
        if (held.length > live.maxCount) held.splice(0, held.length - live.maxCount);
        updatePause();
      } else scheduleFlush();
      break;
    case 'system.connected':
      hostInfo = d;
      updateHostInfo();
      break;
    case 'system.dropped':
      dropped.events += Number(d.events) || 0;
      dropped.bytes += Number(d.bytes) || 0;
      dropped.reasons.set(d.reason, (dropped.reasons.get(d.reason) || 0) + (Number(d.events) || 0));
      dropped.last = d.reason;
      updateDropped();
      break;
    case 'process.started':
      remember(processes, d.pid, d);
      break;
    case 'process.stopped': {
      const p = processes.get(d.pid);
      if (p) Object.assign(p, { stopped: true, exit_code: d.exit_code });
      break;
    }
    case 'connection.opened':
      remember(connections, d.connection_id, { opened: d });
      break;
    case 'connection.closed': {
      const c = connections.get(d.connection_id) || {};
      c.closed = d;
      remember(connections, d.connection_id, c);
      break;
    }
    default:
  }
}

function scheduleFlush() {
  if (!flushTimer) flushTimer = setTimeout(flush, 40);
}

function flush() {
  flushTimer = 0;
  // a burst larger than the ring: only the newest fit, the rest count as evicted
  const batch = inbox.length > live.maxCount ? inbox.slice(-live.maxCount) : inbox;
  live.evictedTotal += inbox.length - batch.length;
  inbox = [];
  for (const d of batch) {
    const rec = makeRecord(d.summary, d.transaction, 'live');
    if (live.add(rec)) view.offer(rec);
  }
  const removed = view.trim(live.firstSeq);
  table.setView(view, { removedFront: removed });
  refreshChrome();
}

// ---- filters --------------------------------------------------------------------------

function applyFilter() {
  view.rebuild(live, imported, filter);
  table.setView(view, {});
  refreshChrome();
}

let filterTimer = 0;
$('#filter').addEventListener('input', (e) => {
  filter.text = e.target.value;
  clearTimeout(filterTimer);
  filterTimer = setTimeout(applyFilter, 80);
});

for (const b of document.querySelectorAll('#classes .toggle')) {
  b.addEventListener('click', () => {
    const c = b.dataset.class;
    if (filter.classes.has(c)) filter.classes.delete(c);
    else filter.classes.add(c);
    b.classList.toggle('active', filter.classes.has(c));
    b.setAttribute('aria-pressed', String(filter.classes.has(c)));
    applyFilter();
  });
}

const pickers = { method: $('#pick-method'), host: $('#pick-host'), process: $('#pick-process'), container: $('#pick-container') };
for (const [key, sel] of Object.entries(pickers)) {
  sel.addEventListener('change', () => {
    filter[key] = sel.value;
    applyFilter();
  });
}
$('#pick-source').addEventListener('change', (e) => {
  filter.source = e.target.value;
  applyFilter();
});

function updatePickers() {
  const version = live.facetsVersion + imported.facetsVersion * 1e9;
  if (version === facetsSeen) return;
  facetsSeen = version;
  for (const [key, sel] of Object.entries(pickers)) {
    const values = new Set([...live.facets[key], ...imported.facets[key]]);
    if (filter[key]) values.add(filter[key]);
    const sorted = [...values].sort((a, b) => a.localeCompare(b));
    clear(sel);
    sel.append(el('option', { value: '' }, 'All'));
    for (const v of sorted) sel.append(el('option', { value: v }, v));
    sel.value = filter[key];
  }
}

// ---- toolbar actions ------------------------------------------------------------------

function updatePause() {
  const b = $('#pause');
  b.classList.toggle('recording', !paused);
  b.setAttribute('aria-pressed', String(paused));
  b.textContent = paused ? '▶' : '●';
  b.title = paused ? `Resume (${held.length} new request${held.length === 1 ? '' : 's'} held)` : 'Pause the list (new requests are held until you resume)';
  b.dataset.held = paused ? String(held.length) : '';
  document.body.classList.toggle('paused', paused);
}

$('#pause').addEventListener('click', () => {
  paused = !paused;
  if (!paused) {
    inbox.push(...held);
    held = [];
    scheduleFlush();
  }
  updatePause();
  updateConn();
});

$('#clear').addEventListener('click', () => {
  live.clear();
  held = [];
  inbox = [];
  if (detail.rec && detail.rec.source === 'live') closeDetail();
  dropped.events = dropped.bytes = 0;
  dropped.reasons.clear();
  updateDropped();
  applyFilter();
});

$('#export-all').addEventListener('click', () => exportHar(live.all(), 'all'));
$('#export-filtered').addEventListener('click', () => {
  const recs = [];
  for (let i = 0; i < view.length; i++) recs.push(view.at(i));
  exportHar(recs, 'filtered');
});

function exportHar(recs, what) {
  const har = toHar(recs, { version: (hostInfo && hostInfo.version) || 'dev', comment: `qtap-devtools capture${hostInfo ? ` on ${hostInfo.hostname}` : ''} (${what})` });
  const host = hostInfo && hostInfo.hostname ? `${hostInfo.hostname}-` : '';
  download(`qtap-${host}${fileStamp()}${what === 'filtered' ? '-filtered' : ''}.har`, JSON.stringify(har, null, 2));
  toast(`Exported ${recs.length} request${recs.length === 1 ? '' : 's'} as HAR`);
}

$('#import').addEventListener('click', () => $('#har-file').click());
$('#har-file').addEventListener('change', async (e) => {
  const files = [...e.target.files];
  e.target.value = '';
  for (const file of files) {
    try {
      if (file.size > IMPORT_LIMITS.fileBytes) throw new Error(`${fmtBytes(file.size)} is more than the ${fmtBytes(IMPORT_LIMITS.fileBytes)} an import may be`);
      const { entries, notes } = importHar(await file.text(), { idPrefix: `import${++importCount}` });
      let changed = 0;
      for (const { summary, tx } of entries) {
        const rec = makeRecord(summary, tx, 'imported');
        rec.file = file.name;
        imported.add(rec);
        if (tx.import_notes) changed++;
      }
      const n = entries.length;
      const more = [
        changed && `${changed} with fields dropped or changed (see their Headers tab)`,
        notes.length && `${notes.slice(0, 3).join('; ')}${notes.length > 3 ? '; …' : ''}`,
      ].filter(Boolean);
      toast(`Imported ${n} request${n === 1 ? '' : 's'} from ${file.name}${more.length ? ` — ${more.join('; ')}` : ''}`);
    } catch (err) {
      toast(`Cannot import ${file.name}: ${err.message}`);
    }
  }
  applyFilter();
  if (detail.rec) detail.render();
});
$('#imported-clear').addEventListener('click', () => {
  imported.clear();
  if (detail.rec && detail.rec.source === 'imported') closeDetail();
  applyFilter();
  if (detail.rec) detail.render();
});

// ---- settings -------------------------------------------------------------------------

const settings = $('#settings');
function openSettings() {
  $('#set-count').value = String(live.maxCount);
  $('#set-mib').value = String(Math.round(live.maxBytes / MiB));
  $('#set-usage').textContent = `Now: ${live.length} requests, ${fmtBytes(live.bytes)} of bodies.`;
  settings.hidden = false;
  $('#set-count').focus();
}
$('#settings-btn').addEventListener('click', () => (settings.hidden ? openSettings() : (settings.hidden = true)));
$('#set-cancel').addEventListener('click', () => (settings.hidden = true));
$('#set-apply').addEventListener('click', () => {
  live.setLimits({ maxCount: Number($('#set-count').value), maxBytes: Number($('#set-mib').value) * MiB });
  const removed = view.trim(live.firstSeq);
  table.setView(view, { removedFront: removed });
  settings.hidden = true;
  refreshChrome();
  toast(`Keeping at most ${live.maxCount} requests and ${Math.round(live.maxBytes / MiB)} MiB of bodies`);
});
settings.addEventListener('keydown', (e) => {
  if (e.key === 'Enter') $('#set-apply').click();
});

// ---- status ---------------------------------------------------------------------------

function refreshChrome() {
  updatePickers();
  let transferred = 0;
  for (let i = 0; i < view.length; i++) {
    const s = view.at(i).summary;
    transferred += (s.request_size || 0) + (s.response_size || 0);
  }
  const total = live.length + imported.length;
  $('#count').textContent = view.length === total ? `${total} requests` : `${view.length} / ${total} requests`;
  $('#transferred').textContent = `${fmtBytes(transferred)} of bodies`;
  $('#transferred').title = 'Request + response body bytes on the wire, for the requests shown';
  $('#buffer').textContent = `buffer ${live.length}/${live.maxCount} · ${fmtBytes(live.bytes)} of ${Math.round(live.maxBytes / MiB)} MiB${live.evictedTotal ? ` · ${live.evictedTotal} evicted` : ''}`;
  $('#buffer').title = 'Oldest requests are dropped first when a limit is reached (⚙ to change)';
  const chip = $('#imported-chip');
  chip.hidden = imported.length === 0;
  if (imported.length) {
    const files = [...new Set(imported.all().map((r) => r.file))];
    $('#imported-text').textContent = `Imported: ${files.join(', ')} (${imported.length})`;
  }
  updatePause();
}

function updateDropped() {
  const b = $('#dropped');
  b.hidden = dropped.events === 0 && dropped.bytes === 0;
  b.textContent = `⚠ ${dropped.events} event${dropped.events === 1 ? '' : 's'} dropped (${dropped.last || 'unknown'})`;
  b.title = ['Lost before reaching this page:', ...[...dropped.reasons].map(([r, n]) => `  ${r}: ${n} events`), `  ${fmtBytes(dropped.bytes)} in all`].join('\n');
}

function updateHostInfo() {
  if (!hostInfo) return;
  const probes = hostInfo.probes || [];
  const failed = probes.filter((p) => !String(p.status).startsWith('attached'));
  const hi = $('#hostinfo');
  hi.textContent = `${hostInfo.hostname} · qtap ${hostInfo.version}${failed.length ? ` · ⚠ ${failed.length} probe${failed.length === 1 ? '' : 's'} not attached` : ''}`;
  hi.classList.toggle('warn', failed.length > 0);
  hi.title = [`kernel ${hostInfo.kernel}`, ...probes.map((p) => `${p.library} ${p.path}: ${p.status}`),
    hostInfo.limits ? `bodies captured up to ${fmtBytes(hostInfo.limits.max_body_bytes)}` : ''].filter(Boolean).join('\n');
}

let connState = 'connecting';
let connInfo = {};
let everLive = false;
function updateConn() {
  const c = $('#conn');
  const banner = $('#banner');
  c.className = `conn state-${connState}`;
  const texts = {
    idle: 'Not connected',
    connecting: 'Connecting…',
    live: paused ? 'Live (paused)' : 'Live',
    reconnecting: 'Stream lost — reconnecting…',
    stopped: 'Daemon stopped',
  };
  c.textContent = texts[connState] || connState;
  c.title = connState === 'live' ? 'Receiving events from the qtap daemon' : 'The page reconnects by itself';
  if (connState === 'stopped') {
    banner.textContent = `The qtap daemon stopped (${connInfo.reason || 'no reason given'}). The list is kept; the page reconnects by itself when the daemon is back.`;
    banner.hidden = false;
  } else if (connState === 'reconnecting' && everLive) {
    banner.textContent = 'Lost the event stream. Reconnecting by itself… requests made meanwhile may be missing.';
    banner.hidden = false;
  } else banner.hidden = true;
}

// ---- keyboard -------------------------------------------------------------------------

document.addEventListener('keydown', (e) => {
  const t = e.target;
  const typing = t && (t.tagName === 'INPUT' || t.tagName === 'SELECT' || t.tagName === 'TEXTAREA');
  if (e.key === 'Escape') {
    if (!settings.hidden) settings.hidden = true;
    else if (detail.rec) closeDetail();
    else if (typing) t.blur();
    return;
  }
  if (typing || e.altKey || e.ctrlKey || e.metaKey) return;
  if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
    e.preventDefault();
    table.move(e.key === 'ArrowDown' ? 1 : -1);
  } else if (e.key === 'End') {
    e.preventDefault();
    table.scrollToBottom();
  }
});

document.addEventListener('click', (e) => {
  if (!settings.hidden && !settings.contains(e.target) && e.target !== $('#settings-btn')) settings.hidden = true;
});

// ---- start ----------------------------------------------------------------------------

const stream = new Stream('/devtools/api/events', {
  onEvent,
  onState: (state, info) => {
    connState = state;
    connInfo = info || {};
    if (state === 'live') everLive = true;
    updateConn();
  },
});
stream.start();
applyFilter();

// for tests and the curious: read-only handles, no data leaves the page
window.qtapDevtools = { live, imported, view, filter, table, detail, stream, processLabel, containerLabel };
