import { describe, expect, it } from 'vitest';
import { PrometheusText } from './prometheus-text.ts';

describe('Prometheus text format', () => {
  it('writes families, escaped labels and cumulative histograms', () => {
    const out = new PrometheusText()
      .family('x_seconds', 'histogram', 'help')
      .histogram('x_seconds', { task: 'a"b\\c\nd' }, [1, 5], [2, 3], 7.5, 4)
      .family('y', 'gauge', 'y')
      .sample('y', {}, -1)
      .toString();
    expect(out).toBe(
      [
        '# HELP x_seconds help',
        '# TYPE x_seconds histogram',
        'x_seconds_bucket{task="a\\"b\\\\c\\nd",le="1"} 2',
        'x_seconds_bucket{task="a\\"b\\\\c\\nd",le="5"} 3',
        'x_seconds_bucket{task="a\\"b\\\\c\\nd",le="+Inf"} 4',
        'x_seconds_sum{task="a\\"b\\\\c\\nd"} 7.5',
        'x_seconds_count{task="a\\"b\\\\c\\nd"} 4',
        '# HELP y y',
        '# TYPE y gauge',
        'y -1',
        '',
      ].join('\n'),
    );
  });
});
