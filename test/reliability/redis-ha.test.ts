/**
 * The broker on Redis Sentinel and on Redis Cluster, real servers on loopback (test/support/
 * redis-ha.ts): the server that holds the queues is killed with -9 while runs are queued and
 * running. The sentinels (or the cluster) promote a replica, the worker follows it, and every run
 * ends succeeded once: none lost, none run twice, the rollups exact, and the broker reports the node
 * that serves and the failover it saw.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startBeat, startWorker, type Runtime } from '../../src/runtime/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { assertRollupsMatchOracle } from '../support/oracle.ts';
import { startRedisCluster, startSentinelSet } from '../support/redis-ha.ts';
import { TALLY_TABLE_SQL } from '../runtime/fixtures/tally-tasks.ts';
import { eventually, testRuntime, workerOptions } from '../runtime/runtime-harness.ts';

const tallyTasks = [new URL('../runtime/fixtures/tally-tasks.ts', import.meta.url).href];
const stops: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const stop of stops) await stop();
});

async function writeSourceRows(db: TestDatabase): Promise<void> {
  await db.pool.query(
    `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, completed_at, duration_ms, credits_used)
     SELECT 1 + i % 5, 1 + i % 17, 1 + i % 3, (ARRAY['success','failed'])[1 + i % 2],
            now() - make_interval(mins => i * 7 % 1440), now(), i * 13 % 4000, (i % 5) * 0.5
     FROM generate_series(1, 400) i`,
  );
}

async function runStates(db: TestDatabase): Promise<Record<string, number>> {
  const { rows } = await db.pool.query<{ state: string; n: number }>(
    'SELECT state, count(*)::int AS n FROM aggjobs.task_runs GROUP BY 1',
  );
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}

const setups = [
  {
    name: 'Redis Sentinel (primary, replica, 3 sentinels)',
    async start(namespace: string) {
      const set = await startSentinelSet();
      stops.push(() => set.stop());
      return { url: set.url, failover: async () => await set.failover(), namespace };
    },
  },
  {
    name: 'Redis Cluster (3 masters, 3 replicas)',
    async start(namespace: string) {
      const set = await startRedisCluster();
      stops.push(() => set.stop());
      // The queues' keys share the namespace's hash tag: one slot, one master.
      return { url: set.url, failover: async () => await set.failover(`${namespace}:x`), namespace };
    },
  },
];

describe.each(setups)('the broker on $name', (setup) => {
  it('survives losing the server that holds the queues: none lost, none doubled, rollups exact', async () => {
    const namespace = `{ha${Math.random().toString(16).slice(2, 10)}}`;
    const ha = await setup.start(namespace);
    const db = await createTestDatabase();
    await db.pool.query(TALLY_TABLE_SQL);
    await writeSourceRows(db);
    const runtime: Runtime = await testRuntime('redis', db, {
      env: { REDIS_URL: ha.url },
      namespace,
      taskModules: tallyTasks,
    });
    const worker = await startWorker(
      runtime,
      workerOptions({
        name: `w-ha-${namespace}`,
        concurrency: 2,
        lostJobCheckSeconds: 1,
        lostJobGraceSeconds: 1,
        lockDurationMs: 4000,
        stalledIntervalMs: 2000,
      }),
    );
    // The beat sends each schedule's latest slot at its first tick, then keeps ticking through the
    // failover (its ledger and leadership are in PostgreSQL; it sends through the same client).
    const beat = startBeat(runtime, { name: `beat-ha-${namespace}`, tickMs: 500 });
    try {
      await eventually(async () => beat.isLeader());
      const before = await runtime.broker.serving();
      expect(before?.failovers).toEqual([]);

      const ids: string[] = [];
      for (let i = 0; i < 8; i += 1) {
        ids.push((await runtime.enqueue('test_tally_maintenance', { kwargs: { key: `k${i}`, ms: 700 } })).id);
      }
      ids.push((await runtime.enqueue('hourly_rollup', {})).id);
      await eventually(async () => ((await runStates(db)).running ?? 0) > 0);

      const { from, to } = await ha.failover();
      expect(to).not.toBe(from);

      // Sent after the failover: the worker and the enqueuing side follow the new primary.
      for (let i = 8; i < 12; i += 1) {
        ids.push((await runtime.enqueue('test_tally_maintenance', { kwargs: { key: `k${i}`, ms: 100 } })).id);
      }

      // After the failover the beat still leads and its ticks complete (they reach the new primary).
      expect(await beat.tick()).toBeDefined();
      expect(beat.isLeader()).toBe(true);

      // Every run — ours and the beat's — ends succeeded.
      await eventually(async () => {
        const s = await runStates(db);
        return Object.keys(s).length === 1 && (s.succeeded ?? 0) >= ids.length ? s : undefined;
      }, 150_000).catch(async (error: unknown) => {
        throw new Error(`runs not all succeeded once: ${JSON.stringify(await runStates(db))}`, {
          cause: error,
        });
      });

      // Every tally task's work committed exactly once.
      const { rows: tally } = await db.pool.query<{ key: string; n: number }>(
        'SELECT key, n FROM public.test_tally ORDER BY key',
      );
      expect(tally).toHaveLength(12);
      expect(tally.filter((r) => r.n !== 1)).toEqual([]);

      // The rollups, refreshed after the failover, equal a plain GROUP BY.
      await (await runtime.enqueue('hourly_rollup', {})).get({ timeout: 60 });
      await assertRollupsMatchOracle(db.pool, 'UTC', { tables: ['execution_metrics_hourly'] });

      const after = await runtime.broker.serving();
      const failover = { from: `127.0.0.1:${from}`, to: `127.0.0.1:${to}`, seenAt: expect.any(Date) };
      expect(after?.node).toBe(`127.0.0.1:${to}`);
      expect(after?.failovers).toEqual([failover]);
      // Another process that connects only now (a dashboard) sees the same failover: it is kept in Redis.
      const later = await testRuntime('redis', db, { env: { REDIS_URL: ha.url }, namespace });
      expect(await later.broker.serving()).toEqual({ node: `127.0.0.1:${to}`, failovers: [failover] });
      // And the health check (what the dashboard's health page shows) names the node and the failover.
      const health = (await (await runtime.enqueue('health_check', {})).get({ timeout: 60 })) as {
        checks: Record<string, { status: string; detail: string }>;
      };
      expect(health.checks.broker?.status).toBe('healthy');
      expect(health.checks.broker?.detail).toContain(`served by 127.0.0.1:${to}`);
      expect(health.checks.broker?.detail).toContain(`-> 127.0.0.1:${to}`);
      const { rows: ours } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM aggjobs.task_runs WHERE id = ANY($1::text[]) AND state = 'succeeded' AND attempts >= 1`,
        [ids],
      );
      expect(ours[0]?.n).toBe(ids.length);
    } finally {
      await beat.close();
      await worker.close();
    }
  }, 240_000);
});
