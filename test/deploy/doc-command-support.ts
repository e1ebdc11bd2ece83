/**
 * Helpers of the documented-command steps (doc-command-effects.ts, doc-command-data-steps.ts): the
 * step's context, reading runs and counts back, waiting for a run to finish.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Pool } from '../../src/db/index.ts';

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

export interface StepContext {
  pool: Pool;
  url: string;
  repo: string;
  /** Runs the step's line, `<runId>` replaced by `runId`, with `env` over the test's environment. */
  run(options?: { runId?: string; env?: NodeJS.ProcessEnv }): Promise<Finished>;
  /** Runs another line (set-up: not a documented one), e.g. `aggjobs run hourly_rollup`. */
  sh(line: string): Promise<Finished>;
  /** A daily_rollup run that failed a moment ago (inserted by the test before the steps). */
  failedRunId: string;
  /** The process id of the worker running meanwhile. */
  workerPid: number;
  /** Every built-in schedule: task and cron, in the analytics zone (UTC here). */
  schedules: ReadonlyArray<{ task: string; cron: string }>;
}

export type Step = (ctx: StepContext) => Promise<void>;

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;
export const zone = 'UTC';
export const hourly = ['execution_metrics_hourly', 'user_activity_hourly', 'credit_consumption_hourly'];

export function ok(result: Finished, line: string, codes: ReadonlyArray<number> = [0]): void {
  expect(codes, `${line} exited with ${result.code}\n${result.stdout}\n${result.stderr}`).toContain(
    result.code,
  );
}

export function json<T>(result: Finished): T {
  return JSON.parse(result.stdout) as T;
}

export async function one<T>(pool: Pool, sql: string, params: unknown[] = []): Promise<T> {
  const { rows } = await pool.query(sql, params);
  return rows[0] as T;
}

export async function count(pool: Pool, table: string, where = 'true'): Promise<number> {
  return (await one<{ n: number }>(pool, `SELECT count(*)::int AS n FROM ${table} WHERE ${where}`)).n;
}

export interface RunRow {
  id: string;
  task: string;
  state: string;
  args: Record<string, unknown>;
  worker: string | null;
  retry_of: string | null;
  result: unknown;
}

export async function runRow(pool: Pool, id: string): Promise<RunRow | undefined> {
  const { rows } = await pool.query<RunRow>(
    'SELECT id, task, state, args, worker, retry_of, result FROM aggjobs.task_runs WHERE id = $1',
    [id],
  );
  return rows[0];
}

export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function finishedRun(pool: Pool, id: string): Promise<RunRow> {
  return await until(`run ${id} finished`, async () => {
    const row = await runRow(pool, id);
    return row !== undefined && !['queued', 'running', 'retrying'].includes(row.state) ? row : undefined;
  });
}

/** The migration files of this checkout, each hashed here: what `aggjobs migrate` must have recorded. */
export function migrationFiles(repo: string): Array<{ version: number; name: string; checksum: string }> {
  const dir = join(repo, 'migrations');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((f) => ({
      version: Number(f.slice(0, 6)),
      name: f.slice(7, -'.sql'.length),
      checksum: createHash('sha256')
        .update(readFileSync(join(dir, f)))
        .digest('hex'),
    }));
}

export async function ledger(
  pool: Pool,
): Promise<Array<{ version: number; name: string; checksum: string }>> {
  const { rows } = await pool.query<{ version: number; name: string; checksum: string }>(
    'SELECT version, name, checksum FROM aggjobs.schema_migrations ORDER BY version',
  );
  return rows;
}
