import { z } from 'zod';
import { runStates } from '../../runtime/index.ts';
import { granularities } from '../../tasks/index.ts';

/** An ISO 8601 date-time; without a zone it is read as UTC. */
export const dateTime = z
  .string()
  .trim()
  .refine((s) => /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(s), {
    message: 'must be an ISO 8601 date-time such as 2026-11-29T13:00:00Z',
  })
  .transform((s) => new Date(/T.*(Z|[+-]\d{2}:?\d{2})$/.test(s) || !s.includes('T') ? s : `${s}Z`))
  .refine((d) => !Number.isNaN(d.getTime()), { message: 'must be a valid date-time' });

/** An optional query parameter: an empty string (an untouched form field) counts as absent. */
export const optional = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (v === '' ? undefined : v), schema.optional());

export const runListQuery = z
  .object({
    task: optional(z.string().max(200)),
    state: optional(z.enum(runStates)),
    worker: optional(z.string().max(300)),
    from: optional(dateTime),
    to: optional(dateTime),
    q: optional(z.string().max(200)),
    /** 1: show a backfill's window runs among the others (default: only on their backfill's page). */
    children: optional(z.enum(['0', '1'])),
    page: optional(z.coerce.number().int().min(1).max(100_000)),
    limit: optional(z.coerce.number().int().min(1).max(500)),
  })
  .refine((v) => v.from === undefined || v.to === undefined || v.from < v.to, {
    message: 'must be after from',
    path: ['to'],
  });

export const applyBody = z.strictObject({
  args: z.array(z.unknown()).max(20).optional(),
  kwargs: z.record(z.string(), z.unknown()).optional(),
  countdown: z
    .number()
    .int()
    .min(0)
    .max(86_400 * 7)
    .optional(),
});

export const revokeBody = z.strictObject({ terminate: z.boolean().optional() });

export const concurrencyBody = z.strictObject({ concurrency: z.number().int().min(1).max(256) });

export const queueName = z.enum(['aggregation', 'maintenance']);

export const seriesQuery = z
  .object({
    workspace: optional(z.coerce.number().int().min(0)),
    from: optional(dateTime),
    to: optional(dateTime),
  })
  .refine((v) => v.from === undefined || v.to === undefined || v.from < v.to, {
    message: 'must be after from',
    path: ['to'],
  });

export const runStatsQuery = z.object({
  hours: optional(
    z.coerce
      .number()
      .int()
      .min(1)
      .max(24 * 90),
  ),
  task: optional(z.string().max(200)),
});

export const backfillBody = z.strictObject({
  start_date: z.string().min(1).max(40),
  end_date: z.string().min(1).max(40),
  granularity: z.enum(granularities),
});

export const autoscaleBody = z
  .strictObject({ max: z.number().int().min(1).max(256), min: z.number().int().min(1).max(256) })
  .refine((v) => v.min <= v.max, { message: 'must be at most max', path: ['min'] });

export const consumerBody = z.strictObject({ queue: queueName });

/** Seconds, as TASK_TIME_LIMITS takes them: at most a week. */
export const timeLimitsBody = z
  .strictObject({
    soft: z.number().positive().max(604_800),
    hard: z.number().positive().max(604_800),
  })
  .refine((v) => v.soft <= v.hard, { message: 'must be at most hard', path: ['soft'] });

/** A queue's rate limit: `max` jobs per `durationMs` over every worker; `max: null` removes it. */
export const rateLimitBody = z.union([
  z.strictObject({
    max: z.number().int().min(1).max(1_000_000),
    durationMs: z.number().int().min(1).max(86_400_000),
  }),
  z.strictObject({ max: z.null() }),
]);

/** How long a worker must have been offline to be pruned (default 0: every offline one). */
export const pruneBody = z.strictObject({
  offlineSeconds: z.number().int().min(0).max(31_536_000).optional(),
});
