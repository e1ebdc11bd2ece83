import { inject } from 'vitest';

/**
 * The Redis of the run, as the global setup found or started it (`redis-server.ts`): TEST_REDIS_URL,
 * the local one, or a redis-server of the run's own.
 */
export const testRedisUrl = inject('redisUrl');
