import type { ConnectionStatus } from '../live/index.js';
import { fmtAgo, fmtTime } from '../format.js';

/** Data older than this (wall clock since the last message) is marked stale. */
export const STALE_AFTER_MS = 10_000;

export function ConnectionBadge(props: { status: ConnectionStatus; receivedAt: number | null; streamTime: number | null; now: number; onRetry: () => void; stalePartitions?: readonly number[] }) {
  const { status, now } = props;
  const age = props.receivedAt ? now - props.receivedAt : null;
  const stale = status.state === 'live' && age !== null && age > STALE_AFTER_MS;
  const label =
    status.state === 'live' ? (stale ? 'Live, no updates' : 'Live')
    : status.state === 'connecting' ? 'Connecting…'
    : status.state === 'reconnecting' ? (status.nextRetryAt ? `Reconnecting in ${Math.max(0, Math.ceil((status.nextRetryAt - now) / 1000))} s` : 'Reconnecting…')
    : 'Disconnected';
  const tone = status.state === 'live' ? (stale ? 'warn' : 'ok') : status.state === 'connecting' ? 'warn' : 'bad';
  // Scaled out, during a rebalance: partitions moving between instances show their last committed values.
  const held = status.state === 'live' ? props.stalePartitions ?? [] : [];
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
      {held.length ? (
        <span class="conn-held" data-testid="rebalancing" title={`Partition${held.length === 1 ? '' : 's'} ${held.join(', ')} ${held.length === 1 ? 'is' : 'are'} moving to another instance: ${held.length === 1 ? 'its' : 'their'} numbers are the last committed ones until the move is over`}>
          {held.length} partition{held.length === 1 ? '' : 's'} rebalancing: values held
        </span>
      ) : null}
      {status.state === 'reconnecting' ? (
        <button type="button" class="btn small" onClick={props.onRetry}>
          Retry now
        </button>
      ) : null}
    </div>
  );
}
