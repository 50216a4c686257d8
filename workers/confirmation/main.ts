/**
 * The confirmation role: a BullMQ worker on the `confirm` queue whose jobs
 * reschedule themselves (delayed) until their transaction is deep enough,
 * then finalise it. One handler per job type:
 *   confirm-deposit  -> ./confirm-deposit.ts
 *   confirm-transfer -> ./confirm-transfer.ts
 *
 * Built from explicit dependencies; the worker, the node providers and the
 * Redis publisher are created on `start()`. `stop()` lets running jobs
 * finish (BullMQ's close waits for them) and closes everything.
 */
import type { Worker } from "bullmq";
import { createWorker, jobTiming, type Handlers } from "../../shared/jobs/worker.ts";
import { closeRedis, type RedisClient } from "../../shared/adapters/redis.ts";
import { createChainClient, type ChainClient } from "../../shared/adapters/chain.ts";
import { outboxChannel } from "../../shared/adapters/db/outbox.ts";
import { describeError } from "../../shared/domain/errors.ts";
import { createConfirmDepositHandler, type ConfirmDepositChain } from "./confirm-deposit.ts";
import { createDepositChainCheck } from "./deposit-chain-check.ts";
import { createConfirmTransferHandler } from "./confirm-transfer.ts";
import type { RoleDeps } from "../../shared/runtime/role-deps.ts";

export type ConfirmationDeps = RoleDeps;

export function createConfirmationWorker(deps: ConfirmationDeps) {
  const logger = deps.logger.child({ component: "confirmation" });
  let worker: Worker | null = null;
  let publisher: RedisClient | null = null;
  let clients: ChainClient[] = [];

  const wakeOutbox = async () => {
    await publisher?.publish(outboxChannel(deps.redis.prefix), "1").catch((e: unknown) => logger.warn({ err: describeError(e) }, "confirmation: outbox wake failed"));
  };

  function buildHandlers(): Handlers {
    clients = Object.values(deps.config.chains).map((c) => createChainClient(c));
    const depositChains = new Map<string, ConfirmDepositChain>(clients.map((c) => [c.key, { config: c.config, check: createDepositChainCheck(c.provider, c.config) }]));
    return {
      "confirm-deposit": createConfirmDepositHandler({ pool: deps.db.pool, chains: depositChains, metrics: deps.metrics, wakeOutbox }),
      "confirm-transfer": createConfirmTransferHandler({ ...deps, clients, wakeOutbox }),
    };
  }

  return {
    async start() {
      publisher = deps.redis.create("confirmation-publish");
      worker = createWorker("confirm", deps.redis, buildHandlers(), { concurrency: deps.config.workers.confirmation_concurrency, logger, ...jobTiming(deps.config.workers) });
      worker.run().catch((e: unknown) => logger.error({ err: describeError(e) }, "confirmation: worker stopped with an error"));
      logger.info({ concurrency: deps.config.workers.confirmation_concurrency }, "confirmation: started");
    },
    async stop() {
      if (worker) {
        // BullMQ does not close a connection it was given; it is ours to close.
        const connection = worker.opts.connection as unknown as RedisClient | undefined;
        await worker.close();
        if (connection && typeof connection.quit === "function") await closeRedis(connection);
      }
      worker = null;
      clients.forEach((c) => c.close());
      clients = [];
      if (publisher) await closeRedis(publisher);
      publisher = null;
      logger.info("confirmation: stopped");
    },
  };
}
