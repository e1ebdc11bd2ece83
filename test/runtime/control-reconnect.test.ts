/**
 * The control listener outlives PostgreSQL outages: its session killed again and again, and killed
 * while the database refuses connections (so that reconnection attempts fail too), it still hears the
 * next message.
 */
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  listenControl,
  sendControl,
  type ControlListener,
  type ControlMessage,
} from '../../src/runtime/control-channel.ts';
import { createTestDatabase } from '../support/database.ts';
import { eventually } from './runtime-harness.ts';

const db = await createTestDatabase();

describe('the control listener', () => {
  // Sessions of their own, opened before the database refuses connections (the test's pool might
  // have to open one then); a database cannot refuse connections from a session of its own.
  const admin = new pg.Client({ connectionString: db.url, application_name: 'aggjobs test admin' });
  const server = new pg.Client({ connectionString: inject('pgAdminUrl') });
  const received: ControlMessage[] = [];
  const errors: unknown[] = [];
  let reconnects = 0;
  let listener: ControlListener;

  // A terminated backend stays in pg_stat_activity for a moment: sessions already killed are left out.
  const killed: number[] = [];
  const controlSessions = async (): Promise<number[]> => {
    const { rows } = await admin.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity
       WHERE application_name = 'aggjobs control' AND datname = $1 AND pid <> ALL($2::int[])`,
      [db.name, killed],
    );
    return rows.map((r) => r.pid);
  };
  const terminateControl = async (): Promise<number> => {
    const pids = await controlSessions();
    await admin.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid', [pids]);
    killed.push(...pids);
    return pids.length;
  };
  const allowConnections = async (allow: boolean): Promise<void> => {
    await server.query(`ALTER DATABASE "${db.name}" ALLOW_CONNECTIONS ${allow}`);
  };
  const hears = async (worker: string): Promise<void> => {
    await sendControl(admin, { action: 'shutdown', worker });
    await eventually(async () => received.some((m) => m.action === 'shutdown' && m.worker === worker), 5000);
  };

  beforeAll(async () => {
    await admin.connect();
    await server.connect();
    listener = await listenControl(
      db.url,
      (message) => received.push(message),
      (error) => errors.push(error),
      { onReconnect: () => (reconnects += 1) },
    );
  });
  afterAll(async () => {
    await listener?.close();
    await allowConnections(true).catch(() => undefined);
    await admin.end();
    await server.end();
  });

  it('hears messages after its session is killed repeatedly and while reconnection fails', async () => {
    await hears('before');

    for (let round = 1; round <= 3; round += 1) {
      expect(await terminateControl()).toBe(1);
      await eventually(async () => reconnects === round, 10_000);
    }
    await hears('after three kills');

    // Killed while the database refuses connections: the next attempts fail (55000 "not currently
    // accepting connections") until it accepts them again.
    await allowConnections(false);
    try {
      const errorsBefore = errors.length;
      expect(await terminateControl()).toBe(1);
      await eventually(async () => errors.length >= errorsBefore + 3, 10_000);
      expect(errors.slice(errorsBefore + 1).map(String)).toContainEqual(
        expect.stringMatching(/not currently accepting connections/),
      );
    } finally {
      await allowConnections(true);
    }
    await eventually(async () => reconnects === 4, 15_000);

    // Killed again as soon as it is listening again.
    expect(await terminateControl()).toBe(1);
    await eventually(async () => reconnects === 5, 10_000);
    expect(await terminateControl()).toBe(1);
    await eventually(async () => reconnects === 6, 10_000);

    await hears('after the outage');
    // One session, never two: no attempt ran beside another.
    expect(await controlSessions()).toHaveLength(1);
    expect(reconnects).toBe(6);
  });

  it('stops reconnecting once closed', async () => {
    await listener.close();
    await new Promise((r) => setTimeout(r, 1500));
    expect(await controlSessions()).toEqual([]);
  });
});

/**
 * A TCP proxy to PostgreSQL whose open connections can be frozen: bytes stop flowing both ways, with
 * no FIN and no RST — a connection that died silently (a NAT or firewall that forgot it).
 */
async function startFreezableProxy(databaseUrl: string) {
  const target = new URL(databaseUrl);
  const links: Array<[net.Socket, net.Socket]> = [];
  const frozen: net.Socket[] = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    links.push([client, upstream]);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  const url = new URL(databaseUrl);
  url.hostname = '127.0.0.1';
  url.port = String(address.port);
  return {
    url: url.toString(),
    freeze() {
      for (const [client, upstream] of links.splice(0)) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
        frozen.push(client, upstream);
      }
    },
    async close() {
      for (const socket of [...frozen, ...links.flat()]) socket.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
describe('the control listener on a connection that died silently', () => {
  it('notices it by its ping and listens again on a new session', async () => {
    const proxy = await startFreezableProxy(db.url);
    const received: ControlMessage[] = [];
    let reconnects = 0;
    const listener = await listenControl(
      proxy.url,
      (message) => received.push(message),
      () => undefined,
      { onReconnect: () => (reconnects += 1), pingIntervalMs: 300, pingTimeoutMs: 500 },
    );
    try {
      proxy.freeze();
      await eventually(async () => reconnects === 1, 10_000);
      await sendControl(db.pool, { action: 'shutdown', worker: 'after a silent loss' });
      await eventually(async () => received.length === 1, 5000);
    } finally {
      await listener.close();
      await proxy.close();
    }
  });
});
