import { useEffect, useRef, useState } from 'preact/hooks';
import { SEVERITIES, type Alert, type AlertSummary, type Severity } from '../live/index.js';
import { fmtDateTime, fmtInt, fmtTime } from '../format.js';
import { Link, paths } from '../router.js';

export interface AlertPanelProps {
  alerts: AlertSummary;
  onAction: (alertId: string, action: 'ack' | 'resolve') => Promise<void>;
  /** Limit the rendered list (the overview shows fewer than the alerts page). */
  limit?: number;
  title?: string;
}

type StatusFilter = 'active' | 'all';

/** Where an alert leads: its user, or the revenue view for revenue alerts. */
function alertTarget(a: Alert): { href: string; label: string } | null {
  if (a.userId) return { href: paths.user(a.userId), label: a.userId };
  if (a.type.includes('REVENUE')) return { href: '/revenue', label: 'revenue' };
  return null;
}

export function AlertPanel({ alerts, onAction, limit = 50, title = 'Alerts' }: AlertPanelProps) {
  const [severities, setSeverities] = useState<Set<Severity>>(() => new Set(SEVERITIES));
  const [statusFilter, setStatusFilter] = useState<StatusFilter>('active');
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  // Alerts that arrived while the panel is shown are highlighted for a few seconds and announced.
  const seen = useRef<Set<string> | null>(null);
  const [arrived, setArrived] = useState<ReadonlySet<string>>(() => new Set());
  const [announce, setAnnounce] = useState('');
  useEffect(() => {
    const ids = alerts.recent.map((a) => a.alertId);
    const before = seen.current;
    seen.current = new Set(ids);
    if (!before) return;
    const fresh = ids.filter((id) => !before.has(id));
    if (fresh.length === 0) return;
    setArrived(new Set(fresh));
    setAnnounce(`${fresh.length} new alert${fresh.length > 1 ? 's' : ''}`);
  }, [alerts.recent]);
  useEffect(() => {
    if (arrived.size === 0) return;
    const t = setTimeout(() => setArrived(new Set()), 3000);
    return () => clearTimeout(t);
  }, [arrived]);

  const toggle = (s: Severity) => {
    const next = new Set(severities);
    if (next.has(s)) next.delete(s);
    else next.add(s);
    setSeverities(next);
  };
  const shown = alerts.recent.filter((a) => severities.has(a.severity) && (statusFilter === 'all' || a.status !== 'RESOLVED'));
  const act = async (id: string, action: 'ack' | 'resolve') => {
    setBusy(id + action);
    setError(null);
    try {
      await onAction(id, action);
    } catch (e) {
      setError(`Could not ${action === 'ack' ? 'acknowledge' : 'resolve'} ${id}: ${(e as Error).message}`);
    } finally {
      setBusy(null);
    }
  };

  return (
    <section class="card alerts" aria-labelledby="alerts-title">
      <div class="card-head">
        <h2 id="alerts-title" class="card-title">
          {title} <span class="muted">({fmtInt(alerts.total)} in 24 h)</span>
        </h2>
        <div class="filters" role="group" aria-label="Filter alerts by severity">
          {SEVERITIES.map((s) => (
            <button key={s} type="button" class={`chip sev-${s.toLowerCase()}`} aria-pressed={severities.has(s)} onClick={() => toggle(s)}>
              {s} <span class="count">{fmtInt(alerts.bySeverity[s] ?? 0)}</span>
            </button>
          ))}
        </div>
        <label class="status-filter">
          Show{' '}
          <select value={statusFilter} onChange={(e) => setStatusFilter((e.currentTarget as HTMLSelectElement).value as StatusFilter)}>
            <option value="active">open and acknowledged</option>
            <option value="all">all, with resolved</option>
          </select>
        </label>
      </div>
      <p class="sr-only" aria-live="polite">{announce}</p>
      {error ? <p class="error" role="alert">{error}</p> : null}
      {shown.length === 0 ? (
        <p class="empty">No alerts match the filter.</p>
      ) : (
        <ul class="alert-list">
          {shown.slice(0, limit).map((a) => {
            const target = alertTarget(a);
            const status = a.status ?? 'OPEN';
            return (
              <li key={a.alertId} class={`alert sev-${a.severity.toLowerCase()} st-${status.toLowerCase()}${arrived.has(a.alertId) ? ' arrived' : ''}`} data-alert-id={a.alertId}>
                <div class="alert-main">
                  <span class={`badge sev-${a.severity.toLowerCase()}`}>{a.severity}</span>
                  <span class="alert-type">{a.type.replace(/_/g, ' ').toLowerCase()}</span>
                  <time dateTime={new Date(a.timestamp).toISOString()} title={fmtDateTime(a.timestamp)}>{fmtTime(a.timestamp)}</time>
                  <span class={`status st-${status.toLowerCase()}`}>{status.toLowerCase()}</span>
                </div>
                <p class="alert-msg">{a.message}</p>
                <div class="alert-actions">
                  {target ? <Link href={target.href} class="alert-link">{target.label === 'revenue' ? 'Revenue' : `User ${target.label}`} →</Link> : <span />}
                  <span class="spacer" />
                  {status === 'OPEN' ? (
                    <button type="button" class="btn small" disabled={busy !== null} onClick={() => act(a.alertId, 'ack')} aria-label={`Acknowledge ${a.type} alert for ${a.key}`}>
                      Acknowledge
                    </button>
                  ) : null}
                  {status !== 'RESOLVED' ? (
                    <button type="button" class="btn small" disabled={busy !== null} onClick={() => act(a.alertId, 'resolve')} aria-label={`Resolve ${a.type} alert for ${a.key}`}>
                      Resolve
                    </button>
                  ) : null}
                </div>
              </li>
            );
          })}
        </ul>
      )}
      {shown.length > limit ? <p class="more"><Link href="/alerts">All {fmtInt(shown.length)} alerts →</Link></p> : null}
    </section>
  );
}
