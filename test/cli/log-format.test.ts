import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createTestDatabase } from '../support/database.ts';
import { runCli } from './cli-runner.ts';
import { cliEntry } from '../support/cli-command.ts';

const db = await createTestDatabase();
const env = { DATABASE_URL: db.url, REDIS_URL: '', CELERY_BROKER_URL: '', LOG_LEVEL: 'info' };
const jsonLine = /^\{"level":30,.*"msg":"using PostgreSQL at/m;
const prettyLine = /^\d\d:\d\d:\d\d INFO {2}migrate: using PostgreSQL at/m;
const esc = '\x1b';
const colour = new RegExp(`${esc}\\[32mINFO`);

describe('the log format', () => {
  it('is JSON when stdout is not a terminal', async () => {
    const out = await runCli(['migrate'], env);
    expect(out.status).toBe(0);
    expect(out.stdout).toMatch(jsonLine);
  });

  it('is pretty and coloured when stdout is a terminal', () => {
    // script(1) gives the command a pseudo-terminal.
    const command = `${process.execPath} ${cliEntry} migrate`;
    const out = spawnSync('script', ['-qec', command, '/dev/null'], {
      env: { ...process.env, NODE_ENV: 'production', ...env },
      encoding: 'utf8',
      timeout: 40_000,
    });
    expect(out.status, out.stderr).toBe(0);
    const text = out.stdout.replace(/\r/g, '');
    expect(text).toMatch(colour);
    expect(text.replace(new RegExp(`${esc}\\[\\d+m`, 'g'), '')).toMatch(prettyLine);
    expect(text).not.toMatch(/\{"level":/);
  });

  it('follows LOG_FORMAT: pretty without colours in a pipe, json in a terminal', async () => {
    const pretty = await runCli(['migrate'], { ...env, LOG_FORMAT: 'pretty' });
    expect(pretty.status).toBe(0);
    expect(pretty.stdout).toMatch(prettyLine);
    expect(pretty.stdout).not.toContain(esc);
    const command = `${process.execPath} ${cliEntry} migrate`;
    const json = spawnSync('script', ['-qec', command, '/dev/null'], {
      env: { ...process.env, NODE_ENV: 'production', ...env, LOG_FORMAT: 'json' },
      encoding: 'utf8',
      timeout: 40_000,
    });
    expect(json.stdout.replace(/\r/g, '')).toMatch(jsonLine);
  });

  it('refuses a bad LOG_FORMAT with exit 2, naming the variable', async () => {
    const out = await runCli(['migrate'], { ...env, LOG_FORMAT: 'colour' });
    expect(out.status).toBe(2);
    expect(out.stderr.trim()).toBe('aggjobs: LOG_FORMAT must be one of pretty, json, got "colour"');
  });
  it.each(['async', 'threads'])(
    "reaches the worker's task lines too (--pool %s): pretty under LOG_FORMAT=pretty",
    async (pool) => {
      const workerEnv = {
        ...env,
        LOG_FORMAT: 'pretty',
        BROKER_KEY_PREFIX: `{lf${randomBytes(4).toString('hex')}}`,
      };
      const worker = spawn(process.execPath, [cliEntry, 'worker', '-c', '1', '--pool', pool], {
        env: { ...process.env, NODE_ENV: 'production', ...workerEnv },
      });
      let stdout = '';
      worker.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      try {
        const run = await runCli(['run', 'health_check', '--wait', '--timeout', '60'], workerEnv, 90_000);
        expect(run.status, run.stderr).toBe(0);
        const deadline = Date.now() + 20_000;
        while (!/task health_check succeeded/.test(stdout) && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 100));
        }
        expect(stdout).toMatch(/^\d\d:\d\d:\d\d INFO {2}aggjobs worker: task health_check succeeded/m);
        expect(stdout).not.toMatch(/\{"level":/);
      } finally {
        worker.kill('SIGTERM');
        await new Promise((r) => worker.once('exit', r));
      }
    },
    120_000,
  );
});
