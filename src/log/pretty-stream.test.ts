import { describe, expect, it } from 'vitest';
import { formatPretty } from './pretty-stream.ts';

const time = new Date(2026, 0, 2, 3, 4, 5).getTime();

describe('formatPretty', () => {
  it('writes time, level, name, message and the other fields as key=value', () => {
    const json = JSON.stringify({
      level: 30,
      time,
      pid: 1,
      hostname: 'h',
      name: 'worker',
      msg: 'ran',
      runId: 'r1',
      rows: 3,
      note: 'two words',
    });
    expect(formatPretty(json, false)).toBe('03:04:05 INFO  worker: ran runId=r1 rows=3 note="two words"\n');
  });

  it('colours by level when asked, and puts an error stack on the following lines', () => {
    const json = JSON.stringify({
      level: 50,
      time,
      msg: 'failed',
      err: { message: 'boom', stack: 'Error: boom\n    at x' },
    });
    const line = formatPretty(json, true);
    expect(line).toContain('\x1b[31mERROR\x1b[0m');
    expect(line).toContain('err=boom');
    expect(line).toMatch(/\n.*Error: boom\n {4}at x/);
    expect(formatPretty(json, false)).not.toContain('\x1b[');
  });

  it('passes a line that is not JSON as it is', () => {
    expect(formatPretty('plain', false)).toBe('plain\n');
  });
});
