import { parseRedisTarget, redisUrlForms } from './redis-target.ts';
import { ConfigError } from './config.error.ts';

export type AppEnv = 'development' | 'staging' | 'production';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
export type LogFormat = 'pretty' | 'json';

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
  /** Bearer token with full access, for scripts. */
  readonly dashboardToken: string | undefined;
  /** A second basic-auth user that may only read (GET). */
  readonly dashboardReadonlyUser: string | undefined;
  readonly dashboardReadonlyPassword: string | undefined;
  readonly dbPoolMax: number;
  readonly logLevel: LogLevel;
  /** `LOG_FORMAT`. Unset: pretty lines when stdout is a terminal, JSON lines otherwise. */
  readonly logFormat: LogFormat | undefined;
  /** Where the embedded database and other local state live. */
  readonly dataDir: string;
  /** Upper bound for one statement of a rollup transaction, milliseconds. */
  readonly statementTimeoutMs: number;
  /** How long a rollup waits for a lock before giving up, milliseconds. */
  readonly lockTimeoutMs: number;
  /** Rows of one source table a retention batch deletes in one statement. */
  readonly cleanupBatchSize: number;
  /** Redis key prefix of every BullMQ key; a `{hash tag}` keeps one queue's keys in one Redis Cluster slot. */
  readonly brokerKeyPrefix: string;
  /** Seconds a task result is kept in CELERY_RESULT_BACKEND (Celery's `result_expires`). */
  readonly resultExpiresSeconds: number;
  /** Rows of aggjobs.task_runs older than this many days are pruned (by cleanup_old_data). */
  readonly runHistoryDays: number;
  /** Default soft and hard time limits (seconds) of a task that declares none (Celery's task_soft_time_limit/task_time_limit). */
  readonly taskSoftTimeLimitSeconds: number;
  readonly taskHardTimeLimitSeconds: number;
  /** Per-task overrides: `TASK_TIME_LIMITS=hourly_rollup=3600:3300,health_check=300` (hard[:soft] seconds). */
  readonly taskTimeLimits: Readonly<Record<string, { hard: number; soft: number | undefined }>>;
  /** Attempts after the first for transient failures (lost connection, serialization failure, deadlock). */
  readonly taskMaxRetries: number;
  /** First retry delay in milliseconds; doubles with each attempt. */
  readonly taskRetryBackoffMs: number;
  /** Retry a task that hit its time limit (Celery never does; off by default). */
  readonly taskRetryOnTimeout: boolean;
  /** After downtime, enqueue the missed slots of each schedule: once (the latest), all, or none. */
  readonly beatCatchup: 'once' | 'all' | 'none';
  /** Seconds a beat's leadership lasts without renewal: the failover time when the leader dies. */
  readonly beatLeaseSeconds: number;
  readonly workerConcurrency: number;
  /**
   * `WORKER_POOL`: where tasks run. `async` (default): in the worker's event loop, for tasks that
   * wait on PostgreSQL (the hard limit terminates the run's sessions). `threads`: each task in a
   * worker thread (~33 MiB more per slot), which can also stop a task that never yields.
   */
  readonly workerPool: 'async' | 'threads';
  readonly workerMaxTasksPerChild: number;
  /** KiB of heap a task thread may use before it is replaced (0: no limit), like Celery's --max-memory-per-child. */
  readonly workerMaxMemoryPerChildKb: number;
  /** Seconds a stopping worker lets running tasks finish before aborting them. */
  readonly workerShutdownGraceSeconds: number;
  /**
   * Seconds a running job's lock lasts without renewal (renewed every half of it): a job of a worker
   * that died (kill -9, lost machine) is taken by another worker after about this long.
   */
  readonly workerLockSeconds: number;
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

/** A Redis URL in one of the forms of RedisTarget (one server, sentinels, or a cluster). */
function redisUrl(env: Env, name: string): string | undefined {
  const value = raw(env, name);
  if (value === undefined) return undefined;
  try {
    parseRedisTarget(value);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new ConfigError(name, `a Redis URL (${redisUrlForms}): ${why}`, redact(value));
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

/** `task=hard[:soft],…` in seconds. */
function timeLimits(env: Env, name: string): Record<string, { hard: number; soft: number | undefined }> {
  const value = raw(env, name);
  const limits: Record<string, { hard: number; soft: number | undefined }> = {};
  if (value === undefined) return limits;
  for (const item of value.split(',')) {
    const match = /^\s*([a-z_]+)\s*=\s*(\d+)(?::(\d+))?\s*$/.exec(item);
    const hard = Number(match?.[2]);
    const soft = match?.[3] === undefined ? undefined : Number(match[3]);
    if (match === null || hard < 1 || (soft !== undefined && (soft < 1 || soft > hard))) {
      throw new ConfigError(
        name,
        'a list of task=hard[:soft] seconds, soft at most hard (e.g. health_check=300:270)',
        value,
      );
    }
    limits[match[1] ?? ''] = { hard, soft };
  }
  return limits;
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
    if (parsed.password === '') return value;
    parsed.password = '***';
    return parsed.toString();
  } catch {
    // Not a WHATWG URL (several hosts, or malformed): the password runs to the last @ of the authority.
    return value.replace(/\/\/([^:/@]*):[^/]*@/, '//$1:***@');
  }
}

/** Reads and validates every setting; throws `ConfigError` naming the first bad one. */
export function parseSettings(env: Env): Settings {
  const appEnv = oneOf(env, 'APP_ENV', ['development', 'staging', 'production'] as const, 'development');
  const settings: Settings = {
    databaseUrl: url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']),
    brokerUrl: redisUrl(env, 'REDIS_URL') ?? redisUrl(env, 'CELERY_BROKER_URL'),
    resultBackendUrl: redisUrl(env, 'CELERY_RESULT_BACKEND'),
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
    dashboardToken: raw(env, 'DASHBOARD_TOKEN'),
    dashboardReadonlyUser: raw(env, 'DASHBOARD_READONLY_USER'),
    dashboardReadonlyPassword: raw(env, 'DASHBOARD_READONLY_PASSWORD'),
    dbPoolMax: int(env, 'DB_POOL_MAX', 10, 1, 1000),
    logLevel: oneOf(
      env,
      'LOG_LEVEL',
      ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const,
      'info',
    ),
    logFormat:
      raw(env, 'LOG_FORMAT') === undefined
        ? undefined
        : oneOf(env, 'LOG_FORMAT', ['pretty', 'json'] as const, 'json'),
    dataDir: raw(env, 'AGGJOBS_DATA_DIR') ?? '.aggjobs',
    statementTimeoutMs: int(env, 'ROLLUP_STATEMENT_TIMEOUT_MS', 600_000, 100, 86_400_000),
    lockTimeoutMs: int(env, 'ROLLUP_LOCK_TIMEOUT_MS', 30_000, 10, 3_600_000),
    cleanupBatchSize: int(env, 'CLEANUP_BATCH_SIZE', 10_000, 1, 10_000_000),
    brokerKeyPrefix: raw(env, 'BROKER_KEY_PREFIX') ?? '{aggjobs}',
    resultExpiresSeconds: int(env, 'CELERY_RESULT_EXPIRES', 86_400, 1, 31_536_000),
    runHistoryDays: int(env, 'RUN_HISTORY_DAYS', 30, 1, 36500),
    taskSoftTimeLimitSeconds: int(env, 'TASK_SOFT_TIME_LIMIT', 3300, 1, 604_800),
    taskHardTimeLimitSeconds: int(env, 'TASK_HARD_TIME_LIMIT', 3600, 1, 604_800),
    taskTimeLimits: Object.freeze(timeLimits(env, 'TASK_TIME_LIMITS')),
    taskMaxRetries: int(env, 'TASK_MAX_RETRIES', 3, 0, 100),
    taskRetryBackoffMs: int(env, 'TASK_RETRY_BACKOFF_MS', 5000, 1, 3_600_000),
    taskRetryOnTimeout: bool(env, 'TASK_RETRY_ON_TIMEOUT', false),
    beatCatchup: oneOf(env, 'BEAT_CATCHUP', ['once', 'all', 'none'] as const, 'once'),
    beatLeaseSeconds: int(env, 'BEAT_LEASE_SECONDS', 10, 2, 3600),
    workerConcurrency: int(env, 'WORKER_CONCURRENCY', 4, 1, 256),
    workerPool: oneOf(env, 'WORKER_POOL', ['async', 'threads'] as const, 'async'),
    workerMaxTasksPerChild: int(env, 'WORKER_MAX_TASKS_PER_CHILD', 1000, 1, 1_000_000_000),
    workerMaxMemoryPerChildKb: int(env, 'WORKER_MAX_MEMORY_PER_CHILD', 0, 0, 1_000_000_000),
    workerShutdownGraceSeconds: int(env, 'WORKER_SHUTDOWN_GRACE', 30, 0, 86_400),
    workerLockSeconds: int(env, 'WORKER_LOCK_SECONDS', 30, 2, 3600),
  };
  if (settings.taskSoftTimeLimitSeconds > settings.taskHardTimeLimitSeconds) {
    throw new ConfigError(
      'TASK_SOFT_TIME_LIMIT',
      `at most TASK_HARD_TIME_LIMIT (${settings.taskHardTimeLimitSeconds})`,
      String(settings.taskSoftTimeLimitSeconds),
    );
  }
  if ((settings.dashboardUser === undefined) !== (settings.dashboardPassword === undefined)) {
    const missing = settings.dashboardUser === undefined ? 'DASHBOARD_USER' : 'DASHBOARD_PASSWORD';
    throw new ConfigError(missing, 'set when the other of DASHBOARD_USER/DASHBOARD_PASSWORD is set', '');
  }
  if ((settings.dashboardReadonlyUser === undefined) !== (settings.dashboardReadonlyPassword === undefined)) {
    const missing =
      settings.dashboardReadonlyUser === undefined
        ? 'DASHBOARD_READONLY_USER'
        : 'DASHBOARD_READONLY_PASSWORD';
    throw new ConfigError(
      missing,
      'set when the other of DASHBOARD_READONLY_USER/DASHBOARD_READONLY_PASSWORD is set',
      '',
    );
  }
  if (settings.dashboardToken !== undefined && settings.dashboardToken.length < 16) {
    // The value itself is a secret: name its length, never the token.
    throw new ConfigError(
      'DASHBOARD_TOKEN',
      'at least 16 characters long',
      `${settings.dashboardToken.length} characters`,
    );
  }
  return Object.freeze(settings);
}
