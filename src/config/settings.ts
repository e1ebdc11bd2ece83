import { ConfigError } from './config.error.ts';

export type AppEnv = 'development' | 'staging' | 'production';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** Everything aggjobs reads from its environment, validated once and frozen. */
export interface Settings {
  /** Unset: an embedded PostgreSQL under `dataDir`. */
  readonly databaseUrl: string | undefined;
  /** `REDIS_URL`, else `CELERY_BROKER_URL`. Unset: BullMQ's PostgreSQL backend on the database. */
  readonly brokerUrl: string | undefined;
  readonly resultBackendUrl: string | undefined;
  readonly appEnv: AppEnv;
  readonly hourlyRollupEnabled: boolean;
  readonly dailyRollupEnabled: boolean;
  readonly weeklyRollupEnabled: boolean;
  readonly monthlyRollupEnabled: boolean;
  readonly retentionDays: number;
  readonly analyticsTimezone: string;
  readonly dashboardPort: number;
  readonly dashboardUser: string | undefined;
  readonly dashboardPassword: string | undefined;
  readonly dbPoolMax: number;
  readonly logLevel: LogLevel;
  /** Where the embedded database and other local state live. */
  readonly dataDir: string;
  /** Upper bound for one statement of a rollup transaction, milliseconds. */
  readonly statementTimeoutMs: number;
  /** How long a rollup waits for a lock before giving up, milliseconds. */
  readonly lockTimeoutMs: number;
  /** Rows of one source table a retention batch deletes in one statement. */
  readonly cleanupBatchSize: number;
}

type Env = Readonly<Record<string, string | undefined>>;

function raw(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function url(env: Env, name: string, protocols: readonly string[]): string | undefined {
  const value = raw(env, name);
  if (value === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(name, `a URL (${protocols.map((p) => `${p}//…`).join(' or ')})`, redact(value));
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `a URL (${protocols.map((p) => `${p}//…`).join(' or ')})`, redact(value));
  }
  return value;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const lower = value.toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(lower)) return true;
  if (['false', '0', 'no', 'off'].includes(lower)) return false;
  throw new ConfigError(name, 'true or false', value);
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const n = /^-?\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(name, `an integer from ${min} to ${max}`, value);
  }
  return n;
}

function oneOf<T extends string>(env: Env, name: string, values: readonly T[], fallback: T): T {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const found = values.find((v) => v === value.toLowerCase());
  if (found === undefined) throw new ConfigError(name, `one of ${values.join(', ')}`, value);
  return found;
}

export function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function timeZone(env: Env, name: string, fallback: string): string {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  if (!isValidTimeZone(value))
    throw new ConfigError(name, 'an IANA time zone such as UTC or Europe/Berlin', value);
  return value;
}

/** Replaces the password of a URL with `***`, so a setting can be named in a message or a log line. */
export function redact(value: string): string {
  try {
    const parsed = new URL(value);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return value.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
  }
}

/** Reads and validates every setting; throws `ConfigError` naming the first bad one. */
export function parseSettings(env: Env): Settings {
  const appEnv = oneOf(env, 'APP_ENV', ['development', 'staging', 'production'] as const, 'development');
  const redisProtocols = ['redis:', 'rediss:'];
  const settings: Settings = {
    databaseUrl: url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']),
    brokerUrl: url(env, 'REDIS_URL', redisProtocols) ?? url(env, 'CELERY_BROKER_URL', redisProtocols),
    resultBackendUrl: url(env, 'CELERY_RESULT_BACKEND', redisProtocols),
    appEnv,
    hourlyRollupEnabled: bool(env, 'HOURLY_ROLLUP_ENABLED', true),
    dailyRollupEnabled: bool(env, 'DAILY_ROLLUP_ENABLED', true),
    weeklyRollupEnabled: bool(env, 'WEEKLY_ROLLUP_ENABLED', true),
    monthlyRollupEnabled: bool(env, 'MONTHLY_ROLLUP_ENABLED', true),
    retentionDays: int(env, 'RETENTION_DAYS', 90, 1, 36500),
    analyticsTimezone: timeZone(env, 'ANALYTICS_TIMEZONE', 'UTC'),
    dashboardPort: int(env, 'DASHBOARD_PORT', 5555, 1, 65535),
    dashboardUser: raw(env, 'DASHBOARD_USER'),
    dashboardPassword: raw(env, 'DASHBOARD_PASSWORD'),
    dbPoolMax: int(env, 'DB_POOL_MAX', 10, 1, 1000),
    logLevel: oneOf(
      env,
      'LOG_LEVEL',
      ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const,
      'info',
    ),
    dataDir: raw(env, 'AGGJOBS_DATA_DIR') ?? '.aggjobs',
    statementTimeoutMs: int(env, 'ROLLUP_STATEMENT_TIMEOUT_MS', 600_000, 100, 86_400_000),
    lockTimeoutMs: int(env, 'ROLLUP_LOCK_TIMEOUT_MS', 30_000, 10, 3_600_000),
    cleanupBatchSize: int(env, 'CLEANUP_BATCH_SIZE', 10_000, 1, 10_000_000),
  };
  if ((settings.dashboardUser === undefined) !== (settings.dashboardPassword === undefined)) {
    const missing = settings.dashboardUser === undefined ? 'DASHBOARD_USER' : 'DASHBOARD_PASSWORD';
    throw new ConfigError(missing, 'set when the other of DASHBOARD_USER/DASHBOARD_PASSWORD is set', '');
  }
  return Object.freeze(settings);
}
