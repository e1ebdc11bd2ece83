#!/usr/bin/env node
import { ConfigError } from '../config/index.ts';
import { MigrationMismatchError } from '../db/index.ts';
import { buildProgram } from './program.ts';
import { UsageError } from './usage.error.ts';

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
  process.stderr.write(
    `aggjobs: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
}
