#!/usr/bin/env node
import { ConfigError, loadSettings } from '../config/index.ts';
import { MigrationMismatchError } from '../db/index.ts';
import { explainFailure } from './explain-failure.ts';
import { buildProgram } from './program.ts';
import { UsageError } from './usage.error.ts';

/** `--debug` or LOG_LEVEL=debug (or trace) asks for the stack of expected failures too. */
function debugRequested(): boolean {
  if (process.argv.includes('--debug')) return true;
  try {
    return ['debug', 'trace'].includes(loadSettings().logLevel);
  } catch {
    return false;
  }
}

/**
 * Exit codes: 2 for usage and configuration errors (a bad option or variable, a port in use),
 * 1 for failures at run time. Expected failures print one line; unexpected ones their stack.
 */
try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  if (error instanceof ConfigError || error instanceof UsageError) {
    process.stderr.write(`aggjobs: ${error.message}\n`);
    process.exit(2);
  }
  if (error instanceof MigrationMismatchError) {
    process.stderr.write(`aggjobs: ${error.message}\n`);
    process.exit(1);
  }
  const expected = explainFailure(error);
  if (expected !== undefined) {
    process.stderr.write(`aggjobs: ${expected.message}\n`);
    if (debugRequested() && error instanceof Error) {
      const stack = error.cause instanceof Error ? error.cause.stack : error.stack;
      process.stderr.write(`${stack ?? error.message}\n`);
    }
    process.exit(expected.exitCode);
  }
  process.stderr.write(
    `aggjobs: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
}
