import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSettings } from '../../src/config/index.ts';
import { createTestDatabase } from '../support/database.ts';
import { spawnCli } from './cli-process.ts';
import { freePort } from '../support/processes.ts';
import { startOwnRedis, type OwnRedis } from './own-servers.ts';

/**
 * Real processes (`aggjobs worker`, `run --wait`, `dashboard`) with password-bearing DATABASE_URL and
 * REDIS_URL, against our own redis-server with `requirepass` and an ACL user: the tasks run, and
 * neither password appears in any line a process prints, any page, API answer or task result.
 * The database password: where the run's PostgreSQL checks one (the embedded server the tests start
 * when none is running: scram-sha-256), the URL carries that real password; where it trusts local
 * connections (a local server), a made-up one, carried but unchecked. Either way it must never be
 * printed.
 */
const REDIS_PASSWORD = `RedisPw${randomBytes(6).toString('hex')}`;
const ACL_PASSWORD = `AclPw${randomBytes(6).toString('hex')}`;
const WRONG_PASSWORD = `WrongPw${randomBytes(6).toString('hex')}`;

const db = await createTestDatabase();
const serverPassword = decodeURIComponent(new URL(db.url).password);
const DB_PASSWORD = serverPassword !== '' ? serverPassword : `DbPw${randomBytes(6).toString('hex')}`;
const secrets = [DB_PASSWORD, REDIS_PASSWORD, ACL_PASSWORD, WRONG_PASSWORD];
const dbUrl = (() => {
  const u = new URL(db.url);
  u.password = encodeURIComponent(DB_PASSWORD);
  return u.toString();
})();
const redis: OwnRedis = await startOwnRedis(
  [
    '--save',
    '',
    '--appendonly',
    'no',
    '--requirepass',
    REDIS_PASSWORD,
    '--user',
    'aggjobs',
    'on',
    `>${ACL_PASSWORD}`,
    '~*',
    '&*',
    '+@all',
  ],
  { password: REDIS_PASSWORD },
);
afterAll(async () => {
  await redis.destroy();
});

function expectNoSecret(text: string, where: string): void {
  for (const s of secrets) expect(text.includes(s), `${where} shows a password`).toBe(false);
}

async function workerAndRun(redisUrl: string, extraEnv: Record<string, string> = {}): Promise<string> {
  const env = {
    DATABASE_URL: dbUrl,
    REDIS_URL: redisUrl,
    BROKER_KEY_PREFIX: `{s${randomBytes(4).toString('hex')}}`,
    LOG_LEVEL: 'debug',
    ...extraEnv,
  };
  const worker = spawnCli(['worker', '-c', '1', '-Q', 'maintenance', '--hostname', 'w-secret'], env);
  try {
    await worker.waitFor('broker:');
    const run = spawnCli(['run', 'health_check', '--wait', '--timeout', '30'], env);
    const code = await run.exited;
    expect(code, run.output()).toBe(0);
    expect(run.output()).toContain('broker');
    expectNoSecret(run.output(), 'aggjobs run');
    const { rows } = await db.pool.query<{ result: unknown; worker: string }>(
      `SELECT result, worker FROM aggjobs.task_runs WHERE task = 'health_check' ORDER BY enqueued_at DESC LIMIT 1`,
    );
    expect(rows[0]?.worker).toContain('w-secret');
    expectNoSecret(JSON.stringify(rows[0]?.result), 'the task result');
  } finally {
    await worker.stop();
  }
  expectNoSecret(worker.output(), 'the worker log');
  return worker.output();
}

describe('Redis with a password and an ACL user', () => {
  it('requirepass: redis://:pass@ — the worker runs the task; no password printed anywhere', async () => {
    const log = await workerAndRun(redis.url(`:${REDIS_PASSWORD}`));
    expect(log).toContain('127.0.0.1');
  });

  it('ACL user: redis://user:pass@ — the same', async () => {
    await workerAndRun(redis.url(`aggjobs:${ACL_PASSWORD}`));
  });

  it('a wrong password: the worker stops with a message naming the broker, not the password', async () => {
    const worker = spawnCli(['worker', '-c', '1'], {
      DATABASE_URL: dbUrl,
      REDIS_URL: redis.url(`:${WRONG_PASSWORD}`),
      LOG_LEVEL: 'debug',
    });
    const code = await worker.exited;
    expect(code).not.toBe(0);
    expect(worker.output()).toMatch(/redis/i);
    expectNoSecret(worker.output(), 'the failing worker');
  });
});

describe('the dashboard process with password-bearing URLs', () => {
  it('prints no password and shows none in its pages and API', async () => {
    const port = await freePort();
    const dashboard = spawnCli(['dashboard', '--port', String(port)], {
      DATABASE_URL: dbUrl,
      REDIS_URL: redis.url(`:${REDIS_PASSWORD}`),
      LOG_LEVEL: 'debug',
    });
    try {
      const base = `http://127.0.0.1:${port}`;
      const deadline = Date.now() + 30_000;
      for (;;) {
        const ok = await fetch(`${base}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) break;
        if (Date.now() > deadline) throw new Error(`dashboard not up:\n${dashboard.output()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      for (const path of [
        '/',
        '/tasks',
        '/workers',
        '/api/health?fresh=1',
        '/api/queues',
        '/metrics',
        '/nope',
      ]) {
        const res = await fetch(`${base}${path}`);
        expect(res.status, path).toBeLessThan(500);
        expectNoSecret(await res.text(), path);
      }
    } finally {
      await dashboard.stop();
    }
    expectNoSecret(dashboard.output(), 'the dashboard log');
  });
});

describe('TLS', () => {
  it('settings accept rediss:// URLs', () => {
    const settings = parseSettings({ REDIS_URL: `rediss://:${REDIS_PASSWORD}@redis.example:6380/0` });
    expect(settings.brokerUrl).toBe(`rediss://:${REDIS_PASSWORD}@redis.example:6380/0`);
  });

  it('a worker and a client reach a TLS redis-server (self-signed, trusted via NODE_EXTRA_CA_CERTS)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aggjobs-tls-'));
    const tlsPort = await freePort();
    let tls: OwnRedis | undefined;
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
          '-days',
          '1',
          '-subj',
          '/CN=127.0.0.1',
          '-addext',
          'subjectAltName=IP:127.0.0.1',
        ],
        { stdio: 'ignore' },
      );
      tls = await startOwnRedis(
        [
          '--save',
          '',
          '--requirepass',
          REDIS_PASSWORD,
          '--tls-port',
          String(tlsPort),
          '--tls-cert-file',
          join(dir, 'cert.pem'),
          '--tls-key-file',
          join(dir, 'key.pem'),
          '--tls-ca-cert-file',
          join(dir, 'cert.pem'),
          '--tls-auth-clients',
          'no',
        ],
        { password: REDIS_PASSWORD },
      );
      await workerAndRun(`rediss://:${REDIS_PASSWORD}@127.0.0.1:${tlsPort}`, {
        NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem'),
      });
    } finally {
      await tls?.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
