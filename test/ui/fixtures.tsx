import type { Alert, DeltaMessage, SnapshotMessage, Tiles } from '../../ui/src/live/index.js';

export const MIN = 60_000;
export const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

export function tiles(over: Partial<Tiles> = {}): Tiles {
  return { activeUsersNow: 100, revenueUsdLast5Min: 1000, errorRate: 0.01, lateDrops: 0, deadLetters: 0, slabsInFlight: 0, eventsPerSecByPlatform: { WEB: 10, MOBILE: 5 }, consumerLag: null, eventsProcessed: 0, ...over };
}

export function alert(id: string, severity: Alert['severity'], ts: number, over: Partial<Alert> = {}): Alert {
  return { alertId: id, type: 'TRANSACTION_ANOMALY', severity, key: `user-${id}`, windowStart: ts, timestamp: ts, message: `alert ${id}`, value: 1, threshold: 0, userId: `user-${id}`, ...over };
}

export function snapshot(over: Partial<SnapshotMessage> = {}): SnapshotMessage {
  return {
    type: 'SNAPSHOT',
    streamTime: T0 + 3 * MIN,
    tiles: tiles(),
    activeUsers: [0, 1, 2, 3].map((i) => ({ windowStart: T0 + i * MIN, windowEnd: T0 + (i + 1) * MIN, users: 10 + i, byPlatform: { WEB: 5 + i } })),
    revenue: [0, 1].map((i) => ({ windowStart: T0 + i * MIN, windowEnd: T0 + (i + 5) * MIN, usd: 100 * (i + 1), count: i + 1, byCurrency: { USD: 100 }, byTier: { GOLD: 100 } })),
    platformEvents: [
      { windowStart: T0, platform: 'WEB', events: 600, errors: 6 },
      { windowStart: T0, platform: 'MOBILE', events: 120, errors: 0 },
    ],
    latency: [{ windowStart: T0, count: 10, p50: 300, p90: 600, p99: 2000 }],
    alerts: { total: 2, bySeverity: { HIGH: 1, LOW: 1 }, recent: [alert('a', 'HIGH', T0 + 2 * MIN, { status: 'OPEN' }), alert('b', 'LOW', T0 + MIN, { status: 'ACKNOWLEDGED' })] },
    ...over,
  };
}

export function delta(over: Partial<DeltaMessage> = {}): DeltaMessage {
  return { type: 'DELTA', changed: ['active_users'], streamTime: T0 + 4 * MIN, tiles: tiles(), activeUsers: [], revenue: [], platformEvents: [], latency: [], newAlerts: [], ...over };
}
