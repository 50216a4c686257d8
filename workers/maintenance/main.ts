/**
 * The maintenance worker: runs `reconcile` once at start and then on a
 * schedule (a BullMQ job scheduler, so with many processes the pass runs once
 * per interval, not once per process). Part of the confirmation role.
 */
import type { Worker } from "bullmq";
import type { Db } from "../../shared/adapters/db/client.ts";
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
  intervalMs: number;
}

export function createMaintenance(deps: MaintenanceDeps) {
  const logger = deps.logger.child({ role: "maintenance" });
  let worker: Worker | null = null;
  const reconcile = () => reconcileJobs({ pool: deps.db.pool, queues: deps.queues, logger });
  return {
    reconcile,
    async start() {
      worker = createWorker("maintenance", deps.redis, { reconcile: async () => reconcile() }, { concurrency: 1, logger });
      void worker.run();
      await deps.queues.maintenance.upsertJobScheduler(
        "reconcile",
        { every: deps.intervalMs },
        { name: "reconcile", data: { type: "reconcile", reason: "schedule" } },
      );
      // A pass at start: this process may be coming back after Redis lost everything.
      await reconcile().catch((err) => logger.error({ err: describeError(err) }, "reconcile at start failed; the schedule will retry"));
    },
    async stop() {
      await worker?.close();
    },
  };
}
