import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { releaseClient, type Pool, type PoolClient } from './pool.ts';

/** The folder of numbered migrations shipped with this build (`migrations/000001_name.sql`). */
export const migrationsDir = fileURLToPath(new URL('../../migrations/', import.meta.url));

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export interface MigrationStatus {
  version: number;
  name: string;
  appliedAt: Date | undefined;
}

/** The database holds migrations this build does not have, or a landed migration was edited. */
export class MigrationMismatchError extends Error {
  override readonly name = 'MigrationMismatchError';
}

// The lock key is the server's hashtext('aggjobs.migrate'): another tool takes the same lock by
// the same expression.
const MIGRATION_LOCK_SQL = "SELECT pg_advisory_lock(hashtext('aggjobs.migrate'))";
const MIGRATION_UNLOCK_SQL = "SELECT pg_advisory_unlock(hashtext('aggjobs.migrate'))";

export function readMigrations(dir: string = migrationsDir): Migration[] {
  const migrations = readdirSync(dir)
    .filter((file) => file.endsWith('.sql'))
    .sort()
    .map((file) => {
      const match = /^(\d{6})_([a-z0-9_]+)\.sql$/.exec(file);
      if (match === null) throw new Error(`migration file ${file} must be named NNNNNN_name.sql`);
      const sql = readFileSync(`${dir}/${file}`, 'utf8');
      return {
        version: Number(match[1]),
        name: match[2] ?? '',
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    });
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration ${m.version} is out of sequence (expected ${i + 1})`);
  });
  return migrations;
}

async function ensureLedger(client: PoolClient): Promise<void> {
  await client.query(`
    CREATE SCHEMA IF NOT EXISTS aggjobs;
    CREATE TABLE IF NOT EXISTS aggjobs.schema_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      checksum   text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
}

async function appliedRows(
  client: PoolClient,
): Promise<Array<{ version: number; name: string; checksum: string; applied_at: Date }>> {
  const { rows } = await client.query<{ version: number; name: string; checksum: string; applied_at: Date }>(
    'SELECT version, name, checksum, applied_at FROM aggjobs.schema_migrations ORDER BY version',
  );
  return rows;
}

function checkKnown(
  applied: Array<{ version: number; name: string; checksum: string }>,
  known: Migration[],
): void {
  for (const row of applied) {
    const mine = known.find((m) => m.version === row.version);
    if (mine === undefined) {
      throw new MigrationMismatchError(
        `the database has migration ${row.version} (${row.name}) that this build of aggjobs does not know: ` +
          'it was migrated by a newer version. Run that version, or restore a matching build.',
      );
    }
    if (mine.checksum !== row.checksum) {
      throw new MigrationMismatchError(
        `migration ${row.version} (${row.name}) differs from the one applied to the database: ` +
          'landed migrations must never be edited; add a new migration instead.',
      );
    }
  }
}

/**
 * Applies pending migrations in order, each in its own transaction, under a session advisory
 * lock: a second migrator waits for the first, then finds nothing left to do.
 * Returns the versions it applied.
 */
export async function migrate(
  pool: Pool,
  options: { migrations?: Migration[]; onApply?: (m: Migration) => void } = {},
): Promise<Migration[]> {
  const known = options.migrations ?? readMigrations();
  const client = await pool.connect();
  // A session that cannot unlock (killed, server gone) is closed, not pooled.
  let broken: unknown;
  try {
    await client.query(MIGRATION_LOCK_SQL);
    try {
      await ensureLedger(client);
      const applied = await appliedRows(client);
      checkKnown(applied, known);
      const done = new Set(applied.map((r) => r.version));
      const appliedNow: Migration[] = [];
      for (const migration of known) {
        if (done.has(migration.version)) continue;
        options.onApply?.(migration);
        await client.query('BEGIN');
        try {
          await client.query(migration.sql);
          await client.query(
            'INSERT INTO aggjobs.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)',
            [migration.version, migration.name, migration.checksum],
          );
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw new Error(`migration ${migration.version} (${migration.name}) failed: ${String(error)}`, {
            cause: error,
          });
        }
        appliedNow.push(migration);
      }
      return appliedNow;
    } finally {
      await client.query(MIGRATION_UNLOCK_SQL).catch((error: unknown) => {
        broken = error;
      });
    }
  } finally {
    releaseClient(client, broken);
  }
}

let shippedMigrations: Migration[] | undefined;
/** This build's migrations, read from disk once per process (the health check asks on every run). */
function shipped(): Migration[] {
  shippedMigrations ??= readMigrations();
  return shippedMigrations;
}

/**
 * The migrations this build knows that the database has not applied, in order (all of them on a
 * database aggjobs never migrated). Migrations the database has and this build does not know are
 * not its business: `migrate` and `migrationStatus` refuse those.
 */
export async function pendingMigrations(
  pool: Pool,
  migrations: Migration[] = shipped(),
): Promise<Migration[]> {
  const { rows: ledger } = await pool.query<{ exists: boolean }>(
    "SELECT to_regclass('aggjobs.schema_migrations') IS NOT NULL AS exists",
  );
  const { rows } =
    ledger[0]?.exists === true
      ? await pool.query<{ version: number }>('SELECT version FROM aggjobs.schema_migrations')
      : { rows: [] };
  const applied = new Set(rows.map((r) => r.version));
  return migrations.filter((m) => !applied.has(m.version));
}

/** "2 migrations this version of aggjobs needs (000014_…, 000015_…)": at most three named. */
export function describePending(pending: readonly Migration[]): string {
  const names = pending.map((m) => `${String(m.version).padStart(6, '0')}_${m.name}`);
  const shown = names.length > 3 ? [...names.slice(0, 3), `and ${names.length - 3} more`] : names;
  return `${pending.length} migration${pending.length === 1 ? '' : 's'} this version of aggjobs needs (${shown.join(', ')})`;
}

/** Every migration this build knows, with when it was applied (undefined: pending). */
export async function migrationStatus(
  pool: Pool,
  migrations: Migration[] = readMigrations(),
): Promise<MigrationStatus[]> {
  const client = await pool.connect();
  try {
    const { rows } = await client.query<{ exists: boolean }>(
      "SELECT to_regclass('aggjobs.schema_migrations') IS NOT NULL AS exists",
    );
    const applied = rows[0]?.exists === true ? await appliedRows(client) : [];
    checkKnown(applied, migrations);
    return migrations.map((m) => ({
      version: m.version,
      name: m.name,
      appliedAt: applied.find((r) => r.version === m.version)?.applied_at,
    }));
  } finally {
    client.release();
  }
}
