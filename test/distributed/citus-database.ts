import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, inject } from 'vitest';
import { createPool, type Pool } from '../../src/db/index.ts';
import { createCitusDatabase, dropCitusDatabase, type ClusterPorts } from '../support/citus-cluster.ts';

export interface CitusTestDatabase {
  /** The coordinator's URL. */
  url: string;
  pool: Pool;
  name: string;
  ports: ClusterPorts;
}

/**
 * A fresh database on the run's Citus cluster (citus extension on every node, workers registered),
 * dropped after the file's tests. Fails with the one line that says what is missing when the
 * cluster could not be started.
 */
export async function createCitusTestDatabase(): Promise<CitusTestDatabase> {
  const citus = inject('citus');
  if ('missing' in citus) throw new Error(citus.missing);
  const name = `aggjobs_citus_${randomBytes(4).toString('hex')}`;
  const url = await createCitusDatabase(citus, name);
  const pool = createPool({ connectionString: url, max: 4, applicationName: 'aggjobs citus test' });
  afterAll(async () => {
    await pool.end();
    await dropCitusDatabase(citus, name);
  });
  return { url, pool, name, ports: citus };
}

/** Runs `sql` on the worker node at `port` directly (not through the coordinator); its rows. */
export async function queryWorker<T extends pg.QueryResultRow = pg.QueryResultRow>(
  db: CitusTestDatabase,
  port: number,
  sql: string,
): Promise<T[]> {
  const direct = new pg.Client({
    connectionString: db.url.replace(`:${db.ports.coordinatorPort}/`, `:${port}/`),
  });
  await direct.connect();
  try {
    return (await direct.query<T>(sql)).rows;
  } finally {
    await direct.end();
  }
}
