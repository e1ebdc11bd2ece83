import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './processes.ts';

/** The Redis of a test run and how to let it go at the end. */
export interface RunRedis {
  readonly url: string;
  /** True when this run started it (a redis-server of its own). */
  readonly startedHere: boolean;
  stop(): Promise<void>;
}

/** True when a Redis answers PING at `url` within two seconds. */
async function answers(url: string): Promise<boolean> {
  const probe = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 2000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

/**
 * A `redis-server` from PATH for this run: a free loopback port, a temporary directory, nothing
 * persisted (no RDB snapshots, no AOF). Stopped, and its directory removed, by `stop()`; killed too
 * if the run's process exits without its teardown.
 */
async function startRedisServer(): Promise<RunRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'aggjobs-test-redis-'));
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const exited = new Promise<NodeJS.ErrnoException | number | null>((resolve) => {
    child.once('error', resolve);
    child.once('exit', resolve);
  });
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const stop = async (): Promise<void> => {
    process.off('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const early = await Promise.race([
      exited,
      new Promise<'running'>((r) => setTimeout(() => r('running'), 100)),
    ]);
    if (early !== 'running') {
      await stop();
      if (typeof early === 'object' && early?.code === 'ENOENT') {
        throw new Error(
          'Redis for the tests: TEST_REDIS_URL is unset, nothing answers on the local address and there is no redis-server on PATH; install one (Debian/Ubuntu: apt-get install redis-server, macOS: brew install redis) or set TEST_REDIS_URL',
        );
      }
      throw new Error(`Redis for the tests: redis-server on port ${port} exited at start (${String(early)})`);
    }
    if (await answers(url)) return { url, startedHere: true, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`Redis for the tests: redis-server on port ${port} did not answer within 10 s`);
    }
  }
}

/**
 * The Redis of the run: TEST_REDIS_URL when set; else the local one when it answers
 * (TEST_REDIS_LOCAL_URL, default redis://127.0.0.1:6379; point it at a closed port to try the
 * fallback); else a redis-server started for the run.
 */
export async function findTestRedis(): Promise<RunRedis> {
  const given = process.env.TEST_REDIS_URL;
  if (given !== undefined && given !== '')
    return { url: given, startedHere: false, stop: async () => undefined };
  const local = process.env.TEST_REDIS_LOCAL_URL ?? 'redis://127.0.0.1:6379';
  if (await answers(local)) return { url: local, startedHere: false, stop: async () => undefined };
  return await startRedisServer();
}
