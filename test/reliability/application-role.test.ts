import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createPool, startEmbeddedPostgres, type EmbeddedDatabase, type Pool } from '../../src/db/index.ts';
import { prepareDatabase } from '../../src/rollups/index.ts';

/**
 * The grants an application role needs once aggjobs' change capture is installed (README,
 * "Least-privilege database roles"), checked on a dedicated embedded PostgreSQL (roles are
 * cluster-wide: the shared server is left alone). The change-capture trigger that logs deletes and
 * moves is SECURITY DEFINER (migration 000006): the application needs no grant on schema aggjobs.
 */
const dataDir = mkdtempSync(join(tmpdir(), 'aggjobs-roles-'));
let server: EmbeddedDatabase | undefined;
let pool: Pool | undefined;
afterAll(async () => {
  await pool?.end();
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function asApp(url: string, sql: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
    return 'ok';
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  } finally {
    await client.end();
  }
}

describe('an application role writing the source tables', () => {
  it('inserts, updates, deletes and truncates with its table grants alone, and every change is captured', async () => {
    server = await startEmbeddedPostgres({ dataDir });
    pool = createPool({ connectionString: server.url, max: 2 });
    await prepareDatabase(pool, { analyticsTimezone: 'UTC' });
    await pool.query(`CREATE ROLE product_app LOGIN PASSWORD 'app-password'`);
    await pool.query(
      `GRANT SELECT, INSERT, UPDATE, DELETE ON public.execution_logs, public.user_activity_events, public.credit_transactions TO product_app;
       GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO product_app`,
    );
    const url = new URL(server.url);
    url.username = 'product_app';
    url.password = 'app-password';
    const appUrl = url.toString();

    const insert = `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, credits_used)
                    VALUES (1, 1, 1, 'running', now(), 0)`;
    expect(await asApp(appUrl, insert)).toBe('ok');
    expect(await asApp(appUrl, `UPDATE public.execution_logs SET status = 'success'`)).toBe('ok');
    expect(await asApp(appUrl, `UPDATE public.execution_logs SET workspace_id = 2`)).toBe('ok');
    expect(await asApp(appUrl, `DELETE FROM public.execution_logs`)).toBe('ok');
    // The move and the delete are in the change log, written by the trigger on the app's behalf.
    const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM aggjobs.change_log');
    expect(rows[0]?.n).toBe(2);
    // A TRUNCATE (with its own grant) is recorded for it too (migration 000013).
    await pool.query('GRANT TRUNCATE ON public.user_activity_events TO product_app');
    expect(await asApp(appUrl, 'TRUNCATE public.user_activity_events')).toBe('ok');
    const { rows: truncations } = await pool.query<{ source_table: string }>(
      'SELECT source_table FROM aggjobs.source_truncations',
    );
    expect(truncations).toEqual([{ source_table: 'public.user_activity_events' }]);
    // And the app itself still cannot touch aggjobs' tables.
    expect(await asApp(appUrl, `DELETE FROM aggjobs.change_log`)).toBe('42501');
    expect(await asApp(appUrl, `DELETE FROM aggjobs.source_truncations`)).toBe('42501');
  });
});
