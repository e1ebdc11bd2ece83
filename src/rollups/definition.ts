/**
 * Terminology
 * - rollup:   a table in schema `analytics` that holds one row per group, derived from one source table.
 * - grain:    the width of a bucket: hour, day, week (from Monday), month, or a fixed number of minutes.
 * - bucket:   one interval of a grain; `bucket_start` is its start in ANALYTICS_TIMEZONE, as timestamptz.
 * - group:    one (bucket, dimension values) pair: one row of a rollup when it has source rows.
 * - horizon:  a transaction id; every source write by a transaction below it is folded into the rollup.
 * - frozen:   a bucket that starts before the retention watermark of its source or of the rollup
 *             itself (hourly rollups expire); never recomputed again.
 * - window:   [start, end) in time; a window refresh recomputes every bucket in it.
 */

export type Grain = 'hour' | 'day' | 'week' | 'month' | { readonly minutes: number };

export interface Dimension {
  /** Column of the source table, copied to the rollup under the same name. Must be NOT NULL. */
  readonly column: string;
  /** Its SQL type in the rollup table. */
  readonly type: string;
}

export interface Measure {
  /** Column of the rollup table. */
  readonly name: string;
  /** Its SQL type. */
  readonly type: string;
  /** An aggregate expression over the source table's columns, e.g. `count(*) FILTER (WHERE status = 'failed')`. */
  readonly sql: string;
}

/** One rollup, declared as data: the engine derives its table, its refresh SQL and its change capture. */
export interface RollupDefinition {
  /** Table name in schema `analytics`. */
  readonly name: string;
  /** Schema-qualified source table; it must have a bigint primary key `id`. */
  readonly source: string;
  /** timestamptz column of the source that places a row in a bucket. */
  readonly timeColumn: string;
  readonly grain: Grain;
  readonly dimensions: readonly Dimension[];
  readonly measures: readonly Measure[];
  /**
   * Opt-in: a covering index on the source for this rollup's incremental recomputes
   * (covering-index.ts, docs/covering-index.md). Faster recomputes of old groups (late rows, updates
   * across history) for a wider index on every write to the source. Not part of the definition's
   * fingerprint: it changes no row.
   */
  readonly coveringIndex?: boolean;
  /**
   * Opt-in: per-group state beside each row, so that a refresh applies changed rows to the touched
   * groups instead of reading each group's rows again (delta-state.ts, docs/delta-state.md). Every
   * measure must be of a form the state keeps exactly; on a plain (not partitioned) source, not on
   * Citus. Part of the fingerprint: turning it on or off asks for a rebuild.
   */
  readonly deltaState?: boolean;
}

export function grainLabel(grain: Grain): string {
  return typeof grain === 'string' ? grain : `${grain.minutes} minutes`;
}

/** Every column any rollup groups a source's rows by: what the change log must keep of an old row. */
export function groupColumnsBySource(definitions: readonly RollupDefinition[]): Map<string, string[]> {
  const bySource = new Map<string, Set<string>>();
  for (const def of definitions) {
    const columns = bySource.get(def.source) ?? new Set<string>();
    columns.add(def.timeColumn);
    for (const d of def.dimensions) columns.add(d.column);
    bySource.set(def.source, columns);
  }
  return new Map([...bySource].map(([source, columns]) => [source, [...columns].sort()]));
}
