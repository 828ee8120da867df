import type { ComponentChildren } from 'preact';
import type { DashboardState } from '../live/index.js';
import { fmtCompact, fmtInt, fmtPercent, fmtRate, fmtUsdShort } from '../format.js';
import { Link } from '../router.js';

/** The error-rate alert threshold (engine default): the tile turns red above it. */
export const ERROR_RATE_THRESHOLD = 0.05;

function Tile(props: { id: string; label: string; value: string; sub?: ComponentChildren; tone?: 'bad' | 'warn'; href?: string }) {
  return (
    <section class={`tile${props.tone ? ` ${props.tone}` : ''}`} aria-labelledby={`tile-${props.id}`}>
      <h2 id={`tile-${props.id}`} class="tile-label">
        {props.href ? <Link href={props.href}>{props.label}</Link> : props.label}
      </h2>
      <p class="tile-value" data-testid={`tile-${props.id}`}>{props.value}</p>
      {props.sub ? <p class="tile-sub">{props.sub}</p> : null}
    </section>
  );
}

export function Tiles({ state }: { state: DashboardState }) {
  const t = state.tiles;
  const byPlatform = Object.entries(t.eventsPerSecByPlatform ?? {}).sort((a, b) => b[1] - a[1]);
  const totalRate = byPlatform.reduce((a, [, v]) => a + v, 0);
  const lag = t.consumerLag;
  return (
    <div class="tiles">
      <Tile id="active-users" label="Active users now" value={fmtCompact(t.activeUsersNow)} sub="distinct users, current minute" />
      <Tile
        id="events-per-sec"
        label="Events/s by platform"
        value={byPlatform.length ? fmtRate(totalRate) : '—'}
        sub={
          byPlatform.length ? (
            <span class="platforms">
              {byPlatform.map(([p, v]) => (
                <span key={p}>
                  {p} <b>{fmtRate(v)}</b>
                </span>
              ))}
            </span>
          ) : (
            'event time, last full minute'
          )
        }
      />
      <Tile id="revenue" label="Revenue, last 5 min" value={fmtUsdShort(t.revenueUsdLast5Min)} sub="USD, all currencies converted" href="/revenue" />
      <Tile
        id="error-rate"
        label="Error rate"
        value={fmtPercent(t.errorRate)}
        tone={t.errorRate > ERROR_RATE_THRESHOLD ? 'bad' : t.errorRate > ERROR_RATE_THRESHOLD / 2 ? 'warn' : undefined}
        sub={`5-min window; alert above ${fmtPercent(ERROR_RATE_THRESHOLD, undefined, 0)}`}
      />
      <Tile
        id="consumer-lag"
        label="Consumer lag"
        value={lag == null ? 'n/a' : fmtInt(lag)}
        tone={lag != null && lag > 100_000 ? 'warn' : undefined}
        sub={lag == null ? `embedded source · ${fmtInt(t.slabsInFlight)} batches in flight` : `messages behind · ${fmtInt(t.slabsInFlight)} batches in flight`}
      />
      <Tile id="late-drops" label="Late drops" value={fmtInt(t.lateDrops)} sub={`past window + grace · ${fmtInt(t.deadLetters)} dead letters`} tone={t.deadLetters > 0 ? 'warn' : undefined} />
      <Tile id="throughput" label="Engine throughput" value={fmtRate(state.throughput)} sub={`${fmtCompact(t.eventsProcessed)} events processed`} />
    </div>
  );
}
