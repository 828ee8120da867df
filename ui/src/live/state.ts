import type { ActiveUsersWindow, Alert, AlertSummary, DeltaMessage, LatencyWindow, PlatformEventsRow, RevenueWindow, Severity, SnapshotMessage, Tiles } from './types.js';

/**
 * Every series is capped: a dashboard left open on a wall for days keeps at most this many
 * windows per series (4 hours of minutes) and this many alerts.
 */
export const MAX_POINTS = 240;
export const MAX_ALERTS = 200;

/** Events per second by platform for one 1-minute window. */
export interface PlatformRateWindow {
  windowStart: number;
  perSec: Record<string, number>;
}

export interface DashboardState {
  /** Newest committed event time (the data's "now"). */
  streamTime: number;
  tiles: Tiles;
  activeUsers: ActiveUsersWindow[];
  revenue: RevenueWindow[];
  platformRate: PlatformRateWindow[];
  latency: LatencyWindow[];
  alerts: AlertSummary;
  /** Scaled out, during a rebalance: partitions whose numbers are held at their last committed values. */
  stalePartitions: number[];
  /** Engine throughput (wall clock events/s) from successive eventsProcessed, or null before two samples. */
  throughput: number | null;
  /** Wall-clock time of the last message applied (freshness). */
  receivedAt: number;
  /** For the throughput estimate. */
  processedSample: { at: number; events: number } | null;
}

/** Merges windows by windowStart (newer values replace older ones), sorted, keeping the newest `cap`. */
export function mergeWindows<T extends { windowStart: number }>(current: readonly T[], incoming: readonly T[], cap = MAX_POINTS): T[] {
  if (incoming.length === 0) return current.length > cap ? current.slice(-cap) : (current as T[]);
  const by = new Map<number, T>();
  for (const w of current) by.set(w.windowStart, w);
  for (const w of incoming) by.set(w.windowStart, w);
  const out = [...by.values()].sort((a, b) => a.windowStart - b.windowStart);
  return out.length > cap ? out.slice(out.length - cap) : out;
}

/** Rows of (window, platform, events per minute) -> events per second per platform per window. */
export function platformRates(rows: readonly PlatformEventsRow[]): PlatformRateWindow[] {
  const by = new Map<number, PlatformRateWindow>();
  for (const r of rows) {
    let w = by.get(r.windowStart);
    if (!w) by.set(r.windowStart, (w = { windowStart: r.windowStart, perSec: {} }));
    w.perSec[r.platform] = r.events / 60;
  }
  return [...by.values()].sort((a, b) => a.windowStart - b.windowStart);
}

function capAlerts(list: Alert[]): Alert[] {
  return list.length > MAX_ALERTS ? list.slice(0, MAX_ALERTS) : list;
}

/** Newest first, by event timestamp then id (stable for equal times). */
function byNewest(a: Alert, b: Alert): number {
  return b.timestamp - a.timestamp || (a.alertId < b.alertId ? -1 : a.alertId > b.alertId ? 1 : 0);
}

/**
 * Adds or updates alerts (ids are deterministic: a re-evaluated alert comes again with the same id).
 * A known alert keeps its status unless the incoming copy carries one; unknown ones are counted.
 */
export function mergeAlerts(summary: AlertSummary, incoming: readonly Alert[]): AlertSummary {
  if (incoming.length === 0) return summary;
  const by = new Map(summary.recent.map((a) => [a.alertId, a]));
  let total = summary.total;
  const bySeverity = { ...summary.bySeverity };
  for (const a of incoming) {
    const known = by.get(a.alertId);
    if (known) {
      by.set(a.alertId, { ...known, ...a, status: a.status ?? known.status, statusUpdatedAt: a.statusUpdatedAt ?? known.statusUpdatedAt });
    } else {
      by.set(a.alertId, { status: 'OPEN', ...a });
      total++;
      bySeverity[a.severity] = (bySeverity[a.severity] ?? 0) + 1;
    }
  }
  return { total, bySeverity, recent: capAlerts([...by.values()].sort(byNewest)) };
}

/** Sets the status of one alert (after the server accepted an acknowledge or resolve). */
export function setAlertStatus(summary: AlertSummary, alertId: string, status: Alert['status'], at = Date.now()): AlertSummary {
  if (!summary.recent.some((a) => a.alertId === alertId)) return summary;
  return { ...summary, recent: summary.recent.map((a) => (a.alertId === alertId ? { ...a, status, statusUpdatedAt: at } : a)) };
}

/**
 * Replaces the alert list with the server's (REST /alerts: totals and statuses are authoritative),
 * keeping live arrivals newer than the list.
 */
export function replaceAlerts(summary: AlertSummary, fromServer: { total: number; bySeverity: Partial<Record<Severity, number>>; alerts: Alert[] }): AlertSummary {
  const ids = new Set(fromServer.alerts.map((a) => a.alertId));
  const oldest = fromServer.alerts.reduce((m, a) => Math.min(m, a.timestamp), Infinity);
  const extra = summary.recent.filter((a) => !ids.has(a.alertId) && a.timestamp > oldest);
  return { total: fromServer.total, bySeverity: { ...fromServer.bySeverity }, recent: capAlerts([...fromServer.alerts, ...extra].sort(byNewest)) };
}

function throughputFrom(prev: DashboardState['processedSample'], tiles: Tiles, now: number, last: number | null): { throughput: number | null; processedSample: DashboardState['processedSample'] } {
  const events = tiles.eventsProcessed;
  if (events === undefined) return { throughput: last, processedSample: prev };
  if (!prev || events < prev.events) return { throughput: last, processedSample: { at: now, events } };
  // Sample over at least a second so one tick's jitter does not swing the number.
  if (now - prev.at < 1000) return { throughput: last, processedSample: prev };
  return { throughput: ((events - prev.events) * 1000) / (now - prev.at), processedSample: { at: now, events } };
}

/** A snapshot replaces everything (first connect and every reconnect: the resync). */
export function applySnapshot(msg: SnapshotMessage, now = Date.now()): DashboardState {
  return {
    streamTime: msg.streamTime,
    tiles: msg.tiles,
    activeUsers: mergeWindows([], msg.activeUsers ?? []),
    revenue: mergeWindows([], msg.revenue ?? []),
    platformRate: mergeWindows([], platformRates(msg.platformEvents ?? [])),
    latency: mergeWindows([], msg.latency ?? []),
    alerts: { total: msg.alerts?.total ?? 0, bySeverity: { ...(msg.alerts?.bySeverity ?? {}) }, recent: capAlerts([...(msg.alerts?.recent ?? [])].sort(byNewest)) },
    stalePartitions: msg.stalePartitions ?? [],
    throughput: null,
    receivedAt: now,
    processedSample: msg.tiles?.eventsProcessed !== undefined ? { at: now, events: msg.tiles.eventsProcessed } : null,
  };
}

/** A delta carries the tiles and the newest windows of each series; older windows stay as they were. */
export function applyDelta(state: DashboardState, msg: DeltaMessage, now = Date.now()): DashboardState {
  return {
    streamTime: Math.max(state.streamTime, msg.streamTime),
    tiles: msg.tiles ?? state.tiles,
    activeUsers: mergeWindows(state.activeUsers, msg.activeUsers ?? []),
    revenue: mergeWindows(state.revenue, msg.revenue ?? []),
    platformRate: mergeWindows(state.platformRate, platformRates(msg.platformEvents ?? [])),
    latency: mergeWindows(state.latency, msg.latency ?? []),
    alerts: mergeAlerts(state.alerts, msg.newAlerts ?? []),
    stalePartitions: msg.stalePartitions ?? state.stalePartitions,
    ...throughputFrom(state.processedSample, msg.tiles ?? state.tiles, now, state.throughput),
    receivedAt: now,
  };
}
