import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { tasksFor } from '../../src/index.ts';
import { InvalidTaskArgsError, UnknownTaskError } from '../../src/tasks/index.ts';
import { webHarness, type WebHarness } from '../web/web-harness.ts';

/**
 * Bad input, through the API (in-process `app.request`) and `runtime.enqueue`: every one gets a
 * 400/404 naming the field and the rule (or InvalidTaskArgsError), never a 500, and nothing is
 * written to aggjobs.task_runs. Hostile strings reach SQL only as parameters: the tables survive.
 */
let h: WebHarness;

const post = (body: unknown) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});

async function runCount(): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM aggjobs.task_runs');
  return rows[0]?.n ?? -1;
}

const drop = `'; DROP TABLE aggjobs.task_runs; --`;
const hostileStrings = [
  drop,
  `1); DELETE FROM public.execution_logs; --`,
  `" OR 1=1 --`,
  `<script>alert(1)</script>`,
  '99999-01-01T00:00:00',
  '+099999-01-01T00:00:00Z',
  '2025-02-30T00:00:00',
  'NaN',
  '\u0000',
  'x'.repeat(100_000),
];
const hostileValues: unknown[] = [
  ...hostileStrings,
  Number.NaN,
  Infinity,
  -1,
  1e308,
  null,
  true,
  {},
  [],
  { $gt: '' },
];

function deepJson(depth: number): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

/** A problem expected: the field it names and a phrase of its rule. */
type Expected = ReadonlyArray<readonly [field: string, rule: RegExp]>;

const iso = /must be an ISO date or date-time/;
const years = /must be a date from year 2000 to 2100/;
const days = /must be a whole number of days from 1 to 36500/;
const tooDeep: Expected = [['(body)', /at most 32 levels of nested arrays and objects/]];

/**
 * The hostile argument sets of each built-in task: none may be enqueued. Each with the problems
 * expected (field, rule), and where the API answers otherwise (a body nested too deep is refused
 * before its arguments are read), the API's.
 */
const badArgs: Array<[string, { args?: unknown[]; kwargs?: Record<string, unknown> }, Expected, Expected?]> =
  [
    ['hourly_rollup', { args: ['99999-01-01T00:00:00'] }, [['target_hour', years]]],
    ['hourly_rollup', { args: [drop] }, [['target_hour', iso]]],
    ['hourly_rollup', { kwargs: { target_hour: Number.NaN } }, [['target_hour', iso]]],
    ['hourly_rollup', { kwargs: { target_hour: deepJson(500) } }, [['target_hour', iso]], tooDeep],
    [
      'hourly_rollup',
      { args: ['2025-01-01T00:00:00', 'extra'] },
      [['args', /must have at most 1 value\(s\) \(target_hour\), got 2/]],
    ],
    ['daily_rollup', { kwargs: { target_date: '2025-13-01' } }, [['target_date', iso]]],
    [
      'weekly_rollup',
      { kwargs: { target_week: `2025-01-06'; DROP TABLE analytics.execution_metrics_weekly; --` } },
      [['target_week', iso]],
    ],
    ['monthly_rollup', { kwargs: { target_month: '0000-00' } }, [['target_month', iso]]],
    ['cleanup_old_data', { kwargs: { retention_days: -5 } }, [['retention_days', days]]],
    ['cleanup_old_data', { kwargs: { retention_days: Number.NaN } }, [['retention_days', days]]],
    ['cleanup_old_data', { kwargs: { retention_days: 1e12 } }, [['retention_days', days]]],
    [
      'cleanup_old_data',
      { kwargs: { retention_days: `90; DROP TABLE public.execution_logs` } },
      [['retention_days', days]],
    ],
    ['cleanup_old_data', { kwargs: { retention_days: 0 } }, [['retention_days', days]]],
    [
      'backfill_aggregations',
      {
        kwargs: {
          start_date: '0001-01-01T00:00:00',
          end_date: '99999-12-31T00:00:00',
          granularity: 'hourly',
        },
      },
      [
        ['start_date', years],
        ['end_date', years],
      ],
    ],
    [
      'backfill_aggregations',
      {
        kwargs: { start_date: '2020-01-01T00:00:00', end_date: '2026-01-01T00:00:00', granularity: 'hourly' },
      },
      [['start_date', /must be within the retention period/]],
    ],
    [
      'backfill_aggregations',
      {
        kwargs: { start_date: '2026-11-02T00:00:00', end_date: '2026-11-01T00:00:00', granularity: 'daily' },
      },
      [['end_date', /must be after start_date/]],
    ],
    [
      'backfill_aggregations',
      { kwargs: { start_date: '2026-11-01T00:00:00', end_date: '2026-11-02T00:00:00', granularity: drop } },
      [['granularity', /must be one of hourly, daily, weekly, monthly/]],
    ],
    [
      'backfill_aggregations',
      { kwargs: { start_date: 'NaN', end_date: 'NaN', granularity: 'hourly' } },
      [
        ['start_date', iso],
        ['end_date', iso],
      ],
    ],
    [
      'backfill_aggregations',
      { kwargs: { start_date: deepJson(400) } },
      [
        ['start_date', iso],
        ['end_date', /must be an ISO date or date-time .*, got nothing/],
        ['granularity', /must be one of hourly, daily, weekly, monthly, got nothing/],
      ],
      tooDeep,
    ],
    ['refresh_materialized_views', { args: [drop] }, [['args', /must have at most 0 value\(s\)/]]],
    [
      'health_check',
      { kwargs: { [drop]: 1 } },
      [['(arguments)', /unknown argument\(s\).*takes no arguments/]],
    ],
  ];

/** The problems as [field, rule] pairs, each rule tested against its expected phrase. */
function expectProblems(problems: ReadonlyArray<{ field: string; rule: string }>, expected: Expected): void {
  expect(problems.map((p) => p.field)).toEqual(expected.map(([field]) => field));
  problems.forEach((p, i) => expect(p.rule).toMatch(expected[i]?.[1] ?? /^$/));
}

beforeAll(async () => {
  h = await webHarness('postgres');
});

describe('hostile task arguments', () => {
  const cases = badArgs.map(([task, input, problems, apiProblems], i) => ({
    label: `#${i} ${task} ${JSON.stringify(input).slice(0, 60)}`,
    task,
    input,
    problems,
    apiProblems: apiProblems ?? problems,
  }));

  it.for(cases)(
    '$label: refused by runtime.enqueue naming the field and the rule, nothing written',
    async ({ task, input, problems }) => {
      const before = await runCount();
      const error = await h.runtime.enqueue(task, input).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(InvalidTaskArgsError);
      const got = (error as InvalidTaskArgsError).problems;
      expectProblems(
        got.map((p) => ({ field: p.field, rule: p.message })),
        problems,
      );
      // The message says each rule too.
      for (const p of got) expect((error as Error).message).toContain(p.message);
      expect(await runCount()).toBe(before);
    },
  );

  // JSON has no NaN (JSON.stringify sends null, which means "the default"): those cases are enqueue-only.
  const jsonCases = cases.filter((c) => !JSON.stringify(c.input).includes('null'));

  it.for(jsonCases)(
    '$label: refused by the API with 400, field and rule, nothing written',
    async ({ task, input, apiProblems }) => {
      const before = await runCount();
      const res = await h.app.request(`/api/tasks/${task}/apply`, post(input));
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: string; problems?: Array<{ field: string; rule: string }> };
      expectProblems(body.problems ?? [], apiProblems);
      for (const [, rule] of apiProblems) expect(body.error).toMatch(rule);
      expect(await runCount()).toBe(before);
    },
  );

  it('the typed client (applyAsync / delay) refuses what its types would not allow, cast through', async () => {
    const before = await runCount();
    const tasks = tasksFor(h.runtime);
    const attempts: Array<() => Promise<unknown>> = [
      () => tasks.hourly_rollup.applyAsync({ args: ['99999-01-01T00:00:00'] }),
      () => tasks.hourly_rollup.delay(drop as never),
      () => tasks.daily_rollup.applyAsync({ kwargs: { target_date: Number.NaN as never } }),
      () => tasks.cleanup_old_data.applyAsync({ kwargs: { retention_days: `1; ${drop}` as never } }),
      () =>
        tasks.backfill_aggregations.applyAsync({
          kwargs: { start_date: '0001-01-01', end_date: '99999-01-01', granularity: 'hourly' },
        }),
      () =>
        tasks.backfill_aggregations.applyAsync({
          kwargs: { start_date: '2026-11-01', end_date: '2026-11-02', granularity: drop as never },
        }),
      () => tasks.health_check.applyAsync({ kwargs: deepJson(300) as never }),
    ];
    for (const attempt of attempts) await expect(attempt()).rejects.toBeInstanceOf(InvalidTaskArgsError);
    expect(await runCount()).toBe(before);
  });

  it('an unknown or hostile task name is a 404 / UnknownTaskError, nothing written', async () => {
    const before = await runCount();
    await expect(h.runtime.enqueue(drop, {})).rejects.toBeInstanceOf(UnknownTaskError);
    for (const name of [encodeURIComponent(drop), 'no_such_task', encodeURIComponent('<script>x</script>')]) {
      const res = await h.app.request(`/api/tasks/${name}/apply`, post({}));
      expect(res.status).toBe(404);
    }
    expect(await runCount()).toBe(before);
  });

  it('malformed bodies are 400: not JSON, too deep, wrong shape, unknown keys', async () => {
    const before = await runCount();
    const json = /must be valid JSON/;
    const object = /expected object, received/;
    const bodies: Array<[unknown, Expected]> = [
      ['{"args": [', [['(body)', json]]],
      ['null', [['(body)', object]]],
      ['[]', [['(body)', object]]],
      ['"a string"', [['(body)', object]]],
      [`${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}`, tooDeep],
      [`${'['.repeat(100_000)}${']'.repeat(100_000)}`, tooDeep],
      [{ args: 'not an array' }, [['args', /expected array, received string/]]],
      [{ args: Array.from({ length: 1000 }, () => 1) }, [['args', /expected array to have <=20 items/]]],
      [{ kwargs: [] }, [['kwargs', /expected record, received array/]]],
      [{ countdown: -1 }, [['countdown', /expected number to be >=0/]]],
      [
        { countdown: 1e20 },
        [
          ['countdown', /Too big/],
          ['countdown', /expected number to be <=604800/],
        ],
      ],
      [{ countdown: 'soon' }, [['countdown', /expected number, received string/]]],
      [{ unexpected: 1 }, [['(body)', /Unrecognized key: "unexpected"/]]],
    ];
    for (const [body, problems] of bodies) {
      const res = await h.app.request('/api/tasks/health_check/apply', post(body));
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      const answer = (await res.json()) as {
        error: string;
        problems?: Array<{ field: string; rule: string }>;
      };
      expect(answer.error.length).toBeGreaterThan(0);
      expectProblems(answer.problems ?? [], problems);
    }
    expect(await runCount()).toBe(before);
  });
});

describe('API bodies and query strings, fuzzed', () => {
  const endpoints = [
    '/api/tasks/hourly_rollup/apply',
    '/api/tasks/daily_rollup/apply',
    '/api/tasks/backfill_aggregations/apply',
    '/api/tasks/cleanup_old_data/apply',
    '/api/backfills',
    '/api/workers/no-such-worker/concurrency',
  ];
  const value = fc.oneof(
    fc.constantFrom(...hostileValues),
    fc.string(),
    fc.integer(),
    fc.double(),
    fc
      .date({ noInvalidDate: false })
      .map((d) => (Number.isNaN(d.getTime()) ? 'Invalid Date' : d.toISOString())),
  );
  const fuzzKwargs = fc.dictionary(
    fc.constantFrom(
      'target_hour',
      'target_date',
      'start_date',
      'end_date',
      'granularity',
      'retention_days',
      'concurrency',
      drop,
    ),
    value,
  );
  const fuzzBody = fc.oneof(
    fc.record({ args: fc.array(value, { maxLength: 4 }) }, { requiredKeys: [] }),
    fc.record({ kwargs: fuzzKwargs, countdown: value }, { requiredKeys: [] }),
    fuzzKwargs,
    fc.jsonValue({ maxDepth: 6 }),
  );

  it('POST bodies: never a 500; a 400 names field and rule; nothing written', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...endpoints), fuzzBody, async (path, body) => {
        const before = await runCount();
        const res = await h.app.request(path, post(body));
        const json = (await res.json()) as {
          error?: string;
          problems?: Array<{ field: string; rule: string }>;
        };
        if (res.status === 202 || res.status === 200) {
          // A body that happens to be valid (e.g. {} for an hourly rollup) is accepted: one run, queued.
          expect(await runCount()).toBe(
            before + (path.endsWith('/apply') || path === '/api/backfills' ? 1 : 0),
          );
          return;
        }
        expect([400, 404]).toContain(res.status);
        expect(json.error?.length ?? 0).toBeGreaterThan(0);
        if (res.status === 400) {
          expect(json.problems?.length ?? 0).toBeGreaterThan(0);
          for (const p of json.problems ?? []) expect(p.rule.length).toBeGreaterThan(0);
        }
        expect(await runCount()).toBe(before);
      }),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 200) },
    );
  });

  // NUL is left out here: it is a known bug, pinned by the `it.fails` tests below.
  const queryHostile = hostileStrings.slice(0, 8);
  const noNul = (v: string): string => v.replaceAll('\u0000', '');

  it('query strings: never a 500, never a write', async () => {
    const paths = [
      '/api/tasks',
      '/api/rollups/execution_metrics_hourly/series',
      '/api/stats/runs',
      '/api/tasks/x',
      '/tasks',
    ];
    const keys = fc.constantFrom(
      'task',
      'state',
      'worker',
      'from',
      'to',
      'q',
      'page',
      'limit',
      'workspace',
      'hours',
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...paths),
        fc.array(
          fc.tuple(
            keys,
            fc.oneof(fc.constantFrom(...queryHostile), fc.string().map(noNul), fc.integer().map(String)),
          ),
          {
            maxLength: 5,
          },
        ),
        async (path, pairs) => {
          const before = await runCount();
          const qs = new URLSearchParams(pairs).toString();
          const res = await h.app.request(`${path}?${qs}`, { headers: { accept: 'application/json' } });
          expect([200, 400, 404], `${path}?${qs}`).toContain(res.status);
          if (res.status === 400 && path.startsWith('/api/')) {
            const json = (await res.json()) as { problems?: Array<{ field: string; rule: string }> };
            expect(json.problems?.length ?? 0).toBeGreaterThan(0);
          }
          expect(await runCount()).toBe(before);
        },
      ),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 200) },
    );
  });
});

/**
 * Fixed bug (found by these tests): a NUL character (U+0000) was accepted by the input schemas and
 * reached PostgreSQL, which refuses it in text ("invalid byte sequence for
 * encoding UTF8: 0x00", 22021) and in jsonb ("unsupported Unicode escape sequence", 22P05): the
 * dashboard answers 500 for `?task=%00`, `?q=%00`, `?worker=%00`, `/api/tasks/%00`, `/tasks?q=%00`,
 * `/tasks/%00`, `/api/tasks/%00/retry`, and for an apply whose free-text args hold a NUL; and
 * runtime.enqueue throws a raw database error instead of InvalidTaskArgsError. Nothing is written.
 * Fixed by rejecting U+0000 at the edge: in paths and query values (src/web/app.ts) and in
 * task arguments (parseTaskArgs), with a 400 / InvalidTaskArgsError naming the field.
 */
describe('NUL characters: refused with 400, never a 500', () => {
  const nul = /must not contain the NUL character \(U\+0000\)/;
  // Each with the field the answer must name: the query key, the path, the argument.
  const nulRequests: Array<[string, RequestInit | undefined, string]> = [
    ['/api/tasks?task=%00', undefined, 'task'],
    ['/api/tasks?q=%00', undefined, 'q'],
    ['/api/tasks?worker=%00', undefined, 'worker'],
    ['/api/tasks/%00', undefined, 'path'],
    ['/tasks?q=%00', undefined, 'q'],
    ['/tasks/%00', undefined, 'path'],
    ['/api/tasks/%00/retry', post({}), 'path'],
    ['/api/tasks/web_flaky/apply', post({ args: ['a\u0000b'] }), 'key'],
    ['/api/tasks/web_flaky/apply', post({ args: ['k'], kwargs: { note: '\u0000' } }), 'note'],
  ];

  it.for(nulRequests)('%s %o: a 400 naming %s and the rule, not a 500', async ([path, init, field]) => {
    const before = await runCount();
    const res = await h.app.request(path, init);
    expect(res.status).toBe(400);
    if (path.startsWith('/api/')) {
      const body = (await res.json()) as { error: string; problems?: Array<{ field: string; rule: string }> };
      expectProblems(body.problems ?? [], [[field, nul]]);
      expect(body.error).toContain(field);
    } else {
      // The dashboard's page says it in words.
      const page = await res.text();
      expect(page).toMatch(/<!doctype html>/i);
      expect(page).toContain(`${field} must not contain the NUL character (U+0000)`);
    }
    expect(await runCount()).toBe(before);
  });

  it('runtime.enqueue with a NUL in free-text args: InvalidTaskArgsError naming the argument', async () => {
    const error = await h.runtime
      .enqueue('web_flaky', { args: ['k'], kwargs: { note: 'a\u0000b' } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidTaskArgsError);
    expectProblems(
      (error as InvalidTaskArgsError).problems.map((p) => ({ field: p.field, rule: p.message })),
      [['note', nul]],
    );
  });

  it('meanwhile nothing is written and no table is harmed', async () => {
    const tables = `SELECT count(*)::int AS n FROM pg_tables WHERE schemaname IN ('public', 'analytics', 'aggjobs')`;
    const tablesBefore = (await h.db.pool.query<{ n: number }>(tables)).rows[0]?.n;
    const before = await runCount();
    for (const [path, init] of nulRequests) {
      const res = await h.app.request(path, init);
      expect(res.status, path).toBe(400);
    }
    await expect(
      h.runtime.enqueue('web_flaky', { args: ['k'], kwargs: { note: 'a\u0000b' } }),
    ).rejects.toBeInstanceOf(InvalidTaskArgsError);
    expect(await runCount()).toBe(before);
    expect((await h.db.pool.query<{ n: number }>(tables)).rows[0]?.n).toBe(tablesBefore);
  });
});

describe('SQL is never built from input', () => {
  it('hostile strings in run filters, run ids and task args leave every table intact', async () => {
    const tablesBefore = await h.db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_tables WHERE schemaname IN ('public', 'analytics', 'aggjobs')`,
    );
    const hostile = [
      drop,
      `x' OR '1'='1`,
      `'); DROP TABLE public.execution_logs; --`,
      `\\'; DROP SCHEMA analytics CASCADE; --`,
    ];
    for (const s of hostile) {
      for (const key of ['task', 'worker', 'q']) {
        const res = await h.app.request(`/api/tasks?${key}=${encodeURIComponent(s)}`);
        expect(res.status).toBe(200);
        expect(((await res.json()) as { runs: unknown[] }).runs).toEqual([]);
      }
      expect([400, 404]).toContain((await h.app.request(`/api/tasks/${encodeURIComponent(s)}`)).status);
      expect((await h.app.request(`/api/tasks/${encodeURIComponent(s)}/retry`, post({}))).status).toBe(404);
      expect((await h.app.request(`/api/rollups/${encodeURIComponent(s)}/series`)).status).toBe(404);
      expect((await h.app.request(`/tasks?q=${encodeURIComponent(s)}`)).status).toBe(200);
    }
    // A valid run whose free-text kwargs carry SQL: stored and shown as data.
    const res = await h.app.request(
      '/api/tasks/web_flaky/apply',
      post({ args: [drop], kwargs: { note: `'); DROP TABLE aggjobs.task_runs; --` } }),
    );
    expect(res.status).toBe(202);
    const tablesAfter = await h.db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_tables WHERE schemaname IN ('public', 'analytics', 'aggjobs')`,
    );
    expect(tablesAfter.rows[0]?.n).toBe(tablesBefore.rows[0]?.n);
    const { rows } = await h.db.pool.query<{ args: unknown }>(
      'SELECT args FROM aggjobs.task_runs WHERE task = $1',
      ['web_flaky'],
    );
    expect(JSON.stringify(rows[0]?.args)).toContain('DROP TABLE aggjobs.task_runs');
  });
});
