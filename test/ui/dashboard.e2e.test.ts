import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { freePort, launchBrowser, removeDir, startEngine, tempDataDir, type EngineProcess } from './harness.js';

/**
 * The dashboard in headless Chromium against the real engine (child process, embedded source):
 * live numbers, a drill-down from an alert, acknowledging it, and a server restart that the page
 * survives by reconnecting and resyncing from the new snapshot.
 */
let browser: Browser;
let page: Page;
let engine: EngineProcess;
let port: number;
let dir: string;
let base: string;
const pageErrors: string[] = [];

async function tileTexts(p: Page): Promise<string> {
  return (await p.locator('.tiles [data-testid^="tile-"]').allInnerTexts()).join(' | ');
}

async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  if (!existsSync('ui/dist/index.html')) execSync('npm run build:ui', { stdio: 'inherit' });
  port = await freePort();
  dir = tempDataDir('e2e');
  engine = startEngine({ port, dataDir: dir });
  [base, browser] = await Promise.all([engine.url, launchBrowser()]);
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await engine?.stop();
  if (dir) removeDir(dir);
});

describe('dashboard in headless Chromium', () => {
  it('drill-down views open from the overview: a product and a country from the top lists, revenue by currency and tier, the funnel', async () => {
    await page.goto(base);
    const product = page.locator('.tops a[href^="/products/"]').first();
    await product.waitFor({ timeout: 20_000 });
    const productName = await product.innerText();
    await product.click();
    await page.getByRole('heading', { level: 1, name: productName }).waitFor();
    expect(await page.getByTestId('product-usd').innerText()).toMatch(/^\$[\d,.]+$/);

    await page.goto(base);
    const country = page.locator('.tops a[href^="/countries/"]').first();
    await country.waitFor({ timeout: 20_000 });
    const code = await country.innerText();
    await country.click();
    await page.getByRole('heading', { level: 1, name: `Country ${code}` }).waitFor();
    const users = await waitFor('the country\'s users', async () => Number((await page.getByTestId('country-users').innerText()).replace(/,/g, '')) || null);
    expect(users).toBeGreaterThan(0);

    await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: 'Revenue' }).click();
    await page.locator('#revenue-by-currency tbody tr').first().waitFor();
    expect(await page.locator('#revenue-by-currency tbody').innerText()).toMatch(/USD\s+\$[\d,.]+/);
    expect(await page.locator('#revenue-by-tier tbody').innerText()).toMatch(/FREE/);

    await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: 'Funnel' }).click();
    await page.getByRole('heading', { level: 1, name: 'Purchase funnel' }).waitFor();
    await page.locator('.funnel-step').first().waitFor();
    expect(await page.locator('.funnel-step').count()).toBe(5);
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it('shows live numbers, drills into a user from an alert, acknowledges it, and resyncs after a server restart', async () => {
    await page.goto(base);
    const state = page.getByTestId('connection-state');
    await state.and(page.locator('[data-state="live"]')).waitFor({ timeout: 15_000 });

    // Numbers change over time: the tiles' text differs a few seconds later, and charts are drawn.
    await page.locator('.tiles').waitFor();
    const first = await tileTexts(page);
    await waitFor('the tiles to change', async () => (await tileTexts(page)) !== first, 15_000);
    expect(await page.locator('[data-testid="chart-active-users"] canvas').count()).toBe(1);
    expect(await page.locator('.charts canvas').count()).toBe(4);
    expect(await page.getByTestId('tile-active-users').innerText()).toMatch(/^[\d,.]+K?$/);
    expect(await page.getByTestId('tile-revenue').innerText()).toMatch(/^\$[\d,.]+$/);

    // An alert about a user arrives; its link opens the user's drill-down.
    const link = page.locator('.alerts .alert.st-open .alert-link', { hasText: 'User' }).first();
    await link.waitFor({ timeout: 20_000 });
    const alertId = await link.locator('xpath=ancestor::li[1]').getAttribute('data-alert-id');
    const userId = (await link.innerText()).replace(/^User\s+/, '').replace(/\s*→$/, '');
    expect(alertId).toBeTruthy();
    await link.click();
    await page.waitForURL(`**/users/${userId}`);
    await page.getByRole('heading', { level: 1, name: `User ${userId}` }).waitFor();
    await page.getByTestId('user-tier').waitFor();
    expect(await page.getByRole('table').first().locator('caption').innerText()).toMatch(/Sessions/);

    // Acknowledge it there: the page shows it and the server has it.
    const item = page.locator(`li[data-alert-id="${alertId}"]`);
    await item.getByRole('button', { name: /^Acknowledge/ }).click();
    await item.locator('.status', { hasText: 'acknowledged' }).waitFor({ timeout: 10_000 });
    const list = (await (await fetch(`${base}api/dashboard/alerts?hours=48&limit=10000`)).json()) as { alerts: Array<{ alertId: string; status: string }> };
    expect(list.alerts.find((a) => a.alertId === alertId)?.status).toBe('ACKNOWLEDGED');

    // Back on the overview (keyboard-reachable link), then restart the server under the page.
    await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: 'Overview' }).click();
    await page.locator('.tiles').waitFor();
    expect(await state.getAttribute('data-snapshots')).toBe('1');
    expect(await engine.stop()).toBe(0);
    await state.and(page.locator('[data-state="reconnecting"]')).waitFor({ timeout: 10_000 });
    expect(await state.innerText()).toMatch(/Reconnecting/);

    engine = startEngine({ port, dataDir: dir });
    await engine.url;
    await state.and(page.locator('[data-state="live"][data-snapshots="2"]')).waitFor({ timeout: 30_000 });
    // Resynced: live numbers again, and the acknowledged alert kept its status from the server.
    const after = await tileTexts(page);
    await waitFor('the tiles to change after the restart', async () => (await tileTexts(page)) !== after, 15_000);
    const acked = page.locator(`li[data-alert-id="${alertId}"] .status`);
    if (await acked.count()) expect(await acked.innerText()).toBe('acknowledged');
    expect(pageErrors).toEqual([]);
  }, 120_000);
});
