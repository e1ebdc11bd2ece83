import type { Settings } from '../config/index.ts';
import type { Queryable } from '../db/index.ts';
import type { AnyTaskDefinition, TaskSet } from '../tasks/index.ts';
import { latestSlot, nextSlot, parseCron, type Cron } from './cron.ts';

/** One periodic task of the beat: the seed's schedule table, in ANALYTICS_TIMEZONE. */
export interface Schedule {
  task: AnyTaskDefinition;
  cron: Cron;
  enabled: boolean;
}

export function schedulesOf(tasks: TaskSet, settings: Settings): Schedule[] {
  return [...tasks.values()]
    .filter((t) => t.schedule !== undefined)
    .map((t) => ({
      task: t,
      cron: parseCron(t.schedule?.cron ?? ''),
      enabled: t.schedule?.enabled(settings) ?? false,
    }));
}

/** The run id of a slot: the task and the slot's UTC time (BullMQ ids cannot contain ':'). */
export function slotRunId(task: string, slot: Date): string {
  return `${task}@${slot
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z')}`;
}

export interface ScheduleInfo {
  task: string;
  cron: string;
  timezone: string;
  queue: string;
  enabled: boolean;
  /** The next slot after now (undefined when disabled). */
  nextRunAt: Date | undefined;
  /** The latest slot at or before now. */
  dueSlot: Date | undefined;
  lastSlot: Date | null;
  lastRun: { id: string; state: string; enqueuedAt: Date; finishedAt: Date | null } | null;
}

/** Next run times, without the database: what the beat will enqueue next, per schedule. */
export function nextRunTimes(
  tasks: TaskSet,
  settings: Settings,
  now: Date = new Date(),
): Array<{ task: string; nextRunAt: Date | undefined }> {
  return schedulesOf(tasks, settings).map((s) => ({
    task: s.task.name,
    nextRunAt: s.enabled ? nextSlot(s.cron, now, settings.analyticsTimezone) : undefined,
  }));
}

/** Every schedule with its last slot and run, and its next run: what the dashboard shows. */
export async function listSchedules(
  db: Queryable,
  tasks: TaskSet,
  settings: Settings,
  now: Date = new Date(),
): Promise<ScheduleInfo[]> {
  const schedules = schedulesOf(tasks, settings);
  const { rows } = await db.query<{
    task: string;
    slot: Date | null;
    id: string | null;
    state: string | null;
    enqueued_at: Date | null;
    finished_at: Date | null;
  }>(
    `SELECT t.task, s.slot, r.id, r.state, r.enqueued_at, r.finished_at
     FROM unnest($1::text[]) AS t(task)
     LEFT JOIN LATERAL (SELECT max(slot) AS slot FROM aggjobs.beat_slots b WHERE b.task = t.task) s ON true
     LEFT JOIN LATERAL (SELECT id, state, enqueued_at, finished_at FROM aggjobs.task_runs r
                        WHERE r.task = t.task ORDER BY enqueued_at DESC LIMIT 1) r ON true`,
    [schedules.map((s) => s.task.name)],
  );
  const zone = settings.analyticsTimezone;
  return schedules.map((s) => {
    const row = rows.find((r) => r.task === s.task.name);
    return {
      task: s.task.name,
      cron: s.cron.source,
      timezone: zone,
      queue: s.task.queue,
      enabled: s.enabled,
      nextRunAt: s.enabled ? nextSlot(s.cron, now, zone) : undefined,
      dueSlot: latestSlot(s.cron, now, zone),
      lastSlot: row?.slot ?? null,
      lastRun:
        row?.id == null
          ? null
          : {
              id: row.id,
              state: row.state ?? 'unknown',
              enqueuedAt: row.enqueued_at ?? now,
              finishedAt: row.finished_at ?? null,
            },
    };
  });
}
