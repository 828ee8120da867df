import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { BROKERS, PARTITIONS, SHARDS, deleteTopics, sleep, stopEngine, tempDir, uniquePrefix } from '../reliability/harness.js';
import { startAckedLoad } from '../reliability/scenarios.js';
import { reconcile } from '../reliability/reconcile.js';
import { alive, scaleHealth, startInstance, stopAll, untilOwned, type Instance } from './cluster.js';

const LOAD = { events: 200_000, rate: 8_000, users: 20_000 };
const log = (s: string) => console.log(`[scale-out] ${s}`);

describe('scale out: several engine processes (separate data directories) in one consumer group', () => {
  it('three instances under load, one SIGKILLed, then a fourth added: partitions move with their state (restored from the changelog), every acknowledged event is counted exactly once', async () => {
    const prefix = uniquePrefix('scale');
    const groupId = `${prefix}engine`;
    const root = tempDir('scale');
    const ackLog = path.join(root, 'acks.tsv');
    const instances: Instance[] = [];
    const t0 = Date.now();
    try {
      const lg = await startAckedLoad(prefix, LOAD, ackLog);
      instances.push(...(await Promise.all(['a', 'b', 'c'].map((n) => startInstance(root, n, { prefix, groupId })))));
      const first = await untilOwned(instances, PARTITIONS, (o) => new Set(o.values()).size === 3, 120_000, 'three instances to share the partitions');
      log(`3 instances own ${[...first].map(([p, i]) => `${p}:${i.name}`).join(' ')} after ${Date.now() - t0} ms`);
      await sleep(1000 + Math.random() * 2000);
      expect(lg.finished).toBe(false);

      // SIGKILL b: its partitions must move to a and c, restored from the changelog.
      const victim = instances[1];
      const victimPartitions = [...first].filter(([, i]) => i === victim).map(([p]) => p);
      (victim as { expectedDead?: boolean }).expectedDead = true;
      const before = (await Promise.all(instances.filter((i) => i !== victim).map(scaleHealth))).map((h) => h!.scale.restores.records);
      await stopEngine(victim.proc, 'SIGKILL');
      const tKill = Date.now();
      const afterKill = await untilOwned(instances, PARTITIONS, (o) => !victimPartitions.some((p) => o.get(p) === victim), 120_000, 'the survivors to take the killed instance\'s partitions');
      log(`SIGKILL b (owned ${victimPartitions}); survivors own everything ${Date.now() - tKill} ms later`);
      const survivors = instances.filter(alive);
      const restoredRecords = (await Promise.all(survivors.map(scaleHealth))).map((h, k) => h!.scale.restores.records - before[k]);
      // The killed instance's state reached the survivors through the changelog (not by re-reading the input).
      expect(restoredRecords.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);

      // Add d (an empty machine): partitions move to it.
      const d = await startInstance(root, 'd', { prefix, groupId });
      instances.push(d);
      const withD = await untilOwned(instances, PARTITIONS, (o) => [...o.values()].includes(d) && new Set(o.values()).size === 3, 120_000, 'the new instance to get partitions');
      log(`d joined: ${[...withD].map(([p, i]) => `${p}:${i.name}`).join(' ')}`);

      const summary = await lg.done;
      expect(summary.records).toBe(LOAD.events);
      log(`load done after ${Date.now() - t0} ms`);
      // Every acknowledged event committed by the current owners, nothing waiting.
      const deadline = Date.now() + 240_000;
      let owners = withD;
      for (;;) {
        owners = await untilOwned(instances, PARTITIONS, () => true, 60_000, 'a stable assignment');
        const hs = await Promise.all(instances.filter(alive).map(scaleHealth));
        const committed = hs.reduce((n, h) => n + (h?.committedEvents ?? 0), 0);
        if (committed === summary.records && hs.every((h) => h?.lag === 0)) break;
        if (Date.now() > deadline) throw new Error(`committed ${committed} of ${summary.records} events`);
        await sleep(500);
      }
      const finalOwners = new Map([...owners].map(([p, i]) => [p, i.dataDir]));
      const restores = await Promise.all(instances.filter(alive).map(async (i) => ({ name: i.name, ...(await scaleHealth(i))!.scale.restores.byMode })));
      log(`restores: ${JSON.stringify(restores)}`);
      await stopAll(instances);
      const r = await reconcile({ brokers: BROKERS, topicPrefix: prefix, partitions: PARTITIONS, shards: SHARDS, dataDir: root, ackLog, dataDirOf: (p) => finalOwners.get(p)! });
      log(JSON.stringify({ ...r, mismatches: r.mismatches.slice(0, 5) }));
      expect(r.mismatches).toEqual([]);
      expect(r.committedEvents).toBe(LOAD.events);
      expect([r.lost, r.duplicated, r.lostPerKey, r.duplicatedPerKey]).toEqual([0, 0, 0, 0]);
      expect(r.keysChecked).toBeGreaterThan(1000);
    } finally {
      await stopAll(instances, 'SIGKILL');
      await deleteTopics(prefix).catch(() => undefined);
      fs.rmSync(root, { recursive: true, force: true });
    }
  }, 420_000);
});
