/**
 * The one place BullMQ workers are built: parse the job's data with the
 * registry, dispatch to the handler of its type with a child logger carrying
 * the job's ids, and map our error tree to BullMQ's: a PermanentError becomes
 * UnrecoverableError (no retry), anything else is retried with the job
 * type's backoff. DelayedError (a job rescheduling itself) passes through.
 */
import { Worker, UnrecoverableError, DelayedError, type Job } from "bullmq";
import { lazyChild, type Logger } from "../logger.ts";
import { closeRedis, type RedisFactory } from "../adapters/redis.ts";
import { PermanentError, RetryableError, describeError } from "../domain/errors.ts";
import { parseJobData, type JobData, type JobType, type QueueName } from "./registry.ts";

export type Handler<T extends JobType> = (data: JobData<T>, job: Job, ctx: { token: string | undefined; logger: Logger }) => Promise<unknown>;
export type Handlers = { [T in JobType]?: Handler<T> };

export interface WorkerOptions {
  concurrency: number;
  logger: Logger;
  /** lock duration; a job whose process dies is re-run after this */
  lockDurationMs?: number;
  /** how often stalled (orphaned) jobs are looked for */
  stalledIntervalMs?: number;
}

export function createWorker(queue: QueueName, redis: RedisFactory, handlers: Handlers, opts: WorkerOptions): Worker {
  const connection = redis.create(`worker:${queue}`);
  const worker = new Worker(
    queue,
    async (job, token) => {
      let data: JobData;
      try {
        data = parseJobData(job.data);
      } catch (e) {
        throw new UnrecoverableError(`malformed job data: ${describeError(e)}`);
      }
      const handler = handlers[data.type] as Handler<JobType> | undefined;
      if (!handler) throw new UnrecoverableError(`no handler for ${data.type} on queue ${queue}`);
      const logger = lazyChild(opts.logger, { job: job.id, type: data.type });
      try {
        return await handler(data as never, job, { token, logger });
      } catch (e) {
        if (e instanceof DelayedError || e instanceof UnrecoverableError) throw e;
        if (e instanceof PermanentError) {
          logger.warn({ code: e.code, err: describeError(e) }, "job failed permanently");
          throw new UnrecoverableError(`${e.code}: ${e.message}`);
        }
        logger.warn({ err: describeError(e), attempt: job.attemptsMade + 1 }, "job failed; will retry");
        throw e;
      }
    },
    {
      connection,
      prefix: redis.prefix,
      concurrency: opts.concurrency,
      autorun: false,
      lockDuration: opts.lockDurationMs ?? 15_000,
      stalledInterval: opts.stalledIntervalMs ?? 5_000,
      maxStalledCount: 1_000,
    },
  );
  worker.on("error", (err) => opts.logger.error({ err: describeError(err), queue }, "worker error"));
  // BullMQ never closes a connection it was handed (it may be shared): without
  // this, every stopped worker keeps a Redis socket open and its process alive.
  worker.once("closed", () => void closeRedis(connection));
  return worker;
}

/**
 * Run this job again `delayMs` from now without spending one of its
 * attempts (a job waiting on the chain, or on a lease), recording `progress`
 * first (shown on the dashboard, read by the next run). Needs the job's lock
 * token: without it BullMQ could not tell this worker still owns the job.
 */
export async function reschedule(job: Job, token: string | undefined, delayMs: number, progress?: object): Promise<never> {
  if (!token) throw new RetryableError("job has no lock token; cannot reschedule");
  if (progress) await job.updateProgress(progress);
  await job.moveToDelayed(Date.now() + delayMs, token);
  throw new DelayedError();
}

/** The job-lock timing of `config.workers`, for createWorker's options. */
export function jobTiming(workers: { lock_duration_ms: number; stalled_interval_ms: number }) {
  return { lockDurationMs: workers.lock_duration_ms, stalledIntervalMs: workers.stalled_interval_ms };
}
