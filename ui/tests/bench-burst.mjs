// Rendering benchmark (issue 4): 5,000 transactions arrive in one burst over SSE; how
// long until the table holds them all, how long the page's main thread was blocked, and
// whether it still answers a click at once. A benchmark you run, not a test:
//
//   node ui/tests/bench-burst.mjs [rounds=3] [n=5000]
//
// Fixture server (tests/server.mjs, the daemon's CSP) and Debian's headless Chromium, as
// the browser tests use; prints a Markdown table for docs/benchmarks.md.
import { setup, viewCount, row } from './browser/harness.mjs';

const rounds = Number(process.argv[2] || 3);
const n = Number(process.argv[3] || 5000);
const h = await setup();
if (h.real) throw new Error('unset QTAP_URL: the burst needs the fixture server');
const rows = [];
try {
  for (let r = 1; r <= rounds; r++) {
    const page = await h.open();
    await page.locator('#settings-btn').click();
    await page.locator('#set-count').fill(String(4 * n));
    await page.locator('#set-apply').click();
    // long tasks (> 50 ms on the main thread) while the burst is handled
    await page.evaluate(() => {
      window.__long = [];
      new PerformanceObserver((l) => {
        for (const e of l.getEntries()) window.__long.push(e.duration);
      }).observe({ type: 'longtask' });
    });
    const t0 = Date.now();
    await h.emit('bulk', { n, prefix: `r${r}` });
    const sent = Date.now() - t0;
    while ((await viewCount(page)) !== n) {
      if (Date.now() - t0 > 120000) throw new Error('burst not shown within 120 s');
      await page.waitForTimeout(10);
    }
    const shown = Date.now() - t0;
    await row(page, `r${r}-${n - 1}`).waitFor();
    const visible = Date.now() - t0;
    // still responsive: a click on the newest row opens its detail (timed inside the
    // page, from the click to the second frame after it)
    const click = await page.evaluate(async (name) => {
      const el = [...document.querySelectorAll('.grid-rows .row')].find((x) => x.querySelector('.name-text')?.textContent === name);
      const t = performance.now();
      el.click();
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      if (!document.querySelector('#detail:not([hidden]) .detail-body')) throw new Error('no detail after the click');
      return performance.now() - t;
    }, `r${r}-${n - 1}`);
    const long = await page.evaluate(() => window.__long);
    const dom = await page.locator('.grid-rows .row').count();
    const problems = await page.done();
    if (problems.length) throw new Error(`page problems: ${problems.join('; ')}`);
    rows.push({ r, sent, shown, visible, click, longMax: Math.max(0, ...long), longSum: long.reduce((a, b) => a + b, 0), longN: long.length, dom });
    process.stderr.write(`round ${r}: ${n} rows in ${shown} ms\n`);
  }
} finally {
  await h.close();
}
console.log(`| round | SSE frames sent (ms) | all ${n} in the table (ms) | newest row on screen (ms) | click → detail (ms) | long tasks: count / longest / total (ms) | rows in the DOM |`);
console.log('|---:|---:|---:|---:|---:|---|---:|');
for (const x of rows) {
  console.log(`| ${x.r} | ${x.sent} | ${x.shown} | ${x.visible} | ${x.click.toFixed(0)} | ${x.longN} / ${x.longMax.toFixed(0)} / ${x.longSum.toFixed(0)} | ${x.dom} |`);
}
