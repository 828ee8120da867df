/**
 * `npm run screenshot`: docs/dashboard.png, the overview with live data at a laptop-sized
 * viewport (1440x900). Runs the engine on the embedded source for ~40 s so the charts have
 * minutes of data and alerts have arrived, then captures the page in headless Chromium.
 * Options: --width, --height, --theme light|dark, --out.
 */
import { parseArgs } from 'node:util';
import path from 'node:path';
import { freePort, launchBrowser, removeDir, startEngine, tempDataDir } from './harness.js';

const { values } = parseArgs({
  options: {
    width: { type: 'string', default: '1440' },
    height: { type: 'string', default: '900' },
    theme: { type: 'string', default: 'light' },
    out: { type: 'string', default: 'docs/dashboard.png' },
    'warmup-s': { type: 'string', default: '40' },
  },
});

const port = await freePort();
const dir = tempDataDir('screenshot');
// Half a minute of event time per wall second: the charts fill with twenty minutes of windows.
const engine = startEngine({ port, dataDir: dir, args: ['--rate', '5000', '--time-scale', '30', '--users', '5000', '--workers', '1', '--status-interval-ms', '60000'] });
const browser = await launchBrowser();
try {
  const url = await engine.url;
  const page = await browser.newPage({ viewport: { width: Number(values.width), height: Number(values.height) }, colorScheme: values.theme === 'dark' ? 'dark' : 'light' });
  const warmupMs = Number(values['warmup-s']) * 1000;
  const t0 = Date.now();
  await page.goto(url);
  await page.locator('[data-testid="connection-state"][data-state="live"]').waitFor({ timeout: 20_000 });
  while (Date.now() - t0 < warmupMs) {
    process.stderr.write(`warming up: ${Math.round((Date.now() - t0) / 1000)} s of ${values['warmup-s']} s\r`);
    await new Promise((r) => setTimeout(r, 1000));
  }
  // Reload so the charts start from a full snapshot (as a person opening the page would see them).
  await page.reload();
  await page.locator('[data-testid="connection-state"][data-state="live"]').waitFor({ timeout: 20_000 });
  await page.locator('.tops table').first().waitFor({ timeout: 20_000 });
  await new Promise((r) => setTimeout(r, 2500));
  const out = path.resolve(values.out!);
  await page.screenshot({ path: out });
  console.log(`\nsaved ${out}`);
} finally {
  await browser.close();
  await engine.stop();
  removeDir(dir);
}
