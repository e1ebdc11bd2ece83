import type { Queryable } from '../db/index.ts';
import type { RollupDefinition } from './definition.ts';

/**
 * Thrown instead of an incremental refresh whose source is a distributed table on Citus. Change
 * capture compares each row's stamp (a transaction id) with the previous run's snapshot; on Citus
 * both are per node, so the comparison would miss changes or recompute at random
 * (docs/scaling.md "Distributed PostgreSQL"). Until per-node capture is built, the rollup is kept
 * exact by window refreshes, which recompute a whole time range and read no stamps.
 */
export class CitusIncrementalRefusedError extends Error {
  override readonly name = 'CitusIncrementalRefusedError';
  constructor(
    readonly rollup: string,
    readonly source: string,
  ) {
    super(
      `incremental refresh of ${rollup} refused: its source ${source} is a distributed table on Citus, ` +
        'where change capture is not built yet (transaction ids and snapshots are per node, so an ' +
        'incremental run could miss changes); refresh it by window instead: ' +
        '`aggjobs backfill --start <date> --end <date> --granularity <g>` (a window refresh of the range)',
    );
  }
}

/**
 * Called before an incremental refresh (also an initial one, which would record a horizon for the
 * next): refuses when the rollup's source is distributed by Citus. One catalog query on a server
 * without Citus.
 */
export async function refuseIncrementalOnCitus(db: Queryable, def: RollupDefinition): Promise<void> {
  const { rows } = await db.query<{ citus: boolean }>(
    "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') AS citus",
  );
  if (rows[0]?.citus !== true) return;
  // pg_dist_partition exists once the extension does: only now may the query name it.
  const { rows: placed } = await db.query<{ distributed: boolean }>(
    'SELECT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = to_regclass($1)) AS distributed',
    [def.source],
  );
  if (placed[0]?.distributed === true) throw new CitusIncrementalRefusedError(def.name, def.source);
}
