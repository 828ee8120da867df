import path from 'node:path';
import fs from 'node:fs';
import { open, type RootDatabase, type Database } from 'lmdb';
import type { Alert } from '../codec/types.js';

export type AlertStatus = 'OPEN' | 'ACKNOWLEDGED' | 'RESOLVED';
export interface StoredAlert extends Alert {
  status: AlertStatus;
  updatedAt: number;
}

/**
 * The alert store (main thread, one writer): alerts by their deterministic id, so re-evaluation
 * after a replay updates an alert instead of adding one, and an acknowledged alert stays so.
 */
export class AlertStore {
  private constructor(
    readonly env: RootDatabase,
    readonly alerts: Database<StoredAlert, string>,
    readonly meta: Database<unknown, string>,
  ) {}

  static open(dataDir: string): AlertStore {
    const dir = path.join(dataDir, 'alerts');
    fs.mkdirSync(dir, { recursive: true });
    const env = open({ path: dir, maxDbs: 4, noMemInit: true });
    return new AlertStore(env, env.openDB({ name: 'alerts' }), env.openDB({ name: 'meta' }));
  }

  /** Inserts or updates; returns the alerts that are new (for notifications). */
  async upsert(alerts: Alert[]): Promise<Alert[]> {
    const fresh: Alert[] = [];
    if (alerts.length === 0) return fresh;
    await this.env.transaction(() => {
      for (const a of alerts) {
        const old = this.alerts.get(a.alertId);
        if (!old) fresh.push(a);
        this.alerts.put(a.alertId, { ...a, status: old?.status ?? 'OPEN', updatedAt: old?.updatedAt ?? Date.now() });
      }
    });
    return fresh;
  }

  get(id: string): StoredAlert | undefined {
    return this.alerts.get(id);
  }

  async setStatus(id: string, status: AlertStatus): Promise<StoredAlert | undefined> {
    const a = this.alerts.get(id);
    if (!a) return undefined;
    const next = { ...a, status, updatedAt: Date.now() };
    await this.alerts.put(id, next);
    return next;
  }

  list(filter: { since?: number; severity?: string; userId?: string; limit?: number } = {}): { alerts: StoredAlert[]; total: number; bySeverity: Record<string, number>; byStatus: Record<string, number> } {
    const out: StoredAlert[] = [];
    const bySeverity: Record<string, number> = { CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0 };
    const byStatus: Record<string, number> = { OPEN: 0, ACKNOWLEDGED: 0, RESOLVED: 0 };
    let total = 0;
    for (const { value: a } of this.alerts.getRange()) {
      if (filter.since !== undefined && a.timestamp < filter.since) continue;
      if (filter.userId !== undefined && a.userId !== filter.userId) continue;
      bySeverity[a.severity] = (bySeverity[a.severity] ?? 0) + 1;
      if (filter.severity !== undefined && a.severity !== filter.severity) continue;
      byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
      total++;
      out.push(a);
    }
    out.sort((x, y) => y.timestamp - x.timestamp || (x.alertId < y.alertId ? -1 : 1));
    return { alerts: out.slice(0, filter.limit ?? 100), total, bySeverity, byStatus };
  }

  close(): Promise<void> {
    return this.env.close();
  }
}
