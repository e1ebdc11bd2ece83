import { describe, expect, it } from 'vitest';
import { ConfigError } from './config.error.ts';
import { parseRedisTarget } from './redis-target.ts';
import { redact } from './redact.ts';
import { parseSettings } from './settings.ts';

describe('parseSettings', () => {
  it('has the documented defaults with nothing set', () => {
    const s = parseSettings({});
    expect(s).toMatchObject({
      databaseUrl: undefined,
      brokerUrl: undefined,
      appEnv: 'development',
      hourlyRollupEnabled: true,
      monthlyRollupEnabled: true,
      retentionDays: 90,
      analyticsTimezone: 'UTC',
      dashboardPort: 5555,
      dbPoolMax: 10,
      logLevel: 'info',
      logFormat: undefined,
    });
    expect(Object.isFrozen(s)).toBe(true);
  });

  it('reads LOG_FORMAT as pretty or json, in any case', () => {
    expect(parseSettings({ LOG_FORMAT: 'PRETTY' }).logFormat).toBe('pretty');
    expect(parseSettings({ LOG_FORMAT: 'json' }).logFormat).toBe('json');
  });

  it('reads the seed variables and ours', () => {
    const s = parseSettings({
      DATABASE_URL: 'postgresql://u:p@db:5432/app',
      CELERY_BROKER_URL: 'redis://h:6379/1',
      CELERY_RESULT_BACKEND: 'rediss://h:6380/2',
      APP_ENV: 'production',
      WEEKLY_ROLLUP_ENABLED: 'false',
      RETENTION_DAYS: '30',
      ANALYTICS_TIMEZONE: 'Europe/Berlin',
      DASHBOARD_USER: 'admin',
      DASHBOARD_PASSWORD: 'secret',
    });
    expect(s).toMatchObject({
      databaseUrl: 'postgresql://u:p@db:5432/app',
      brokerUrl: 'redis://h:6379/1',
      resultBackendUrl: 'rediss://h:6380/2',
      appEnv: 'production',
      weeklyRollupEnabled: false,
      retentionDays: 30,
      analyticsTimezone: 'Europe/Berlin',
    });
  });

  it('reads TASK_TIME_LIMITS and the switches in any case, values trimmed', () => {
    const s = parseSettings({
      TASK_TIME_LIMITS: ' health_check=300:270 , hourly_rollup = 3600 ',
      HOURLY_ROLLUP_ENABLED: ' OFF ',
      WORKER_POOL: 'Threads',
    });
    expect(s.taskTimeLimits).toEqual({
      health_check: { hard: 300, soft: 270 },
      hourly_rollup: { hard: 3600, soft: undefined },
    });
    expect(s.hourlyRollupEnabled).toBe(false);
    expect(s.workerPool).toBe('threads');
  });

  it('prefers REDIS_URL over CELERY_BROKER_URL', () => {
    expect(parseSettings({ REDIS_URL: 'redis://a:1/0', CELERY_BROKER_URL: 'redis://b:2/1' }).brokerUrl).toBe(
      'redis://a:1/0',
    );
  });

  it.each<[string, string, string]>([
    ['HOURLY_ROLLUP_ENABLED', 'maybe', 'HOURLY_ROLLUP_ENABLED must be true or false, got "maybe"'],
    ['APP_ENV', 'prod', 'APP_ENV must be one of development, staging, production, got "prod"'],
    ['RETENTION_DAYS', '0', 'RETENTION_DAYS must be an integer from 1 to 36500, got "0"'],
    ['RETENTION_DAYS', '1e3', 'RETENTION_DAYS must be an integer from 1 to 36500, got "1e3"'],
    ['DASHBOARD_PORT', '70000', 'DASHBOARD_PORT must be an integer from 1 to 65535, got "70000"'],
    [
      'ANALYTICS_TIMEZONE',
      'Mars/Olympus',
      'ANALYTICS_TIMEZONE must be an IANA time zone such as UTC or Europe/Berlin, got "Mars/Olympus"',
    ],
    [
      'DATABASE_URL',
      'mysql://x',
      'DATABASE_URL must be a URL (postgres://… or postgresql://…), got "mysql://x"',
    ],
    [
      'REDIS_URL',
      'http://x',
      'REDIS_URL must be a Redis URL (redis://host:port[/db], rediss://…, redis+sentinel://s1:26379,s2:26379/<master>[/db] or redis+cluster://n1:7000,n2:7001): "http:" is not a Redis scheme, got "http://x"',
    ],
    [
      'REDIS_URL',
      'redis+sentinel://:pw@s1:26379,s2:26379',
      'REDIS_URL must be a Redis URL (redis://host:port[/db], rediss://…, redis+sentinel://s1:26379,s2:26379/<master>[/db] or redis+cluster://n1:7000,n2:7001): a sentinel URL names the primary after the hosts (…:26379/mymaster), got "redis+sentinel://:***@s1:26379,s2:26379"',
    ],
    [
      'CELERY_BROKER_URL',
      'redis+cluster://n1:7000,n2:x',
      'CELERY_BROKER_URL must be a Redis URL (redis://host:port[/db], rediss://…, redis+sentinel://s1:26379,s2:26379/<master>[/db] or redis+cluster://n1:7000,n2:7001): "n2:x" is not host:port, got "redis+cluster://n1:7000,n2:x"',
    ],
    [
      'LOG_LEVEL',
      'loud',
      'LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent, got "loud"',
    ],
    ['LOG_FORMAT', 'colour', 'LOG_FORMAT must be one of pretty, json, got "colour"'],
    ['WORKER_POOL', 'forks', 'WORKER_POOL must be one of async, threads, got "forks"'],
    [
      'DB_POOL_MAX',
      '9007199254740993',
      'DB_POOL_MAX must be an integer from 1 to 1000, got "9007199254740993"',
    ],
    ...['health_check=0', 'health_check=10:20', 'x=10,health check=5', 'health_check=10:'].map(
      (value) =>
        [
          'TASK_TIME_LIMITS',
          value,
          `TASK_TIME_LIMITS must be a list of task=hard[:soft] seconds, soft at most hard (e.g. health_check=300:270), got ${JSON.stringify(value)}`,
        ] as [string, string, string],
    ),
  ])('rejects %s=%s naming the variable, the rule and the value', (name, value, message) => {
    let caught: unknown;
    try {
      parseSettings({ [name]: value });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).message).toBe(message);
    expect((caught as ConfigError).variable).toBe(name);
  });

  it('requires dashboard user and password together, and a long enough token', () => {
    expect(() => parseSettings({ DASHBOARD_USER: 'admin' })).toThrow(/DASHBOARD_PASSWORD must be set/);
    expect(() => parseSettings({ DASHBOARD_READONLY_PASSWORD: 'x' })).toThrow(
      /DASHBOARD_READONLY_USER must be set/,
    );
    expect(() => parseSettings({ DASHBOARD_TOKEN: 'short' })).toThrow(
      'DASHBOARD_TOKEN must be at least 16 characters long, got "5 characters"',
    );
    expect(parseSettings({ DASHBOARD_TOKEN: 'a'.repeat(16) }).dashboardToken).toBe('a'.repeat(16));
  });

  it('never repeats a password in its messages', () => {
    expect(() => parseSettings({ DATABASE_URL: 'mysql://user:hunter2@db/x' })).toThrow(/user:\*\*\*@/);
    expect(redact('redis://:s3cret@h:6379/0')).toBe('redis://:***@h:6379/0');
    expect(redact('postgres://user:sec@retPW@[bad/db')).toBe('postgres://user:***@[bad/db');
    expect(redact('redis+sentinel://u:p@ss@s1:26379,s2:26379/m')).toBe(
      'redis+sentinel://u:***@s1:26379,s2:26379/m',
    );
  });

  it('reads Redis Sentinel and Redis Cluster URLs', () => {
    const sentinel = 'redis+sentinel://app:p%40ss@s1:26379,[::1]:26380,s3/mymaster/2?sentinel_password=sp';
    expect(parseSettings({ REDIS_URL: sentinel }).brokerUrl).toBe(sentinel);
    expect(parseRedisTarget(sentinel)).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: '::1', port: 26380 },
        { host: 's3', port: 26379 },
      ],
      masterName: 'mymaster',
      db: 2,
      username: 'app',
      password: 'p@ss',
      sentinelPassword: 'sp',
      tls: false,
    });
    expect(parseRedisTarget('rediss+cluster://:pw@n1:7000,n2:7001')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: 'n1', port: 7000 },
        { host: 'n2', port: 7001 },
      ],
      username: undefined,
      password: 'pw',
      tls: true,
    });
    expect(() => parseRedisTarget('redis+cluster://n1:7000/3')).toThrow(/no path/);
    expect(() => parseRedisTarget('redis+sentinel://s1/m?db=2')).toThrow(/unknown parameter "db"/);
  });
});
