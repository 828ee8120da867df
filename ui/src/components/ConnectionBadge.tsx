import type { ConnectionStatus } from '../live/index.js';
import { fmtAgo, fmtTime } from '../format.js';

/** Data older than this (wall clock since the last message) is marked stale. */
export const STALE_AFTER_MS = 10_000;

export function ConnectionBadge(props: { status: ConnectionStatus; receivedAt: number | null; streamTime: number | null; now: number; onRetry: () => void }) {
  const { status, now } = props;
  const age = props.receivedAt ? now - props.receivedAt : null;
  const stale = status.state === 'live' && age !== null && age > STALE_AFTER_MS;
  const label =
    status.state === 'live' ? (stale ? 'Live, no updates' : 'Live')
    : status.state === 'connecting' ? 'Connecting…'
    : status.state === 'reconnecting' ? (status.nextRetryAt ? `Reconnecting in ${Math.max(0, Math.ceil((status.nextRetryAt - now) / 1000))} s` : 'Reconnecting…')
    : 'Disconnected';
  const tone = status.state === 'live' ? (stale ? 'warn' : 'ok') : status.state === 'connecting' ? 'warn' : 'bad';
  return (
    <div class="conn" role="status" aria-live="polite">
      <span class={`conn-state ${tone}`} data-testid="connection-state" data-state={status.state} data-snapshots={status.snapshots}>
        <span class="dot" aria-hidden="true" />
        {label}
      </span>
      <span class="conn-fresh" data-testid="freshness" title={status.lastError ?? undefined}>
        {age === null ? 'no data yet' : `updated ${fmtAgo(age)}`}
        {props.streamTime ? <> · data time {fmtTime(props.streamTime)}</> : null}
      </span>
      {status.state === 'reconnecting' ? (
        <button type="button" class="btn small" onClick={props.onRetry}>
          Retry now
        </button>
      ) : null}
    </div>
  );
}
