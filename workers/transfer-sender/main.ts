/**
 * The transfer-sender role: a BullMQ worker on the `transfer` queue running
 * `send-transfer` jobs (see send-transfer.ts). The only role that decrypts
 * wallet keys, so the only one that needs PAYMENT_MASTER_KEY.
 *
 * Built from explicit dependencies; node providers, the lease/wake-up Redis
 * connection and the worker are created on `start()`. `stop()` lets running
 * jobs finish (BullMQ's close waits for them) and closes everything.
 *
 * @example
 * const sender = createTransferSender({ ...runtime, masterKey });
 * await sender.start();
 */
import type { Worker } from "bullmq";
import type { Config } from "../../shared/config/load-config.ts";
import { ConfigError } from "../../shared/config/load-config.ts";
import { createWorker, jobTiming } from "../../shared/jobs/worker.ts";
import { closeRedis, type RedisClient } from "../../shared/adapters/redis.ts";
import { createChainClient, type ChainClient } from "../../shared/adapters/chain.ts";
import { createKeystore } from "../../shared/adapters/keystore.ts";
import { describeError } from "../../shared/domain/errors.ts";
import { policyLimits } from "../../shared/domain/policy.ts";
import { outboxWaker, senderChains, type SenderContext } from "./context.ts";
import { createSendTransferHandler } from "./send-transfer.ts";
import { assetOf } from "./tx-build.ts";
import type { RoleDeps } from "../../shared/runtime/role-deps.ts";

export interface TransferSenderDeps extends RoleDeps {
  /** the 32-byte AES-256-GCM master key (from loadSecrets) */
  masterKey: Buffer;
  /** node clients per chain key; created from config when absent */
  chainClients?: Record<string, ChainClient>;
}

/** Fail at start, naming the key, when a policy limit cannot apply to its asset. */
export function checkPolicyConfig(config: Config): void {
  const keys = new Set(
    [config.policy.per_request_cap, config.policy.velocity_24h_per_wallet, config.policy.velocity_24h_total, config.policy.approval_threshold].flatMap((t) =>
      Object.keys(t),
    ),
  );
  for (const chain of Object.values(config.chains)) {
    for (const symbol of [chain.native_symbol, ...Object.keys(chain.tokens)]) {
      try {
        policyLimits(config.policy, chain.key, symbol, assetOf(chain, symbol)!.decimals);
      } catch (e) {
        throw new ConfigError(`invalid configuration:\n  policy (${chain.key}:${symbol}): ${(e as Error).message}`);
      }
    }
  }
  for (const k of keys) {
    const [a, b] = k.includes(":") ? k.split(":") : [null, k];
    const known = Object.values(config.chains).some((c) => (a === null || c.key === a) && assetOf(c, b!) !== null);
    if (!known) throw new ConfigError(`invalid configuration:\n  policy: "${k}" names no configured asset`);
  }
}

export function createTransferSender(deps: TransferSenderDeps) {
  const logger = deps.logger.child({ component: "transfer-sender" });
  checkPolicyConfig(deps.config);
  let worker: Worker | null = null;
  let redis: RedisClient | null = null;
  let owned: ChainClient[] = [];

  return {
    async start() {
      const clients =
        deps.chainClients ??
        Object.fromEntries(
          Object.values(deps.config.chains).map((c) => {
            const client = createChainClient(c);
            owned.push(client);
            return [c.key, client];
          }),
        );
      redis = deps.redis.create("transfer-sender");
      const ctx: SenderContext = {
        config: deps.config,
        pool: deps.db.pool,
        queues: deps.queues,
        logger,
        metrics: deps.metrics,
        chains: senderChains(clients),
        keystore: createKeystore({ pool: deps.db.pool, masterKey: deps.masterKey }),
        redis,
        prefix: deps.redis.prefix,
        wakeOutbox: outboxWaker(redis, deps.redis.prefix, logger),
        now: Date.now,
      };
      worker = createWorker("transfer", deps.redis, { "send-transfer": createSendTransferHandler(ctx) }, { concurrency: deps.config.workers.transfer_concurrency, logger, ...jobTiming(deps.config.workers) });
      worker.run().catch((e: unknown) => logger.error({ err: describeError(e) }, "transfer-sender: worker stopped with an error"));
      logger.info({ concurrency: deps.config.workers.transfer_concurrency }, "transfer-sender: started");
    },
    async stop() {
      await worker?.close();
      worker = null;
      owned.forEach((c) => c.close());
      owned = [];
      if (redis) await closeRedis(redis);
      redis = null;
      logger.info("transfer-sender: stopped");
    },
  };
}
