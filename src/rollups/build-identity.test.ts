import { describe, expect, it } from 'vitest';
import { builtinRollups } from './builtin-rollups.ts';
import { canonicalDefinition, definitionFingerprint, normalizeSql } from './build-identity.ts';
import type { RollupDefinition } from './definition.ts';

const hourly = builtinRollups[0] as RollupDefinition;
const fingerprint = (def: RollupDefinition): string => definitionFingerprint(canonicalDefinition(def));

describe('normalizeSql', () => {
  it('ignores whitespace and the case of keywords and names, never text inside quotes', () => {
    expect(normalizeSql("COUNT( * ) filter (where status='failed')")).toBe(
      normalizeSql("count(*) FILTER (WHERE status = 'failed')"),
    );
    expect(normalizeSql("count(*) FILTER (WHERE status = 'Failed')")).not.toBe(
      normalizeSql("count(*) FILTER (WHERE status = 'failed')"),
    );
    expect(normalizeSql("sum(x) FILTER (WHERE s = 'a  b')")).toBe("sum(x)filter(where s='a  b')");
    expect(normalizeSql('percentile_cont(0.5) WITHIN GROUP (ORDER BY "Duration")')).toBe(
      'percentile_cont(0.5)within group(order by "Duration")',
    );
    expect(normalizeSql("x = 'it''s'  AND y")).toBe("x='it''s' and y");
  });
});

describe('definition fingerprint', () => {
  it('is stable under reordering and reformatting of measures and dimensions', () => {
    const reformatted: RollupDefinition = {
      ...hourly,
      measures: [...hourly.measures]
        .reverse()
        .map((m) => ({ ...m, sql: `  ${m.sql.replace('count(', 'COUNT( ')}\n`, type: m.type.toUpperCase() })),
    };
    expect(fingerprint(reformatted)).toBe(fingerprint(hourly));
    const activity = builtinRollups.find((d) => d.name === 'user_activity_hourly') as RollupDefinition;
    expect(fingerprint({ ...activity, dimensions: [...activity.dimensions].reverse() })).toBe(
      fingerprint(activity),
    );
  });

  it('changes with what decides the rows: measure SQL or type, grain, dimensions, source, time column', () => {
    const base = fingerprint(hourly);
    const m0 = hourly.measures[0] as RollupDefinition['measures'][number];
    const variants: RollupDefinition[] = [
      { ...hourly, measures: [{ ...m0, sql: 'count(*) * 2' }, ...hourly.measures.slice(1)] },
      { ...hourly, measures: [{ ...m0, type: 'integer' }, ...hourly.measures.slice(1)] },
      { ...hourly, measures: hourly.measures.slice(1) },
      { ...hourly, grain: 'day' },
      { ...hourly, grain: { minutes: 60 } },
      { ...hourly, dimensions: [{ column: 'workflow_id', type: 'bigint' }] },
      { ...hourly, source: 'public.execution_logs_archive' },
      { ...hourly, timeColumn: 'finished_at' },
    ];
    const prints = variants.map(fingerprint);
    expect(prints).not.toContain(base);
    expect(new Set(prints).size).toBe(prints.length);
    // The name is the key the identity is stored under, not part of it.
    expect(fingerprint({ ...hourly, name: 'other' })).toBe(base);
  });
});
