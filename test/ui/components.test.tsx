// @vitest-environment happy-dom
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/preact';
import { useState } from 'preact/hooks';
import { AlertPanel } from '../../ui/src/components/AlertPanel.js';
import { Tiles } from '../../ui/src/components/Tiles.js';
import { ConnectionBadge } from '../../ui/src/components/ConnectionBadge.js';
import { applyDelta, applySnapshot, setAlertStatus, type AlertSummary } from '../../ui/src/live/index.js';
import { alert, snapshot, tiles, T0 } from './fixtures.js';

afterEach(cleanup);

const summary: AlertSummary = {
  total: 3,
  bySeverity: { CRITICAL: 1, HIGH: 1, LOW: 1 },
  recent: [
    alert('c1', 'CRITICAL', T0 + 3000, { status: 'OPEN', type: 'IOT_THRESHOLD', userId: '', key: 'device-1' }),
    alert('h1', 'HIGH', T0 + 2000, { status: 'OPEN', userId: 'user-7', message: 'user-7 appeared in 3 locations' }),
    alert('l1', 'LOW', T0 + 1000, { status: 'RESOLVED' }),
  ],
};

/** The panel with a parent that applies accepted status changes, like the Dashboard does. */
function Harness(props: { onServer: (id: string, action: 'ack' | 'resolve') => Promise<void> }) {
  const [alerts, setAlerts] = useState(summary);
  return (
    <AlertPanel
      alerts={alerts}
      onAction={async (id, action) => {
        await props.onServer(id, action);
        setAlerts((s) => setAlertStatus(s, id, action === 'ack' ? 'ACKNOWLEDGED' : 'RESOLVED'));
      }}
    />
  );
}

const items = () => [...document.querySelectorAll('li[data-alert-id]')].map((li) => li.getAttribute('data-alert-id'));

describe('AlertPanel', () => {
  it('filters by severity with toggle buttons, and hides resolved alerts unless asked', () => {
    render(<Harness onServer={async () => {}} />);
    expect(items()).toEqual(['c1', 'h1']);
    const critical = screen.getByRole('button', { name: /CRITICAL/ });
    expect(critical.getAttribute('aria-pressed')).toBe('true');
    fireEvent.click(critical);
    expect(critical.getAttribute('aria-pressed')).toBe('false');
    expect(items()).toEqual(['h1']);
    fireEvent.change(screen.getByRole('combobox'), { target: { value: 'all' } });
    expect(items()).toEqual(['h1', 'l1']);
    fireEvent.click(screen.getByRole('button', { name: /HIGH/ }));
    fireEvent.click(screen.getByRole('button', { name: /LOW/ }));
    expect(items()).toEqual([]);
    expect(screen.getByText('No alerts match the filter.')).toBeTruthy();
  });

  it('links a user alert to the user drill-down', () => {
    render(<Harness onServer={async () => {}} />);
    const link = screen.getByRole('link', { name: /User user-7/ });
    expect(link.getAttribute('href')).toBe('/users/user-7');
  });

  it('acknowledge calls the server and shows the new status; a failure is shown and changes nothing', async () => {
    const onServer = vi.fn(async (id: string) => {
      if (id === 'c1') throw new Error('503 store not ready');
    });
    render(<Harness onServer={onServer} />);
    fireEvent.click(screen.getByRole('button', { name: /Acknowledge MULTIPLE|Acknowledge TRANSACTION_ANOMALY alert for user-h1/ }));
    await waitFor(() => expect(document.querySelector('li[data-alert-id="h1"] .status')!.textContent).toBe('acknowledged'));
    expect(onServer).toHaveBeenCalledWith('h1', 'ack');
    // Acknowledged: only Resolve is left.
    expect(document.querySelectorAll('li[data-alert-id="h1"] button')).toHaveLength(1);
    fireEvent.click(screen.getByRole('button', { name: /Acknowledge IOT_THRESHOLD/ }));
    await waitFor(() => expect(screen.getByRole('alert').textContent).toMatch(/Could not acknowledge c1: 503 store not ready/));
    expect(document.querySelector('li[data-alert-id="c1"] .status')!.textContent).toBe('open');
    fireEvent.click(screen.getByRole('button', { name: /Resolve TRANSACTION_ANOMALY alert for user-h1/ }));
    await waitFor(() => expect(items()).toEqual(['c1']));
  });

  it('marks alerts that arrive while it is shown', async () => {
    const { rerender } = render(<AlertPanel alerts={summary} onAction={async () => {}} />);
    expect(document.querySelectorAll('li.arrived')).toHaveLength(0);
    rerender(<AlertPanel alerts={{ ...summary, total: 4, recent: [alert('n1', 'HIGH', T0 + 9000, { status: 'OPEN' }), ...summary.recent] }} onAction={async () => {}} />);
    await waitFor(() => expect([...document.querySelectorAll('li.arrived')].map((li) => li.getAttribute('data-alert-id'))).toEqual(['n1']));
    expect(screen.getByText('1 new alert')).toBeTruthy();
    // Re-renders with the same alerts (every delta) keep the highlight on until it times out.
    rerender(<AlertPanel alerts={{ ...summary, total: 4, recent: [alert('n1', 'HIGH', T0 + 9000, { status: 'OPEN' }), ...summary.recent] }} onAction={async () => {}} />);
    expect(document.querySelectorAll('li.arrived')).toHaveLength(1);
    await waitFor(() => expect(document.querySelectorAll('li.arrived')).toHaveLength(0), { timeout: 5000 });
  });
});

describe('Tiles', () => {
  it('formats the numbers and flags an error rate above the alert threshold', () => {
    const state = applySnapshot(snapshot({ tiles: tiles({ activeUsersNow: 12345, revenueUsdLast5Min: 1234.5, errorRate: 0.0712, lateDrops: 4321, consumerLag: null, eventsPerSecByPlatform: { WEB: 1200.4, MOBILE: 33.33 } }) }));
    render(<Tiles state={state} />);
    expect(screen.getByTestId('tile-active-users').textContent).toBe('12.3K');
    expect(screen.getByTestId('tile-revenue').textContent).toBe('$1,234.50');
    expect(screen.getByTestId('tile-error-rate').textContent).toBe('7.12%');
    expect(screen.getByTestId('tile-error-rate').closest('.tile')!.classList.contains('bad')).toBe(true);
    expect(screen.getByTestId('tile-events-per-sec').textContent).toBe('1,234/s');
    expect(screen.getByTestId('tile-late-drops').textContent).toBe('4,321');
    expect(screen.getByTestId('tile-consumer-lag').textContent).toBe('n/a');
  });

  it('shows Kafka consumer lag in messages', () => {
    render(<Tiles state={applySnapshot(snapshot({ tiles: tiles({ consumerLag: 250000, errorRate: 0.001 }) }))} />);
    expect(screen.getByTestId('tile-consumer-lag').textContent).toBe('250,000');
    expect(screen.getByTestId('tile-error-rate').closest('.tile')!.classList.contains('bad')).toBe(false);
  });
});

describe('ConnectionBadge', () => {
  const status = { state: 'live' as const, attempt: 0, nextRetryAt: null, snapshots: 1, lastError: null };
  it('shows live with freshness, stale data, and the countdown while reconnecting', () => {
    const { rerender } = render(<ConnectionBadge status={status} receivedAt={1000} streamTime={null} now={3500} onRetry={() => {}} />);
    expect(screen.getByTestId('connection-state').textContent).toBe('Live');
    expect(screen.getByTestId('freshness').textContent).toBe('updated 2 s ago');
    rerender(<ConnectionBadge status={status} receivedAt={1000} streamTime={null} now={20_000} onRetry={() => {}} />);
    expect(screen.getByTestId('connection-state').textContent).toBe('Live, no updates');
    const onRetry = vi.fn();
    rerender(<ConnectionBadge status={{ ...status, state: 'reconnecting', attempt: 3, nextRetryAt: 24_000 }} receivedAt={1000} streamTime={null} now={20_000} onRetry={onRetry} />);
    expect(screen.getByTestId('connection-state').textContent).toBe('Reconnecting in 4 s');
    fireEvent.click(screen.getByRole('button', { name: 'Retry now' }));
    expect(onRetry).toHaveBeenCalled();
  });

  it('scaled out, during a rebalance: says how many partitions hold their last values (from the snapshot, then the deltas), and nothing once settled', () => {
    let state = applySnapshot({ ...snapshot(), stalePartitions: [] }, 1000);
    const badge = () => <ConnectionBadge status={status} receivedAt={state.receivedAt} streamTime={null} now={1500} onRetry={() => {}} stalePartitions={state.stalePartitions} />;
    const { rerender } = render(badge());
    expect(screen.queryByTestId('rebalancing')).toBeNull();
    state = applyDelta(state, { type: 'DELTA', changed: [], streamTime: state.streamTime, tiles: tiles(), activeUsers: [], revenue: [], newAlerts: [], stalePartitions: [2, 5] }, 1200);
    rerender(badge());
    expect(screen.getByTestId('rebalancing').textContent).toBe('2 partitions rebalancing: values held');
    expect(screen.getByTestId('rebalancing').getAttribute('title')).toContain('Partitions 2, 5 are moving');
    expect(screen.getByRole('status').textContent).toContain('2 partitions rebalancing: values held');
    // A delta without the field (one instance, or an older server) keeps what the last one said.
    state = applyDelta(state, { type: 'DELTA', changed: [], streamTime: state.streamTime, tiles: tiles(), activeUsers: [], revenue: [], newAlerts: [] }, 1300);
    rerender(badge());
    expect(screen.getByTestId('rebalancing').textContent).toBe('2 partitions rebalancing: values held');
    state = applyDelta(state, { type: 'DELTA', changed: [], streamTime: state.streamTime, tiles: tiles(), activeUsers: [], revenue: [], newAlerts: [], stalePartitions: [5] }, 1400);
    rerender(badge());
    expect(screen.getByTestId('rebalancing').textContent).toBe('1 partition rebalancing: values held');
    state = applyDelta(state, { type: 'DELTA', changed: [], streamTime: state.streamTime, tiles: tiles(), activeUsers: [], revenue: [], newAlerts: [], stalePartitions: [] }, 1500);
    rerender(badge());
    expect(screen.queryByTestId('rebalancing')).toBeNull();
    // Disconnected: the connection state says it all; no claim about the partitions.
    state = applySnapshot({ ...snapshot(), stalePartitions: [1] }, 1000);
    rerender(<ConnectionBadge status={{ ...status, state: 'reconnecting', nextRetryAt: null }} receivedAt={1000} streamTime={null} now={1500} onRetry={() => {}} stalePartitions={state.stalePartitions} />);
    expect(screen.queryByTestId('rebalancing')).toBeNull();
  });
});
