import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { scanCodec } from '../../engine/query/remote.js';
import { tempDir } from '../engine/harness.js';
import { PARTITIONS, deleteTopics } from '../reliability/harness.js';
import { produceInput, scaleHealth, startInstance, stopAll, untilOwned, type Instance } from './cluster.js';

/**
 * POST /internal/alert-status on a scaled-out instance without an access token (loopback, the
 * default): the route writes into a partition's state, so it must refuse browsers (a page on
 * another site can send a simple cross-site POST; the public ack route checks Origin, this one did
 * not), refuse statuses for alerts its partition does not hold (a status key is never deleted),
 * and name bad parameters.
 */
describe('scaled out: /internal/alert-status', () => {
  it('refuses browsers (403 ERR_ORIGIN), unknown alerts (404, nothing written) and bad partitions (400); an owner\'s alert gets its status', async () => {
    const prefix = `internal${Date.now()}-`;
    const root = tempDir('internal-routes');
    const instances: Instance[] = [];
    try {
      const input = await produceInput(prefix, 3_000);
      await input.close();
      const a = await startInstance(root, 'a', { prefix, groupId: `${prefix}engine` });
      instances.push(a);
      await untilOwned(instances, PARTITIONS, () => true, 120_000, 'a to own every partition');
      const scan = async (reqs: unknown[]) => scanCodec.unpack(new Uint8Array(await (await fetch(`${a.url}/internal/scan`, { method: 'POST', body: scanCodec.pack(reqs) })).arrayBuffer())) as unknown[];
      // An alert and its partition, from the stores (wait for the first commits: under a loaded CI
      // run the instance once took more than the 30 s this loop used to allow, so it now waits up to
      // 120 s and says how far the instance got when it gives up).
      let alert: { id: string; p: number } | null = null;
      const deadline = Date.now() + 120_000;
      while (!alert && Date.now() < deadline) {
        for (let p = 0; p < PARTITIONS && !alert; p++) {
          const [rows] = (await scan([{ p, op: 'range', arg: { start: [p, 'alerts'], end: [p, 'alerts\u0000'], limit: 1 } }])) as Array<Array<[unknown[], { alertId: string }]>>;
          if (rows.length) alert = { id: rows[0][1].alertId, p };
        }
        if (!alert) await new Promise((r) => setTimeout(r, 300));
      }
      expect(alert, `no alert stored after 120 s; instance a: ${JSON.stringify(await scaleHealth(a))}`).not.toBeNull();
      const post = (body: unknown, headers: Record<string, string> = {}) => fetch(`${a.url}/internal/alert-status`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'text/plain', ...headers } });
      const errorOf = async (r: Response) => ({ status: r.status, error: ((await r.json()) as { error: string }).error });

      expect(await errorOf(await post({ alertId: alert!.id, partition: alert!.p, status: 'RESOLVED' }, { origin: 'https://evil.example' }))).toEqual({ status: 403, error: 'ERR_ORIGIN' });
      expect(await errorOf(await fetch(`${a.url}/internal/scan`, { method: 'POST', body: scanCodec.pack([]), headers: { origin: 'https://evil.example' } }))).toEqual({ status: 403, error: 'ERR_ORIGIN' });
      expect(await errorOf(await post({ alertId: 'NO_SUCH:alert:1', partition: alert!.p, status: 'ACKNOWLEDGED' }))).toEqual({ status: 404, error: 'ERR_NOT_FOUND' });
      expect(await scan([{ p: alert!.p, op: 'get', arg: [alert!.p, 'alert-status', 'NO_SUCH:alert:1'] }])).toEqual([undefined]);
      for (const partition of [PARTITIONS, -1, 1.5, '0']) {
        expect(await errorOf(await post({ alertId: alert!.id, partition, status: 'ACKNOWLEDGED' })), String(partition)).toEqual({ status: 400, error: 'ERR_BAD_PARAMETER' });
      }
      expect(await errorOf(await post({ alertId: alert!.id, partition: alert!.p, status: 'OPEN' }))).toEqual({ status: 400, error: 'ERR_BAD_PARAMETER' });
      // The browser's request changed nothing; the instance's own (as a forwarding peer sends it) does.
      const statusOf = async () => ((await (await fetch(`${a.url}/api/dashboard/alerts?hours=720&limit=10000`)).json()) as { alerts: Array<{ alertId: string; status: string }> }).alerts.find((x) => x.alertId === alert!.id)?.status;
      expect(await statusOf()).toBe('OPEN');
      expect((await post({ alertId: alert!.id, partition: alert!.p, status: 'ACKNOWLEDGED' }, { 'content-type': 'application/json' })).status).toBe(200);
      expect(await statusOf()).toBe('ACKNOWLEDGED');
    } finally {
      await stopAll(instances, 'SIGKILL');
      await deleteTopics(prefix).catch(() => undefined);
      fs.rmSync(root, { recursive: true, force: true });
    }
  }, 300_000);
});
