import { describe, expect, it } from 'vitest';
import { createSecretScrubber } from './secret-scrubber.ts';

describe('secret scrubber', () => {
  const scrub = createSecretScrubber({
    urls: ['postgres://app:s3cr%40t-pw@db:5432/x', undefined, 'redis://:redispass@r:6379'],
    secrets: ['dashboard-pw', undefined, 'abc'],
  });

  it('removes known secrets wherever they appear', () => {
    expect(scrub.text('password s3cr@t-pw and redispass and dashboard-pw')).toBe(
      'password *** and *** and ***',
    );
  });

  it('removes the password of any URL', () => {
    expect(scrub.text('could not connect to postgres://u:other@h/db, amqp://x:y@z')).toBe(
      'could not connect to postgres://u:***@h/db, amqp://x:***@z',
    );
  });

  it('walks JSON values and ignores secrets too short to be specific', () => {
    expect(scrub.value({ a: ['redispass', 1, null], b: { c: 'abc' } })).toEqual({
      a: ['***', 1, null],
      b: { c: 'abc' },
    });
  });
});
