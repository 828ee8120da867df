import { LiveConnection, type ConnectionStatus, type LiveConnectionOptions } from './connection.js';
import { applyDelta, applySnapshot, replaceAlerts, setAlertStatus, type DashboardState } from './state.js';
import type { Alert, AlertStatus, Severity } from './types.js';

export interface AlertsApi {
  list(): Promise<{ total: number; bySeverity: Partial<Record<Severity, number>>; alerts: Alert[] }>;
  setStatus(alertId: string, action: 'ack' | 'resolve'): Promise<{ alertId: string; status: AlertStatus }>;
}

/**
 * The page's live model: the WebSocket stream applied to one immutable state, plus the alert
 * workflow. Views subscribe and re-render on change; a new snapshot (reconnect) replaces the state.
 */
export class Dashboard {
  state: DashboardState | null = null;
  status: ConnectionStatus;
  readonly connection: LiveConnection;
  private readonly listeners = new Set<() => void>();
  private alertTimer: ReturnType<typeof setInterval> | null = null;

  constructor(
    conn: Omit<LiveConnectionOptions, 'onMessage' | 'onStatus'>,
    private readonly alertsApi: AlertsApi,
    private readonly alertRefreshMs = 30_000,
  ) {
    this.connection = new LiveConnection({
      ...conn,
      onMessage: (msg) => {
        if (msg.type === 'SNAPSHOT') {
          this.state = applySnapshot(msg);
          void this.refreshAlerts();
        } else if (msg.type === 'DELTA' && this.state) {
          this.state = applyDelta(this.state, msg);
        } else if (msg.type === 'ALERT_STATUS' && this.state) {
          this.state = { ...this.state, alerts: setAlertStatus(this.state.alerts, msg.alertId, msg.status, msg.at) };
        } else return;
        this.emit();
      },
      onStatus: (s) => {
        this.status = s;
        this.emit();
      },
    });
    this.status = this.connection.status;
  }

  start(): void {
    this.connection.start();
    this.alertTimer ??= setInterval(() => void this.refreshAlerts(), this.alertRefreshMs);
  }

  stop(): void {
    this.connection.stop();
    if (this.alertTimer) clearInterval(this.alertTimer);
    this.alertTimer = null;
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The authoritative alert list and totals (the snapshot carries only the 20 newest). */
  async refreshAlerts(): Promise<void> {
    try {
      const list = await this.alertsApi.list();
      if (!this.state) return;
      this.state = { ...this.state, alerts: replaceAlerts(this.state.alerts, list) };
      this.emit();
    } catch {
      // the stream still works; the next refresh tries again
    }
  }

  /** Acknowledge or resolve; the state changes only when the server accepted it. */
  async setAlertStatus(alertId: string, action: 'ack' | 'resolve'): Promise<void> {
    const r = await this.alertsApi.setStatus(alertId, action);
    if (this.state) {
      this.state = { ...this.state, alerts: setAlertStatus(this.state.alerts, alertId, r.status) };
      this.emit();
    }
  }

  private emit(): void {
    for (const l of this.listeners) l();
  }
}
