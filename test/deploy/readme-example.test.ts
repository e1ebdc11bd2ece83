/**
 * The programmatic example of docs/tasks.md ("From code"), run as written against a real
 * PostgreSQL and Redis with a worker running. Only the import changes: `'aggjobs'` becomes this
 * checkout's src/index.ts.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { testRedisUrl } from '../support/redis-url.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { cliEntry } from '../support/cli-command.ts';

const doc = readFileSync(new URL('../../docs/tasks.md', import.meta.url), 'utf8');
const section = doc.slice(doc.indexOf('## From code'));
const example = /```ts\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
const entry = fileURLToPath(new URL('../../src/index.ts', import.meta.url));

let db: TestDatabase;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  db = await createTestDatabase();
  env = {
    ...process.env,
    DATABASE_URL: db.url,
    REDIS_URL: testRedisUrl,
    BROKER_KEY_PREFIX: `{aggjobs-example-${randomBytes(4).toString('hex')}}`,
    LOG_LEVEL: 'warn',
  };
});

function run(
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('docs/tasks.md: the programmatic example', () => {
  it('runs as written and prints the three results', async () => {
    expect(example).toContain("from 'aggjobs'");
    const dir = mkdtempSync(join(tmpdir(), 'aggjobs-example-'));
    const file = join(dir, 'example.mts');
    writeFileSync(file, example.replace("from 'aggjobs'", `from ${JSON.stringify(entry)}`));
    const worker = spawn(process.execPath, [cliEntry, 'worker', '--concurrency', '2'], { env });
    try {
      const result = await run([file], 150_000);
      expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
      // hourly_rollup's result, the backfill's summary and the health report, as console.log prints them.
      expect(result.stdout).toMatch(/grain: 'hour'/);
      expect(result.stdout).toMatch(/status: '(healthy|degraded)'/);
    } finally {
      worker.kill('SIGTERM');
      await new Promise((r) => worker.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    }
  }, 200_000);
});
