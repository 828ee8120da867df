import { afterAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import { TEST_GENERATOR, runEmbedded, tempDir } from './harness.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function server(status: (n: number) => number): Promise<{ url: string; bodies: unknown[]; calls: () => number; close: () => Promise<void> }> {
  const bodies: unknown[] = [];
  let calls = 0;
  const s = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const code = status(++calls);
      if (code === 200) bodies.push(JSON.parse(body));
      res.writeHead(code).end();
    });
  });
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/hook`, bodies, calls: () => calls,
    close: () => new Promise((r) => s.close(() => r())),
  })));
}

describe('CRITICAL alerts go to the notification webhook', () => {
  it('every CRITICAL alert is POSTed, with retries when the webhook fails, and repeats only from retries', async () => {
    // The webhook fails every third call: the notifier retries with backoff.
    const hook = await server((n) => (n % 3 === 0 ? 503 : 200));
    const dir = tempDir('webhook');
    dirs.push(dir);
    const engine = await runEmbedded(dir, TEST_GENERATOR, 40_000, { workers: 2, webhookUrl: hook.url });
    try {
      const critical = engine.query.alerts({ severity: 'CRITICAL', limit: 1e9 }).alerts.map((a) => a.alertId).sort();
      expect(critical.length).toBeGreaterThan(3);
      const deadline = Date.now() + 20_000;
      const delivered = () => hook.bodies.map((b) => (b as { alertId: string }).alertId);
      while (new Set(delivered()).size < critical.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect([...new Set(delivered())].sort()).toEqual(critical);
      // Delivery is at least once (receivers dedupe on alertId): a POST the receiver answered
      // after the notifier's timeout is retried and arrives twice. Nothing else may repeat.
      expect(delivered().length - critical.length).toBeLessThanOrEqual(engine.notifier.stats.retries);
      expect(engine.notifier.stats.retries).toBeGreaterThan(0);
      expect(engine.notifier.stats.failed).toBe(0);
    } finally {
      await engine.stop();
      await hook.close();
    }
  }, 120_000);
});
