import { compactNumber } from '../../format/index.ts';
import { escapeHtml, html, raw, type SafeHtml } from '../html/index.ts';

export interface ChartSeries {
  name: string;
  /** A CSS color. */
  color: string;
  values: ReadonlyArray<number | null>;
}

export interface TimeChartOptions {
  /** One time per point, oldest first. */
  times: readonly Date[];
  /** Drawn as stacked bars. */
  bars?: readonly ChartSeries[];
  /** Drawn as lines over the bars (same scale). */
  lines?: readonly ChartSeries[];
  /** Appended to the y-axis values, e.g. ` ms`. */
  unit?: string;
  title: string;
  width?: number;
  height?: number;
}

const PAD = { left: 56, right: 12, top: 12, bottom: 28 };

/** 1, 2 or 5 times a power of ten, at least `value`: round ticks. */
function niceCeil(value: number): number {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (m * power >= value) return m * power;
  return 10 * power;
}

function timeLabel(d: Date, spanMs: number): string {
  const iso = d.toISOString();
  return spanMs > 3 * 86_400_000 ? iso.slice(5, 10) : iso.slice(11, 16);
}

/**
 * A small inline SVG chart over time: stacked bars and lines on one y scale, with axes, a legend and
 * a tooltip (<title>) per point. No script, no library: it renders on a closed network as it is.
 */
export function timeChart(options: TimeChartOptions): SafeHtml {
  const width = options.width ?? 760;
  const height = options.height ?? 220;
  const bars = options.bars ?? [];
  const lines = options.lines ?? [];
  const n = options.times.length;
  const unit = options.unit ?? '';
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  if (n === 0) {
    return html`<figure class="chart">
      <figcaption>${options.title}</figcaption>
      <p class="muted">No data in this range.</p>
    </figure>`;
  }
  let max = 0;
  for (let i = 0; i < n; i++) {
    max = Math.max(
      max,
      bars.reduce((s, b) => s + (b.values[i] ?? 0), 0),
    );
    for (const l of lines) max = Math.max(max, l.values[i] ?? 0);
  }
  const top = niceCeil(max);
  const y = (v: number): number => PAD.top + plotH - (v / top) * plotH;
  const step = plotW / n;
  const x = (i: number): number => PAD.left + i * step;
  const parts: string[] = [];

  for (let t = 0; t <= 4; t++) {
    const v = (top * t) / 4;
    const yy = y(v).toFixed(1);
    parts.push(`<line class="grid" x1="${PAD.left}" x2="${width - PAD.right}" y1="${yy}" y2="${yy}"/>`);
    parts.push(
      `<text class="axis" x="${PAD.left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${compactNumber(v)}${unit === '' ? '' : escapeHtml(unit)}</text>`,
    );
  }
  const span = (options.times[n - 1]?.getTime() ?? 0) - (options.times[0]?.getTime() ?? 0);
  const every = Math.max(1, Math.ceil(n / 8));
  for (let i = 0; i < n; i += every) {
    const d = options.times[i];
    if (d === undefined) continue;
    parts.push(
      `<text class="axis" x="${(x(i) + step / 2).toFixed(1)}" y="${height - 8}" text-anchor="middle">${timeLabel(d, span)}</text>`,
    );
  }
  const barW = Math.max(1, step * 0.8);
  for (let i = 0; i < n; i++) {
    let base = 0;
    const tip = [options.times[i]?.toISOString() ?? ''];
    for (const b of bars) {
      const v = b.values[i] ?? 0;
      tip.push(`${b.name}: ${compactNumber(v)}${unit}`);
      if (v > 0) {
        parts.push(
          `<rect x="${(x(i) + (step - barW) / 2).toFixed(1)}" y="${y(base + v).toFixed(1)}" width="${barW.toFixed(1)}" height="${(y(base) - y(base + v)).toFixed(1)}" fill="${escapeHtml(b.color)}"/>`,
        );
      }
      base += v;
    }
    for (const l of lines)
      tip.push(`${l.name}: ${l.values[i] === null ? '—' : compactNumber(l.values[i] ?? 0)}${unit}`);
    parts.push(
      `<rect class="hover" x="${x(i).toFixed(1)}" y="${PAD.top}" width="${step.toFixed(1)}" height="${plotH}"><title>${escapeHtml(tip.join('\n'))}</title></rect>`,
    );
  }
  for (const l of lines) {
    let d = '';
    l.values.forEach((v, i) => {
      if (v === null) return;
      d += `${d === '' || l.values[i - 1] === null ? 'M' : 'L'}${(x(i) + step / 2).toFixed(1)},${y(v).toFixed(1)}`;
    });
    if (d !== '') parts.push(`<path d="${d}" fill="none" stroke="${escapeHtml(l.color)}" stroke-width="2"/>`);
    // A dot per point: a lone value between gaps is visible too.
    l.values.forEach((v, i) => {
      if (v === null) return;
      parts.push(
        `<circle cx="${(x(i) + step / 2).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.2" fill="${escapeHtml(l.color)}"/>`,
      );
    });
  }
  const legend = [...bars, ...lines].map(
    (s) => html`<span class="legend-item"><i style="background:${s.color}"></i>${s.name}</span>`,
  );
  return html`<figure class="chart">
    <figcaption>${options.title}</figcaption>
    ${raw(`<svg viewBox="0 0 ${width} ${height}" width="100%" role="img">${parts.join('')}</svg>`)}
    <div class="legend">${legend}</div>
  </figure>`;
}
