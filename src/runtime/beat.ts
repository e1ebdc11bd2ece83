import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { withTransaction } from '../db/index.ts';
import { findTask } from '../tasks/index.ts';
import { latestSlot, slotsBetween } from './cron.ts';
import { recordQueued } from './run-log.ts';
import type { Runtime } from './runtime.ts';
import { schedulesOf, slotRunId, type Schedule } from './schedules.ts';

export interface BeatOptions {
  /** Default `beat-<pid>@<host>-<random>`. */
  name?: string;
  /** Milliseconds between ticks. */
  tickMs?: number;
  /** Seconds a leadership lasts without renewal; default BEAT_LEASE_SECONDS. */
  leaseSeconds?: number;
  /** Missed slots after downtime: default BEAT_CATCHUP. */
  catchup?: 'once' | 'all' | 'none';
}

export interface BeatHandle {
  readonly name: string;
  isLeader(): boolean;
  /** One tick now (leadership, due slots, unsent slots); resolves with the runs it enqueued. */
  tick(): Promise<string[]>;
  /** Stops ticking and gives up leadership at once, so a standby takes over without waiting. */
  close(): Promise<void>;
}

/** Under 'none', a slot is on time if no older than this (a beat that was briefly slow still runs it). */
const ON_TIME_MS = 60_000;
/** Under 'all', at most this many missed slots of one schedule per tick. */
const CATCHUP_LIMIT = 1000;

/**
 * Celery Beat, without its failure modes. Any number of beats may run; one leads, by a lease row
 * renewed every tick (the others stand by and take over once it lapses). The leader enqueues each
 * due slot through the slot ledger: `(task, slot)` is a primary key inserted in the same
 * transaction as the run's row, and the BullMQ job id is derived from it, so even two beats that
 * both believe they lead cannot run a slot twice. After downtime, each schedule catches up once
 * (BEAT_CATCHUP=once), every missed slot (all), or not at all (none).
 */
export function startBeat(runtime: Runtime, options: BeatOptions = {}): BeatHandle {
  const { pool, settings } = runtime;
  const name = options.name ?? `beat-${process.pid}@${hostname()}-${randomBytes(3).toString('hex')}`;
  const logger = runtime.logger.child({ beat: name });
  const leaseSeconds = options.leaseSeconds ?? settings.beatLeaseSeconds;
  const catchup = options.catchup ?? settings.beatCatchup;
  const zone = settings.analyticsTimezone;
  const schedules = schedulesOf(runtime.tasks, settings).filter((s) => s.enabled);
  let leader = false;
  let stopped = false;

  const lead = async (): Promise<boolean> => {
    const { rows } = await pool.query<{ holder: string }>(
      `INSERT INTO aggjobs.beat_leader (id, holder, expires_at) VALUES (1, $1, now() + make_interval(secs => $2))
       ON CONFLICT (id) DO UPDATE
         SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
             acquired_at = CASE WHEN beat_leader.holder = EXCLUDED.holder THEN beat_leader.acquired_at ELSE now() END
         WHERE beat_leader.holder = EXCLUDED.holder OR beat_leader.expires_at < now()
       RETURNING holder`,
      [name, leaseSeconds],
    );
    const now = rows.length > 0;
    if (now !== leader)
      logger.info(now ? `${name} is now the active beat` : `${name} lost the lead: standing by`);
    leader = now;
    return now;
  };

  const dueSlots = async (schedule: Schedule, now: Date): Promise<Date[]> => {
    const latest = latestSlot(schedule.cron, now, zone);
    if (latest === undefined) return [];
    const { rows } = await pool.query<{ last: Date | null }>(
      'SELECT max(slot) AS last FROM aggjobs.beat_slots WHERE task = $1',
      [schedule.task.name],
    );
    const last = rows[0]?.last ?? null;
    if (last !== null && latest.getTime() <= last.getTime()) return [];
    if (catchup === 'none') return now.getTime() - latest.getTime() <= ON_TIME_MS ? [latest] : [];
    if (catchup === 'all' && last !== null)
      return slotsBetween(schedule.cron, last, latest, zone, CATCHUP_LIMIT);
    return [latest];
  };

  /** Claims the slot in the ledger with its run row; false when another beat already did. */
  const claim = async (schedule: Schedule, slot: Date): Promise<string | undefined> => {
    const runId = slotRunId(schedule.task.name, slot);
    return await withTransaction(pool, async (client) => {
      const { rowCount } = await client.query(
        `INSERT INTO aggjobs.beat_slots (task, slot, run_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
        [schedule.task.name, slot, runId],
      );
      if (rowCount === 0) return undefined;
      await recordQueued(client, {
        id: runId,
        task: schedule.task.name,
        args: {},
        queue: schedule.task.queue,
      });
      return runId;
    });
  };

  const send = async (task: string, runId: string): Promise<void> => {
    await runtime.addJob(findTask(runtime.tasks, task), {}, runId);
    await pool.query('UPDATE aggjobs.beat_slots SET enqueued = true WHERE run_id = $1', [runId]);
  };

  const tick = async (): Promise<string[]> => {
    if (stopped || !(await lead())) return [];
    const now = runtime.now();
    const sent: string[] = [];
    for (const schedule of schedules) {
      for (const slot of await dueSlots(schedule, now)) {
        const runId = await claim(schedule, slot);
        if (runId === undefined) continue;
        await send(schedule.task.name, runId);
        logger.info(
          { task: schedule.task.name, runId, slot },
          `enqueued ${schedule.task.name} for ${slot.toISOString()}`,
        );
        sent.push(runId);
      }
    }
    // A slot whose run a worker has claimed was taken by the broker, even when its beat was killed
    // between adding the job and recording that: record it now. Without this the row stays
    // `enqueued = false` for ever (the re-send below only looks at queued runs).
    await pool.query(
      `UPDATE aggjobs.beat_slots b SET enqueued = true FROM aggjobs.task_runs r
       WHERE r.id = b.run_id AND NOT b.enqueued AND r.attempts > 0`,
    );
    // Slots claimed by a beat that died before the broker took the job (the job id dedupes).
    const { rows } = await pool.query<{ task: string; run_id: string }>(
      `SELECT b.task, b.run_id FROM aggjobs.beat_slots b JOIN aggjobs.task_runs r ON r.id = b.run_id
       WHERE NOT b.enqueued AND r.state = 'queued' AND b.created_at < now() - interval '5 seconds'`,
    );
    for (const row of rows) {
      await send(row.task, row.run_id);
      logger.warn(
        { runId: row.run_id },
        `re-sent ${row.run_id}, claimed by a beat that stopped before sending it`,
      );
    }
    return sent;
  };

  let running: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    running = running
      .then(() => tick())
      .catch((error: unknown) => logger.warn({ err: error }, 'beat tick failed'));
  }, options.tickMs ?? 1000);
  logger.info(
    { schedules: schedules.map((s) => `${s.task.name} ${s.cron.source}`), timezone: zone, catchup },
    `beat ${name} started (${schedules.length} schedules in ${zone})`,
  );

  return {
    name,
    isLeader: () => leader && !stopped,
    tick: () => {
      const t = running.then(() => tick());
      running = t.catch(() => undefined);
      return t;
    },
    async close() {
      stopped = true;
      clearInterval(timer);
      await running.catch(() => undefined);
      await pool.query('DELETE FROM aggjobs.beat_leader WHERE holder = $1', [name]).catch(() => undefined);
      leader = false;
      logger.info(`beat ${name} stopped`);
    },
  };
}
