import { loadSettings, type Settings } from '../config/index.ts';
import { connectDatabase, type Database } from '../db/index.ts';
import { createLogger, type Logger } from '../log/index.ts';
import { createRuntime, type Runtime } from '../runtime/index.ts';

export interface CliContext {
  settings: Settings;
  logger: Logger;
  db: Database;
  close(): Promise<void>;
}

/** Settings (validated: a bad value throws ConfigError before anything is written), a logger, the database. */
export async function openContext(options: { name: string; logLevel?: string }): Promise<CliContext> {
  const settings = loadSettings();
  const logLevel = (options.logLevel ?? settings.logLevel) as Settings['logLevel'];
  const logger = createLogger(logLevel, {
    name: options.name,
    pretty: settings.appEnv === 'development' && process.stdout.isTTY === true,
  });
  const db = await connectDatabase(settings, {
    applicationName: `aggjobs ${options.name}`,
    onLog: (line) => logger.info(line),
  });
  logger.info({ database: db.describe }, `using ${db.describe}`);
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

/** The job runtime (broker, tasks, run log) on the context's settings, database and logger. */
export async function createRuntimeFor(ctx: CliContext): Promise<Runtime> {
  return await createRuntime({
    settings: ctx.settings,
    pool: ctx.db.pool,
    databaseUrl: ctx.db.url,
    logger: ctx.logger,
  });
}
