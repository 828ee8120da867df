/** The shapes the server sends (server/server.ts snapshot() and tick(), engine/query/query.ts). */

export type Severity = 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW';
export const SEVERITIES: readonly Severity[] = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'];
export type AlertStatus = 'OPEN' | 'ACKNOWLEDGED' | 'RESOLVED';

export interface Alert {
  alertId: string;
  type: string;
  severity: Severity;
  key: string;
  windowStart: number;
  timestamp: number;
  message: string;
  value: number;
  threshold: number;
  userId: string;
  status?: AlertStatus;
  statusUpdatedAt?: number;
}

export interface Tiles {
  activeUsersNow: number;
  revenueUsdLast5Min: number;
  errorRate: number;
  lateDrops: number;
  deadLetters: number;
  slabsInFlight: number;
  /** Event-time rate of the last complete minute, per platform. */
  eventsPerSecByPlatform?: Record<string, number>;
  /** Kafka consumer lag in messages; null on the embedded source. */
  consumerLag?: number | null;
  /** Events the engine has processed since it started (wall clock). */
  eventsProcessed?: number;
}

export interface ActiveUsersWindow {
  windowStart: number;
  windowEnd: number;
  users: number;
  byPlatform: Record<string, number>;
}

export interface RevenueWindow {
  windowStart: number;
  windowEnd: number;
  usd: number;
  count: number;
  byCurrency: Record<string, number>;
  byTier: Record<string, number>;
}

export interface PlatformEventsRow {
  windowStart: number;
  platform: string;
  events: number;
  errors: number;
}

export interface LatencyWindow {
  windowStart: number;
  count: number;
  p50: number;
  p90: number;
  p99: number;
}

export interface AlertSummary {
  total: number;
  bySeverity: Partial<Record<Severity, number>>;
  recent: Alert[];
}

export interface SnapshotMessage {
  type: 'SNAPSHOT';
  streamTime: number;
  tiles: Tiles;
  activeUsers: ActiveUsersWindow[];
  revenue: RevenueWindow[];
  platformEvents: PlatformEventsRow[];
  latency?: LatencyWindow[];
  alerts: AlertSummary;
  /** Scaled out: partitions without a live owner (a rebalance); their values are their last committed ones. */
  stalePartitions?: number[];
}

export interface DeltaMessage {
  type: 'DELTA';
  changed: string[];
  streamTime: number;
  tiles: Tiles;
  activeUsers: ActiveUsersWindow[];
  revenue: RevenueWindow[];
  platformEvents?: PlatformEventsRow[];
  latency?: LatencyWindow[];
  newAlerts: Alert[];
  /** Scaled out: as in the snapshot, at the time of this delta. */
  stalePartitions?: number[];
}

export interface ResponseMessage {
  type: 'RESPONSE' | 'ERROR';
  requestId: string | number | null;
  data?: unknown;
  code?: string;
  message?: string;
}

/** An alert was acknowledged or resolved (on this or another dashboard). */
export interface AlertStatusMessage {
  type: 'ALERT_STATUS';
  alertId: string;
  status: 'ACKNOWLEDGED' | 'RESOLVED';
  at: number;
}

export type ServerMessage = SnapshotMessage | DeltaMessage | ResponseMessage | AlertStatusMessage;
