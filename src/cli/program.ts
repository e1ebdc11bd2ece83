import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { benchCommand } from './commands/bench.ts';
import { migrateCommand } from './commands/migrate.ts';
import { demoCommand } from './commands/demo.ts';
import { startCommand } from './commands/start.ts';
import { workerCommand } from './commands/worker.ts';
import { beatCommand } from './commands/beat.ts';
import { runCommand } from './commands/run.ts';
import { backfillCommand } from './commands/backfill.ts';
import { healthCommand } from './commands/health.ts';
import { controlCommand } from './commands/control.ts';
import { dashboardCommand } from './commands/dashboard.ts';
import { dbCommand } from './commands/db.ts';
import { rollupsCommand } from './commands/rollups.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** The `aggjobs` command line: every command with a one-line description in `--help`. */
export function buildProgram(): Command {
  const program = new Command('aggjobs')
    .description('exact, incremental analytics rollups of PostgreSQL data as scheduled background jobs')
    .version(pkg.version, '-V, --version')
    // Read by main.ts from argv (an error may come before commander has parsed anything).
    .option('--debug', 'print the stack of an expected failure too (as LOG_LEVEL=debug does)')
    .showHelpAfterError()
    .configureHelp({ sortSubcommands: false });
  program.addCommand(migrateCommand());
  program.addCommand(demoCommand());
  program.addCommand(startCommand());
  program.addCommand(workerCommand());
  program.addCommand(beatCommand());
  program.addCommand(runCommand());
  program.addCommand(backfillCommand());
  program.addCommand(rollupsCommand());
  program.addCommand(healthCommand());
  program.addCommand(controlCommand());
  program.addCommand(dashboardCommand());
  program.addCommand(dbCommand());
  program.addCommand(benchCommand());
  // Usage errors (unknown option, bad value) exit with 2 in every subcommand too.
  const exitOnUsageError = (command: Command): void => {
    command.exitOverride((error) => {
      process.exit(error.exitCode === 0 ? 0 : 2);
    });
    command.commands.forEach(exitOnUsageError);
  };
  exitOnUsageError(program);
  return program;
}
