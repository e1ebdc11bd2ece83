/**
 * The dashboard's charts from the run history (src/runtime/run-stats.ts): throughput and durations
 * per bucket, and queue length at each bucket's end, checked against figures computed here from the
 * rows the test wrote (with the database's clock), not by the SQL under test.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { queueLengthSeries, runSeries } from '../../src/runtime/index.ts';
import { createTestDatabase } from '../support/database.ts';

const db = await createTestDatabase();
const MIN = 60_000;
const WIDTH_S = 1800;
const HOURS = 3;

interface Row {
  queue: string;
  state: string;
  enqueued: number;
  started: number | null;
  finished: number | null;
  durationMs: number | null;
}

/** Minutes before the database's now; null stays null. */
const ago = (now: number, minutes: number | null): number | null =>
  minutes === null ? null : now - minutes * MIN;

async function dbNow(): Promise<number> {
  const { rows } = await db.pool.query<{ now: Date }>('SELECT now() AS now');
  return (rows[0] as { now: Date }).now.getTime();
}

/** The bucket starts covering the last HOURS hours, as the dashboard shows them. */
function buckets(now: number): number[] {
  const w = WIDTH_S * 1000;
  const out: number[] = [];
  for (let b = Math.floor((now - HOURS * 3600_000) / w) * w; b <= Math.floor(now / w) * w; b += w)
    out.push(b);
  return out;
}

/** PostgreSQL's percentile_cont: linear interpolation between the closest ranks. */
function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = p * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (pos - lo);
}

/** A figure computed in floating point on both sides: equal to 6 decimals. */
const close = (v: number | null): unknown => (v === null ? null : expect.closeTo(v, 6));

describe('run stats', () => {
  it('counts and times finished runs per bucket, and queue lengths at each bucket end', async () => {
    const now = await dbNow();
    const task = `stats_${randomUUID().slice(0, 8)}`;
    const [qa, qb] = [`${task}_a`, `${task}_b`];
    // [queue, state, enqueued, started, finished (minutes ago), duration ms]
    const spec: Array<[string, string, number, number | null, number | null, number | null]> = [
      [qa, 'succeeded', 170, 160, 150, 400],
      [qa, 'succeeded', 100, 95, 90, 1000],
      [qa, 'failed', 100, 80, 70, 250],
      [qb, 'timed_out', 130, 50, 40, 9000],
      [qb, 'revoked', 120, null, 20, null],
      [qa, 'succeeded', 65, 61, 60, 30],
      [qb, 'queued', 45, null, null, null],
      [qa, 'running', 35, 10, null, null],
      [qa, 'succeeded', 600, 590, 580, 70], // before the charts' range
    ];
    const rows: Row[] = spec.map(([queue, state, e, s, f, d]) => ({
      queue,
      state,
      enqueued: now - e * MIN,
      started: ago(now, s),
      finished: ago(now, f),
      durationMs: d,
    }));
    for (const r of rows) {
      await db.pool.query(
        `INSERT INTO aggjobs.task_runs (id, task, state, queue, enqueued_at, started_at, finished_at, duration_ms)
         VALUES ($1, $2, $3, $4, to_timestamp($5 / 1000.0), to_timestamp($6 / 1000.0), to_timestamp($7 / 1000.0), $8)`,
        [randomUUID(), task, r.state, r.queue, r.enqueued, r.started, r.finished, r.durationMs],
      );
    }

    // Read again if the clock crossed a bucket boundary between the reads (their buckets differ).
    const read = async () => {
      const before = buckets(await dbNow());
      const series = await runSeries(db.pool, { hours: HOURS, bucketSeconds: WIDTH_S, task });
      const lengths = await queueLengthSeries(db.pool, { hours: HOURS, bucketSeconds: WIDTH_S });
      const at = await dbNow();
      return { series, lengths, at, stable: JSON.stringify(before) === JSON.stringify(buckets(at)) };
    };
    let result = await read();
    if (!result.stable) result = await read();
    const { series, lengths, at } = result;
    const starts = buckets(at);
    const w = WIDTH_S * 1000;
    const from = at - HOURS * 3600_000;

    expect(series.map((b) => b.bucket.getTime())).toEqual(starts);
    for (const [i, b] of starts.entries()) {
      const done = rows.filter(
        (r) => r.finished !== null && r.finished >= from && r.finished >= b && r.finished < b + w,
      );
      const count = (...states: string[]) => done.filter((r) => states.includes(r.state)).length;
      const ms = done.flatMap((r) => (r.durationMs === null ? [] : [r.durationMs]));
      expect(series[i], new Date(b).toISOString()).toEqual({
        bucket: new Date(b),
        succeeded: count('succeeded'),
        failed: count('failed', 'timed_out'),
        revoked: count('revoked'),
        avgMs: close(ms.length === 0 ? null : ms.reduce((s, x) => s + x, 0) / ms.length),
        p50Ms: close(percentile(ms, 0.5)),
        p95Ms: close(percentile(ms, 0.95)),
        maxMs: ms.length === 0 ? null : Math.max(...ms),
      });
    }

    expect(lengths.map((p) => p.bucket.getTime())).toEqual(starts);
    for (const [i, b] of starts.entries()) {
      // A run waits from its enqueue until it starts (or, never started, until it finished).
      const t = Math.min(b + w, at);
      const waiting: Record<string, number> = {};
      for (const r of rows) {
        const left = r.started ?? r.finished ?? Infinity;
        if (r.enqueued <= t && left > t) waiting[r.queue] = (waiting[r.queue] ?? 0) + 1;
      }
      const ours = Object.fromEntries(
        Object.entries(lengths[i]?.waiting ?? {}).filter(([q]) => q === qa || q === qb),
      );
      expect(ours, new Date(b).toISOString()).toEqual(waiting);
    }
  });
});
