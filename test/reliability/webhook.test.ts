import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { TEST_GENERATOR, runEmbedded, tempDir } from '../engine/harness.js';
import { WebhookNotifier } from '../../engine/alerts/notifier.js';
import type { Alert } from '../../engine/codec/types.js';

// Scenario 13 of issue #7: the notification webhook down or slow. Alerts wait in a bounded queue
// and are retried; processing is not held up (it runs at the same speed as without a webhook).

const N = 60_000;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

async function timedRun(name: string, webhookUrl?: string) {
  const dir = tempDir(`hook-${name}`);
  dirs.push(dir);
  const t0 = performance.now();
  const engine = await runEmbedded(dir, TEST_GENERATOR, N, { workers: 1, ...(webhookUrl ? { webhookUrl } : {}) });
  const seconds = (performance.now() - t0) / 1000;
  return { engine, seconds };
}

/** A port with nothing listening: connections are refused. */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('webhook down or slow (issue #7 scenario 13)', () => {
  it('processing is not held up; alerts are queued with a bound and retried', async () => {
    const base = await timedRun('none');
    const critical = base.engine.query.alerts({ severity: 'CRITICAL', limit: 1e9 }).total;
    await base.engine.stop();
    expect(critical).toBeGreaterThan(3);

    const down = await timedRun('down', `http://127.0.0.1:${await deadPort()}/hook`);
    const slowServer = http.createServer((_req, res) => setTimeout(() => res.writeHead(200).end(), 10_000));
    await new Promise<void>((r) => slowServer.listen(0, '127.0.0.1', () => r()));
    const slow = await timedRun('slow', `http://127.0.0.1:${(slowServer.address() as AddressInfo).port}/hook`);
    try {
      const figures = {
        baselineSeconds: base.seconds, downSeconds: down.seconds, slowSeconds: slow.seconds, criticalAlerts: critical,
        down: { ...down.engine.notifier.stats, pending: down.engine.notifier.pending },
        slow: { ...slow.engine.notifier.stats, pending: slow.engine.notifier.pending },
      };
      console.log(`[scenario 13] ${JSON.stringify(figures)}`);
      for (const run of [down, slow]) {
        expect(run.engine.committedTotals().events).toBe(N);
        expect(run.engine.query.alerts({ severity: 'CRITICAL', limit: 1e9 }).total).toBe(critical);
        // Same speed as without a webhook (generous: a shared 2-core machine).
        expect(run.seconds).toBeLessThan(base.seconds * 2 + 3);
        expect(run.engine.notifier.pending).toBeLessThanOrEqual(1000);
      }
      // Down: every delivery attempt failed and was retried; nothing was sent.
      expect(down.engine.notifier.stats.sent).toBe(0);
      expect(down.engine.notifier.stats.retries).toBeGreaterThan(0);
      expect(down.engine.notifier.stats.lastError).not.toBe('');
      // Slow: still waiting on the first answer, the rest queued.
      expect(slow.engine.notifier.stats.sent).toBe(0);
      expect(slow.engine.notifier.pending).toBeGreaterThan(0);
    } finally {
      await down.engine.stop();
      await slow.engine.stop();
      slowServer.closeAllConnections();
      await new Promise<void>((r) => slowServer.close(() => r()));
    }
  }, 120_000);

  it('the queue is bounded: past maxQueue the oldest notifications are dropped and counted', async () => {
    const n = new WebhookNotifier(`http://127.0.0.1:${await deadPort()}/hook`, { maxAttempts: 2, baseDelayMs: 1000, maxQueue: 10, timeoutMs: 500 });
    for (let i = 0; i < 50; i++) n.notify({ alertId: `a${i}`, severity: 'CRITICAL' } as Alert);
    expect(n.pending).toBeLessThanOrEqual(10);
    expect(n.stats.dropped).toBeGreaterThanOrEqual(39);
    n.close();
  });
});
