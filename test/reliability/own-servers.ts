import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../support/processes.ts';

/**
 * Servers of our own for the fault tests: the shared Redis on 6379 and PostgreSQL on 5432 are never
 * restarted. Each lives on a free loopback port with its data in a temporary directory.
 */

export interface OwnRedis {
  readonly port: number;
  readonly dir: string;
  /** `redis://[auth@]127.0.0.1:<port>` */
  url(auth?: string): string;
  /** Kill -9 (nothing flushed beyond what the AOF already holds). */
  kill(): Promise<void>;
  start(): Promise<void>;
  /** Kill and remove the data directory. */
  destroy(): Promise<void>;
}

/** A redis-server of our own: `args` are extra options (e.g. `--appendonly yes`, `--requirepass x`). */
export async function startOwnRedis(
  args: string[],
  ping?: { password?: string; username?: string },
): Promise<OwnRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'aggjobs-redis-'));
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...args], {
      stdio: 'ignore',
    });
    const deadline = Date.now() + 10_000;
    for (;;) {
      const probe = new Redis({
        port,
        host: '127.0.0.1',
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        ...(ping ?? {}),
      });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        // Loading the AOF: PING answers LOADING until it is done.
        if ((await probe.ping()) === 'PONG') {
          probe.disconnect();
          return;
        }
      } catch {
        // not up yet
      }
      probe.disconnect();
      if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not start`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const kill = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (c === undefined || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    port,
    dir,
    url: (auth) => `redis://${auth === undefined ? '' : `${auth}@`}127.0.0.1:${port}`,
    kill,
    start,
    async destroy() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
