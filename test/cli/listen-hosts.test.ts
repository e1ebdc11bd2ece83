import { createServer, connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createTestDatabase } from '../support/database.ts';
import { spawnCli } from '../reliability/cli-process.ts';

const db = await createTestDatabase();

/** This machine's first non-loopback IPv4 address, if it has one. */
const lanAddress = Object.values(networkInterfaces())
  .flat()
  .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: db.url,
    REDIS_URL: '',
    CELERY_BROKER_URL: '',
    BROKER_KEY_PREFIX: `{h${randomBytes(4).toString('hex')}}`,
    LOG_LEVEL: 'info',
    ...extra,
  };
}

const credentials = { DASHBOARD_USER: 'admin', DASHBOARD_PASSWORD: 'a-long-enough-password-1' };

describe.each([
  ['dashboard', []],
  ['start', ['--no-demo', '-c', '1']],
])('aggjobs %s listens', (command, extraArgs) => {
  it('on loopback only without credentials, and says so', async () => {
    const port = await freePort();
    const cli = spawnCli([command, ...extraArgs, '--port', String(port)], env());
    try {
      await cli.waitFor(`dashboard listening on http://127.0.0.1:${port}`);
      await cli.waitFor('listening on 127.0.0.1 only: no DASHBOARD_USER/DASHBOARD_PASSWORD');
      expect(await reachable('127.0.0.1', port)).toBe(true);
      if (lanAddress !== undefined) expect(await reachable(lanAddress, port)).toBe(false);
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  });

  it('on --host when given, and says so', async () => {
    const port = await freePort();
    const cli = spawnCli([command, ...extraArgs, '--port', String(port), '--host', '0.0.0.0'], env());
    try {
      await cli.waitFor('listening on 0.0.0.0 (--host), no authentication');
      if (lanAddress !== undefined) expect(await reachable(lanAddress, port)).toBe(true);
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  });

  it('on every interface with credentials, as before', async () => {
    const port = await freePort();
    const cli = spawnCli([command, ...extraArgs, '--port', String(port)], env(credentials));
    try {
      await cli.waitFor('listening on every interface (0.0.0.0), behind DASHBOARD_USER/DASHBOARD_PASSWORD');
      if (lanAddress !== undefined) expect(await reachable(lanAddress, port)).toBe(true);
    } finally {
      expect(await cli.stop()).toBe(0);
    }
  });
});
