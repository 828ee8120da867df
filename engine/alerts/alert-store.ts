import path from 'node:path';
import fs from 'node:fs';
import { open, type RootDatabase, type Database } from 'lmdb';
import type { Alert } from '../codec/types.js';
import { ASYNC_WRITE_OPTIONS, settled } from '../state/lmdb-async.js';

export type AlertStatus = 'OPEN' | 'ACKNOWLEDGED' | 'RESOLVED';
export interface StoredAlert extends Alert {
  status: AlertStatus;
  statusUpdatedAt: number;
}

export interface AlertFilter {
  since?: number;
  severity?: string;
  userId?: string;
  status?: AlertStatus;
  limit?: number;
}

export interface AlertList {
  alerts: StoredAlert[];
  total: number;
  bySeverity: Record<string, number>;
  byStatus: Record<string, number>;
}

/**
 * The main thread's alert store: global-window alerts (raised by the main thread) and the status
 * of every alert (acknowledged, resolved). Per-event alerts live in their shard's LMDB, written
 * in the same transaction as the state that raised them, so a crash can neither lose nor repeat
 * one; the query layer merges both. Ids are deterministic: re-evaluation updates, never adds.
 */
export class AlertStore {
  private constructor(
    readonly env: RootDatabase,
    readonly global: Database<Alert, string>,
    readonly status: Database<{ status: AlertStatus; at: number }, string>,
    readonly notified: Database<number, string>,
  ) {}

  static open(dataDir: string): AlertStore {
    const dir = path.join(dataDir, 'alerts');
    fs.mkdirSync(dir, { recursive: true });
    const env = open({ path: dir, maxDbs: 4, noMemInit: true, ...ASYNC_WRITE_OPTIONS });
    return new AlertStore(env, env.openDB({ name: 'global' }), env.openDB({ name: 'status' }), env.openDB({ name: 'notified' }));
  }

  async putGlobal(alerts: Alert[]): Promise<void> {
    if (alerts.length === 0) return;
    await settled('storing global alerts', this.env.transaction(() => {
      for (const a of alerts) this.global.put(a.alertId, a);
    }));
  }

  *globalAlerts(): Generator<Alert> {
    for (const { value } of this.global.getRange()) yield value;
  }

  statusOf(id: string): { status: AlertStatus; at: number } {
    return this.status.get(id) ?? { status: 'OPEN', at: 0 };
  }

  async setStatus(id: string, status: AlertStatus): Promise<void> {
    await settled(`storing the status of alert ${id}`, this.status.put(id, { status, at: Date.now() }));
  }

  /** Marks alerts as notified; returns those that were not yet (a replay does not notify twice). */
  async markNotified(ids: string[]): Promise<string[]> {
    const fresh: string[] = [];
    await settled('storing notification marks', this.env.transaction(() => {
      for (const id of ids) {
        if (this.notified.get(id) === undefined) {
          fresh.push(id);
          this.notified.put(id, Date.now());
        }
      }
    }));
    return fresh;
  }

  /**
   * Retention: deletes the global alerts, statuses and notification marks of windows that started
   * before `cutoff` (alert ids end with their window start: alertId()). Returns how many went.
   */
  async pruneBefore(cutoff: number): Promise<number> {
    const windowOf = (id: string) => Number(id.slice(id.lastIndexOf(':') + 1));
    const old = (id: string) => {
      const ws = windowOf(id);
      return Number.isFinite(ws) && ws < cutoff;
    };
    const alerts = [...this.global.getRange()].filter(({ value }) => Math.max(value.windowStart || 0, value.timestamp || 0) < cutoff).map(({ key }) => key);
    const statuses = [...this.status.getKeys()].filter(old);
    const marks = [...this.notified.getKeys()].filter(old);
    if (alerts.length + statuses.length + marks.length === 0) return 0;
    await settled('pruning the alert store', this.env.transaction(() => {
      for (const k of alerts) this.global.remove(k);
      for (const k of statuses) this.status.remove(k);
      for (const k of marks) this.notified.remove(k);
    }));
    return alerts.length + statuses.length + marks.length;
  }

  close(): Promise<void> {
    return this.env.close();
  }
}

/** Filters, counts and orders alerts (newest first) with their statuses. */
export function listAlerts(all: Iterable<Alert>, statusOf: (id: string) => { status: AlertStatus; at: number }, filter: AlertFilter = {}): AlertList {
  const out: StoredAlert[] = [];
  const bySeverity: Record<string, number> = { CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0 };
  const byStatus: Record<string, number> = { OPEN: 0, ACKNOWLEDGED: 0, RESOLVED: 0 };
  let total = 0;
  for (const a of all) {
    if (filter.since !== undefined && a.timestamp < filter.since) continue;
    if (filter.userId !== undefined && a.userId !== filter.userId) continue;
    const st = statusOf(a.alertId);
    if (filter.status !== undefined && st.status !== filter.status) continue;
    bySeverity[a.severity] = (bySeverity[a.severity] ?? 0) + 1;
    if (filter.severity !== undefined && a.severity !== filter.severity) continue;
    byStatus[st.status] = (byStatus[st.status] ?? 0) + 1;
    total++;
    out.push({ ...a, status: st.status, statusUpdatedAt: st.at });
  }
  out.sort((x, y) => y.timestamp - x.timestamp || (x.alertId < y.alertId ? -1 : 1));
  return { alerts: out.slice(0, filter.limit ?? 100), total, bySeverity, byStatus };
}
