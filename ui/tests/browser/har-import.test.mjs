// A crafted HAR imported through the page (issue 12 item 8): every entry's "Copy as cURL"
// lands in the clipboard as one harmless command, the changes made on import are shown,
// and HTML in any field stays text. Works with the fixture server and with QTAP_URL.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, viewCount } from './harness.mjs';
import { importHar } from '../../har-import.js';
import { toCurl } from '../../curl.js';
import { maliciousHar, MALICIOUS_ENTRIES } from '../malicious-har.mjs';
import { shellSandbox, commandProblems } from '../shell.mjs';
import { prng, randomEntry } from '../har-fuzz.mjs';

let h;
let sandbox;
before(async () => {
  h = await setup();
  sandbox = shellSandbox();
});
after(async () => {
  sandbox?.close();
  await h?.close();
});

async function until(fn, what, timeout = 10000) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

test('a crafted HAR: each Copy as cURL is one harmless command, changes are shown, HTML stays text', async () => {
  const page = await h.open();
  const dialogs = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  let problems;
  try {
    const har = maliciousHar();
    await page.locator('#har-file').setInputFiles({ name: 'evil.har', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(har)) });
    const toast = await until(async () => {
      const t = await page.locator('#toast').textContent();
      return /^Imported /.test(t) ? t : null;
    }, 'the import toast');
    assert.match(toast, new RegExp(`^Imported ${MALICIOUS_ENTRIES} requests from evil\\.har — \\d+ with fields dropped or changed \\(see their Headers tab\\); entries\\[14\\]: null, not an entry: left out;`));
    await page.locator('#pick-source').selectOption('imported');
    await until(async () => (await viewCount(page)) === MALICIOUS_ENTRIES, `${MALICIOUS_ENTRIES} imported rows`);

    // the page's import must be the one the unit tests check: same ids, same commands
    const { entries } = importHar(har, { idPrefix: 'import1' });
    for (const { summary, tx } of entries) {
      await page.locator(`.grid-rows .row[data-id="${summary.id}"]`).click();
      await until(async () => (await page.evaluate(() => window.qtapDevtools.detail.rec && window.qtapDevtools.detail.rec.id)) === summary.id, `the detail of ${summary.id}`);
      await page.evaluate(() => navigator.clipboard.writeText(''));
      await page.locator('.copy-curl').click();
      const cmd = await until(async () => page.evaluate(() => navigator.clipboard.readText()), `the command of ${summary.id} in the clipboard`);
      assert.equal(cmd, toCurl(tx), `${summary.id} (${tx.request.url})`);
      assert.deepEqual(commandProblems(sandbox, cmd, tx), [], `${summary.id}:\n${cmd}`);
      if (tx.import_notes) {
        const shown = await page.locator('.import-notes-section li').allTextContents();
        assert.deepEqual(shown, tx.import_notes, `${summary.id}: every change is listed`);
      } else assert.equal(await page.locator('.import-notes-section').count(), 0);
    }

    // the reproduction's entry says why its content coding is gone
    await page.locator('.grid-rows .row[data-id="import1:0"]').click();
    await until(async () => /content_encoding: not a list of content codings: left out/.test(await page.locator('.import-notes-section').innerText()), 'the content_encoding note');

    // HTML in the URL, a header, the status text, the body and the process is shown as text
    const html = entries.find((e) => e.tx.request.url.includes('html-')).summary.id;
    const rowEl = page.locator(`.grid-rows .row[data-id="${html}"]`);
    await rowEl.click();
    await until(async () => (await page.locator('.detail-body').innerText()).includes('/html-<b>bold</b>'), 'the URL as text');
    assert.match(await page.locator('.detail-body').innerText(), /200 <img src=x onerror=alert\(3\)>/);
    await page.locator('.tab[data-tab="response"]').click();
    await until(async () => (await page.locator('.detail-body pre').first().textContent()) === '<img src=x onerror=alert(4)><script>alert(5)</script>', 'the body as text');
    await page.locator('.tab[data-tab="connection"]').click();
    await until(async () => /<img src=x onerror=alert\(2\)>/.test(await page.locator('.detail-body').innerText()), 'the process name as text');
    await page.locator('.grid-rows .row[data-id="import1:2"]').click();
    await page.locator('.tab[data-tab="headers"]').click();
    await until(async () => (await page.locator('.detail-body').innerText()).includes('X-Html:'), 'the headers entry');
    await until(async () => (await page.locator('.detail-body').innerText()).includes('<img src=x onerror=alert(1)>'), 'the header value as text');
    assert.equal(await page.locator('#grid img, #grid script, #grid b, .detail-body img, .detail-body script, .detail-body b').count(), 0, 'no element made from imported text');
  } finally {
    problems = await page.done();
  }
  assert.deepEqual(dialogs, [], 'no script ran');
  assert.deepEqual(problems, [], 'no CSP violations, page errors or console errors');
});

test('random HAR entries render in every tab without an error (seed in the name)', async () => {
  const seed = Number(process.env.QTAP_FUZZ_SEED) || Date.now() % 2 ** 31;
  const rnd = prng(seed);
  const n = Number(process.env.QTAP_FUZZ_ROWS) || 60;
  const har = { log: { entries: Array.from({ length: n }, () => randomEntry(rnd)) } };
  const page = await h.open();
  const dialogs = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  let problems;
  try {
    await page.locator('#har-file').setInputFiles({ name: 'random.har', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(har)) });
    await page.locator('#pick-source').selectOption('imported');
    await until(async () => (await viewCount(page)) === n, `${n} imported rows (seed ${seed})`);
    // the list sticks to its newest row: scroll to the top, then start at the first row
    const first = async () => {
      await page.evaluate(() => (window.qtapDevtools.table.scroller.scrollTop = 0));
      const r = page.locator('.grid-rows .row[data-id="import1:0"]');
      await r.waitFor();
      await r.click();
      await until(async () => (await page.evaluate(() => window.qtapDevtools.detail.rec && window.qtapDevtools.detail.rec.id)) === 'import1:0', 'the first row selected');
    };
    await first();
    for (const tab of ['headers', 'payload', 'response', 'timing', 'connection']) {
      await page.locator(`.tab[data-tab="${tab}"]`).click();
      await first();
      for (let i = 1; i < n; i++) await page.keyboard.press('ArrowDown');
      const id = await page.evaluate(() => window.qtapDevtools.detail.rec.id);
      assert.equal(id, `import1:${n - 1}`, `the ${tab} tab went through every row (seed ${seed})`);
    }
  } finally {
    problems = await page.done();
  }
  assert.deepEqual(dialogs, [], `no script ran (seed ${seed})`);
  assert.deepEqual(problems, [], `no CSP violations, page errors or console errors (seed ${seed})`);
});
