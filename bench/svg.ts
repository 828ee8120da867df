/**
 * Small hand-written SVG line charts for bench results (no dependency, opens in any browser).
 */
export interface Series {
  name: string;
  points: Array<[number, number]>;
  color: string;
  /** Plotted against the right-hand axis. */
  right?: boolean;
  dashed?: boolean;
}

export interface Panel {
  title: string;
  xLabel: string;
  yLabel: string;
  y2Label?: string;
  series: Series[];
  /** x values are percentiles (0..100) drawn on HdrHistogram's log scale of 1/(1-p). */
  percentileX?: boolean;
  /** A horizontal reference line on the left axis (e.g. the p99 bound). */
  hline?: { y: number; label: string };
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(2)}`;
}

/** x for percentile p on the 1/(1-p) log scale, capped at 99.999. */
function pctX(p: number): number {
  return Math.log10(1 / (1 - Math.min(p, 99.999) / 100));
}

function panel(p: Panel, x0: number, y0: number, w: number, h: number): string {
  const left = 70, right = p.y2Label ? 70 : 20, top = 30, bottom = 45;
  const pw = w - left - right, ph = h - top - bottom;
  const xs = p.series.flatMap((s) => s.points.map(([x]) => (p.percentileX ? pctX(x) : x)));
  const xMin = p.percentileX ? 0 : Math.min(...xs, 0);
  const xMax = p.percentileX ? 5 : Math.max(...xs, 1);
  const yMax = niceMax(Math.max(...p.series.filter((s) => !s.right).flatMap((s) => s.points.map(([, y]) => y)), p.hline?.y ?? 0, 0));
  const y2Max = niceMax(Math.max(...p.series.filter((s) => s.right).flatMap((s) => s.points.map(([, y]) => y)), 0));
  const sx = (x: number) => x0 + left + ((x - xMin) / (xMax - xMin || 1)) * pw;
  const sy = (y: number, r = false) => y0 + top + ph - (y / (r ? y2Max : yMax)) * ph;
  const out: string[] = [];
  out.push(`<text x="${x0 + w / 2}" y="${y0 + 18}" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`);
  out.push(`<rect x="${x0 + left}" y="${y0 + top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  for (let i = 0; i <= 5; i++) {
    const yv = (yMax * i) / 5;
    const y = sy(yv);
    out.push(`<line x1="${x0 + left}" x2="${x0 + left + pw}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    out.push(`<text x="${x0 + left - 6}" y="${y + 4}" text-anchor="end">${fmt(yv)}</text>`);
    if (p.y2Label) out.push(`<text x="${x0 + left + pw + 6}" y="${y + 4}">${fmt((y2Max * i) / 5)}</text>`);
  }
  if (p.percentileX) {
    for (const [v, label] of [[0, '0%'], [90, '90%'], [99, '99%'], [99.9, '99.9%'], [99.99, '99.99%'], [99.999, '99.999%']] as const) {
      const x = sx(pctX(v));
      out.push(`<line x1="${x}" x2="${x}" y1="${y0 + top}" y2="${y0 + top + ph}" stroke="#eee"/>`);
      out.push(`<text x="${x}" y="${y0 + top + ph + 16}" text-anchor="middle">${label}</text>`);
    }
  } else {
    for (let i = 0; i <= 6; i++) {
      const xv = xMin + ((xMax - xMin) * i) / 6;
      out.push(`<text x="${sx(xv)}" y="${y0 + top + ph + 16}" text-anchor="middle">${fmt(xv)}</text>`);
    }
  }
  out.push(`<text x="${x0 + left + pw / 2}" y="${y0 + h - 8}" text-anchor="middle">${esc(p.xLabel)}</text>`);
  out.push(`<text transform="translate(${x0 + 14},${y0 + top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(p.yLabel)}</text>`);
  if (p.y2Label) out.push(`<text transform="translate(${x0 + w - 10},${y0 + top + ph / 2}) rotate(90)" text-anchor="middle">${esc(p.y2Label)}</text>`);
  if (p.hline) {
    const y = sy(p.hline.y);
    out.push(`<line x1="${x0 + left}" x2="${x0 + left + pw}" y1="${y}" y2="${y}" stroke="#c00" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${x0 + left + pw - 4}" y="${y - 4}" text-anchor="end" fill="#c00">${esc(p.hline.label)}</text>`);
  }
  p.series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const d = s.points.map(([x, y], k) => `${k ? 'L' : 'M'}${sx(p.percentileX ? pctX(x) : x).toFixed(1)},${sy(y, s.right).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    if (s.points.length <= 12) for (const [x, y] of s.points) out.push(`<circle cx="${sx(p.percentileX ? pctX(x) : x).toFixed(1)}" cy="${sy(y, s.right).toFixed(1)}" r="3" fill="${s.color}"/>`);
    const ly = y0 + top + 14 + i * 15;
    out.push(`<line x1="${x0 + left + 10}" x2="${x0 + left + 30}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    out.push(`<text x="${x0 + left + 35}" y="${ly}">${esc(s.name)}${s.right ? ' (right axis)' : ''}</text>`);
  });
  return out.join('\n');
}

/** Panels stacked vertically in one SVG document. */
export function chart(title: string, panels: Panel[], width = 900, panelHeight = 320): string {
  const h = 40 + panels.length * panelHeight;
  const body = panels.map((p, i) => panel(p, 0, 40 + i * panelHeight, width, panelHeight)).join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${h}" viewBox="0 0 ${width} ${h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>
${body}
</svg>
`;
}

/** The percentile curve of an HdrHistogram (.hgrm text): [percentile, value] pairs. */
export function percentileCurve(hgrmText: string): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const line of hgrmText.split('\n')) {
    const m = /^\s*([\d.]+)\s+([\d.]+)\s+(\d+)(\s|$)/.exec(line);
    if (m) out.push([Number(m[2]) * 100, Number(m[1])]);
  }
  return out;
}
