import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { tempDir } from '../engine/harness.js';
import { deleteTopics, sleep } from '../reliability/harness.js';
import { alive, expectedGlobalAlerts, globalAlertRecords, produceInput, startInstance, stopAll, untilOwned, type Instance } from './cluster.js';

const GRACE = 30_000;
const log = (s: string) => console.log(`[global-alerts-crash] ${s}`);
/** Partitions never go idle during the test: the global watermark is the minimum committed stream time (deterministic). */
const EXTRA = ['--idle-timeout-ms', '600000'];

/**
 * Regression: scaled out, the owner of partition 0 committed the global alerts it raised together
 * with the evaluation's progress (state + changelog) and only then sent them to the output topics.
 * A SIGKILL between the two lost them for good: the next owner continues from the committed
 * progress and never evaluates those windows again, so they never reached dashboard-alerts (nor
 * the priority topics or the webhook). They must be sent at least once (ids are deterministic: a
 * repeat is an upsert).
 */
describe('scaled out: global window alerts survive a SIGKILL between their commit and their publication', () => {
  it('every global alert of the reference model reaches dashboard-alerts although the evaluator was killed right after committing the first ones', async () => {
    const prefix = `galert${Date.now()}-`;
    const groupId = `${prefix}engine`;
    const root = tempDir('global-alerts-crash');
    const instances: Instance[] = [];
    try {
      const input = await produceInput(prefix, 8_000, { graceMs: GRACE });
      await input.close();
      const expected = expectedGlobalAlerts(input.model, GRACE);
      log(`expected global alerts: ${expected.length}`);
      expect(expected.length).toBeGreaterThan(0);

      // The test-only control kills the process (SIGKILL to itself) once the first evaluation that
      // raised alerts is committed to partition 0's state and changelog, before anything is sent.
      const a = await startInstance(root, 'a', { prefix, groupId, extra: EXTRA, env: { RTA_TEST_KILL_AFTER_GLOBAL_COMMIT: '1' } });
      instances.push(a);
      (a as { expectedDead?: boolean }).expectedDead = true;
      const exit = await Promise.race([a.proc.exited, sleep(120_000).then(() => null)]);
      expect(exit, `a was not killed after its global alert commit:\n${a.proc.logs.slice(-10).join('\n')}`).toEqual({ code: null, signal: 'SIGKILL' });
      const beforeRestart = await globalAlertRecords(prefix);
      log(`on dashboard-alerts when a died: ${beforeRestart.size}`);

      // The same machine comes back (same data directory): it owns partition 0 again and continues.
      const a2 = await startInstance(root, 'a', { prefix, groupId, extra: EXTRA });
      instances.push(a2);
      await untilOwned([a2], 8, () => true, 120_000, 'a2 to own every partition');
      const deadline = Date.now() + 60_000;
      let records = await globalAlertRecords(prefix);
      while ([...records.keys()].length < expected.length && Date.now() < deadline) {
        await sleep(1000);
        records = await globalAlertRecords(prefix);
      }
      log(`on dashboard-alerts after the restart: ${records.size} ids, ${[...records.values()].reduce((x, y) => x + y, 0)} records`);
      expect([...records.keys()].sort()).toEqual(expected);
      // And each is in the alert list the dashboards read (partition 0's state), exactly once.
      const list = (await (await fetch(`${a2.url}/api/dashboard/alerts?hours=720&limit=10000`)).json()) as { alerts: Array<{ alertId: string; key: string }> };
      expect(list.alerts.filter((x) => x.key === 'global').map((x) => x.alertId).sort()).toEqual(expected);
      expect(alive(a2)).toBe(true);
    } finally {
      await stopAll(instances, 'SIGKILL');
      await deleteTopics(prefix).catch(() => undefined);
      fs.rmSync(root, { recursive: true, force: true });
    }
  }, 300_000);
});
