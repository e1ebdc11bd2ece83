import { createHash } from 'node:crypto';
import { grainLabel, type RollupDefinition } from './definition.ts';
import { bucketStartSql } from './grain.ts';

/**
 * What built a rollup's rows (aggjobs.rollup_state.built_*, migration 000009). Rows built under one
 * identity and refreshed under another would mix two zones, two definitions or two transaction-id
 * spaces in one table, so a refresh compares before it writes (refresh.ts).
 */
export interface BuildIdentity {
  /** ANALYTICS_TIMEZONE the buckets are cut in. */
  timezone: string;
  /** sha256 of `definition`, 16 hex digits. */
  fingerprint: string;
  definition: CanonicalDefinition;
  /** pg_control_system().system_identifier, as text (it does not fit a JS number). */
  systemIdentifier: string;
}

/**
 * A definition reduced to what decides its rows' values. In: source table, time column, the bucket
 * expression the engine derives from the grain (so a change of how buckets are cut changes it too),
 * dimensions and measures with their types. Out: the rollup's name (the key it is stored under),
 * the order of dimensions and measures (they are columns by name), whitespace and the case of
 * keywords and unquoted names in SQL (PostgreSQL folds both). Inside quotes nothing is touched.
 */
export interface CanonicalDefinition {
  source: string;
  timeColumn: string;
  grain: string;
  bucket: string;
  dimensions: Array<{ column: string; type: string }>;
  measures: Array<{ name: string; type: string; sql: string }>;
  /** Present only when on (delta-state.ts), so that the fingerprints of other rollups stay as they were. */
  deltaState?: true;
}

/**
 * Whitespace runs become one space, none is kept next to `( ) , .` or at the ends, and text outside
 * '…' and "…" is lower-cased. `count( * ) FILTER (WHERE status='failed')` and
 * `count(*) filter (where status = 'failed')` give the same text; `'Failed'` and `'failed'` do not.
 */
export function normalizeSql(sql: string): string {
  const parts: string[] = [];
  let i = 0;
  while (i < sql.length) {
    const quote = sql[i];
    if (quote === "'" || quote === '"') {
      let j = i + 1;
      for (;;) {
        if (j >= sql.length) break;
        if (sql[j] === quote) {
          if (sql[j + 1] === quote) j += 2;
          else break;
        } else j += 1;
      }
      parts.push(sql.slice(i, j + 1));
      i = j + 1;
      continue;
    }
    let j = i;
    while (j < sql.length && sql[j] !== "'" && sql[j] !== '"') j += 1;
    parts.push(
      sql
        .slice(i, j)
        .toLowerCase()
        .replace(/\s+/g, ' ')
        .replace(/ ?([(),.]) ?/g, '$1')
        .replace(/ ?(<>|!=|<=|>=|=|<|>|\+|-|\*|\/|::) ?/g, '$1'),
    );
    i = j;
  }
  return parts.join('').trim();
}

export function canonicalDefinition(def: RollupDefinition): CanonicalDefinition {
  const byKey =
    <T>(key: (x: T) => string) =>
    (a: T, b: T) =>
      key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
  return {
    source: def.source,
    timeColumn: def.timeColumn,
    grain: grainLabel(def.grain),
    bucket: normalizeSql(bucketStartSql(def.grain, 'time', 'zone')),
    dimensions: def.dimensions
      .map((d) => ({ column: d.column, type: normalizeSql(d.type) }))
      .sort(byKey((d) => d.column)),
    measures: def.measures
      .map((m) => ({ name: m.name, type: normalizeSql(m.type), sql: normalizeSql(m.sql) }))
      .sort(byKey((m) => m.name)),
    ...(def.deltaState === true ? { deltaState: true as const } : {}),
  };
}

export function definitionFingerprint(canonical: CanonicalDefinition): string {
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex').slice(0, 16);
}

export function buildIdentity(
  def: RollupDefinition,
  timezone: string,
  systemIdentifier: string,
): BuildIdentity {
  const definition = canonicalDefinition(def);
  return { timezone, definition, fingerprint: definitionFingerprint(definition), systemIdentifier };
}

/** The built_* columns of a rollup_state row, as read: NULL where nothing was recorded yet. */
export interface RecordedIdentity {
  timezone: string | null;
  fingerprint: string | null;
  definition: CanonicalDefinition | null;
  systemIdentifier: string | null;
}

/** One way the rows' builder differs from the current one: what, and old → new. */
export interface IdentityChange {
  what: 'timezone' | 'definition' | 'cluster' | 'transaction ids' | 'truncate';
  from: string;
  to: string;
  /** How it reads in a message. */
  detail: string;
}

/** What changed in a definition, field by field, for the message: `measure runs: count(*) → count(*)*10`. */
export function describeDefinitionChange(from: CanonicalDefinition, to: CanonicalDefinition): string[] {
  const out: string[] = [];
  const field = (label: string, a: string, b: string): void => {
    if (a !== b) out.push(`${label}: ${a} → ${b}`);
  };
  field('source', from.source, to.source);
  field('time column', from.timeColumn, to.timeColumn);
  field('grain', from.grain, to.grain);
  if (from.grain === to.grain) field('bucket expression', from.bucket, to.bucket);
  const dims = (d: CanonicalDefinition): string =>
    d.dimensions.map((x) => `${x.column} ${x.type}`).join(', ');
  field('dimensions', dims(from), dims(to));
  field('per-group state', from.deltaState === true ? 'on' : 'off', to.deltaState === true ? 'on' : 'off');
  const names = [...new Set([...from.measures, ...to.measures].map((m) => m.name))].sort();
  for (const name of names) {
    const a = from.measures.find((m) => m.name === name);
    const b = to.measures.find((m) => m.name === name);
    const text = (m: typeof a): string => (m === undefined ? '(none)' : `${m.sql} ${m.type}`);
    field(`measure ${name}`, text(a), text(b));
  }
  return out;
}

/**
 * Differences between what built a rollup's rows and what would refresh them now. A field not
 * recorded (NULL) is no difference: it is adopted. `snapshotAhead`: the stored snapshot ends at a
 * transaction id this cluster has not reached, so it cannot come from this cluster's history.
 */
export function identityChanges(
  def: RollupDefinition,
  recorded: RecordedIdentity,
  current: BuildIdentity,
  xids: {
    snapshotAhead: boolean;
    storedXmax: string | null;
    currentXmax: string;
    /** A TRUNCATE of the source since the rows were built (migration 000013). */
    truncated: { table: string; at: string } | null;
  },
): IdentityChange[] {
  const changes: IdentityChange[] = [];
  // Fixed-minute grains count from a UTC epoch: the zone does not place their buckets.
  const zoneMatters = typeof def.grain === 'string';
  if (zoneMatters && recorded.timezone !== null && recorded.timezone !== current.timezone) {
    changes.push({
      what: 'timezone',
      from: recorded.timezone,
      to: current.timezone,
      detail: `ANALYTICS_TIMEZONE changed from ${recorded.timezone} to ${current.timezone} (its buckets would mix two zones)`,
    });
  }
  if (recorded.fingerprint !== null && recorded.fingerprint !== current.fingerprint) {
    const what =
      recorded.definition === null ? [] : describeDefinitionChange(recorded.definition, current.definition);
    changes.push({
      what: 'definition',
      from: recorded.fingerprint,
      to: current.fingerprint,
      detail: `its definition changed (fingerprint ${recorded.fingerprint} → ${current.fingerprint}${
        what.length > 0 ? `; ${what.join('; ')}` : ''
      })`,
    });
  }
  if (recorded.systemIdentifier !== null && recorded.systemIdentifier !== current.systemIdentifier) {
    changes.push({
      what: 'cluster',
      from: recorded.systemIdentifier,
      to: current.systemIdentifier,
      detail:
        `the database cluster changed (system identifier ${recorded.systemIdentifier} → ${current.systemIdentifier}: ` +
        'restored or replicated from another cluster, so its stored snapshot and aggjobs_xid values are ids of another transaction-id space)',
    });
  } else if (xids.snapshotAhead) {
    changes.push({
      what: 'transaction ids',
      from: xids.storedXmax ?? '?',
      to: xids.currentXmax,
      detail:
        `its stored snapshot ends at transaction id ${xids.storedXmax ?? '?'}, which this cluster has not reached ` +
        `(${xids.currentXmax}): it was taken in another transaction-id space (a restore from another cluster)`,
    });
  }
  if (xids.truncated !== null) {
    changes.push({
      what: 'truncate',
      from: def.source,
      to: xids.truncated.table,
      detail:
        `${xids.truncated.table} was truncated at ${new Date(xids.truncated.at).toISOString()} after these rows were built ` +
        '(TRUNCATE fires no delete trigger: the groups of its rows would stay)',
    });
  }
  return changes;
}

/** The command that fixes a rollup built under another identity. */
export function rebuildCommand(rollup: string): string {
  return `aggjobs rollups rebuild --rollup ${rollup}`;
}

/**
 * A refresh refused before writing anything: the rollup's rows were built under another zone,
 * definition or cluster. Never retried (retrying fails the same way); `aggjobs rollups rebuild` fixes it.
 */
export class RollupRebuildRequiredError extends Error {
  override readonly name = 'RollupRebuildRequiredError';
  constructor(
    readonly rollup: string,
    readonly changes: readonly IdentityChange[],
  ) {
    super(
      `analytics.${rollup} needs a rebuild: ${changes.map((c) => c.detail).join('; ')}. ` +
        `Nothing was written. Run \`${rebuildCommand(rollup)}\` to recompute it from the source rows ` +
        '(buckets before the retention cutoff, whose source rows are gone, are kept as they are).',
    );
  }
}
