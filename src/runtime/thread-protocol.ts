import { createHash } from 'node:crypto';
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
  | { type: 'probe'; id: number; op: 'ping' | 'counts' | 'serving' };

export type { ErrorInfo };

/**
 * The application_name of the database sessions of a run's attempt, `aggjobs run <id> #<attempt>`:
 * how a kill finds them (hard limit, terminate, takeover) without touching another attempt's.
 * PostgreSQL keeps 63 bytes; a run id too long for that is replaced by a hash of it.
 */
export function runApplicationName(runId: string, attempt: number): string {
  return `${runSessionPrefix(runId)}${attempt}`;
}

/** What the application_name of every session of a run starts with (any attempt). */
export function runSessionPrefix(runId: string): string {
  const plain = `aggjobs run ${runId} #`;
  if (Buffer.byteLength(plain) <= 58) return plain;
  return `aggjobs run ${createHash('sha256').update(runId).digest('hex').slice(0, 32)} #`;
}
