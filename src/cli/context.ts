import { ConfigError, loadSettings, settingsScrubber, type Settings } from '../config/index.ts';
import { connectDatabase, describePending, pendingMigrations, type Database } from '../db/index.ts';
import { createLogger, resolveLogFormat, type Logger } from '../log/index.ts';
import { BrokerUnreachableError, createRuntime, type Runtime } from '../runtime/index.ts';
import { taskNames } from '../tasks/index.ts';
import { explainDatabaseError } from './explain-failure.ts';
import { OperationalError } from './operational.error.ts';

export interface CliContext {
  settings: Settings;
  logger: Logger;
  db: Database;
  close(): Promise<void>;
}

/**
 * TASK_TIME_LIMITS names tasks; the settings cannot know them (config sits below tasks), so a typo
 * (`hourly_rolup=5`) is refused here, before anything runs, naming it.
 */
function assertKnownTasks(settings: Settings): void {
  const known = new Set<string>(taskNames);
  const unknown = Object.keys(settings.taskTimeLimits).filter((name) => !known.has(name));
  if (unknown.length > 0) {
    throw new ConfigError(
      'TASK_TIME_LIMITS',
      `a list of task=hard[:soft] seconds for known tasks (${[...known].join(', ')}); no task is named ${unknown.join(', ')}`,
      Object.entries(settings.taskTimeLimits)
        .map(([name, l]) => `${name}=${l.hard}${l.soft === undefined ? '' : `:${l.soft}`}`)
        .join(','),
    );
  }
}

/** Settings (validated: a bad value throws ConfigError before anything is written), a logger, the database. */
export async function openContext(options: { name: string; logLevel?: string }): Promise<CliContext> {
  const loaded = loadSettings();
  assertKnownTasks(loaded);
  // Decided once here (stdout is this process's; a task thread's is not a terminal), and passed down.
  const settings: Settings = Object.freeze({ ...loaded, logFormat: resolveLogFormat(loaded.logFormat) });
  const logLevel = (options.logLevel ?? settings.logLevel) as Settings['logLevel'];
  const logger = createLogger(logLevel, {
    name: options.name,
    format: settings.logFormat,
    scrub: settingsScrubber(settings),
  });
  const db = await connectDatabase(settings, {
    applicationName: `aggjobs ${options.name}`,
    onLog: (line) => logger.info(line),
  });
  logger.info({ database: db.describe }, `using ${db.describe}`);
  // One round trip now, so an unreachable server or a missing database is said in one line here
  // rather than as a stack from whichever query happens to run first.
  try {
    await db.pool.query('SELECT 1');
  } catch (error) {
    await db.close();
    throw explainDatabaseError(error, db.describe) ?? error;
  }
  return {
    settings,
    logger,
    db,
    async close() {
      await db.close();
      logger.flush();
    },
  };
}

/**
 * The job runtime (broker, tasks, run log) on the context's settings, database and logger. A
 * database that lacks a migration this build needs is refused first, naming them and the command:
 * a worker started on it failed every task with a raw SQL error instead (column … does not exist).
 */
export async function createRuntimeFor(ctx: CliContext): Promise<Runtime> {
  const pending = await pendingMigrations(ctx.db.pool);
  if (pending.length > 0)
    throw new OperationalError(
      `${ctx.db.describe} lacks ${describePending(pending)}: run aggjobs migrate first`,
    );
  try {
    return await createRuntime({
      settings: ctx.settings,
      pool: ctx.db.pool,
      databaseUrl: ctx.db.url,
      logger: ctx.logger,
    });
  } catch (error) {
    // Its message already names the URL (password hidden) and the variables.
    if (error instanceof BrokerUnreachableError) {
      throw new OperationalError(
        `${error.message}: start Redis, or set REDIS_URL to a server that runs (unset, PostgreSQL is the broker)`,
        { cause: error },
      );
    }
    throw error;
  }
}
