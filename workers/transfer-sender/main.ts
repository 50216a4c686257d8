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
import { assetOf, assetsOf } from "../../shared/domain/assets.ts";
import { outboxWaker, senderChains, type SenderContext } from "../../shared/transfers/context.ts";
import { createSendTransferHandler } from "./send-transfer.ts";
import type { RoleDeps } from "../../shared/runtime/role-deps.ts";
import { resolveBatching } from "../../shared/adapters/eip7702.ts";
import { currentDelegationContracts } from "../../shared/adapters/db/delegation-contracts.ts";

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

/**
 * Assets of chains with hot wallets that no velocity limit covers: a leaked
 * key or a runaway client could empty those wallets at the node's pace, and
 * only velocity limits stop a run of transfers each under the cap and the
 * threshold. Not an error (a gateway may choose so); said at every start.
 */
export async function unlimitedAssets(config: Config, pool: TransferSenderDeps["db"]["pool"]): Promise<string[]> {
  const rows = (await pool.query("SELECT DISTINCT chain FROM wallet WHERE kind = 'hot'")) as { chain: string }[];
  const withHot = new Set(rows.map((r) => r.chain));
  const p = config.policy;
  const out: string[] = [];
  for (const chain of Object.values(config.chains)) {
    if (!withHot.has(chain.key)) continue;
    for (const { symbol } of assetsOf(chain)) {
      const limited = [p.velocity_24h_per_wallet, p.velocity_24h_total].some((t) => t[`${chain.key}:${symbol}`] !== undefined || t[symbol] !== undefined);
      if (!limited) out.push(`${chain.key}:${symbol}`);
    }
  }
  return out;
}

/** how long a chain without a recorded executor waits before the database is asked again (a deploy while running is picked up) */
const EXECUTOR_RECHECK_MS = 30_000;

/**
 * Per chain, the EIP-7702 contracts its wallets use: the batching mode is
 * resolved on first use (the configured one, or "7702" where the node
 * accepts EIP-7702; `payment start` has already refused "7702" on a node
 * without it, see cli/preflight.ts), the contracts are looked up in
 * delegation_contract (this build's BatchExecutor, and the DepositSweeper of
 * the chain's collection wallet). Until they are known (node down at start,
 * nothing recorded yet) the chain sends one transaction per transfer and is
 * asked again every EXECUTOR_RECHECK_MS; once found, an address is kept.
 */
function delegationTargets(deps: TransferSenderDeps, clients: Record<string, ChainClient>, logger: TransferSenderDeps["logger"]) {
  const mode = new Map<string, "7702" | "off">();
  const found = new Map<string, { batchExecutor: string | null; sweeper: string | null }>();
  const askedAt = new Map<string, number>();
  const lookup = async (chain: string) => {
    const known = found.get(chain);
    const cfg = deps.config.chains[chain];
    // complete once everything this chain can have is found (no sweeper without a collection wallet)
    if (known?.batchExecutor && (known.sweeper || !cfg?.collection_address)) return known;
    const client = clients[chain];
    if (!cfg || !client || cfg.batching === "off" || mode.get(chain) === "off") return null;
    const last = askedAt.get(chain);
    if (last !== undefined && Date.now() - last < EXECUTOR_RECHECK_MS) return known ?? null;
    askedAt.set(chain, Date.now());
    try {
      if (!mode.has(chain)) mode.set(chain, await resolveBatching(cfg, client.provider));
      if (mode.get(chain) === "off") return null;
      const now = await currentDelegationContracts(deps.db.pool, chain, cfg.collection_address ?? null);
      found.set(chain, now);
      logger.info({ chain, executor: now.batchExecutor, sweeper: now.sweeper }, "transfer-sender: EIP-7702 contracts (null: not recorded, see payment contracts deploy; one transaction per transfer)");
      return now;
    } catch (e) {
      // a node or database fault says nothing about batching: plain transactions meanwhile, asked again later
      logger.warn({ chain, err: describeError(e) }, "transfer-sender: batching not resolved yet; one transaction per transfer meanwhile");
      return known ?? null;
    }
  };
  // The in-flight limit of delegated wallets, per chain: configured, or read from the node's name once.
  const inFlight = new Map<string, number | null>();
  const delegatedInFlight = async (chain: string): Promise<number | null> => {
    const cfg = deps.config.chains[chain];
    if (cfg?.delegated_in_flight !== undefined) return cfg.delegated_in_flight;
    if (inFlight.has(chain)) return inFlight.get(chain)!;
    let name = "";
    try {
      name = String(await clients[chain]!.provider.send("web3_clientVersion", []));
    } catch (e) {
      // unknown node: the safe limit this time, asked again next time
      logger.warn({ chain, err: describeError(e) }, "transfer-sender: node name not read; one transaction in flight per delegated wallet meanwhile");
      return 1;
    }
    const limit = /^anvil\//i.test(name) ? null : 1;
    inFlight.set(chain, limit);
    logger.info({ chain, node: name, delegated_in_flight: limit ?? "unlimited" }, "transfer-sender: transactions in flight per delegated wallet (delegated_in_flight)");
    return limit;
  };
  return {
    batchExecutor: async (chain: string) => (await lookup(chain))?.batchExecutor ?? null,
    depositSweeper: async (chain: string) => (await lookup(chain))?.sweeper ?? null,
    delegatedInFlight,
  };
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
      const targets = delegationTargets(deps, clients, logger);
      // leases, the early looks' lookups and the confirmation-job checks of 50 concurrent jobs: one write per turn
      redis = deps.redis.create("transfer-sender", { autoPipelining: true });
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
        batchExecutor: targets.batchExecutor,
        depositSweeper: targets.depositSweeper,
        delegatedInFlight: targets.delegatedInFlight,
      };
      worker = createWorker("transfer", deps.redis, { "send-transfer": createSendTransferHandler(ctx) }, { concurrency: deps.config.workers.transfer_concurrency, logger, ...jobTiming(deps.config.workers) });
      worker.run().catch((e: unknown) => logger.error({ err: describeError(e) }, "transfer-sender: worker stopped with an error"));
      logger.info({ concurrency: deps.config.workers.transfer_concurrency }, "transfer-sender: started");
      const unlimited = await unlimitedAssets(deps.config, deps.db.pool);
      if (unlimited.length > 0) {
        logger.warn(
          { assets: unlimited },
          "transfer-sender: hot wallets can send these assets without any velocity limit (policy.velocity_24h_per_wallet / velocity_24h_total): nothing caps what leaves them in 24 h",
        );
      }
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
