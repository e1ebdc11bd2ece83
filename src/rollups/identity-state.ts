import type { Queryable } from '../db/index.ts';
import {
  buildIdentity,
  rebuildCommand,
  identityChanges,
  type BuildIdentity,
  type CanonicalDefinition,
  type IdentityChange,
} from './build-identity.ts';
import type { RollupDefinition } from './definition.ts';

/** The columns `identityStateSelect` adds to a query over `aggjobs.rollup_state s`. */
export interface IdentityStateColumns {
  built_timezone: string | null;
  built_fingerprint: string | null;
  built_definition: CanonicalDefinition | null;
  built_system_identifier: string | null;
  system_identifier: string;
  /** The stored snapshot ends past the current one: it cannot be from this cluster's history. */
  snapshot_ahead: boolean;
  stored_xmax: string | null;
  current_xmax: string;
  /** The latest TRUNCATE of the source (or a partition) that the stored snapshot does not see. */
  truncated: { table: string; at: string } | null;
}

/**
 * Select-list items over `aggjobs.rollup_state s`: what built the rows, and this cluster's identity.
 * xmax of a snapshot is one past the latest completed transaction id when it was taken; ids only
 * grow in a cluster, so a stored xmax beyond the current one comes from another id space.
 */
export const identityStateSelect = `s.built_timezone, s.built_fingerprint, s.built_definition,
                s.built_system_identifier::text AS built_system_identifier,
                (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
                coalesce(pg_snapshot_xmax(s.snapshot) > pg_snapshot_xmax(pg_current_snapshot()), false) AS snapshot_ahead,
                pg_snapshot_xmax(s.snapshot)::text AS stored_xmax,
                pg_snapshot_xmax(pg_current_snapshot())::text AS current_xmax,
                (SELECT jsonb_build_object('table', t.truncated_table, 'at', t.truncated_at)
                 FROM aggjobs.source_truncations t
                 WHERE t.source_table = s.source_table AND NOT pg_visible_in_snapshot(t.xid, s.snapshot)
                 ORDER BY t.id DESC LIMIT 1) AS truncated`;

export interface IdentityCheck {
  current: BuildIdentity;
  /** Nothing recorded yet in some field: a refresh that reads from a snapshot on records it. */
  unrecorded: boolean;
  changes: IdentityChange[];
}

export function identityOf(
  def: RollupDefinition,
  timezone: string,
  row: IdentityStateColumns,
): IdentityCheck {
  const current = buildIdentity(def, timezone, row.system_identifier);
  const recorded = {
    timezone: row.built_timezone,
    fingerprint: row.built_fingerprint,
    definition: row.built_definition,
    systemIdentifier: row.built_system_identifier,
  };
  return {
    current,
    unrecorded:
      recorded.timezone === null || recorded.fingerprint === null || recorded.systemIdentifier === null,
    changes: identityChanges(def, recorded, current, {
      snapshotAhead: row.snapshot_ahead,
      storedXmax: row.stored_xmax,
      currentXmax: row.current_xmax,
      truncated: row.truncated,
    }),
  };
}

// $1 rollup, $2 zone, $3 fingerprint, $4 canonical definition, $5 system identifier
export const recordIdentitySql = `UPDATE aggjobs.rollup_state
  SET built_timezone = $2, built_fingerprint = $3, built_definition = $4::jsonb, built_system_identifier = $5::bigint
  WHERE rollup = $1`;

export function recordIdentityParams(rollup: string, identity: BuildIdentity): unknown[] {
  return [
    rollup,
    identity.timezone,
    identity.fingerprint,
    JSON.stringify(identity.definition),
    identity.systemIdentifier,
  ];
}

/** A rollup whose rows were built under another zone, definition or cluster than the current one. */
export interface RebuildNeeded {
  rollup: string;
  changes: IdentityChange[];
  command: string;
}

/**
 * The rollups that a refresh would refuse now (health check, dashboard): those whose recorded
 * identity differs from `timezone`, their current definition and this cluster. A rollup never
 * refreshed incrementally is not one: its first run recomputes it whole and records the identity.
 */
export async function rollupsNeedingRebuild(
  db: Queryable,
  definitions: readonly RollupDefinition[],
  timezone: string,
): Promise<RebuildNeeded[]> {
  // $1 rollup names
  const { rows } = await db.query<IdentityStateColumns & { rollup: string }>(
    `SELECT s.rollup, ${identityStateSelect} FROM aggjobs.rollup_state s
     WHERE s.rollup = ANY($1::text[]) AND s.snapshot IS NOT NULL`,
    [definitions.map((d) => d.name)],
  );
  const needed: RebuildNeeded[] = [];
  for (const def of definitions) {
    const row = rows.find((r) => r.rollup === def.name);
    if (row === undefined) continue;
    const { changes } = identityOf(def, timezone, row);
    if (changes.length > 0) needed.push({ rollup: def.name, changes, command: rebuildCommand(def.name) });
  }
  return needed;
}
