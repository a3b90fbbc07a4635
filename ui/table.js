// The request list: a virtual list that keeps only the rows in view (plus a few) in the
// DOM, so 10,000 transactions scroll as smoothly as 10. Rows are positioned with CSSOM
// (`el.style.transform`), which the CSP allows; nothing is set through style attributes.
import { el } from './dom.js';
import { rowName, fmtBytes, fmtMs, shortType, isErrorRow, statusText, grpcWithStatus, tsToMs } from './util.js';

export const ROW_HEIGHT = 21;
const OVERSCAN = 6;

/** Column definitions: id, header, cell text and tooltip. `wide` columns hide when the detail pane is open. */
export const COLUMNS = [
  {
    id: 'name',
    title: 'Name',
    text: (r) => rowName(r.summary),
    tip: (r) => `${r.summary.request_not_captured === true ? 'the request was sent before the capture started: only its response was seen\n' : ''}${r.summary.url}\n${r.summary.direction === 'ingress' ? 'ingress: this host served it' : 'egress: this host sent it'}`,
  },
  { id: 'method', title: 'Method', text: (r) => r.summary.method },
  {
    id: 'status',
    title: 'Status',
    text: (r) => statusText(r.summary, r.tx),
    tip: (r) => {
      const g = grpcWithStatus(r.tx);
      if (g) return [`gRPC status ${g.status}${g.status_name ? ` ${g.status_name}` : ''}`, g.message, r.summary.error].filter(Boolean).join('\n');
      return r.summary.error || (r.tx && r.tx.response && r.tx.response.reason) || '';
    },
  },
  { id: 'host', title: 'Host', wide: true, text: (r) => r.summary.host },
  {
    id: 'process',
    title: 'Process',
    wide: true,
    text: (r) => {
      const p = r.summary.process || {};
      const name = p.name || p.exe || '';
      return name || p.pid ? `${name}${p.pid ? ` (${p.pid})` : ''}` : '';
    },
    tip: (r) => {
      const p = r.summary.process || {};
      return [p.exe, p.user && `user ${p.user}`].filter(Boolean).join('\n');
    },
  },
  {
    id: 'container',
    title: 'Container',
    wide: true,
    text: (r) => (r.summary.container ? r.summary.container.name || r.summary.container.id.slice(0, 12) : ''),
    tip: (r) => (r.summary.container ? [r.summary.container.image, r.summary.container.id].filter(Boolean).join('\n') : ''),
  },
  { id: 'type', title: 'Type', wide: true, text: (r) => shortType(r.summary.content_type), tip: (r) => r.summary.content_type || '' },
  {
    id: 'size',
    title: 'Size',
    wide: true,
    text: (r) => `${fmtBytes(r.summary.request_size)} / ${fmtBytes(r.summary.response_size)}`,
    tip: (r) => `request body ${r.summary.request_size} B\nresponse body ${r.summary.response_size} B`,
  },
  { id: 'time', title: 'Time', text: (r) => fmtMs(r.summary.duration_ms) },
  { id: 'waterfall', title: 'Waterfall', wide: true },
];

export class VirtualTable {
  /**
   * @param root   element to fill
   * @param opts   { onSelect(rec), onActivate(rec) }
   */
  constructor(root, { onSelect } = {}) {
    this.root = root;
    this.onSelect = onSelect || (() => {});
    this.view = { length: 0, at: () => undefined };
    this.selected = null;
    this.stick = true;
    this.pool = [];

    this.head = el('div', { className: 'grid-head', role: 'row' });
    for (const c of COLUMNS) {
      this.head.append(el('div', { className: `cell col-${c.id}${c.wide ? ' wide' : ''}`, role: 'columnheader' }, c.title));
    }
    this.wfHead = this.head.querySelector('.col-waterfall');
    this.wfHead.title = 'Bars are placed over the time range of the rows on screen (imported rows over their own range)';
    this.scroller = el('div', { className: 'grid-scroll', tabIndex: 0, role: 'rowgroup' });
    this.spacer = el('div', { className: 'grid-spacer' });
    this.rows = el('div', { className: 'grid-rows' });
    this.empty = el('div', { className: 'grid-empty' });
    this.scroller.append(this.spacer, this.rows, this.empty);
    root.append(this.head, this.scroller);

    this.scroller.addEventListener('scroll', () => {
      const s = this.scroller;
      this.stick = s.scrollTop + s.clientHeight >= s.scrollHeight - ROW_HEIGHT / 2;
      this.schedule();
    });
    this.rows.addEventListener('click', (e) => {
      const row = e.target.closest('.row');
      if (row && row.rec) this.select(row.rec);
    });
    new ResizeObserver(() => this.schedule()).observe(this.scroller);
  }

  setEmptyText(text) {
    this.empty.textContent = text;
  }

  /** New data (or the same view changed). `removedFront` rows were evicted above the view. */
  setView(view, { removedFront = 0, reset = false } = {}) {
    this.view = view;
    const s = this.scroller;
    if (reset) this.stick = true;
    this.spacer.style.height = `${view.length * ROW_HEIGHT}px`;
    if (this.stick) s.scrollTop = s.scrollHeight;
    else if (removedFront) s.scrollTop = Math.max(0, s.scrollTop - removedFront * ROW_HEIGHT);
    this.empty.hidden = view.length > 0;
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      this.render();
    });
  }

  render() {
    const s = this.scroller;
    const n = this.view.length;
    const first = Math.max(0, Math.floor(s.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const count = Math.min(n - first, Math.ceil(s.clientHeight / ROW_HEIGHT) + 2 * OVERSCAN);
    while (this.pool.length < count) this.pool.push(this.makeRow());
    const ranges = this.timeRanges(first, count);
    for (let i = 0; i < this.pool.length; i++) {
      const row = this.pool[i];
      if (i >= count) {
        if (row.isConnected) row.remove();
        row.rec = null;
        continue;
      }
      const rec = this.view.at(first + i);
      if (!row.isConnected) this.rows.append(row);
      row.style.transform = `translateY(${(first + i) * ROW_HEIGHT}px)`;
      if (row.rec !== rec) this.fillRow(row, rec);
      row.classList.toggle('selected', rec === this.selected);
      row.classList.toggle('odd', (first + i) % 2 === 1);
      this.placeBar(row, rec, ranges[rec.source]);
    }
    const live = ranges.live;
    this.wfHead.textContent = live && live.span > 0 ? `Waterfall · ${fmtMs(live.span)}` : 'Waterfall';
  }

  /** Time span of the rows in view, per source (an imported capture has its own clock). */
  timeRanges(first, count) {
    const out = {};
    for (let i = first; i < first + count; i++) {
      const r = this.view.at(i);
      if (!r || !Number.isFinite(r.startMs)) continue;
      const g = out[r.source] || (out[r.source] = { min: Infinity, max: -Infinity });
      g.min = Math.min(g.min, r.startMs);
      g.max = Math.max(g.max, r.endMs);
    }
    for (const g of Object.values(out)) g.span = g.max - g.min;
    return out;
  }

  makeRow() {
    const row = el('div', { className: 'row', role: 'row' });
    row.cells = {};
    for (const c of COLUMNS) {
      const cell = el('div', { className: `cell col-${c.id}${c.wide ? ' wide' : ''}`, role: 'gridcell' });
      row.cells[c.id] = cell;
      row.append(cell);
    }
    row.srcBadge = el('span', { className: 'src-badge', title: 'imported from a HAR file' }, 'HAR');
    row.nameText = el('span', { className: 'name-text' });
    row.dirMark = el('span', { className: 'dir' });
    row.cells.name.append(row.dirMark, row.srcBadge, row.nameText);
    row.bar = el('div', { className: 'bar' });
    row.barWait = el('div', { className: 'bar-wait' });
    row.barDl = el('div', { className: 'bar-dl' });
    row.bar.append(row.barWait, row.barDl);
    row.cells.waterfall.append(row.bar);
    return row;
  }

  fillRow(row, rec) {
    row.rec = rec;
    row.dataset.id = rec.id;
    row.classList.toggle('error', isErrorRow(rec.summary, rec.tx));
    row.classList.toggle('imported', rec.source === 'imported');
    row.classList.toggle('not-captured', rec.summary.request_not_captured === true);
    row.srcBadge.hidden = rec.source !== 'imported';
    const ingress = rec.summary.direction === 'ingress';
    row.dirMark.textContent = ingress ? '↓' : '↑';
    row.dirMark.title = ingress ? 'ingress: this host served it' : 'egress: this host sent it';
    for (const c of COLUMNS) {
      if (!c.text) continue;
      const cell = row.cells[c.id];
      const text = c.text(rec) ?? '';
      if (c.id === 'name') row.nameText.textContent = text;
      else cell.textContent = text;
      cell.title = c.tip ? c.tip(rec) : text;
    }
  }

  placeBar(row, rec, range) {
    if (!range || !(range.span >= 0) || !Number.isFinite(rec.startMs)) {
      row.bar.hidden = true;
      return;
    }
    row.bar.hidden = false;
    const span = range.span || 1;
    const left = ((rec.startMs - range.min) / span) * 100;
    const width = Math.max(((rec.endMs - rec.startMs) / span) * 100, 0.5);
    row.bar.style.left = `${Math.min(left, 99.5)}%`;
    row.bar.style.width = `${Math.min(width, 100 - Math.min(left, 99.5))}%`;
    // split the bar: waiting (until the first response byte) then download
    const t = rec.tx && rec.tx.timing;
    const total = rec.endMs - rec.startMs;
    let waitFrac = 1;
    if (t && t.response_start && total > 0) {
      const rs = tsToMs(t.response_start) - rec.startMs;
      waitFrac = Math.min(1, Math.max(0, rs / total));
    }
    row.barWait.style.width = `${waitFrac * 100}%`;
    row.barDl.style.width = `${(1 - waitFrac) * 100}%`;
    row.bar.title = `start +${fmtMs(rec.startMs - range.min)}, ${fmtMs(total)}`;
  }

  /** Selects a record (scrolls to it) and tells the owner. */
  select(rec, { scroll = false } = {}) {
    this.selected = rec;
    for (const row of this.pool) row.classList.toggle('selected', !!rec && row.rec === rec);
    if (scroll && rec) this.scrollToIndex(this.view.indexOf(rec));
    this.schedule();
    this.onSelect(rec);
  }

  scrollToIndex(i) {
    if (i < 0) return;
    const s = this.scroller;
    const top = i * ROW_HEIGHT;
    if (top < s.scrollTop) s.scrollTop = top;
    else if (top + ROW_HEIGHT > s.scrollTop + s.clientHeight) s.scrollTop = top + ROW_HEIGHT - s.clientHeight;
  }

  /** Moves the selection by `delta` rows in the current view. */
  move(delta) {
    const n = this.view.length;
    if (!n) return;
    let i = this.view.indexOf(this.selected);
    i = i < 0 ? (delta > 0 ? 0 : n - 1) : Math.max(0, Math.min(n - 1, i + delta));
    this.select(this.view.at(i), { scroll: true });
  }

  scrollToBottom() {
    this.stick = true;
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }
}
