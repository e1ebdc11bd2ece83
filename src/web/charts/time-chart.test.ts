import { describe, expect, it } from 'vitest';
import { timeChart } from './time-chart.ts';

describe('timeChart', () => {
  const times = [0, 1, 2].map((h) => new Date(Date.UTC(2026, 10, 29, h)));

  it('draws stacked bars, lines and a legend, with escaped names', () => {
    const svg = timeChart({
      title: 'Runs <all>',
      times,
      bars: [{ name: 'ok', color: '#0a0', values: [1, 2, 0] }],
      lines: [{ name: '<p95>', color: '#a00', values: [null, 3, 4] }],
    }).value;
    expect(svg).toContain('<svg');
    expect(svg.match(/<rect x=/g)).toHaveLength(2);
    expect(svg).toContain('<path d="M');
    expect(svg).toContain('&lt;p95&gt;');
    expect(svg).toContain('Runs &lt;all&gt;');
    expect(svg).not.toContain('<p95>');
  });

  it('says so when there is no data', () => {
    expect(timeChart({ title: 't', times: [] }).value).toContain('No data');
  });
});
