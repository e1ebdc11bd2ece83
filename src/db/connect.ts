import type { Settings } from '../config/index.ts';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './embedded-postgres.ts';
import { createPool, type Pool } from './pool.ts';

export interface Database {
  readonly pool: Pool;
  /** The connection string in use (with its password). Never log it: use `describe`. */
  readonly url: string;
  /** What the log says about the database in use, without secrets. */
  readonly describe: string;
  readonly embedded: EmbeddedDatabase | undefined;
  close(): Promise<void>;
}

/**
 * Connects to `DATABASE_URL`, or starts the embedded PostgreSQL under `dataDir` when it is unset.
 * `close()` ends the pool and stops an embedded server this process started.
 */
export async function connectDatabase(
  settings: Pick<Settings, 'databaseUrl' | 'dataDir' | 'dbPoolMax'>,
  options: { applicationName?: string; onLog?: (line: string) => void } = {},
): Promise<Database> {
  let embedded: EmbeddedDatabase | undefined;
  let url = settings.databaseUrl;
  let describe: string;
  if (url === undefined) {
    embedded = await startEmbeddedPostgres({ dataDir: settings.dataDir, onLog: options.onLog });
    url = embedded.url;
    describe = `embedded PostgreSQL on 127.0.0.1:${embedded.port}, database aggjobs (data in ${embedded.pgdata})`;
  } else {
    const parsed = new URL(url);
    describe = `PostgreSQL at ${parsed.hostname}:${parsed.port || '5432'}, database ${parsed.pathname.slice(1) || '(default)'}`;
  }
  const pool = createPool({
    connectionString: url,
    max: settings.dbPoolMax,
    applicationName: options.applicationName,
  });
  return {
    pool,
    url,
    describe,
    embedded,
    async close() {
      await pool.end().catch(() => undefined);
      if (embedded?.owned === true) await embedded.stop();
    },
  };
}
