/**
 * The reference of the runtime cases: a plain BullMQ worker (no run log, no leases, no task threads
 * of its own) on the same Redis, as a user of BullMQ alone would write it.
 *
 * Arguments: <queue> <prefix> <concurrency> <inline|threads>. `threads` runs the processor in BullMQ's
 * sandbox on worker threads (`useWorkerThreads`: up to `concurrency` threads, each loading the
 * processor module), `inline` in the worker's own event loop. The processor is plain-processor.mjs.
 * Environment: BENCH_REDIS_URL, DATABASE_URL. Prints `ready` once it fetches; SIGTERM stops it.
 */
import process from 'node:process';
import { URL } from 'node:url';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import processor from './plain-processor.mjs';

const [queue, prefix, concurrency, mode] = process.argv.slice(2);
const connection = new Redis(process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379', {
  maxRetriesPerRequest: null,
});
const file = new URL('./plain-processor.mjs', import.meta.url);
const worker = new Worker(queue, mode === 'threads' ? file : processor, {
  connection,
  prefix,
  concurrency: Number(concurrency),
  useWorkerThreads: mode === 'threads',
});
await worker.waitUntilReady();
process.stdout.write('ready\n');
const stop = async () => {
  await worker.close();
  await processor.close?.();
  connection.disconnect();
  process.exit(0);
};
process.once('SIGTERM', () => void stop());
