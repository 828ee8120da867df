export { Dashboard, type AlertsApi } from './dashboard.js';
export { LiveConnection, backoffDelay, inflateRaw, DEFAULT_BACKOFF, type ConnectionStatus, type ConnectionState, type SocketLike, type BackoffOptions } from './connection.js';
export { applyDelta, applySnapshot, mergeAlerts, mergeWindows, platformRates, replaceAlerts, setAlertStatus, MAX_ALERTS, MAX_POINTS, type DashboardState, type PlatformRateWindow } from './state.js';
export * from './types.js';
