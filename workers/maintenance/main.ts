/**
 * The maintenance worker: runs `reconcile` once at start and then on a
 * schedule (a BullMQ job scheduler, so with many processes the pass runs once
 * per interval, not once per process). Part of the confirmation role.
 *
 * The schedule itself lives in Redis and dies with it (a restart with no
 * persistence, a flush): every process therefore checks on a local timer
 * that it still exists, and when it is gone puts it back and runs a pass at
 * once, since that is exactly when jobs were lost
 * (tests/faults/redis-loss.test.ts).
 */
import type { Worker } from "bullmq";
import type { Db } from "../../shared/adapters/db/client.ts";
import type { Config } from "../../shared/config/load-config.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { RedisFactory } from "../../shared/adapters/redis.ts";
import type { Logger } from "../../shared/logger.ts";
import { describeError } from "../../shared/domain/errors.ts";
import type { Queues } from "../../shared/jobs/registry.ts";
import { createWorker } from "../../shared/jobs/worker.ts";
import { reconcileJobs } from "./reconcile.ts";

export interface MaintenanceDeps {
  db: Db;
  redis: RedisFactory;
  queues: Queues;
  logger: Logger;
  config: Config;
  metrics: Metrics;
  intervalMs: number;
}

export function createMaintenance(deps: MaintenanceDeps) {
  const logger = deps.logger.child({ role: "maintenance" });
  let worker: Worker | null = null;
  let guard: NodeJS.Timeout | null = null;
  const reconcile = () => reconcileJobs({ pool: deps.db.pool, queues: deps.queues, logger, config: deps.config, metrics: deps.metrics });
  const schedule = () =>
    deps.queues.maintenance.upsertJobScheduler("reconcile", { every: deps.intervalMs }, { name: "reconcile", data: { type: "reconcile", reason: "schedule" } });
  const keepScheduled = async () => {
    try {
      if (await deps.queues.maintenance.getJobScheduler("reconcile")) return;
      logger.warn("reconcile schedule missing from Redis (restarted empty or flushed?): restoring it and reconciling now");
      await schedule();
      await reconcile();
    } catch (err) {
      logger.error({ err: describeError(err) }, "could not check the reconcile schedule; will try again");
    }
  };
  return {
    reconcile,
    async start() {
      worker = createWorker("maintenance", deps.redis, { reconcile: async () => reconcile() }, { concurrency: 1, logger });
      void worker.run();
      await schedule();
      guard = setInterval(() => void keepScheduled(), deps.intervalMs);
      guard.unref();
      // A pass at start: this process may be coming back after Redis lost everything.
      await reconcile().catch((err) => logger.error({ err: describeError(err) }, "reconcile at start failed; the schedule will retry"));
    },
    async stop() {
      if (guard) clearInterval(guard);
      guard = null;
      await worker?.close();
    },
  };
}
