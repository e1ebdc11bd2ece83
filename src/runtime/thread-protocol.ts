import type { Settings } from '../config/index.ts';
import type { LogLine } from '../log/index.ts';
import type { ErrorInfo } from './errors.ts';
import type { ExecutionOutcome } from './task-executor.ts';

/** What a task thread is started with (its `workerData`). */
export interface ThreadInit {
  settings: Settings;
  databaseUrl: string;
  /** Modules exporting `tasks: AnyTaskDefinition[]`, loaded besides the registry (the test seam). */
  taskModules: string[];
  workerName: string;
  brokerKind: 'redis' | 'postgres';
}

export type ToThread =
  | { type: 'run'; runId: string; task: string; args: Record<string, unknown>; attempt: number }
  | { type: 'abort'; reason: string }
  | { type: 'probe-reply'; id: number; ok: true; value: unknown }
  | { type: 'probe-reply'; id: number; ok: false; error: string };

export type FromThread =
  | { type: 'done'; outcome: ExecutionOutcome; heapUsedKb: number; logs: LogLine[] }
  | { type: 'probe'; id: number; op: 'ping' | 'counts' };

export type { ErrorInfo };

/** The application_name of a run's database sessions (PostgreSQL keeps 63 bytes of it). */
export function runApplicationName(runId: string): string {
  return `aggjobs run ${runId}`.slice(0, 63);
}
