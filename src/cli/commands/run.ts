import { Command } from 'commander';
import { runEagerly } from '../../runtime/index.ts';
import { InvalidTaskArgsError, UnknownTaskError } from '../../tasks/index.ts';
import { createRuntimeFor, openContext } from '../context.ts';
import { UsageError } from '../usage.error.ts';

/** `--arg k=v`: the value is JSON when it parses (numbers, true, null), else a string. */
export function parseArgPairs(pairs: readonly string[]): Record<string, unknown> {
  const kwargs: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq < 1) throw new UsageError(`--arg must be name=value, got ${JSON.stringify(pair)}`);
    const raw = pair.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // a plain string
    }
    kwargs[pair.slice(0, eq)] = value;
  }
  return kwargs;
}

export function runCommand(): Command {
  return new Command('run')
    .description(
      'run a task now: enqueue it (or --eager: here, without a broker) and print the result as JSON',
    )
    .argument('<task>', 'task name, e.g. hourly_rollup')
    .option(
      '-a, --arg <name=value>',
      'a keyword argument (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [],
    )
    .option('-w, --wait', 'wait for the result')
    .option('--eager', 'run in this process, without the broker')
    .option('--timeout <seconds>', 'with --wait: give up after this long', '3600')
    .action(
      async (task: string, flags: { arg: string[]; wait?: boolean; eager?: boolean; timeout: string }) => {
        const kwargs = parseArgPairs(flags.arg);
        const timeout = Number(flags.timeout);
        if (!Number.isFinite(timeout) || timeout <= 0) {
          throw new UsageError(
            `--timeout must be a positive number of seconds, got ${JSON.stringify(flags.timeout)}`,
          );
        }
        const ctx = await openContext({ name: 'run', logLevel: 'warn' });
        const print = (value: unknown): void =>
          void process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
        try {
          if (flags.eager === true) {
            print(
              await runEagerly({ settings: ctx.settings, pool: ctx.db.pool, logger: ctx.logger }, task, {
                kwargs,
              }),
            );
            return;
          }
          const runtime = await createRuntimeFor(ctx);
          try {
            const result = await runtime.enqueue(task, { kwargs });
            if (flags.wait === true) print({ runId: result.id, result: await result.get({ timeout }) });
            else print({ runId: result.id, task: result.task, state: await result.state() });
          } finally {
            await runtime.close();
          }
        } catch (error) {
          if (error instanceof InvalidTaskArgsError || error instanceof UnknownTaskError)
            throw new UsageError(error.message);
          throw error;
        } finally {
          await ctx.close();
        }
      },
    );
}
