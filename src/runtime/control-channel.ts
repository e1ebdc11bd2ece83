import pg from 'pg';
import type { Queryable } from '../db/index.ts';

/**
 * Messages to worker processes, over PostgreSQL LISTEN/NOTIFY (the database is there on both
 * brokers). A message names a run or a worker; every worker hears it, the one concerned acts.
 */
export type ControlMessage =
  | { action: 'terminate'; runId: string }
  | { action: 'concurrency'; worker: string; concurrency: number }
  | { action: 'shutdown'; worker: string };

export const CONTROL_CHANNEL = 'aggjobs_control';

export async function sendControl(db: Queryable, message: ControlMessage): Promise<void> {
  await db.query('SELECT pg_notify($1, $2)', [CONTROL_CHANNEL, JSON.stringify(message)]);
}

export interface ControlListener {
  close(): Promise<void>;
}

/** Listens on a dedicated session; reconnects (after 1 s) when the session is lost. */
export async function listenControl(
  databaseUrl: string,
  onMessage: (message: ControlMessage) => void,
  onError: (error: unknown) => void = () => undefined,
): Promise<ControlListener> {
  let client: pg.Client | undefined;
  let closed = false;
  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: databaseUrl, application_name: 'aggjobs control' });
    c.on('notification', (n) => {
      if (n.channel !== CONTROL_CHANNEL || n.payload === undefined) return;
      try {
        onMessage(JSON.parse(n.payload) as ControlMessage);
      } catch (error) {
        onError(error);
      }
    });
    c.on('error', (error) => {
      onError(error);
      if (!closed) setTimeout(() => void connect().catch(onError), 1000);
    });
    await c.connect();
    await c.query(`LISTEN ${CONTROL_CHANNEL}`);
    client = c;
  };
  await connect();
  return {
    async close() {
      closed = true;
      await client?.end().catch(() => undefined);
    },
  };
}
