import { z } from 'zod';
import { parseRedisTarget, redisUrlForms } from './redis-target.ts';
import { ConfigError } from './config.error.ts';
import { redact } from './redact.ts';

export type AppEnv = 'development' | 'staging' | 'production';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
export type LogFormat = 'pretty' | 'json';
export type SourcePartitions = 'none' | 'day' | 'week';

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
  /**
   * Days of source time one backfill window covers (rounded up to whole buckets of its grain).
   * Unset: sized by the sources' rows (src/tasks/backfill-plan.ts), else a day of hours, a week of
   * days, four weeks, a month.
   */
  readonly backfillWindowDays: number | undefined;
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
  /**
   * `PARTITION_LEAD_DAYS`: days ahead of now that a source table partitioned by its time column
   * has partitions (created by `aggjobs migrate` and by cleanup_old_data).
   */
  readonly partitionLeadDays: number;
  /**
   * `SOURCE_PARTITIONS`: how `aggjobs migrate` creates the source tables that retention cleans when
   * they do not exist yet: `none` (plain tables), `day` or `week` (range-partitioned by their time
   * column). It never converts a table that exists (src/rollups/partitioned-sources.ts).
   */
  readonly sourcePartitions: SourcePartitions;
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

/**
 * One variable: a zod schema for its (trimmed, non-empty) text, and the rule a ConfigError names
 * when the schema refuses it (a function of the issue where the rule depends on the value).
 */
interface Variable<T> {
  readonly schema: z.ZodType<T, string>;
  readonly rule: string | ((issue: z.core.$ZodIssue) => string);
  /** How the refused value is shown: a URL's password is hidden. */
  readonly shown?: (value: string) => string;
}

function int(min: number, max: number): Variable<number> {
  return {
    schema: z
      .string()
      .regex(/^-?\d+$/)
      .transform(Number)
      .pipe(z.number().int().min(min).max(max)),
    rule: `an integer from ${min} to ${max}`,
  };
}

const truthy = ['true', '1', 'yes', 'on'] as const;
const falsy = ['false', '0', 'no', 'off'] as const;
const bool: Variable<boolean> = {
  schema: z
    .string()
    .toLowerCase()
    .pipe(z.enum([...truthy, ...falsy]))
    .transform((v) => (truthy as readonly string[]).includes(v)),
  rule: 'true or false',
};

function oneOf<const T extends readonly [string, ...string[]]>(values: T): Variable<T[number]> {
  return { schema: z.string().toLowerCase().pipe(z.enum(values)), rule: `one of ${values.join(', ')}` };
}

const text: Variable<string> = { schema: z.string(), rule: 'text' };

function url(protocols: readonly string[]): Variable<string> {
  return {
    schema: z.string().refine((v) => URL.canParse(v) && protocols.includes(new URL(v).protocol)),
    rule: `a URL (${protocols.map((p) => `${p}//…`).join(' or ')})`,
    shown: redact,
  };
}

/** A Redis URL in one of the forms of RedisTarget (one server, sentinels, or a cluster). */
const redisUrl: Variable<string> = {
  schema: z.string().superRefine((value, ctx) => {
    try {
      parseRedisTarget(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: error instanceof Error ? error.message : String(error) });
    }
  }),
  rule: (issue) => `a Redis URL (${redisUrlForms}): ${issue.message}`,
  shown: redact,
};

export function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const timeZone: Variable<string> = {
  schema: z.string().refine(isValidTimeZone),
  rule: 'an IANA time zone such as UTC or Europe/Berlin',
};

/** `task=hard[:soft],…` in seconds. */
const timeLimits: Variable<Record<string, { hard: number; soft: number | undefined }>> = {
  schema: z
    .string()
    .transform((v) => v.split(','))
    .pipe(
      z.array(
        z
          .string()
          .regex(/^\s*[a-z_]+\s*=\s*\d+(?::\d+)?\s*$/)
          .transform((item) => {
            const [task = '', seconds = ''] = item.split('=').map((p) => p.trim());
            const [hard, soft] = seconds.split(':').map(Number);
            return [task, { hard: hard ?? 0, soft }] as const;
          })
          .refine(([, l]) => l.hard >= 1 && (l.soft === undefined || (l.soft >= 1 && l.soft <= l.hard))),
      ),
    )
    .transform((items) => Object.fromEntries(items)),
  rule: 'a list of task=hard[:soft] seconds, soft at most hard (e.g. health_check=300:270)',
};

/** The variable's value (trimmed; undefined when unset or blank), or `fallback`; throws ConfigError. */
function read<T>(env: Env, name: string, variable: Variable<T>, fallback: T): T;
function read<T>(env: Env, name: string, variable: Variable<T>): T | undefined;
function read<T>(env: Env, name: string, variable: Variable<T>, fallback?: T): T | undefined {
  const value = env[name]?.trim();
  if (value === undefined || value === '') return fallback;
  const result = variable.schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const rule =
    typeof variable.rule === 'string' || issue === undefined ? String(variable.rule) : variable.rule(issue);
  throw new ConfigError(name, rule, variable.shown?.(value) ?? value);
}

/** Reads and validates every setting; throws `ConfigError` naming the first bad one. */
export function parseSettings(env: Env): Settings {
  const appEnv = read(env, 'APP_ENV', oneOf(['development', 'staging', 'production']), 'development');
  const settings: Settings = {
    databaseUrl: read(env, 'DATABASE_URL', url(['postgres:', 'postgresql:'])),
    brokerUrl: read(env, 'REDIS_URL', redisUrl) ?? read(env, 'CELERY_BROKER_URL', redisUrl),
    resultBackendUrl: read(env, 'CELERY_RESULT_BACKEND', redisUrl),
    appEnv,
    hourlyRollupEnabled: read(env, 'HOURLY_ROLLUP_ENABLED', bool, true),
    dailyRollupEnabled: read(env, 'DAILY_ROLLUP_ENABLED', bool, true),
    weeklyRollupEnabled: read(env, 'WEEKLY_ROLLUP_ENABLED', bool, true),
    monthlyRollupEnabled: read(env, 'MONTHLY_ROLLUP_ENABLED', bool, true),
    retentionDays: read(env, 'RETENTION_DAYS', int(1, 36500), 90),
    backfillWindowDays: read(env, 'BACKFILL_WINDOW_DAYS', int(1, 366)),
    analyticsTimezone: read(env, 'ANALYTICS_TIMEZONE', timeZone, 'UTC'),
    dashboardPort: read(env, 'DASHBOARD_PORT', int(1, 65535), 5555),
    dashboardUser: read(env, 'DASHBOARD_USER', text),
    dashboardPassword: read(env, 'DASHBOARD_PASSWORD', text),
    dashboardToken: read(env, 'DASHBOARD_TOKEN', text),
    dashboardReadonlyUser: read(env, 'DASHBOARD_READONLY_USER', text),
    dashboardReadonlyPassword: read(env, 'DASHBOARD_READONLY_PASSWORD', text),
    dbPoolMax: read(env, 'DB_POOL_MAX', int(1, 1000), 10),
    logLevel: read(
      env,
      'LOG_LEVEL',
      oneOf(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
      'info',
    ),
    logFormat: read(env, 'LOG_FORMAT', oneOf(['pretty', 'json'])),
    dataDir: read(env, 'AGGJOBS_DATA_DIR', text) ?? '.aggjobs',
    statementTimeoutMs: read(env, 'ROLLUP_STATEMENT_TIMEOUT_MS', int(100, 86_400_000), 600_000),
    lockTimeoutMs: read(env, 'ROLLUP_LOCK_TIMEOUT_MS', int(10, 3_600_000), 30_000),
    cleanupBatchSize: read(env, 'CLEANUP_BATCH_SIZE', int(1, 10_000_000), 10_000),
    partitionLeadDays: read(env, 'PARTITION_LEAD_DAYS', int(2, 366), 7),
    sourcePartitions: read(env, 'SOURCE_PARTITIONS', oneOf(['none', 'day', 'week']), 'none'),
    brokerKeyPrefix: read(env, 'BROKER_KEY_PREFIX', text) ?? '{aggjobs}',
    resultExpiresSeconds: read(env, 'CELERY_RESULT_EXPIRES', int(1, 31_536_000), 86_400),
    runHistoryDays: read(env, 'RUN_HISTORY_DAYS', int(1, 36500), 30),
    taskSoftTimeLimitSeconds: read(env, 'TASK_SOFT_TIME_LIMIT', int(1, 604_800), 3300),
    taskHardTimeLimitSeconds: read(env, 'TASK_HARD_TIME_LIMIT', int(1, 604_800), 3600),
    taskTimeLimits: Object.freeze(read(env, 'TASK_TIME_LIMITS', timeLimits, {})),
    taskMaxRetries: read(env, 'TASK_MAX_RETRIES', int(0, 100), 3),
    taskRetryBackoffMs: read(env, 'TASK_RETRY_BACKOFF_MS', int(1, 3_600_000), 5000),
    taskRetryOnTimeout: read(env, 'TASK_RETRY_ON_TIMEOUT', bool, false),
    beatCatchup: read(env, 'BEAT_CATCHUP', oneOf(['once', 'all', 'none']), 'once'),
    beatLeaseSeconds: read(env, 'BEAT_LEASE_SECONDS', int(2, 3600), 10),
    workerConcurrency: read(env, 'WORKER_CONCURRENCY', int(1, 256), 4),
    workerPool: read(env, 'WORKER_POOL', oneOf(['async', 'threads']), 'async'),
    workerMaxTasksPerChild: read(env, 'WORKER_MAX_TASKS_PER_CHILD', int(1, 1_000_000_000), 1000),
    workerMaxMemoryPerChildKb: read(env, 'WORKER_MAX_MEMORY_PER_CHILD', int(0, 1_000_000_000), 0),
    workerShutdownGraceSeconds: read(env, 'WORKER_SHUTDOWN_GRACE', int(0, 86_400), 30),
    workerLockSeconds: read(env, 'WORKER_LOCK_SECONDS', int(2, 3600), 30),
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
