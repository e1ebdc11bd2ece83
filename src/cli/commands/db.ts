import { spawn } from 'node:child_process';
import { Command } from 'commander';
import { loadSettings } from '../../config/index.ts';
import { findRunningEmbeddedPostgres } from '../../db/index.ts';
import { OperationalError } from '../operational.error.ts';

/** DATABASE_URL when set; else the URL of the embedded server `aggjobs start` runs. */
function databaseUrl(): string {
  const settings = loadSettings();
  if (settings.databaseUrl !== undefined) return settings.databaseUrl;
  const embedded = findRunningEmbeddedPostgres({ dataDir: settings.dataDir });
  if (embedded === undefined) {
    throw new OperationalError(
      `the embedded PostgreSQL (data in ${settings.dataDir}) is not running: start it with \`npm start\` (or \`aggjobs start\`), or set DATABASE_URL`,
    );
  }
  return embedded.url;
}

/** Runs psql on `url`, its password in PGPASSWORD rather than on the command line (ps shows that). */
async function psql(url: string, args: readonly string[]): Promise<number> {
  const parsed = new URL(url);
  const password = decodeURIComponent(parsed.password);
  parsed.password = '';
  const child = spawn('psql', [parsed.toString(), ...args], {
    stdio: 'inherit',
    env: password === '' ? process.env : { ...process.env, PGPASSWORD: password },
  });
  return await new Promise((resolve, reject) => {
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'ENOENT'
          ? new OperationalError(
              'psql is not installed: install the PostgreSQL client (e.g. apt install postgresql-client), or connect with the URL from `aggjobs db url`',
              { cause: error },
            )
          : error,
      ),
    );
    child.once('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
  });
}

/** `aggjobs db url|psql`: reach the database in use, above all the embedded one (its port changes on every start). */
export function dbCommand(): Command {
  const db = new Command('db').description(
    'the database in use: print its URL or open psql on it (DATABASE_URL, else the embedded one)',
  );
  db.command('url')
    .description('print the connection URL (with its password) of the database in use')
    .action(() => void process.stdout.write(`${databaseUrl()}\n`));
  db.command('psql')
    .description('open psql on the database in use; arguments after it go to psql')
    .argument('[args...]', 'psql arguments, e.g. -c "SELECT 1"')
    .allowUnknownOption()
    .helpOption(false)
    .action(async (args: string[]) => {
      process.exitCode = await psql(databaseUrl(), args);
    });
  return db;
}
