import { setTimeout } from 'node:timers/promises';
import pg from 'pg';
import type { Queryable } from '../db/index.ts';
import type { QueueName } from '../tasks/index.ts';
import { keepSessionOpen } from './reconnecting-session.ts';

/**
 * Messages to worker processes, over PostgreSQL LISTEN/NOTIFY (the database is there on both
 * brokers). A message names a run or a worker; every worker hears it, the one concerned acts.
 */
export type ControlMessage =
  | { action: 'terminate'; runId: string }
  | { action: 'concurrency'; worker: string; concurrency: number }
  | { action: 'shutdown'; worker: string }
  /** Celery's autoscale: concurrency follows the queue depth between min and max from now on. */
  | { action: 'autoscale'; worker: string; max: number; min: number }
  /** Celery's pool_restart: the idle task threads (or, on the async pool, run sessions) are replaced. */
  | { action: 'pool_restart'; worker: string }
  /** Celery's add_consumer / cancel_consumer: the worker starts or stops taking a queue's jobs. */
  | { action: 'add_consumer' | 'cancel_consumer'; worker: string; queue: QueueName }
  /** Celery's time_limit: every worker runs `task` with these limits (seconds) from its next run. */
  | { action: 'time_limit'; task: string; soft: number; hard: number };

export const CONTROL_CHANNEL = 'aggjobs_control';

export async function sendControl(db: Queryable, message: ControlMessage): Promise<void> {
  await db.query('SELECT pg_notify($1, $2)', [CONTROL_CHANNEL, JSON.stringify(message)]);
}

export interface ControlListener {
  close(): Promise<void>;
}

export interface ListenOptions {
  /** The listening session is open again after it was lost (the error went to `onError`). */
  onReconnect?: () => void;
  /** See `SessionSpec`: how often the session is pinged, and how long an answer may take. */
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
}

/**
 * Listens on a dedicated session, reopened with backoff (0.5 s doubling to 10 s) whenever it is
 * lost, for as long as the listener is not closed: a worker that stopped hearing terminate,
 * concurrency and shutdown would ignore them silently. Messages sent while no session listens are
 * lost (NOTIFY is not queued for absent listeners).
 */
export async function listenControl(
  databaseUrl: string,
  onMessage: (message: ControlMessage) => void,
  onError: (error: unknown) => void = () => undefined,
  options: ListenOptions = {},
): Promise<ControlListener> {
  return await keepSessionOpen<pg.Client>({
    async open(lost) {
      const c = new pg.Client({
        connectionString: databaseUrl,
        application_name: 'aggjobs control',
        connectionTimeoutMillis: 10_000,
      });
      c.on('notification', (n) => {
        if (n.channel !== CONTROL_CHANNEL || n.payload === undefined) return;
        try {
          onMessage(JSON.parse(n.payload) as ControlMessage);
        } catch (error) {
          onError(error);
        }
      });
      c.on('error', lost);
      c.on('end', () => lost(new Error('the control session ended')));
      try {
        await c.connect();
        await c.query(`LISTEN ${CONTROL_CHANNEL}`);
      } catch (error) {
        await endClient(c);
        throw error;
      }
      return c;
    },
    close: endClient,
    ping: (c) => c.query('SELECT 1'),
    onError,
    onReconnect: options.onReconnect,
    pingIntervalMs: options.pingIntervalMs,
    pingTimeoutMs: options.pingTimeoutMs,
  });
}

/** Ends a client without waiting more than 2 s: a dead peer may never answer the goodbye. */
async function endClient(c: pg.Client): Promise<void> {
  await Promise.race([c.end().catch(() => undefined), setTimeout(2000, undefined, { ref: false })]);
}
