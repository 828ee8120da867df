import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import WebSocket from 'ws';
import { scanCodec } from '../../engine/query/remote.js';
import { tempDir } from '../engine/harness.js';
import { PARTITIONS, deleteTopics, sleep, stopEngine } from '../reliability/harness.js';
import { alive, expectedGlobalAlerts, globalAlertRecords, produceInput, scaleHealth, startInstance, stopAll, untilOwned, type Instance } from './cluster.js';

const MIN = 60_000;
const GRACE = 30_000;
const log = (s: string) => console.log(`[live-dashboard] ${s}`);
/** Partitions never go idle during the test: the global watermark is the minimum committed stream time (deterministic). */
const EXTRA = ['--idle-timeout-ms', '600000', '--tick-ms', '250'];

type Row = { windowStart: number; [k: string]: unknown };
type Snapshot = {
  type: string; streamTime: number; tiles: { eventsProcessed: number; lateDrops: number; deadLetters: number };
  activeUsers: Row[]; revenue: Row[]; platformEvents: Row[]; alerts: { total: number; recent: Array<{ alertId: string; status: string }> }; stalePartitions?: number[];
};

/** A dashboard connection: the snapshot it got and everything pushed after it. */
class Dashboard {
  readonly messages: Array<Record<string, unknown>> = [];
  private constructor(readonly ws: WebSocket) {}

  static async open(url: string): Promise<Dashboard> {
    const ws = new WebSocket(url.replace('http', 'ws') + '/dashboard-ws');
    const d = new Dashboard(ws);
    ws.on('message', (data) => d.messages.push(JSON.parse(String(data))));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    await until(() => d.messages.length > 0, 20_000, 'a snapshot');
    return d;
  }

  get snapshot(): Snapshot {
    return this.messages[0] as unknown as Snapshot;
  }

  /** The snapshot with every delta since applied (upsert by window, as the UI does). */
  applied(): Snapshot {
    const s = structuredClone(this.snapshot);
    const upsert = (rows: Row[], incoming: Row[] | undefined, key: (r: Row) => string) => {
      if (!incoming) return rows;
      const m = new Map(rows.map((r) => [key(r), r]));
      for (const r of incoming) m.set(key(r), r);
      return [...m.values()].sort((a, b) => a.windowStart - b.windowStart || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    };
    for (const d of this.messages.slice(1)) {
      if (d.type !== 'DELTA') continue;
      s.streamTime = d.streamTime as number;
      s.tiles = d.tiles as Snapshot['tiles'];
      s.activeUsers = upsert(s.activeUsers, d.activeUsers as Row[], (r) => String(r.windowStart));
      s.revenue = upsert(s.revenue, d.revenue as Row[], (r) => String(r.windowStart));
      s.platformEvents = upsert(s.platformEvents, d.platformEvents as Row[], (r) => `${r.windowStart}|${r.platform}`);
    }
    return s;
  }

  close(): void {
    this.ws.close();
  }
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

async function getJson(url: string): Promise<{ status: number; body: any }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(15_000) });
  return { status: r.status, body: await r.json() };
}

/** The series of a snapshot as the reference model gives them, over the snapshot's own range (the hour before its stream time). */
function expectedSeries(model: Awaited<ReturnType<typeof produceInput>>['model'], streamTime: number) {
  const from = streamTime + 1 - 60 * MIN;
  const inRange = (ws: number) => ws >= from && ws <= streamTime;
  const platformEvents = Object.entries(model.platformEvents).map(([k, n]) => {
    const [ws, platform] = k.split('|');
    return { windowStart: Number(ws), platform, events: n };
  }).filter((r) => r.windowStart >= streamTime + 1 - 10 * MIN && r.windowStart <= streamTime).sort((a, b) => a.windowStart - b.windowStart || (a.platform < b.platform ? -1 : 1));
  return {
    activeUsers: model.activeUsers.filter((r) => inRange(r.windowStart)),
    revenue: model.revenue.filter((r) => inRange(r.windowStart)).map((r) => ({ windowStart: r.windowStart, count: r.count, usd: Math.round(r.usd * 100) / 100 })),
    platformEvents,
  };
}

function seriesOf(s: Snapshot) {
  return {
    activeUsers: s.activeUsers.map((r) => ({ windowStart: r.windowStart, users: r.users })),
    revenue: s.revenue.map((r) => ({ windowStart: r.windowStart, count: r.count, usd: r.usd })),
    platformEvents: s.platformEvents.map((r) => ({ windowStart: r.windowStart, platform: r.platform, events: r.events })),
  };
}

describe('scaled out: the live dashboard, global alerts and alert statuses cover every partition on every instance', () => {
  it('each instance\'s WebSocket snapshot and deltas carry every partition (equal to the reference model); global window alerts are raised once, by one instance; an acknowledgement on one instance is seen on all and survives its partition moving', async () => {
    const prefix = `live${Date.now()}-`;
    const groupId = `${prefix}engine`;
    const root = tempDir('live-dashboard');
    const instances: Instance[] = [];
    const dashboards: Dashboard[] = [];
    try {
      const input = await produceInput(prefix, 8_000, { graceMs: GRACE });
      instances.push(...(await Promise.all(['a', 'b'].map((n) => startInstance(root, n, { prefix, groupId, extra: EXTRA })))));
      const owners = await untilOwned(instances, PARTITIONS, (o) => new Set(o.values()).size === 2, 120_000, 'two instances to share the partitions');
      const [a, b] = instances;
      log(`owners: ${[...owners].map(([p, i]) => `${p}:${i.name}`).join(' ')}`);

      // 1. A snapshot on either instance, once every partition's commit of all events is in (the
      // global exactly-once counter of the snapshot says so), equals the model: every partition.
      for (const i of instances) {
        let d = await Dashboard.open(i.url);
        const deadline = Date.now() + 120_000;
        while (d.snapshot.tiles.eventsProcessed !== input.events.length || d.snapshot.stalePartitions?.length !== 0) {
          d.close();
          if (Date.now() > deadline) throw new Error(`${i.name}: snapshot counts ${d.snapshot.tiles.eventsProcessed} events`);
          await sleep(500);
          d = await Dashboard.open(i.url);
        }
        expect(d.snapshot.activeUsers.length).toBeGreaterThan(3);
        expect(seriesOf(d.snapshot), `${i.name} snapshot`).toEqual(expectedSeries(input.model, d.snapshot.streamTime));
        expect(d.snapshot.tiles.lateDrops).toBe(Object.values(input.model.late).reduce((x, y) => x + y, 0));
        expect(d.snapshot.stalePartitions).toEqual([]);
        dashboards.push(d);
      }

      // 2. More events: both dashboards get deltas for every partition's windows (most of them owned by
      // the other instance), and the snapshot with the deltas applied equals the model of all events.
      await input.more(8_000);
      await input.close();
      const total = input.events.length;
      await until(() => dashboards.every((d) => d.applied().tiles.eventsProcessed === total), 120_000, 'deltas of every partition');
      for (const [k, d] of dashboards.entries()) {
        const s = d.applied();
        const deltas = d.messages.filter((m) => m.type === 'DELTA').length;
        log(`${instances[k].name}: ${deltas} deltas`);
        expect(deltas).toBeGreaterThan(0);
        const exp = expectedSeries(input.model, s.streamTime);
        // The deltas' windows are upserted over the first snapshot's: compare on the current hour.
        const got = seriesOf(s);
        const from = s.streamTime + 1 - 60 * MIN;
        expect(got.activeUsers.filter((r) => r.windowStart >= from), `${instances[k].name} deltas: active users`).toEqual(exp.activeUsers);
        expect(got.revenue.filter((r) => r.windowStart >= from), `${instances[k].name} deltas: revenue`).toEqual(exp.revenue);
        expect(got.platformEvents.filter((r) => r.windowStart >= s.streamTime + 1 - 10 * MIN), `${instances[k].name} deltas: events`).toEqual(exp.platformEvents);
      }

      // Figures for docs/SCALING.md (logged, not asserted): what the partials cost next to the changelog,
      // and what one tick of the other design (the snapshot's reads fanned out to the owners) moves.
      const hs = await Promise.all(instances.map(async (i) => (await scaleHealth(i))!.scale as unknown as { changelog: { records: number; bytes: number; liveRecords: number; liveBytes: number }; live: { entries: number; records: number; bytes: number } }));
      const sum = (f: (h: (typeof hs)[number]) => number) => hs.reduce((n, h) => n + f(h), 0);
      log(`per input event: changelog ${(sum((h) => h.changelog.bytes) / total).toFixed(1)} B (${(sum((h) => h.changelog.records) / total).toFixed(3)} records), partials ${(sum((h) => h.changelog.liveBytes) / total).toFixed(1)} B (${(sum((h) => h.changelog.liveRecords) / total).toFixed(3)} records); each instance read ${hs[0].live.records} partial records (${hs[0].live.bytes} B), holds ${hs[0].live.entries} entries`);
      const streamTime = dashboards[0].applied().streamTime;
      const ticks: number[] = [];
      let tickBytes = 0;
      for (let rep = 0; rep < 5; rep++) {
        const t0 = performance.now();
        tickBytes = 0;
        for (const [p, owner] of await untilOwned(instances, PARTITIONS, () => true, 30_000, 'owners')) {
          const reqs = [
            ...['active_users', 'revenue'].map((pl) => ({ p, op: 'range', arg: { start: [p, pl, streamTime + 1 - 60 * MIN], end: [p, pl, streamTime + 1] } })),
            ...['platform_events', 'error_rate'].map((pl) => ({ p, op: 'range', arg: { start: [p, pl, streamTime + 1 - 10 * MIN], end: [p, pl, streamTime + 1] } })),
            { p, op: 'range', arg: { start: [p, 'performance', streamTime + 1 - 2 * MIN], end: [p, 'performance', streamTime + 1] } },
            { p, op: 'range', arg: { start: [p, 'alerts'], end: [p, 'alerts\u0000'] } },
            { p, op: 'get', arg: [p, '~meta'] },
          ];
          const r = await fetch(`${owner.url}/internal/scan`, { method: 'POST', headers: { 'content-type': 'application/msgpack' }, body: scanCodec.pack(reqs) });
          tickBytes += (await r.arrayBuffer()).byteLength;
        }
        ticks.push(performance.now() - t0);
      }
      log(`one fan-out snapshot tick (${PARTITIONS} partitions, one request each): ${tickBytes} B, ${ticks.map((t) => t.toFixed(0)).join('/')} ms; one partials snapshot: ${JSON.stringify(dashboards[0].snapshot).length} B of JSON built locally`);

      const metrics = await (await fetch(`${a.url}/metrics`)).text();
      const m = (name: string) => Number(/^rta_server_tick_seconds_(sum|count)\{phase="snapshot"\} (\S+)$/m.test(metrics) ? new RegExp(`^rta_server_tick_seconds_${name}\\{phase="snapshot"\\} (\\S+)$`, 'm').exec(metrics)![1] : NaN);
      log(`partials snapshot on the event loop: ${m('count')} ticks, mean ${((m('sum') / m('count')) * 1000).toFixed(2)} ms`);

      // 3. Global window alerts: exactly the model's, on every instance, raised by the owner of partition 0 only.
      const expected = expectedGlobalAlerts(input.model);
      log(`expected global alerts: ${expected.length}`);
      expect(expected.length).toBeGreaterThan(0);
      const globalIds = async (i: Instance) => ((await getJson(`${i.url}/api/dashboard/alerts?hours=720&limit=10000`)).body.alerts as Array<{ alertId: string; key: string }>).filter((x) => x.key === 'global').map((x) => x.alertId).sort();
      await until(async () => (await globalIds(a)).length >= expected.length && (await globalIds(b)).length >= expected.length, 60_000, 'the global alerts on both instances');
      expect(await globalIds(a)).toEqual(expected);
      expect(await globalIds(b)).toEqual(expected);
      const evaluators = await Promise.all(instances.map(async (i) => (await scaleHealth(i))!.scale as unknown as { globalAlerts: { evaluator: boolean; alerts: number } }));
      expect(evaluators.map((h) => h.globalAlerts.evaluator).sort()).toEqual([false, true]);
      expect(evaluators.map((h) => h.globalAlerts.alerts).sort((x, y) => x - y)).toEqual([0, expected.length]);
      const records = await globalAlertRecords(prefix);
      expect([...records.keys()].sort()).toEqual(expected);
      expect([...records.values()].every((n) => n === 1)).toBe(true);

      // 4. Acknowledge, on a, an alert of a partition b owns and the global one of partition 0 (whoever owns it), resolve one on b.
      const all = (await getJson(`${a.url}/api/dashboard/alerts?hours=720&limit=10000`)).body.alerts as Array<{ alertId: string; userId: string; key: string; status: string }>;
      const ownersNow = await untilOwned(instances, PARTITIONS, () => true, 30_000, 'a stable assignment');
      // Which partition holds an alert: ask each owner for the stored alert (the internal read API).
      const partitionOfAlert = async (id: string) => {
        for (let p = 0; p < PARTITIONS; p++) {
          const r = await fetch(`${ownersNow.get(p)!.url}/internal/scan`, { method: 'POST', headers: { 'content-type': 'application/msgpack' }, body: scanCodec.pack([{ p, op: 'get', arg: [p, 'alerts', id] }]) });
          if ((scanCodec.unpack(new Uint8Array(await r.arrayBuffer())) as unknown[])[0] !== undefined) return p;
        }
        return -1;
      };
      let userAlert: string | null = null;
      for (const x of all.filter((x) => x.key !== 'global').slice(0, 40)) {
        if (ownersNow.get(await partitionOfAlert(x.alertId)) === b) {
          userAlert = x.alertId;
          break;
        }
      }
      expect(userAlert).not.toBeNull();
      const globalAlert = expected[0];
      const resolved = all.find((x) => x.key !== 'global' && x.alertId !== userAlert)!.alertId;
      const post = (i: Instance, id: string, action: string) => fetch(`${i.url}/api/dashboard/alerts/${encodeURIComponent(id)}/${action}`, { method: 'POST', signal: AbortSignal.timeout(15_000) });
      expect((await post(a, userAlert!, 'ack')).status).toBe(200);
      expect((await post(a, globalAlert, 'ack')).status).toBe(200);
      expect((await post(b, resolved, 'resolve')).status).toBe(200);
      expect((await post(a, 'NO_SUCH:alert:1', 'ack')).status).toBe(404);
      const statuses = async (i: Instance) => {
        const list = (await getJson(`${i.url}/api/dashboard/alerts?hours=720&limit=10000`)).body.alerts as Array<{ alertId: string; status: string }>;
        return Object.fromEntries([userAlert!, globalAlert, resolved].map((id) => [id, list.find((x) => x.alertId === id)?.status]));
      };
      const want = { [userAlert!]: 'ACKNOWLEDGED', [globalAlert]: 'ACKNOWLEDGED', [resolved]: 'RESOLVED' };
      expect(await statuses(a)).toEqual(want);
      expect(await statuses(b)).toEqual(want);
      // Every open dashboard, on either instance, is told.
      await until(() => dashboards.every((d) => d.messages.filter((m) => m.type === 'ALERT_STATUS').length >= 3), 20_000, 'ALERT_STATUS on both dashboards');
      for (const d of dashboards) {
        const notices = Object.fromEntries(d.messages.filter((m) => m.type === 'ALERT_STATUS').map((m) => [m.alertId, m.status]));
        expect(notices).toEqual(want);
      }

      // 5. b leaves (SIGTERM): its partitions move to a with their state. While they move, a's snapshots
      // keep the last complete values; afterwards the statuses and the numbers are all there.
      for (const d of dashboards) d.close();
      dashboards.length = 0;
      const before = await Dashboard.open(a.url);
      before.close();
      const finalSeries = expectedSeries(input.model, before.snapshot.streamTime);
      expect(seriesOf(before.snapshot)).toEqual(finalSeries);
      // A dashboard left open on a across the move (the input is idle: no commit, so only a change of
      // stalePartitions makes a delta) is told when partitions are held, and when they are no more.
      const watcher = await Dashboard.open(a.url);
      dashboards.push(watcher);
      const stop = stopEngine(b.proc, 'SIGTERM');
      (b as { expectedDead?: boolean }).expectedDead = true;
      let during = 0;
      let stale = 0;
      const moved = untilOwned(instances, PARTITIONS, (o) => [...o.values()].every((i) => i === a), 120_000, 'a to own every partition');
      let settled = false;
      void moved.then(() => (settled = true), () => (settled = true));
      while (!settled) {
        const d = await Dashboard.open(a.url);
        d.close();
        expect(seriesOf(d.snapshot), 'a snapshot during the rebalance').toEqual(finalSeries);
        during++;
        if (d.snapshot.stalePartitions?.length) stale++;
        await sleep(100);
      }
      await moved;
      await stop;
      log(`snapshots during the rebalance: ${during}, ${stale} of them marking stale partitions`);
      expect(during).toBeGreaterThan(0);
      const staleSeen = () => watcher.messages.map((m) => m.stalePartitions as number[] | undefined).filter((x) => x !== undefined);
      if (stale > 0) {
        await until(() => staleSeen().at(-1)?.length === 0, 10_000, 'the open dashboard to hear that the rebalance is over');
        log(`the open dashboard's stalePartitions: ${JSON.stringify(staleSeen())}`);
        expect(staleSeen().some((x) => x.length > 0), 'the open dashboard was told partitions were held').toBe(true);
      }
      expect(staleSeen().at(-1)).toEqual([]);
      expect(await statuses(a)).toEqual(want);
      const after = await Dashboard.open(a.url);
      after.close();
      expect(seriesOf(after.snapshot)).toEqual(finalSeries);
      expect(after.snapshot.alerts.total).toBe((await getJson(`${a.url}/api/dashboard/alerts?hours=720&limit=1`)).body.total);
      // The evaluation moved too: no global alert is raised a second time (a continued from partition 0's committed progress).
      await sleep(2500);
      const recordsAfter = await globalAlertRecords(prefix);
      expect([...recordsAfter.keys()].sort()).toEqual(expected);
      expect([...recordsAfter.values()].every((n) => n === 1), `records per global alert after the move: ${JSON.stringify([...recordsAfter])}`).toBe(true);
      expect(alive(a)).toBe(true);
    } finally {
      for (const d of dashboards) d.close();
      await stopAll(instances, 'SIGKILL');
      await deleteTopics(prefix).catch(() => undefined);
      fs.rmSync(root, { recursive: true, force: true });
    }
  }, 420_000);
});
