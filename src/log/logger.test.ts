import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseSettings, settingsScrubber } from '../config/index.ts';
import { createLogger, type LogLine } from './logger.ts';

const settings = parseSettings({
  DATABASE_URL: 'postgres://app:db-secret-1@db:5432/x',
  REDIS_URL: 'redis+sentinel://:redis-secret-2@s1:26379,s2:26379/m?sentinel_password=sentinel-secret-3',
  DASHBOARD_USER: 'admin',
  DASHBOARD_PASSWORD: 'dashboard-secret-4',
});
const secrets = [
  'db-secret-1',
  'redis-secret-2',
  'sentinel-secret-3',
  'dashboard-secret-4',
  'sec@retPW',
  'retPW',
  'field-pw',
];

/** Every kind of place a secret reaches a log line: message, fields, an error's message and stack. */
function logEverything(logger: ReturnType<typeof createLogger>): void {
  const run = logger.child({ runId: 'r1' });
  run.info(
    {
      databaseUrl: settings.databaseUrl,
      brokerUrl: settings.brokerUrl,
      connectionString: 'host=h password=field-pw',
    },
    `connecting to ${settings.databaseUrl ?? ''} and ${settings.brokerUrl ?? ''}`,
  );
  run.warn(
    { password: 'field-pw', nested: { url: 'postgres://user:sec@retPW@[bad/db' } },
    'dashboard-secret-4 seen',
  );
  run.error(new Error('could not connect to postgres://user:sec@retPW@[bad/db'), 'refresh failed');
  run.error({ err: new Error(`auth failed for ${settings.brokerUrl ?? ''}`) }, 'broker down');
}

describe('logger', () => {
  afterEach(() => vi.restoreAllMocks());

  it('hides every secret in the lines a run keeps: message, fields, error message and stack', () => {
    const lines: LogLine[] = [];
    logEverything(
      createLogger('silent', { onLine: (line) => lines.push(line), scrub: settingsScrubber(settings) }),
    );
    expect(lines.map((l) => l.msg)).toEqual([
      'connecting to postgres://app:***@db:5432/x and redis+sentinel://:***@s1:26379,s2:26379/m?sentinel_password=***',
      '*** seen',
      'refresh failed',
      'broker down',
    ]);
    expect(lines[0]?.data).toEqual({
      databaseUrl: 'postgres://app:***@db:5432/x',
      brokerUrl: 'redis+sentinel://:***@s1:26379,s2:26379/m?sentinel_password=***',
      connectionString: 'host=h password=***',
    });
    expect(lines[1]?.data).toEqual({ password: '***', nested: { url: 'postgres://user:***@[bad/db' } });
    const err = lines[2]?.data?.err as { message: string; stack: string };
    expect(err.message).toBe('could not connect to postgres://user:***@[bad/db');
    expect(err.stack).toContain('Error: could not connect to postgres://user:***@[bad/db\n    at ');
    const all = JSON.stringify(lines);
    for (const secret of secrets) expect(all, secret).not.toContain(secret);
  });

  it('hides them in what it writes to stdout, without knowing the settings too', () => {
    const written: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => written.push(String(chunk)) > 0);
    logEverything(createLogger('info', { format: 'pretty' }));
    expect(written).toHaveLength(4);
    const all = written.join('');
    expect(all).toContain('connecting to postgres://app:***@db:5432/x and redis+sentinel://:***@s1');
    expect(all).toContain('err="could not connect to postgres://user:***@[bad/db"');
    // The one secret only the settings know stays: a secret in plain text needs settingsScrubber.
    for (const secret of secrets.filter((s) => s !== 'dashboard-secret-4'))
      expect(all, secret).not.toContain(secret);
  });
});
