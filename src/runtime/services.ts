import { startBeat, type BeatHandle, type BeatOptions } from './beat.ts';
import type { Runtime } from './runtime.ts';
import { startWorker, type WorkerHandle, type WorkerOptions } from './worker.ts';

/** Something `aggjobs start` runs beside beat and worker (the dashboard plugs in here). */
export interface ExtraService {
  readonly name: string;
  close(): Promise<void>;
}

export interface Services {
  readonly worker: WorkerHandle | undefined;
  readonly beat: BeatHandle | undefined;
  readonly extra: readonly ExtraService[];
  /** Stops beat first (no new slots), then the worker (running tasks get their grace), then the rest. */
  close(): Promise<void>;
}

export async function startServices(
  runtime: Runtime,
  options: {
    worker?: WorkerOptions;
    beat?: BeatOptions;
    extraServices?: ReadonlyArray<(runtime: Runtime) => Promise<ExtraService>>;
  },
): Promise<Services> {
  const worker = options.worker === undefined ? undefined : await startWorker(runtime, options.worker);
  const beat = options.beat === undefined ? undefined : startBeat(runtime, options.beat);
  const extra: ExtraService[] = [];
  for (const start of options.extraServices ?? []) extra.push(await start(runtime));
  let closing: Promise<void> | undefined;
  return {
    worker,
    beat,
    extra,
    close() {
      closing ??= (async () => {
        await beat?.close();
        await worker?.close();
        for (const service of extra) await service.close().catch(() => undefined);
      })();
      return closing;
    },
  };
}

/** Resolves with the first of SIGINT/SIGTERM; a second one exits at once. */
export function waitForShutdownSignal(
  onSecond: () => void = () => process.exit(130),
): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let received = false;
    const handler = (signal: NodeJS.Signals): void => {
      if (received) onSecond();
      received = true;
      resolve(signal);
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
}
