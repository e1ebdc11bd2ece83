import { describe, expect, it } from 'vitest';
import { createProgressBar, progressLine, shortDuration } from './progress-bar.ts';

function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  let out = '';
  const stream = { isTTY, write: (chunk: string) => ((out += chunk), true) } as unknown as NodeJS.WriteStream;
  return { stream, text: () => out };
}

describe('progress bar', () => {
  it('formats numbers and durations compactly', () => {
    expect(shortDuration(75)).toBe('1m15s');
    expect(shortDuration(4000)).toBe('1h06m');
    expect(shortDuration(Number.POSITIVE_INFINITY)).toBe('?');
  });

  it('shows percentage, rate and time left', () => {
    const line = progressLine('seed', 250, 1000, 5000, false);
    expect(line).toContain('  25% 250/1k 50/s ETA 15s');
    expect(progressLine('seed', 1000, 1000, 20_000, true)).toContain('100% 1k/1k 50/s in 20s');
  });

  it('writes a plain line per 10 % when not on a terminal, and one at the end', () => {
    let t = 0;
    const { stream, text } = fakeStream(false);
    const bar = createProgressBar({ label: 'load', total: 100, stream, now: () => t });
    for (let i = 1; i <= 100; i += 1) {
      t += 10;
      bar.update(i);
    }
    bar.finish();
    const lines = text().trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(10);
    expect(lines.length).toBeLessThanOrEqual(12);
    expect(text()).not.toContain('\r');
    expect(lines.at(-1)).toContain('100%');
  });

  it('redraws one line in place on a terminal', () => {
    let t = 0;
    const { stream, text } = fakeStream(true);
    const bar = createProgressBar({ label: 'load', total: 10, stream, now: () => t });
    for (let i = 1; i <= 10; i += 1) {
      t += 200;
      bar.update(i);
    }
    bar.finish();
    expect(text()).toContain('\r');
    expect(text().endsWith('\n')).toBe(true);
  });
});
