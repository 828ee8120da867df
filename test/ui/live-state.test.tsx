import { describe, expect, it } from 'vitest';
import { MAX_ALERTS, MAX_POINTS, applyDelta, applySnapshot, mergeAlerts, platformRates, replaceAlerts, setAlertStatus } from '../../ui/src/live/index.js';
import { MIN, T0, alert, delta, snapshot, tiles } from './fixtures.js';

describe('dashboard state: snapshot and deltas', () => {
  it('a delta replaces the windows it carries, appends new ones, and leaves older windows alone', () => {
    const s0 = applySnapshot(snapshot(), 1000);
    const s1 = applyDelta(s0, delta({
      activeUsers: [
        { windowStart: T0 + 3 * MIN, windowEnd: T0 + 4 * MIN, users: 99, byPlatform: { WEB: 99 } },
        { windowStart: T0 + 4 * MIN, windowEnd: T0 + 5 * MIN, users: 7, byPlatform: { WEB: 7 } },
      ],
      tiles: tiles({ activeUsersNow: 7 }),
    }), 2000);
    expect(s1.activeUsers.map((w) => [w.windowStart - T0, w.users])).toEqual([[0, 10], [MIN, 11], [2 * MIN, 12], [3 * MIN, 99], [4 * MIN, 7]]);
    expect(s1.tiles.activeUsersNow).toBe(7);
    expect(s1.streamTime).toBe(T0 + 4 * MIN);
    expect(s1.receivedAt).toBe(2000);
    // The previous state is not mutated (views compare by reference).
    expect(s0.activeUsers).toHaveLength(4);
    expect(s0.activeUsers[3].users).toBe(13);
  });

  it('windows arriving out of order end up sorted by window start', () => {
    const s = applyDelta(applySnapshot(snapshot()), delta({ revenue: [{ windowStart: T0 - MIN, windowEnd: T0 + 4 * MIN, usd: 1, count: 1, byCurrency: {}, byTier: {} }] }));
    expect(s.revenue.map((w) => w.windowStart - T0)).toEqual([-MIN, 0, MIN]);
  });

  it('every series is capped: days of deltas keep at most MAX_POINTS windows, the newest', () => {
    let s = applySnapshot(snapshot());
    const days = 3 * 24 * 60;
    for (let i = 0; i < days; i++) {
      const ws = T0 + (10 + i) * MIN;
      s = applyDelta(s, delta({
        streamTime: ws,
        activeUsers: [{ windowStart: ws, windowEnd: ws + MIN, users: i, byPlatform: {} }],
        revenue: [{ windowStart: ws, windowEnd: ws + 5 * MIN, usd: i, count: 1, byCurrency: {}, byTier: {} }],
        platformEvents: [{ windowStart: ws, platform: 'WEB', events: 60, errors: 0 }],
        latency: [{ windowStart: ws, count: 1, p50: 1, p90: 2, p99: 3 }],
        newAlerts: [alert(`x${i}`, 'LOW', ws)],
      }));
    }
    for (const series of [s.activeUsers, s.revenue, s.platformRate, s.latency]) {
      expect(series).toHaveLength(MAX_POINTS);
      expect(series.at(-1)!.windowStart).toBe(T0 + (10 + days - 1) * MIN);
    }
    expect(s.activeUsers[0].users).toBe(days - MAX_POINTS);
    expect(s.alerts.recent).toHaveLength(MAX_ALERTS);
    expect(s.alerts.recent[0].alertId).toBe(`x${days - 1}`);
    expect(s.alerts.total).toBe(2 + days);
  });

  it('platform rows become events per second per platform per minute', () => {
    expect(platformRates([
      { windowStart: 60_000, platform: 'WEB', events: 600, errors: 0 },
      { windowStart: 0, platform: 'WEB', events: 120, errors: 1 },
      { windowStart: 0, platform: 'IOT', events: 30, errors: 0 },
    ])).toEqual([{ windowStart: 0, perSec: { WEB: 2, IOT: 0.5 } }, { windowStart: 60_000, perSec: { WEB: 10 } }]);
  });

  it('engine throughput comes from eventsProcessed over wall time (sampled over at least a second)', () => {
    let s = applySnapshot(snapshot({ tiles: tiles({ eventsProcessed: 1000 }) }), 10_000);
    expect(s.throughput).toBeNull();
    s = applyDelta(s, delta({ tiles: tiles({ eventsProcessed: 1500 }) }), 10_250);
    expect(s.throughput).toBeNull();
    s = applyDelta(s, delta({ tiles: tiles({ eventsProcessed: 6000 }) }), 12_000);
    expect(s.throughput).toBe(2500);
    // A restarted engine counts from zero again: no negative rate.
    s = applyDelta(s, delta({ tiles: tiles({ eventsProcessed: 10 }) }), 13_500);
    expect(s.throughput).toBe(2500);
  });
});

describe('dashboard state: alerts', () => {
  const base = { total: 1, bySeverity: { HIGH: 1 }, recent: [alert('a', 'HIGH', 100, { status: 'ACKNOWLEDGED' as const })] };

  it('a new alert is prepended and counted; a re-evaluated one (same id) updates without counting twice or losing its status', () => {
    const s = mergeAlerts(base, [alert('b', 'CRITICAL', 200), alert('a', 'HIGH', 150, { message: 'updated' })]);
    expect(s.recent.map((a) => a.alertId)).toEqual(['b', 'a']);
    expect(s.total).toBe(2);
    expect(s.bySeverity).toEqual({ HIGH: 1, CRITICAL: 1 });
    expect(s.recent[1]).toMatchObject({ message: 'updated', status: 'ACKNOWLEDGED' });
    expect(s.recent[0].status).toBe('OPEN');
  });

  it('status changes apply to the one alert', () => {
    const s = setAlertStatus(mergeAlerts(base, [alert('b', 'LOW', 200)]), 'b', 'RESOLVED', 5);
    expect(s.recent.map((a) => [a.alertId, a.status])).toEqual([['b', 'RESOLVED'], ['a', 'ACKNOWLEDGED']]);
  });

  it('the server list replaces totals and statuses, keeping live arrivals newer than it', () => {
    const live = mergeAlerts(base, [alert('new', 'LOW', 500)]);
    const s = replaceAlerts(live, { total: 40, bySeverity: { HIGH: 30, LOW: 10 }, alerts: [alert('a', 'HIGH', 100, { status: 'RESOLVED' }), alert('c', 'LOW', 90, { status: 'OPEN' })] });
    expect(s.total).toBe(40);
    expect(s.recent.map((a) => [a.alertId, a.status])).toEqual([['new', 'OPEN'], ['a', 'RESOLVED'], ['c', 'OPEN']]);
  });
});
