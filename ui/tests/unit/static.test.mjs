// Static rules the CSP and the privacy promise depend on, checked on the shipped files.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const UI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const shipped = readdirSync(UI).filter((f) => /\.(js|css|html)$/.test(f));
const read = (f) => readFileSync(path.join(UI, f), 'utf8');

test('the app is plain files: index.html, one CSS file, ES modules', () => {
  assert.ok(shipped.includes('index.html'));
  assert.deepEqual(shipped.filter((f) => f.endsWith('.css')), ['style.css']);
  const html = read('index.html');
  assert.match(html, /<script type="module" src="\.\/app\.js"><\/script>/);
  assert.match(html, /<link rel="stylesheet" href="\.\/style\.css">/);
});

test('no inline script, inline style or event-handler attribute in index.html', () => {
  const html = read('index.html');
  for (const m of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
    assert.match(m[1], /\bsrc=/, 'script has a src');
    assert.equal(m[2].trim(), '', 'script has no inline code');
  }
  assert.doesNotMatch(html, /\sstyle\s*=/i);
  assert.doesNotMatch(html, /\son[a-z]+\s*=/i);
  assert.doesNotMatch(html, /<style\b/i);
});

test('nothing is fetched from outside the host', () => {
  for (const f of shipped) assert.doesNotMatch(read(f), /(?:https?:)?\/\/[a-z0-9-]+\.[a-z]/i, `${f} names no remote URL`);
  assert.doesNotMatch(read('style.css'), /@import|@font-face|url\((?!data:)/i);
});

test('captured data is never parsed as HTML; no eval; no browser storage', () => {
  for (const f of shipped.filter((x) => x.endsWith('.js'))) {
    const code = read(f).replace(/^\s*\/\/.*$/gm, '');
    assert.doesNotMatch(code, /\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write/, `${f}: no HTML parsing`);
    assert.doesNotMatch(code, /setAttribute\(\s*['"]style|\.style\.cssText|\bcssText\b/, `${f}: no style attribute`);
    assert.doesNotMatch(code, /\beval\(|new Function\(|setTimeout\(\s*['"`]/, `${f}: no eval`);
    assert.doesNotMatch(code, /localStorage|sessionStorage|indexedDB|document\.cookie|caches\./, `${f}: no storage`);
  }
});
