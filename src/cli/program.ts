import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { migrateCommand } from './commands/migrate.ts';
import { demoCommand } from './commands/demo.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** The `aggjobs` command line: every command with a one-line description in `--help`. */
export function buildProgram(): Command {
  const program = new Command('aggjobs')
    .description('exact, incremental analytics rollups of PostgreSQL data as scheduled background jobs')
    .version(pkg.version, '-V, --version')
    .showHelpAfterError()
    .configureHelp({ sortSubcommands: false });
  program.addCommand(migrateCommand());
  program.addCommand(demoCommand());
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
