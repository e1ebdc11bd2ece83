import { Command } from 'commander';
import {
  createControl,
  RunNotFoundError,
  RunNotRetryableError,
  runStates,
  type Control,
} from '../../runtime/index.ts';
import { queueNames, type QueueName } from '../../tasks/index.ts';
import { createRuntimeFor, openContext, type CliContext } from '../context.ts';
import { OperationalError } from '../operational.error.ts';
import { UsageError } from '../usage.error.ts';

function queueArg(value: string): QueueName {
  if (!queueNames.includes(value as QueueName)) {
    throw new UsageError(`queue must be one of ${queueNames.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as QueueName;
}

async function withControl(fn: (control: Control, ctx: CliContext) => Promise<unknown>): Promise<void> {
  const ctx = await openContext({ name: 'control', logLevel: 'warn' });
  const runtime = await createRuntimeFor(ctx);
  try {
    const value = await fn(createControl(runtime), ctx);
    if (value !== undefined) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  } finally {
    await runtime.close();
    await ctx.close();
  }
}

export function controlCommand(): Command {
  const control = new Command('control').description(
    'revoke, terminate, retry runs; pause queues; inspect workers',
  );
  control
    .command('revoke <runId>')
    .description('revoke a queued run (with --terminate, also kill it if running)')
    .option('--terminate', 'kill the run if it is running')
    .action((runId: string, f: { terminate?: boolean }) =>
      withControl((c) => c.revoke(runId, { terminate: f.terminate })),
    );
  control
    .command('terminate <runId>')
    .description('kill a running run now (its transaction rolls back)')
    .action((runId: string) => withControl((c) => c.terminate(runId)));
  control
    .command('retry <runId>')
    .description('run a failed, timed-out or revoked run again (a new run with the same arguments)')
    .action((runId: string) =>
      withControl(async (c) => {
        try {
          return { runId: (await c.retry(runId)).id };
        } catch (error) {
          // A run in the wrong state, or none, is an answer, not a stack.
          if (error instanceof RunNotFoundError) {
            throw new OperationalError(`${error.message}: list runs with \`aggjobs control runs\``);
          }
          if (error instanceof RunNotRetryableError) {
            const open = ['running', 'queued', 'retrying'].includes(error.state);
            throw new OperationalError(
              error.message +
                (open
                  ? ` (wait for it to end, or stop it with \`aggjobs control revoke --terminate ${runId}\`)`
                  : ''),
            );
          }
          throw error;
        }
      }),
    );
  control
    .command('pause <queue>')
    .description('stop workers taking tasks from a queue')
    .action((queue: string) => withControl((c) => c.pause(queueArg(queue))));
  control
    .command('resume <queue>')
    .description('let workers take tasks from a paused queue again')
    .action((queue: string) => withControl((c) => c.resume(queueArg(queue))));
  control
    .command('concurrency <worker> <n>')
    .description("change a running worker's concurrency")
    .action((worker: string, n: string) => {
      if (!/^\d+$/.test(n) || Number(n) < 1 || Number(n) > 256) {
        throw new UsageError(`concurrency must be an integer from 1 to 256, got ${JSON.stringify(n)}`);
      }
      return withControl((c) => c.setConcurrency(worker, Number(n)));
    });
  control
    .command('status')
    .description('queues, workers, schedules and the active beat')
    .action(() =>
      withControl(async (c) => ({
        queues: await c.queueCounts(),
        workers: await c.workers(),
        beat: await c.beat(),
        schedules: await c.schedules(),
      })),
    );
  control
    .command('runs')
    .description('recent runs, newest first')
    .option('--task <task>')
    .option('--state <state>')
    .option('--limit <n>', 'how many', '20')
    .action((f: { task?: string; state?: string; limit: string }) => {
      const state = runStates.find((s) => s === f.state);
      if (f.state !== undefined && state === undefined) {
        throw new UsageError(
          `--state must be one of ${runStates.join(', ')}, got ${JSON.stringify(f.state)}`,
        );
      }
      return withControl((c) => c.runs({ task: f.task, state, limit: Number(f.limit) || 20 }));
    });
  return control;
}
