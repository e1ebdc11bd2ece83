/**
 * `SOURCE_PARTITIONS=day|week` (docs/scaling.md "Asking aggjobs migrate to create them"): the
 * source tables that retention cleans are created range-partitioned by their time column, with an
 * `(id, time)` primary key, where they do not exist yet. Their first partitions reach from the
 * retention cutoff (rounded down to a partition boundary) to one partition past today, with a
 * `MINVALUE` partition below for late rows already older than the retention (the next cleanup drops
 * them; an insert never fails for a missing partition); `ensureFuturePartitions` then adds the
 * lead. Migration 000001 creates a source only when it is missing, so it leaves these as they are.
 *
 * A table that exists is never converted: one that is not partitioned by its time column is refused
 * before anything is written (the conversion is the DBA's, docs/scaling.md).
 */
import { ConfigError, type SourcePartitions } from '../config/index.ts';
import { withTransaction, type Pool, type PoolClient } from '../db/index.ts';
import { citusInstalled } from './citus-install.ts';
import { defaultSources } from './retention.ts';
import { ident } from './sql-identifier.ts';
import { firstPartitionBounds, olderRowsPartitionName, partitionName } from './partition-bounds.ts';
import { timePartitionsOf } from './partitions.ts';

/**
 * The columns of migration 000001's tables, with the primary key that a partitioned table needs
 * (every unique key must contain the partition key).
 */
const partitionedDdl: Record<string, string> = {
  'public.execution_logs': `
    id           bigserial,
    workspace_id bigint NOT NULL,
    user_id      bigint NOT NULL,
    workflow_id  bigint NOT NULL,
    status       text NOT NULL CHECK (status IN ('running', 'success', 'failed', 'timeout', 'cancelled')),
    started_at   timestamptz NOT NULL,
    completed_at timestamptz,
    duration_ms  integer,
    credits_used numeric(14,4) NOT NULL DEFAULT 0,
    error_type   text,
    PRIMARY KEY (id, started_at)`,
  'public.user_activity_events': `
    id           bigserial,
    workspace_id bigint NOT NULL,
    user_id      bigint NOT NULL,
    event_type   text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    session_id   text,
    properties   jsonb,
    PRIMARY KEY (id, occurred_at)`,
};

export interface CreatedSources {
  /** Tables created partitioned, with their partitions. */
  tables: Array<{ table: string; partitions: string[] }>;
}

async function relationKind(client: PoolClient, table: string): Promise<string | undefined> {
  // $1 table: 'r' plain, 'p' partitioned, undefined missing.
  const { rows } = await client.query<{ kind: string }>(
    'SELECT relkind AS kind FROM pg_class WHERE oid = to_regclass($1)',
    [table],
  );
  return rows[0]?.kind;
}

/**
 * Creates the missing sources of `defaultSources` partitioned by `width`, in one transaction under
 * the migration lock; refuses (ConfigError naming SOURCE_PARTITIONS and the table) before writing
 * anything when one exists and is not range-partitioned by its time column. `none`: does nothing.
 */
export async function createPartitionedSources(
  pool: Pool,
  options: { width: SourcePartitions; retentionDays: number; now?: Date },
): Promise<CreatedSources> {
  const width = options.width;
  if (width === 'none') return { tables: [] };
  return withTransaction(pool, async (client) => {
    if (await citusInstalled(client))
      throw new ConfigError(
        'SOURCE_PARTITIONS',
        'none on Citus (aggjobs distributes plain source tables there; partitioned ones are not supported)',
        width,
      );
    await client.query("SELECT pg_advisory_xact_lock(hashtext('aggjobs.migrate'))");
    const missing: Array<(typeof defaultSources)[number]> = [];
    for (const source of defaultSources) {
      const kind = await relationKind(client, source.table);
      if (kind === undefined) {
        missing.push(source);
        continue;
      }
      const info = await timePartitionsOf(client, source.table);
      if (info === undefined || info.column !== source.timeColumn)
        throw new ConfigError(
          'SOURCE_PARTITIONS',
          `none while ${source.table} exists and is not range-partitioned by ${source.timeColumn} ` +
            '(aggjobs creates partitioned sources where none exist and never converts a table: ' +
            'docs/scaling.md says how to convert it); nothing was changed',
          width,
        );
    }
    const now =
      options.now ?? (await client.query<{ now: Date }>('SELECT now() AS now')).rows[0]?.now ?? new Date();
    const oldest = new Date(now.getTime() - options.retentionDays * 86_400_000);
    const tables: CreatedSources['tables'] = [];
    for (const source of missing) {
      const [schema = 'public', bare = source.table] = source.table.split('.');
      const parent = `${ident(schema)}.${ident(bare)}`;
      await client.query(
        `CREATE TABLE ${parent} (${partitionedDdl[source.table]}) PARTITION BY RANGE (${ident(source.timeColumn)})`,
      );
      const bounds = firstPartitionBounds(width, oldest, now);
      const partitions: string[] = [];
      const create = async (name: string, from: Date | null, to: Date | null): Promise<void> => {
        // $1 partition, $2 parent, $3 from, $4 to (null: MINVALUE / MAXVALUE), as literals by format().
        const { rows } = await client.query<{ sql: string }>(
          `SELECT format('CREATE TABLE %s PARTITION OF %s FOR VALUES FROM (%s) TO (%s)', $1::text, $2::text,
                         coalesce(quote_literal($3::timestamptz), 'MINVALUE'), coalesce(quote_literal($4::timestamptz), 'MAXVALUE')) AS sql`,
          [`${ident(schema)}.${ident(name)}`, parent, from, to],
        );
        await client.query(rows[0]?.sql ?? '');
        partitions.push(`${schema}.${name}`);
      };
      const first = bounds[0]?.from ?? null;
      await create(olderRowsPartitionName(source.table), null, first);
      for (const b of bounds) await create(partitionName(source.table, b.from), b.from, b.to);
      tables.push({ table: source.table, partitions });
    }
    return { tables };
  });
}
