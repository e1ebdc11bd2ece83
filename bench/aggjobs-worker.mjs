/**
 * A worker process of the benchmark, built from `dist/` (run `npm run build` first; the bench does):
 * what `node dist/cli/main.js worker -c N -Q <queues>` does — settings from the environment, the
 * database, the runtime, `startServices` with the CLI's worker flags, SIGTERM to stop — plus the bench
 * tasks (bench-tasks.mjs) through the runtime's `taskModules` seam, which the CLI does not offer (a
 * switch for it would be a test switch in production). Tasks that only the built-in registry knows
 * are measured with the CLI itself (worker-memory.ts).
 *
 * Arguments: the CLI's worker flags. Environment: the CLI's, plus BENCH_NAMESPACE (broker namespace).
 */
import process from 'node:process';
import { URL } from 'node:url';
import { workerOptionsFrom } from '../dist/cli/commands/worker.js';
import { loadSettings } from '../dist/config/index.js';
import { connectDatabase } from '../dist/db/index.js';
import { createLogger } from '../dist/log/index.js';
import { createRuntime, startServices, waitForShutdownSignal } from '../dist/runtime/index.js';

const flags = {};
for (let i = 2; i < process.argv.length; i += 2) {
  const name = { '-c': 'concurrency', '-Q': 'queues', '-n': 'hostname' }[process.argv[i]] ?? '';
  const value = process.argv[i + 1];
  if (name === '' || value === undefined) throw new Error(`unknown flag ${process.argv[i]}`);
  flags[name] = value;
}
const shutdown = waitForShutdownSignal();
const settings = loadSettings();
const logger = createLogger(settings.logLevel, { name: 'worker' });
const db = await connectDatabase(settings, { applicationName: 'aggjobs worker' });
const runtime = await createRuntime({
  settings,
  pool: db.pool,
  databaseUrl: db.url,
  logger,
  namespace: process.env.BENCH_NAMESPACE,
  taskModules: [new URL('./bench-tasks.mjs', import.meta.url).href],
});
const services = await startServices(runtime, { worker: workerOptionsFrom(flags, settings) });
await shutdown;
await services.close();
await runtime.close();
await db.close();
