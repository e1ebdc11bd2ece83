import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../src/db/index.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'aggjobs-embedded-'));
const started: EmbeddedDatabase[] = [];

afterAll(async () => {
  for (const db of started) await db.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function selectOne(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM kept');
    return rows[0]?.n ?? -1;
  } finally {
    await client.end();
  }
}

describe('embedded PostgreSQL', () => {
  it('keeps its data across a clean restart', async () => {
    const first = await startEmbeddedPostgres({ dataDir });
    expect(first.startedHere).toBe(true);
    const client = new pg.Client({ connectionString: first.url });
    await client.connect();
    await client.query('CREATE TABLE kept (id int); INSERT INTO kept VALUES (1), (2)');
    await client.end();
    await first.stop();
    const second = await startEmbeddedPostgres({ dataDir });
    started.push(second);
    expect(await selectOne(second.url)).toBe(2);
    await second.stop();
  }, 60_000);

  it("keeps its password private: only in pgpass (mode 0600); initdb's copy is gone", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aggjobs-embedded-secret-'));
    try {
      const db = await startEmbeddedPostgres({ dataDir: dir });
      started.push(db);
      const password = decodeURIComponent(new URL(db.url).password);
      expect(password.length).toBeGreaterThanOrEqual(20);
      // As root the server's data may live elsewhere (embedded-layout.ts), recorded in
      // pgdata-location: initdb's password file was made beside it.
      const location = join(dir, 'pgdata-location');
      const serverDir = existsSync(location) ? dirname(readFileSync(location, 'utf8').trim()) : dir;
      // Every file the start left in either place (the server's own files included): the plain
      // password is in pgpass alone, readable by its owner alone.
      const holders = [...new Set([dir, serverDir])].flatMap((d) =>
        (readdirSync(d, { recursive: true }) as string[])
          .map((f) => join(d, f))
          .filter((f) => statSync(f).isFile() && readFileSync(f).includes(password)),
      );
      expect(holders).toEqual([join(dir, 'pgpass')]);
      expect(statSync(join(dir, 'pgpass')).mode & 0o777).toBe(0o600);
      expect(readdirSync(serverDir).filter((f) => f.startsWith('.initdb-'))).toEqual([]);
      await db.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('recovers after the owning process was killed with -9', async () => {
    // A child process starts the server and is killed without any chance to stop it.
    const script = `
      import { startEmbeddedPostgres } from './src/db/index.ts';
      const db = await startEmbeddedPostgres({ dataDir: ${JSON.stringify(dataDir)} });
      process.stdout.write('ready ' + db.port + '\\n');
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        const match = /ready (\d+)/.exec(chunk.toString());
        if (match) resolve(Number(match[1]));
      });
      child.on('exit', (code) => reject(new Error(`child exited with ${code}`)));
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const again = await startEmbeddedPostgres({ dataDir });
    started.push(again);
    // The orphaned server is found, reused and adopted: this process now stops it when it is done.
    expect(again.startedHere).toBe(false);
    expect(again.owned).toBe(true);
    expect(again.port).toBe(port);
    expect(await selectOne(again.url)).toBe(2);
    // A second process beside it uses the same server without owning it.
    const beside = await startEmbeddedPostgres({ dataDir });
    expect(beside).toMatchObject({ startedHere: false, owned: false, port });
    await again.stop();
    expect(runningPid()).toBeUndefined();
  }, 60_000);

  it('starts over a stale pid file left by a server that died', async () => {
    const pidFile = join(dataDir, 'pgdata', 'postmaster.pid');
    const stale = readFileSync(join(dataDir, 'pgdata', 'PG_VERSION'), 'utf8'); // any content will do
    writeFileSync(pidFile, `999999\n${dataDir}\n0\n5432\n${stale}`);
    const db = await startEmbeddedPostgres({ dataDir });
    started.push(db);
    expect(db.startedHere).toBe(true);
    expect(await selectOne(db.url)).toBe(2);
    await db.stop();
  }, 60_000);
});

/** The pid of the server running on the data dir, if any. */
function runningPid(): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'pgdata', 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}
