import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { UsageError } from '../usage.error.ts';

/** The benchmark lives beside the source (bench/), not in the built package. */
const benchEntry = fileURLToPath(new URL('../../../bench/run.ts', import.meta.url));

export function benchCommand(): Command {
  return new Command('bench')
    .description('run the benchmarks (same as npm run bench; needs the source checkout)')
    .option('--size <size>', 'small (about two minutes) or full (10M executions)', 'small')
    .option('--runs <n>', 'runs per case')
    .option('--cases <which>', 'engine, runtime or both (default)')
    .action(async (flags: { size: string; runs?: string; cases?: string }) => {
      if (!existsSync(benchEntry)) {
        throw new UsageError('the benchmark ships with the source checkout: run `npm run bench` there');
      }
      const args = ['--import', 'tsx', benchEntry, '--size', flags.size];
      if (flags.runs !== undefined) args.push('--runs', flags.runs);
      if (flags.cases !== undefined) args.push('--cases', flags.cases);
      const code = await new Promise<number>((resolve) => {
        const child = spawn(process.execPath, args, { stdio: 'inherit' });
        child.on('exit', (c) => resolve(c ?? 1));
      });
      if (code !== 0) process.exitCode = code;
    });
}
