// The page-memory ring buffer of transactions and the filters over it. Pure: no DOM,
// no storage API. Nothing here is ever written to localStorage, IndexedDB or cookies.
import { tsToMs, bodyCost, statusClass, splitTarget } from './util.js';

export const MiB = 1024 * 1024;
export const DEFAULTS = Object.freeze({ maxCount: 2000, maxBytes: 64 * MiB });

/**
 * Builds the record the UI keeps for one `request.http_transaction` event (or one
 * imported HAR entry, which har.js converts to the same shape).
 */
export function makeRecord(summary, tx, source = 'live') {
  const t = (tx && tx.timing) || {};
  const startMs = tsToMs(t.start || summary.start);
  let endMs = tsToMs(t.end);
  if (!Number.isFinite(endMs)) endMs = startMs + (Number(summary.duration_ms) || 0);
  const bytes = tx ? bodyCost(tx.request && tx.request.body) + bodyCost(tx.response && tx.response.body) : 0;
  return {
    seq: 0,
    source,
    id: summary.id,
    summary,
    tx,
    startMs,
    endMs,
    bytes,
    key: matchKey(summary),
    haystack: `${summary.url || ''} ${summary.host || ''}`.toLowerCase(),
  };
}

/** method + host + path (query excluded): how a live request finds its imported twin. */
export function matchKey(summary) {
  const path = splitTarget(summary.path || '/').path || '/';
  return `${String(summary.method || '').toUpperCase()} ${String(summary.host || '').toLowerCase()}${path}`;
}

/** A queue with O(1) push and shift that indexes like an array. */
class Deque {
  constructor() {
    this.a = [];
    this.head = 0;
  }
  get length() {
    return this.a.length - this.head;
  }
  at(i) {
    return this.a[this.head + i];
  }
  push(x) {
    this.a.push(x);
  }
  first() {
    return this.a[this.head];
  }
  shift() {
    const x = this.a[this.head];
    this.a[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.a.length) {
      this.a = this.a.slice(this.head);
      this.head = 0;
    }
    return x;
  }
  clear() {
    this.a = [];
    this.head = 0;
  }
  toArray() {
    return this.a.slice(this.head);
  }
}

/**
 * Ring buffer of records, bounded by count and by body bytes; the oldest go first.
 * One Store holds one source (live traffic, or an imported file).
 */
export class Store {
  constructor({ maxCount = DEFAULTS.maxCount, maxBytes = DEFAULTS.maxBytes } = {}) {
    this.maxCount = maxCount;
    this.maxBytes = maxBytes;
    this.q = new Deque();
    this.ids = new Set();
    this.bytes = 0;
    this.nextSeq = 1;
    this.evictedTotal = 0;
    this.facets = { method: new Set(), host: new Set(), process: new Set(), container: new Set() };
    this.facetsVersion = 0;
  }

  get length() {
    return this.q.length;
  }
  at(i) {
    return this.q.at(i);
  }
  all() {
    return this.q.toArray();
  }
  /** Sequence number of the oldest record still held (records below it were evicted). */
  get firstSeq() {
    return this.q.length ? this.q.first().seq : this.nextSeq;
  }

  /** Adds a record; returns false for a duplicate id (a replay after reconnecting). */
  add(rec) {
    if (rec.id != null && this.ids.has(rec.id)) return false;
    rec.seq = this.nextSeq++;
    this.q.push(rec);
    if (rec.id != null) this.ids.add(rec.id);
    this.bytes += rec.bytes;
    this.noteFacets(rec.summary);
    this.evict();
    return true;
  }

  setLimits({ maxCount, maxBytes }) {
    if (Number.isFinite(maxCount) && maxCount > 0) this.maxCount = Math.floor(maxCount);
    if (Number.isFinite(maxBytes) && maxBytes > 0) this.maxBytes = maxBytes;
    return this.evict();
  }

  /** Drops the oldest records until both limits hold; keeps at least the newest one. */
  evict() {
    let n = 0;
    while (this.q.length > this.maxCount || (this.bytes > this.maxBytes && this.q.length > 1)) {
      const old = this.q.shift();
      this.bytes -= old.bytes;
      if (old.id != null) this.ids.delete(old.id);
      n++;
    }
    this.evictedTotal += n;
    return n;
  }

  clear() {
    this.q.clear();
    this.ids.clear();
    this.bytes = 0;
    for (const s of Object.values(this.facets)) s.clear();
    this.facetsVersion++;
  }

  noteFacets(s) {
    const add = (set, v) => {
      if (v && !set.has(v)) {
        set.add(v);
        this.facetsVersion++;
      }
    };
    add(this.facets.method, s.method);
    add(this.facets.host, s.host);
    add(this.facets.process, processLabel(s));
    add(this.facets.container, containerLabel(s));
  }
}

export const processLabel = (s) => (s.process && (s.process.name || s.process.exe)) || '';
export const containerLabel = (s) => (s.container && (s.container.name || s.container.id)) || '';

// ---- filters --------------------------------------------------------------------------

export function emptyFilter() {
  return { text: '', classes: new Set(), method: '', host: '', process: '', container: '', source: 'all' };
}

/** Text filter terms: whitespace separated, each a substring; a leading `-` inverts it. */
export function parseText(text) {
  const terms = [];
  for (const raw of String(text || '').trim().split(/\s+/)) {
    if (!raw) continue;
    if (raw.startsWith('-') && raw.length > 1) terms.push({ neg: true, s: raw.slice(1).toLowerCase() });
    else if (raw !== '-') terms.push({ neg: false, s: raw.toLowerCase() });
  }
  return terms;
}

/** Compiles a filter state into a predicate over records. */
export function compileFilter(f) {
  const terms = parseText(f.text);
  const classes = f.classes && f.classes.size ? f.classes : null;
  return (rec) => {
    const s = rec.summary;
    if (f.source && f.source !== 'all' && rec.source !== f.source) return false;
    for (const t of terms) if (rec.haystack.includes(t.s) === t.neg) return false;
    if (classes && !classes.has(statusClass(s.status))) return false;
    if (f.method && s.method !== f.method) return false;
    if (f.host && s.host !== f.host) return false;
    if (f.process && processLabel(s) !== f.process) return false;
    if (f.container && containerLabel(s) !== f.container) return false;
    return true;
  };
}

/**
 * The filtered list the table shows: imported records first (an older capture), then live
 * ones in arrival order. Kept up to date incrementally as records arrive and are evicted.
 */
export class View {
  constructor() {
    this.imported = [];
    this.live = new Deque();
    this.pred = () => true;
  }
  get length() {
    return this.imported.length + this.live.length;
  }
  at(i) {
    return i < this.imported.length ? this.imported[i] : this.live.at(i - this.imported.length);
  }
  indexOf(rec) {
    if (!rec) return -1;
    if (rec.source === 'imported') return this.imported.indexOf(rec);
    // live is ordered by seq: binary search
    let lo = 0, hi = this.live.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.live.at(mid);
      if (r === rec) return this.imported.length + mid;
      if (r.seq < rec.seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
  rebuild(live, imported, filter) {
    this.pred = compileFilter(filter);
    this.imported = imported.all().filter(this.pred);
    this.live = new Deque();
    for (let i = 0; i < live.length; i++) {
      const r = live.at(i);
      if (this.pred(r)) this.live.push(r);
    }
  }
  /** Appends a new live record when it passes the filter; returns whether it did. */
  offer(rec) {
    if (!this.pred(rec)) return false;
    this.live.push(rec);
    return true;
  }
  /** Forgets live records the store has evicted (seq below `firstSeq`); returns how many. */
  trim(firstSeq) {
    let n = 0;
    while (this.live.length && this.live.first().seq < firstSeq) {
      this.live.shift();
      n++;
    }
    return n;
  }
}
