import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { useEffect, useRef } from 'preact/hooks';
import { useTheme } from '../theme.js';

export interface ChartSeries {
  label: string;
  /** Index into the palette (CSS variables --series-0..5). */
  color: number;
  dash?: boolean;
}

export interface TimeChartProps {
  id: string;
  title: string;
  /** Shown on the y axis and in the caption: "users", "USD", "events/s", "ms". */
  unit: string;
  series: ChartSeries[];
  /** x: window start (epoch ms, event time); one array per series, null for gaps. */
  x: number[];
  ys: Array<Array<number | null>>;
  format: (v: number) => string;
  /** Spoken summary of the latest values (the canvas itself is not readable). */
  summary: string;
  height?: number;
  bars?: boolean;
}

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

/** A live uPlot time chart: created once per theme and series set, then fed with setData. */
export function TimeChart(p: TimeChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const theme = useTheme();
  const seriesKey = p.series.map((s) => s.label).join('|');
  const data = [p.x, ...p.ys] as uPlot.AlignedData;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const text = cssVar('--muted');
    const grid = cssVar('--grid');
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, font: '12px system-ui, sans-serif', labelFont: '12px system-ui, sans-serif' };
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: p.height ?? 220,
      // Timestamps are epoch milliseconds.
      ms: 1,
      cursor: { drag: { x: false, y: false } },
      // Labels only: values appear while hovering (the caption and aria-label carry the latest).
      legend: { live: false },
      scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] } },
      axes: [
        { ...axis, label: 'event time', labelSize: 18 },
        { ...axis, label: p.unit, labelSize: 18, size: 70, values: (_u, vals) => vals.map((v) => p.format(v)) },
      ],
      series: [
        {},
        ...p.series.map((s) => {
          const color = cssVar(`--series-${s.color}`);
          return {
            label: s.label,
            stroke: color,
            width: 2,
            dash: s.dash ? [6, 4] : undefined,
            fill: p.bars ? color + '55' : undefined,
            paths: p.bars ? uPlot.paths.bars!({ size: [0.8, 40] }) : undefined,
            points: { show: false },
            value: (_u: uPlot, v: number | null) => (v == null ? '—' : p.format(v)),
          } satisfies uPlot.Series;
        }),
      ],
    };
    const u = new uPlot(opts, data, el);
    plot.current = u;
    const ro = typeof ResizeObserver === 'function' ? new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height: p.height ?? 220 })) : null;
    ro?.observe(el);
    return () => {
      ro?.disconnect();
      u.destroy();
      plot.current = null;
    };
    // Re-created when the theme or the series change; data changes go through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [theme, seriesKey]);

  useEffect(() => {
    plot.current?.setData(data);
  });

  return (
    <figure class="card chart" aria-labelledby={`${p.id}-title`}>
      <figcaption id={`${p.id}-title`} class="card-title">
        {p.title} <span class="unit">({p.unit})</span>
      </figcaption>
      <div ref={box} class="chart-box" role="img" aria-label={`${p.title} in ${p.unit} over event time. ${p.summary}`} data-testid={p.id} />
    </figure>
  );
}
