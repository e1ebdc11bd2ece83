/**
 * "Shut down" from the dashboard (a control message) ends the `aggjobs worker` process, not only
 * its worker handle: a process left running without a worker would look alive and run nothing.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sendControl } from '../../src/runtime/index.ts';
import { createTestDatabase } from '../support/database.ts';
import { spawnCli } from '../reliability/cli-process.ts';

const db = await createTestDatabase();

describe('a shutdown requested from another process', () => {
  it('stops the worker and its process exits 0, its row marked stopped', async () => {
    const name = `remote-${randomBytes(3).toString('hex')}`;
    const worker = spawnCli(
      ['worker', '-c', '1', '-Q', 'maintenance', '-n', name],
      {
        DATABASE_URL: db.url,
        REDIS_URL: '',
        CELERY_BROKER_URL: '',
        BROKER_KEY_PREFIX: `{r${randomBytes(4).toString('hex')}}`,
        LOG_LEVEL: 'info',
      },
      90_000,
    );
    try {
      await worker.waitFor(/worker \S+ ready/);
      await sendControl(db.pool, { action: 'shutdown', worker: name });
      expect(await worker.exited).toBe(0);
      expect(worker.output()).toContain('shutdown requested from another process: this worker process exits');
      const { rows } = await db.pool.query<{ stopped: boolean }>(
        'SELECT stopped_at IS NOT NULL AS stopped FROM aggjobs.workers WHERE name = $1',
        [name],
      );
      expect(rows).toEqual([{ stopped: true }]);
    } finally {
      await worker.stop('SIGKILL');
    }
  });
});
