import { useState } from 'preact/hooks';
import type { Alert, AlertStatus } from '../live/index.js';
import { AlertPanel } from '../components/AlertPanel.js';
import { Loading, Table } from '../components/Table.js';
import { fmtDateTime, fmtDuration, fmtInt, fmtMoney } from '../format.js';
import { useApi, useDashboard } from '../hooks.js';
import { Link, paths } from '../router.js';
import { PageHead, Stat } from './common.js';

const STEPS = ['page view', 'product view', 'add to cart', 'checkout', 'purchase'];

interface Session {
  start: number;
  end: number;
  events: number;
  pageViews: number;
  transactions: number;
  usd: number;
  platforms: string[];
  stages: number;
  funnelDepth?: number;
}

interface UserAnalytics {
  userId: string;
  profile: { tier: string; segment: string; country: string; region: string; signupTime: number } | null;
  sessions: Session[];
  openSessions: Session[];
  baseline: { transactions: number; meanUsd: number; stddevUsd: number } | null;
  alerts: Alert[];
}

function depthOf(s: Session): number {
  if (s.funnelDepth !== undefined) return s.funnelDepth;
  let k = 0;
  while (k < 5 && (s.stages & (1 << k)) !== 0) k++;
  return k;
}

export function UserView({ id }: { id: string }) {
  const d = useDashboard();
  const r = useApi<UserAnalytics>(`/users/${encodeURIComponent(id)}`, 10_000);
  const [statuses, setStatuses] = useState<Record<string, AlertStatus>>({});
  if (!r.data) return <><PageHead title={`User ${id}`} /><Loading what={`user ${id}`} error={r.error} /></>;
  const u = r.data;
  const sessions = [...u.openSessions.map((s) => ({ ...s, open: true })), ...u.sessions.map((s) => ({ ...s, open: false }))];
  const alerts = u.alerts.map((a) => ({ ...a, status: statuses[a.alertId] ?? a.status }));
  const bySeverity: Record<string, number> = {};
  for (const a of alerts) bySeverity[a.severity] = (bySeverity[a.severity] ?? 0) + 1;
  return (
    <>
      <PageHead title={`User ${u.userId}`} sub={u.profile ? `${u.profile.tier} tier · ${u.profile.segment} · ${u.profile.country} (${u.profile.region})` : 'No profile (unknown user: enriched as tier UNKNOWN)'} />
      <div class="cards">
        <section class="card" aria-labelledby="u-profile">
          <h2 id="u-profile" class="card-title">Profile</h2>
          {u.profile ? (
            <dl class="stats">
              <Stat label="Tier" value={u.profile.tier} testid="user-tier" />
              <Stat label="Segment" value={u.profile.segment} />
              <Stat label="Country" value={<Link href={paths.country(u.profile.country)}>{u.profile.country}</Link>} />
              <Stat label="Signed up" value={fmtDateTime(u.profile.signupTime)} />
            </dl>
          ) : <p class="muted">No profile.</p>}
        </section>
        <section class="card" aria-labelledby="u-baseline">
          <h2 id="u-baseline" class="card-title">Transaction baseline</h2>
          {u.baseline ? (
            <dl class="stats">
              <Stat label="Transactions" value={fmtInt(u.baseline.transactions)} />
              <Stat label="Mean amount" value={fmtMoney(u.baseline.meanUsd)} testid="user-baseline-mean" />
              <Stat label="Standard deviation" value={fmtMoney(u.baseline.stddevUsd)} />
              <Stat label="Anomaly above (3 σ)" value={fmtMoney(u.baseline.meanUsd + 3 * u.baseline.stddevUsd)} />
            </dl>
          ) : <p class="muted">No completed transactions yet.</p>}
        </section>
      </div>
      <section class="card" aria-label="Sessions">
        <Table
          caption="Sessions and recent activity (open sessions first)"
          head={['Started', 'State', { label: 'Duration', num: true }, { label: 'Events', num: true }, { label: 'Page views', num: true }, { label: 'Transactions', num: true }, { label: 'Spent (USD)', num: true }, 'Platforms', 'Furthest funnel step']}
          rows={sessions.slice(0, 50).map((s) => [
            fmtDateTime(s.start),
            s.open ? <span class="status st-open">open</span> : 'closed',
            fmtDuration(s.end - s.start),
            fmtInt(s.events),
            fmtInt(s.pageViews),
            fmtInt(s.transactions),
            fmtMoney(s.usd),
            s.platforms.join(', '),
            depthOf(s) === 0 ? 'none' : STEPS[depthOf(s) - 1],
          ])}
          empty="No sessions stored for this user."
        />
      </section>
      <AlertPanel
        title={`Alerts for ${u.userId}`}
        alerts={{ total: alerts.length, bySeverity, recent: alerts }}
        onAction={async (alertId, action) => {
          await d.setAlertStatus(alertId, action);
          setStatuses((s) => ({ ...s, [alertId]: action === 'ack' ? 'ACKNOWLEDGED' : 'RESOLVED' }));
        }}
        limit={100}
      />
    </>
  );
}
