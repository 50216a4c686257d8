/**
 * The one typed job registry: for each job type, its BullMQ queue, zod
 * payload, deterministic job id, readable name and retry options. Jobs are
 * added only through `enqueue`/`enqueueMany` and parsed with `parseJobData`
 * first thing in a processor.
 *
 * Payloads carry row ids only, never amounts to trust or secrets: processors
 * re-read the row (MySQL is the source of truth) and act on what it says.
 * Deterministic ids make an enqueue idempotent while the job is kept in Redis;
 * when it is gone (completed job trimmed, Redis flushed) re-adding is still
 * safe because every processor is idempotent on its row's state.
 */
import { Queue, type JobsOptions } from "bullmq";
import { z } from "zod";
import { closeRedis, type RedisFactory } from "../adapters/redis.ts";

export const QUEUE_NAMES = ["transfer", "confirm", "maintenance"] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

const rowId = z.string().regex(/^[1-9][0-9]{0,18}$/, "row id");

/**
 * What a job is about, for the operator reading it on the dashboard (kind,
 * ids, chain, asset, amount, from, to): display only, never trusted by a
 * processor (it re-reads its row), never a secret.
 */
const payment = z.record(z.string().max(20), z.string().max(200)).optional();

const DAY_S = 24 * 3600;
const keep = { removeOnComplete: { age: DAY_S, count: 100_000 }, removeOnFail: { age: 30 * DAY_S } };

/** Job types. `label` makes the name readable on the dashboard (kind, queue_id/order_id). */
export const JOB_TYPES = {
  /** sign (once) and broadcast one transfer; follows an earlier signed tx on retry */
  "send-transfer": {
    queue: "transfer",
    schema: z.object({
      transferId: rowId,
      label: z.string().max(200).optional(),
      /** set by the job when it reports its transfer held (its held_at, ms): a retry of that job releases it */
      heldAt: z.string().max(20).optional(),
      payment,
    }),
    id: (p: { transferId: string }) => `send-${p.transferId}`,
    opts: { attempts: 12, backoff: { type: "exponential", delay: 1_000 }, ...keep },
  },
  /** wait for confirm_height, check canonical, finalise a deposit exactly once */
  "confirm-deposit": {
    queue: "confirm",
    schema: z.object({ depositId: rowId, label: z.string().max(200).optional(), payment }),
    id: (p: { depositId: string }) => `deposit-${p.depositId}`,
    opts: { attempts: 50, backoff: { type: "exponential", delay: 1_000 }, ...keep },
  },
  /** follow a sent transfer to its receipt, replace it if stuck, finalise it exactly once */
  "confirm-transfer": {
    queue: "confirm",
    schema: z.object({ transferId: rowId, label: z.string().max(200).optional(), payment }),
    id: (p: { transferId: string }) => `transfer-${p.transferId}`,
    opts: { attempts: 50, backoff: { type: "exponential", delay: 1_000 }, ...keep },
  },
  /** rebuild BullMQ jobs missing for non-final rows (Redis lost, job trimmed) */
  reconcile: {
    queue: "maintenance",
    schema: z.object({ reason: z.string().max(100).optional() }),
    id: () => undefined,
    opts: { attempts: 3, backoff: { type: "fixed", delay: 5_000 }, removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } },
  },
} as const satisfies Record<
  string,
  {
    queue: QueueName;
    schema: z.ZodType;
    id: (p: never) => string | undefined;
    opts: JobsOptions;
  }
>;

export type JobType = keyof typeof JOB_TYPES;
export type JobPayload<T extends JobType> = z.output<(typeof JOB_TYPES)[T]["schema"]>;
/** What a job's data holds: the payload plus its type tag. */
export type JobData<T extends JobType = JobType> = { [K in T]: JobPayload<K> & { type: K } }[T];

export type Queues = Record<QueueName, Queue> & { close(): Promise<void> };

export function createQueues(redis: RedisFactory): Queues {
  const connections = QUEUE_NAMES.map((name) => redis.create(`queue:${name}`));
  const queues = Object.fromEntries(
    QUEUE_NAMES.map((name, i) => [name, new Queue(name, { connection: connections[i]!, prefix: redis.prefix })]),
  ) as Record<QueueName, Queue>;
  return Object.assign(queues, {
    async close() {
      await Promise.all(QUEUE_NAMES.map((n) => queues[n].close()));
      // BullMQ never closes a connection it was handed (it counts it as shared).
      await Promise.all(connections.map((c) => closeRedis(c)));
    },
  });
}

function describe<T extends JobType>(type: T, payload: JobPayload<T>) {
  const def = JOB_TYPES[type];
  const data = { ...(def.schema.parse(payload) as object), type } as JobData<T>;
  const jobId = (def.id as (p: JobPayload<T>) => string | undefined)(payload);
  const label = (payload as { label?: string }).label;
  return { queue: def.queue as QueueName, name: label ? `${type} ${label}` : type, data, opts: { ...def.opts, ...(jobId ? { jobId } : {}) } };
}

/** Add one job (idempotent while a job with the same id exists). */
export async function enqueue<T extends JobType>(queues: Queues, type: T, payload: JobPayload<T>, extra: JobsOptions = {}) {
  const d = describe(type, payload);
  return queues[d.queue].add(d.name, d.data, { ...d.opts, ...extra });
}

/** Add many jobs of one type in one round trip (addBulk); `extra` for all of them, or per job (by index). */
export async function enqueueMany<T extends JobType>(queues: Queues, type: T, payloads: JobPayload<T>[], extra: JobsOptions | ((i: number) => JobsOptions) = {}) {
  if (payloads.length === 0) return [];
  const ds = payloads.map((p) => describe(type, p));
  const more = typeof extra === "function" ? extra : () => extra;
  return queues[ds[0]!.queue].addBulk(ds.map((d, i) => ({ name: d.name, data: d.data, opts: { ...d.opts, ...more(i) } })));
}

/** Validate a job's data against the registry; throws on an unknown or malformed job. */
export function parseJobData(data: unknown): JobData {
  const type = (data as { type?: unknown } | null)?.type;
  if (typeof type !== "string" || !(type in JOB_TYPES)) throw new Error(`unknown job type ${String(type)}`);
  const def = JOB_TYPES[type as JobType];
  return { ...(def.schema.parse(data) as object), type } as JobData;
}

/** The deterministic id a job of this type and payload has. */
export function jobIdFor<T extends JobType>(type: T, payload: JobPayload<T>): string | undefined {
  return (JOB_TYPES[type].id as (p: JobPayload<T>) => string | undefined)(payload);
}
