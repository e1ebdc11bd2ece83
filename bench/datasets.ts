import pg from 'pg';
import { parseSettings } from '../src/config/index.ts';
import { createPool, migrate, MigrationMismatchError, type Pool } from '../src/db/index.ts';
import { builtinRollups, prepareDatabase, refreshRollup } from '../src/rollups/index.ts';
import { seedDemoData, type SeedOptions } from '../src/workload/index.ts';

export interface Dataset {
  name: string;
  pool: Pool;
  /** Its connection string (task threads and the PostgreSQL broker open their own sessions). */
  url: string;
  executions: number;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/**
 * A database seeded by the workload generator, kept between runs (reused when it holds the same
 * options), with every rollup brought up to date so that incremental cases start from a fresh state.
 */
export async function openDataset(
  adminUrl: string,
  name: string,
  options: SeedOptions,
  log: (line: string) => void,
): Promise<Dataset> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  const tag = JSON.stringify(options);
  const { rows } = await admin.query<{ tag: string | null }>(
    `SELECT shobj_description(oid, 'pg_database') AS tag FROM pg_database WHERE datname = $1`,
    [name],
  );
  let reuse = rows[0]?.tag === tag;
  if (reuse) reuse = await migratesCleanly(withDatabase(adminUrl, name), log);
  if (!reuse) {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${name}"`);
  }
  const url = withDatabase(adminUrl, name);
  const pool = createPool({
    connectionString: url,
    max: 6,
    applicationName: 'aggjobs bench',
  });
  if (!reuse) {
    await prepareDatabase(pool, parseSettings({}));
    log(`seeding ${name}: ${options.days} days x ${options.executionsPerDay} executions/day`);
    let last = 0;
    const result = await seedDemoData(pool, options, (p) => {
      const pct = Math.floor((100 * p.done) / Math.max(p.total, 1));
      if (pct >= last + 10) {
        last = pct;
        log(`  ${p.phase} ${pct}%`);
      }
    });
    log(
      `  seeded ${result.executions} executions, ${result.activityEvents} events, ${result.creditTransactions} credit rows at ${Math.round(result.rowsPerSecond)} rows/s`,
    );
    await pool.query('VACUUM ANALYZE');
    for (const def of builtinRollups)
      await refreshRollup(pool, def, { timezone: 'UTC', mode: { kind: 'incremental' } });
    await pool.query('VACUUM ANALYZE');
    await admin.query(`COMMENT ON DATABASE "${name}" IS ${`'${tag.replaceAll("'", "''")}'`}`);
  } else {
    log(`reusing ${name}`);
  }
  await admin.end();
  const { rows: count } = await pool.query<{ n: number }>('SELECT count(*) AS n FROM public.execution_logs');
  return { name, pool, url, executions: count[0]?.n ?? 0 };
}

/**
 * Applies the migrations that landed since the data set was seeded (the runtime cases use
 * aggjobs.task_runs). False when the data set was migrated with another version of a migration
 * (one edited before it landed, in a working tree): it is seeded again rather than refused.
 */
async function migratesCleanly(url: string, log: (line: string) => void): Promise<boolean> {
  const pool = createPool({ connectionString: url, max: 1, applicationName: 'aggjobs bench' });
  try {
    const applied = await migrate(pool);
    if (applied.length > 0) log(`applied ${applied.map((m) => m.name).join(', ')} to the data set`);
    return true;
  } catch (error) {
    if (!(error instanceof MigrationMismatchError)) throw error;
    log(`the data set was migrated with another version of a migration (${error.message}): seeding it again`);
    return false;
  } finally {
    await pool.end();
  }
}
