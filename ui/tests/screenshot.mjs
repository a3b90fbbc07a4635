// The screenshot in README.md / docs: the panel with real traffic captured by a running
// daemon. Makes the browser tests' real requests (plaintext) plus one over TLS, opens the
// TLS one's headers, and saves a PNG.
//
//   sudo target/release/qtap --enable-dev-tools &
//   QTAP_URL=http://localhost:10001 node ui/tests/screenshot.mjs docs/devtools-network-panel.png
import { setup, row } from './browser/harness.mjs';
import { AUTH } from './fixtures.mjs';

const out = process.argv[2] || 'devtools-network-panel.png';
const h = await setup();
if (!h.real) throw new Error('set QTAP_URL to a running daemon: the screenshot shows real traffic');
try {
  const page = await h.open({ viewport: { width: 1440, height: 860 } });
  await h.emit('basic');
  await h.target.tls('/secure/ping', AUTH);
  await row(page, 'ping').first().waitFor({ timeout: 10000 });
  await row(page, 'ping').first().click();
  await page.locator('#detail:not([hidden])').waitFor();
  await page.waitForTimeout(300);
  await page.screenshot({ path: out });
  const problems = await page.done();
  if (problems.length) throw new Error(`page problems: ${problems.join('; ')}`);
  process.stderr.write(`saved ${out}\n`);
} finally {
  await h.close();
}
