/**
 * A database whose output styles are not PostgreSQL's defaults (DateStyle 'SQL, DMY', IntervalStyle
 * 'iso_8601', as a European team may set them for its own tools): node-postgres parses timestamps,
 * dates and intervals in the default styles only, so aggjobs' sessions set them first
 * (src/db/pool.ts, sessionStyles), also after a task thread's session is reset between runs.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, type Pool } from '../../src/db/index.ts';
import { RunSessionPool } from '../../src/runtime/run-session-pool.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

const db: TestDatabase = await createTestDatabase();
const read = `SELECT timestamptz '2026-12-01 16:35:00.25+00' AS at, date '2026-12-03' AS day,
                     interval '1 day 02:30:00' AS span, current_setting('DateStyle') AS style`;
interface Read {
  at: Date | null;
  day: Date | null;
  span: { days?: number; hours?: number; minutes?: number } | null;
  style: string;
}

function expectParsed(row: Read | undefined): void {
  expect(row?.at?.toISOString()).toBe('2026-12-01T16:35:00.250Z');
  expect(row?.day).toBeInstanceOf(Date);
  expect(row?.span).toMatchObject({ days: 1, hours: 2, minutes: 30 });
  expect(row?.style).toBe('ISO, YMD');
}

beforeAll(async () => {
  await db.pool.query(`ALTER DATABASE "${db.name}" SET DateStyle = 'SQL, DMY'`);
  await db.pool.query(`ALTER DATABASE "${db.name}" SET IntervalStyle = 'iso_8601'`);
});

describe("a database with DateStyle 'SQL, DMY' and IntervalStyle 'iso_8601'", () => {
  it('is read wrongly by a plain node-postgres session (the case this guards against)', async () => {
    const plain = new pg.Client({ connectionString: db.url });
    await plain.connect();
    try {
      const { rows } = await plain.query<Read>(read);
      expect(rows[0]?.style).toBe('SQL, DMY');
      expect(rows[0]?.at).toBeNull();
    } finally {
      await plain.end();
    }
  });

  describe("aggjobs' pools", () => {
    let pool: Pool;
    beforeAll(() => {
      pool = createPool({ connectionString: db.url, max: 2 });
    });
    afterAll(async () => {
      await pool.end();
    });

    it('read timestamps, dates and intervals on the first query of a new session', async () => {
      expectParsed((await pool.query<Read>(read)).rows[0]);
      const client = await pool.connect();
      try {
        expectParsed((await client.query<Read>(read)).rows[0]);
      } finally {
        client.release();
      }
    });

    it("a task thread's session keeps them after it is reset for the next run", async () => {
      for (const id of ['run-style-1', 'run-style-2'])
        await db.pool.query(
          `INSERT INTO aggjobs.task_runs (id, task, state, queue, attempts) VALUES ($1, 'test_sleep', 'running', 'maintenance', 1)`,
          [id],
        );
      const runs = new RunSessionPool({ connectionString: db.url, max: 1 });
      try {
        runs.serveRun({ runId: 'run-style-1', attempt: 1 });
        const first = await runs.connect();
        let pid: number | undefined;
        try {
          const { rows } = await first.query<Read & { pid: number }>(`${read}, pg_backend_pid() AS pid`);
          pid = rows[0]?.pid;
          expectParsed(rows[0]);
        } finally {
          first.release();
        }
        // Same session, reset (RESET ALL brings back the database's styles) and named for the next run.
        runs.serveRun({ runId: 'run-style-2', attempt: 1 });
        const next = await runs.connect();
        try {
          const { rows } = await next.query<Read & { pid: number }>(`${read}, pg_backend_pid() AS pid`);
          expect(rows[0]?.pid).toBe(pid);
          expectParsed(rows[0]);
        } finally {
          next.release();
        }
      } finally {
        await runs.end();
      }
    });
  });
});
