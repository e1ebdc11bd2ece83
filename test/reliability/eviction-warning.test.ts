/**
 * README: "the worker warns loudly at start" when Redis may evict keys. Checked on a redis-server of
 * our own (the shared one is never reconfigured): one with an evicting policy, one with noeviction.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createBroker } from '../../src/runtime/index.ts';
import { startOwnRedis, type OwnRedis } from './own-servers.ts';

const servers: OwnRedis[] = [];
afterAll(async () => {
  for (const s of servers) await s.destroy();
});

async function warningsWith(policy: string): Promise<string[]> {
  const redis = await startOwnRedis(['--save', '', '--appendonly', 'no', '--maxmemory-policy', policy]);
  servers.push(redis);
  const warnings: string[] = [];
  const broker = await createBroker({
    brokerUrl: redis.url(),
    databaseUrl: 'postgres://unused@127.0.0.1:1/unused',
    namespace: '{aggjobs-evict}',
    onWarning: (m) => warnings.push(m),
  });
  await broker.close();
  return warnings;
}

describe('Redis eviction policy', () => {
  it('warns, naming the policy and the fix, when Redis may evict queued jobs', async () => {
    const warnings = await warningsWith('allkeys-lru');
    expect(warnings).toEqual([
      expect.stringContaining('maxmemory-policy is "allkeys-lru", not "noeviction"'),
    ]);
  });

  it('says nothing with noeviction', async () => {
    expect(await warningsWith('noeviction')).toEqual([]);
  });
});
