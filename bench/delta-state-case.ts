import type { Pool } from '../src/db/index.ts';
import {
  builtinRollups,
  installRollups,
  refreshRollup,
  type RollupDefinition,
} from '../src/rollups/index.ts';
import { bareGroupBy, pairedCase, updateScattered, type CaseResult, type PairCount } from './engine-cases.ts';
import { interleavedPairs } from './stats.ts';

/**
 * The bench's scattered updates (1,000 rows updated across history, engine-cases.ts) refreshed by a
 * rollup that keeps per-group state (deltaState: true, docs/delta-state.md): the hourly execution
 * rollup's definition under another name, installed beside the built-in ones (its source's change
 * capture then logs old rows whole), built by its initial run (untimed), and removed at the end
 * (the capture goes back to group columns). ÷ the same full recompute as the case without state.
 */
export async function deltaStateCase(pool: Pool, pairs: PairCount): Promise<CaseResult> {
  const hourly = builtinRollups.find((d) => d.name === 'execution_metrics_hourly');
  if (hourly === undefined) throw new Error('no execution_metrics_hourly');
  const stateful: RollupDefinition = {
    ...hourly,
    name: 'bench_execution_metrics_hourly_state',
    deltaState: true,
  };
  const incremental = { timezone: 'UTC', mode: { kind: 'incremental' } } as const;
  try {
    await installRollups(pool, [...builtinRollups, stateful]);
    await pool.query('VACUUM ANALYZE public.execution_logs');
    await refreshRollup(pool, stateful, incremental);
    const { rows } = await pool.query<{ size: string }>(
      `SELECT pg_size_pretty(pg_total_relation_size('analytics.bench_execution_metrics_hourly_state')) AS size`,
    );
    const goal = 1 / 50;
    const { measured, reference } = await interleavedPairs({
      minPairs: pairs.min,
      maxPairs: pairs.max,
      goal,
      before: () => updateScattered(pool),
      measure: () => refreshRollup(pool, stateful, incremental),
      reference: () => bareGroupBy(pool, [hourly], undefined),
    });
    return pairedCase(
      `the same with per-group state (deltaState: true; the rollup with its state ${rows[0]?.size ?? '?'})`,
      measured,
      'full recompute: bare GROUP BY over every row, CREATE TEMP TABLE … AS',
      reference,
      { op: '<=', value: goal, text: '≤ 1/50 = 0.02' },
    );
  } finally {
    await pool.query(`DROP TABLE IF EXISTS analytics.bench_execution_metrics_hourly_state`);
    await pool.query(
      `DELETE FROM aggjobs.rollup_state WHERE rollup = 'bench_execution_metrics_hourly_state'`,
    );
    await installRollups(pool, builtinRollups);
  }
}
