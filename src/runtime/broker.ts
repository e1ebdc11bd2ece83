import {
  createPostgresBackend,
  createRedisBackend,
  withBackend,
  Worker,
  type BackendFactory,
  type FlowProducer,
  type IQueueBackend,
  type Job,
  type Queue,
  type Processor,
  type WorkerOptions,
} from 'bullmq';
import type { JobSlots, SlotHolder } from './job-slots.ts';
import { createRedisClient, describeRedis, servingNode, type RedisClient } from './redis-client.ts';
import type { BrokerProbe, QueueName } from '../tasks/index.ts';
import { queueNames } from '../tasks/index.ts';

/** What a job carries: the run's validated arguments. The task is the job's name, the run id its id. */
export interface JobData {
  args: Record<string, unknown>;
}

/** The queue classes take a connection option; ours is a token: the broker's factory holds the real one. */
export interface BrokerToken {
  readonly broker: 'redis' | 'postgres';
}

export type BrokerQueue = Queue<
  JobData,
  unknown,
  string,
  JobData,
  unknown,
  string,
  IQueueBackend,
  BrokerToken
>;
export type BrokerWorker = Worker<JobData, unknown, string, IQueueBackend, never, BrokerToken>;
export type BrokerFlowProducer = FlowProducer<IQueueBackend, BrokerToken>;

export interface BrokerOptions {
  /**
   * A Redis URL (one server, sentinels or a cluster: config/redis-target.ts); undefined: BullMQ's
   * PostgreSQL backend on `databaseUrl`.
   */
  brokerUrl: string | undefined;
  databaseUrl: string;
  /**
   * Namespace of every queue: the Redis key prefix (hash-tagged, e.g. `{aggjobs}`, so a queue's keys
   * share one Redis Cluster slot), or the PostgreSQL schema of the backend (`bullmq`).
   */
  namespace: string;
  /** Connections of each PostgreSQL backend pool (one per Queue/Worker object). */
  pgPoolMax?: number;
  onWarning?: (message: string) => void;
  /** How long to wait for Redis at start. */
  connectTimeoutMs?: number;
}

export interface Broker extends BrokerProbe {
  /** For log lines: the broker in use, without secrets. */
  readonly describe: string;
  readonly namespace: string;
  queue(name: QueueName): BrokerQueue;
  createWorker(
    name: QueueName,
    processor: Processor<JobData, unknown, string>,
    options: WorkerTuning,
  ): BrokerWorker;
  flowProducer(): BrokerFlowProducer;
  /** The Redis client of a Redis broker (result backend, control), undefined on PostgreSQL. */
  readonly redis: RedisClient | undefined;
  /**
   * Which server answers for the queues now ("host:port": the primary, or the Cluster master of the
   * namespace's slot), and the failovers recorded (kept in Redis, seen by every process).
   * Undefined on PostgreSQL.
   */
  serving(): Promise<
    { node: string; failovers: Array<{ from: string; to: string; seenAt: Date }> } | undefined
  >;
  close(): Promise<void>;
}

export interface WorkerTuning {
  concurrency: number;
  /** How long a job's lock lasts without renewal: after a kill -9, the job is taken again after about this long. */
  lockDurationMs?: number;
  /** How often stalled jobs are looked for. */
  stalledIntervalMs?: number;
  /** How many times a job may stall (its worker died) before it fails. */
  maxStalledCount?: number;
  /** Delay before retry number `attemptsMade` (jobs with `backoff: { type: 'aggjobs' }`). */
  backoff?: (attemptsMade: number) => number;
  /** The slots shared by the workers of one process: a job is only fetched into a free one. */
  slots: JobSlots;
}

type SlottedJob = Job<JobData, unknown, string, never>;

/** What a BullMQ 6 Worker keeps private and resume() uses: the queue its main loop waits on. */
interface LoopQueueOf {
  mainLoopQueue: { add(promise: Promise<unknown>): void } | null;
}

/** The broker's Redis did not answer at start; the message names it (password hidden) and the variables. */
export class BrokerUnreachableError extends Error {
  override readonly name = 'BrokerUnreachableError';
}

/**
 * A BullMQ Worker that fetches a job only into a free slot of its process. BullMQ's own loop holds
 * up to `concurrency` jobs per Worker, and a worker process has one Worker per queue: without this,
 * a process on two queues would lock twice its concurrency in jobs that no other process can take,
 * and start them after its shutdown grace. Every fetch goes through `moveToActive`, which takes a
 * slot first; the job BullMQ fetches with another one's completion inherits that one's slot, and is
 * only fetched when the slot may pass to it (JobSlots.mayHandOver). So `slots` bounds what the
 * process holds.
 */
class SlottedWorker
  extends Worker<JobData, unknown, string, IQueueBackend, never, BrokerToken>
  implements SlotHolder
{
  reserved = 0;

  constructor(
    name: string,
    processor: Processor<JobData, unknown, string>,
    opts: WorkerOptions<BrokerToken>,
    factory: BackendFactory<IQueueBackend, BrokerToken>,
    private readonly slots: JobSlots,
  ) {
    super(name, processor, opts, factory);
    slots.register(this);
    this.on('closed', () => slots.unregister(this));
  }

  override get concurrency(): number {
    return super.concurrency;
  }

  /**
   * JobSlots raises this when a slot frees. BullMQ's loop reads it only between jobs: a Worker held
   * to the jobs it has (another queue's Worker had the other slots) waits in its loop for one of them
   * to end, minutes for a backfill window, while the freed slot stays idle. So a rise wakes the loop
   * the way BullMQ's own resume() does: a settled promise on the queue the loop waits on.
   */
  override set concurrency(value: number) {
    const raised = value > super.concurrency;
    super.concurrency = value;
    if (raised && this.reserved > 0) (this as unknown as LoopQueueOf).mainLoopQueue?.add(Promise.resolve());
  }

  protected override async moveToActive(token: string, name?: string): Promise<SlottedJob> {
    if (!(await this.slots.take(this))) return undefined as unknown as SlottedJob;
    let job: SlottedJob | undefined;
    try {
      job = await super.moveToActive(token, name);
    } catch (error) {
      this.slots.give(this);
      throw error;
    }
    if (job === undefined) this.slots.give(this);
    return job as SlottedJob;
  }

  override async processJob(
    job: SlottedJob,
    token: string,
    fetchNext: () => boolean = () => true,
  ): Promise<void | SlottedJob> {
    // The next job comes with this one's completion only when the slot can pass to it; otherwise
    // the slot is given back and the next fetch takes one first.
    let handOver = false;
    let next: void | SlottedJob = undefined;
    try {
      next = await super.processJob(job, token, () => {
        handOver = fetchNext() && this.slots.mayHandOver();
        return handOver;
      });
      return next;
    } finally {
      if (!handOver || next === undefined) this.slots.give(this);
    }
  }
}

async function warnIfEvicting(redis: RedisClient, warn: (m: string) => void): Promise<void> {
  try {
    const reply = (await redis.config('GET', 'maxmemory-policy')) as string[];
    const policy = reply[1];
    if (policy !== undefined && policy !== 'noeviction') {
      warn(
        `Redis maxmemory-policy is "${policy}", not "noeviction": under memory pressure Redis will silently ` +
          'delete queued jobs and locks. Set `maxmemory-policy noeviction` on the broker.',
      );
    }
  } catch {
    // CONFIG is disabled on some managed Redis services: nothing to check.
  }
}

/**
 * Connects BullMQ to Redis (REDIS_URL / CELERY_BROKER_URL) or, with neither set, to its own PostgreSQL
 * backend on the database (schema `namespace`, migrated on first use). The rest of aggjobs sees the
 * same Queue/Worker/FlowProducer API either way.
 */
export async function createBroker(options: BrokerOptions): Promise<Broker> {
  const kind: BrokerToken['broker'] = options.brokerUrl === undefined ? 'postgres' : 'redis';
  const token: BrokerToken = { broker: kind };
  let redis: RedisClient | undefined;
  let factory: BackendFactory<IQueueBackend, BrokerToken>;
  let describe: string;

  if (options.brokerUrl !== undefined) {
    // rediss… turns TLS on; a password in the URL is used for AUTH.
    const client = createRedisClient(options.brokerUrl, {
      maxRetriesPerRequest: null,
      enableReadyCheck: true,
    });
    client.on('error', () => undefined);
    const reachable = await Promise.race([
      client.ping().then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), options.connectTimeoutMs ?? 10_000).unref()),
    ]);
    if (!reachable) {
      client.disconnect();
      throw new BrokerUnreachableError(
        `cannot reach the Redis broker ${describeRedis(options.brokerUrl).replace(/^Redis at /, 'at ')} (REDIS_URL/CELERY_BROKER_URL)`,
      );
    }
    redis = client;
    await warnIfEvicting(client, options.onWarning ?? (() => undefined));
    factory = (name, opts, extra) => createRedisBackend(name, { ...opts, connection: client }, extra);
    describe = `${describeRedis(options.brokerUrl)} (key prefix ${options.namespace})`;
  } else {
    const connection = {
      connectionString: options.databaseUrl,
      schema: options.namespace,
      migrate: true,
      max: options.pgPoolMax ?? 3,
      application_name: 'aggjobs broker',
    };
    factory = (name, opts, extra) => createPostgresBackend(name, { ...opts, connection }, extra);
    describe = `PostgreSQL (BullMQ backend in schema ${options.namespace})`;
  }
  const classes = withBackend(factory);
  const prefix = kind === 'redis' ? { prefix: options.namespace } : {};
  const queues = new Map<QueueName, BrokerQueue>();
  let flow: BrokerFlowProducer | undefined;
  const workers = new Set<BrokerWorker>();

  const queue = (name: QueueName): BrokerQueue => {
    let q = queues.get(name);
    if (q === undefined) {
      q = new classes.Queue<JobData, unknown, string>(name, { connection: token, ...prefix });
      q.on('error', () => undefined);
      queues.set(name, q);
    }
    return q;
  };

  const broker: Broker = {
    kind,
    describe,
    namespace: options.namespace,
    redis,
    queue,
    createWorker(name, processor, tuning) {
      const worker = new SlottedWorker(
        name,
        processor,
        {
          connection: token,
          ...prefix,
          concurrency: tuning.concurrency,
          lockDuration: tuning.lockDurationMs ?? 30_000,
          stalledInterval: tuning.stalledIntervalMs ?? 30_000,
          maxStalledCount: tuning.maxStalledCount ?? 2,
          autorun: false,
          ...(tuning.backoff === undefined ? {} : { settings: { backoffStrategy: tuning.backoff } }),
        },
        factory,
        tuning.slots,
      );
      workers.add(worker);
      worker.on('closed', () => workers.delete(worker));
      return worker;
    },
    flowProducer() {
      flow ??= new classes.FlowProducer({ connection: token, ...prefix });
      return flow;
    },
    async ping() {
      const started = performance.now();
      if (redis !== undefined) await redis.ping();
      else await queue('maintenance').getJobCounts('waiting');
      return Math.round(performance.now() - started);
    },
    async serving() {
      if (redis === undefined) return undefined;
      // Kept in Redis beside the queues (same hash tag, same slot), so every process sees the
      // failovers any of them noticed: the node last seen, and the last 20 changes of it. SET … GET
      // is atomic: of the processes that see a new node, only the first records the change.
      const nodeKey = `${options.namespace}:aggjobs:serving-node`;
      const logKey = `${options.namespace}:aggjobs:failovers`;
      const node = await servingNode(redis, nodeKey);
      if (node !== 'unknown') {
        const previous = await redis.set(nodeKey, node, 'GET');
        if (previous !== null && previous !== node) {
          const change = JSON.stringify({ from: previous, to: node, seenAt: new Date().toISOString() });
          await redis.multi().lpush(logKey, change).ltrim(logKey, 0, 19).exec();
        }
      }
      const log = await redis.lrange(logKey, 0, 19);
      const failovers = log
        .map((line) => JSON.parse(line) as { from: string; to: string; seenAt: string })
        .map((f) => ({ from: f.from, to: f.to, seenAt: new Date(f.seenAt) }))
        .reverse();
      return { node, failovers };
    },
    async counts() {
      const result: Record<string, { waiting: number; active: number; delayed: number; failed: number }> = {};
      for (const name of queueNames) {
        const c = await queue(name).getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed');
        result[name] = {
          waiting: (c.waiting ?? 0) + (c.prioritized ?? 0),
          active: c.active ?? 0,
          delayed: c.delayed ?? 0,
          failed: c.failed ?? 0,
        };
      }
      return result;
    },
    async close() {
      await Promise.all([...workers].map((w) => w.close().catch(() => undefined)));
      await Promise.all([...queues.values()].map((q) => q.close().catch(() => undefined)));
      await flow?.close().catch(() => undefined);
      if (redis !== undefined) await redis.quit().catch(() => redis?.disconnect());
    },
  };
  return broker;
}
