import type { ComponentChildren } from 'preact';
import { Link } from '../router.js';

export function PageHead(props: { title: string; sub?: ComponentChildren; children?: ComponentChildren }) {
  return (
    <div class="page-head">
      <nav aria-label="Breadcrumb" class="crumbs">
        <Link href="/">Overview</Link> <span aria-hidden="true">/</span>
      </nav>
      <h1 class="page-title">{props.title}</h1>
      {props.sub ? <p class="muted">{props.sub}</p> : null}
      {props.children}
    </div>
  );
}

/** Time-range buttons (a radio group of real buttons). */
export function RangePicker(props: { hours: number; options: number[]; onChange: (h: number) => void }) {
  return (
    <div class="filters" role="group" aria-label="Time range">
      {props.options.map((h) => (
        <button key={h} type="button" class="chip" aria-pressed={props.hours === h} onClick={() => props.onChange(h)}>
          {h < 1 ? `${Math.round(h * 60)} min` : h >= 48 ? `${h / 24} days` : `${h} h`}
        </button>
      ))}
    </div>
  );
}

export function Stat(props: { label: string; value: ComponentChildren; testid?: string }) {
  return (
    <div class="stat">
      <dt>{props.label}</dt>
      <dd data-testid={props.testid}>{props.value}</dd>
    </div>
  );
}
