import type { ComponentChildren } from 'preact';

/** A plain data table with a caption and right-aligned numeric columns. */
export function Table(props: { caption: string; head: Array<string | { label: string; num?: boolean }>; rows: ComponentChildren[][]; empty?: string; id?: string }) {
  const head = props.head.map((h) => (typeof h === 'string' ? { label: h, num: false } : h));
  return (
    <table class="table" id={props.id}>
      <caption>{props.caption}</caption>
      <thead>
        <tr>{head.map((h) => <th key={h.label} scope="col" class={h.num ? 'num' : undefined}>{h.label}</th>)}</tr>
      </thead>
      <tbody>
        {props.rows.length === 0 ? (
          <tr><td colSpan={head.length} class="empty">{props.empty ?? 'No data yet.'}</td></tr>
        ) : (
          props.rows.map((r, i) => <tr key={i}>{r.map((c, j) => <td key={j} class={head[j]?.num ? 'num' : undefined}>{c}</td>)}</tr>)
        )}
      </tbody>
    </table>
  );
}

/** A horizontal bar (share of the largest value) behind a number, for breakdowns. */
export function Bar(props: { value: number; max: number; label: string }) {
  const pct = props.max > 0 ? Math.max(0, Math.min(100, (props.value / props.max) * 100)) : 0;
  return (
    <span class="bar" title={props.label}>
      <span class="bar-fill" style={{ width: `${pct}%` }} />
      <span class="bar-text">{props.label}</span>
    </span>
  );
}

export function Loading(props: { what: string; error?: Error }) {
  if (props.error) return <p class="error" role="alert">Could not load {props.what}: {props.error.message}</p>;
  return <p class="loading" aria-busy="true">Loading {props.what}…</p>;
}
