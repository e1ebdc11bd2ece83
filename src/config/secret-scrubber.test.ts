import { describe, expect, it } from 'vitest';
import { createSecretScrubber } from './secret-scrubber.ts';

describe('secret scrubber', () => {
  const scrub = createSecretScrubber({
    urls: [
      'postgres://app:s3cr%40t-pw@db:5432/x',
      undefined,
      'redis+sentinel://:redispass@s1:26379,s2:26379/m?sentinel_password=sentinel-pw',
    ],
    secrets: ['dashboard-pw', undefined, 'abc'],
  });

  it('removes known secrets wherever they appear, as written and decoded', () => {
    expect(scrub.text('password s3cr@t-pw, s3cr%40t-pw, redispass, sentinel-pw and dashboard-pw')).toBe(
      'password ***, ***, ***, *** and ***',
    );
  });

  it('removes the password of any URL and of any password parameter', () => {
    expect(
      scrub.text(
        'could not connect to postgres://u:other@h/db, amqp://x:y@z, postgres://user:sec@retPW@[bad/db',
      ),
    ).toBe('could not connect to postgres://u:***@h/db, amqp://x:***@z, postgres://user:***@[bad/db');
    expect(scrub.text('REDIS_URL=redis+sentinel://s1:26379/m?sentinel_password=other-pw')).toBe(
      'REDIS_URL=redis+sentinel://s1:26379/m?sentinel_password=***',
    );
  });

  it('walks JSON values, hides credential fields whole and ignores secrets too short to be specific', () => {
    expect(
      scrub.value({
        a: ['redispass', 1, null],
        b: {
          c: 'abc',
          databaseUrl: 'postgres://u:pw-in-field@h/db',
          connectionString: 'password=cs-pw host=h',
        },
        dashboardToken: 'tok-123456',
        nested: [{ sentinelPassword: 'sp' }],
      }),
    ).toEqual({
      a: ['***', 1, null],
      b: { c: 'abc', databaseUrl: 'postgres://u:***@h/db', connectionString: 'password=*** host=h' },
      dashboardToken: '***',
      nested: [{ sentinelPassword: '***' }],
    });
  });

  it('a 40,000-character argument is scrubbed whole, its URL passwords too', () => {
    const text = `${'p'.repeat(40_000)} postgres://app:hunter2@db/x dashboard-pw`;
    expect(scrub.value({ note: text })).toEqual({
      note: `${'p'.repeat(40_000)} postgres://app:***@db/x ***`,
    });
  });
});
