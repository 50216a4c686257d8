/**
 * What every part of the money-out path is handed: config, the pool,
 * queues, the keystore (transfer-sender only), per-chain node access, the
 * Redis client for address leases and outbox wake-ups. Built once per
 * process by `createTransferSender` (or a test) and passed down.
 */
import type { Pool } from "mariadb";
import type { Config } from "../../shared/config/load-config.ts";
import type { ChainClient } from "../../shared/adapters/chain.ts";
import type { RedisClient } from "../../shared/adapters/redis.ts";
import type { Keystore } from "../../shared/adapters/keystore.ts";
import type { Queues } from "../../shared/jobs/registry.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import { outboxChannel } from "../../shared/adapters/db/outbox.ts";
import { createChainReads, type ChainReads } from "./chain-reads.ts";

export interface SenderChain {
  key: string;
  config: Config["chains"][string];
  reads: ChainReads;
  /** the node's chain id (checked once against config.chain_id) */
  chainId(): Promise<bigint>;
}

/** What the money-out path needs in every role that touches it (sender and confirmation). */
export interface MoneyContext {
  config: Config;
  pool: Pool;
  queues: Queues;
  logger: Logger;
  metrics: Metrics;
  chains: Map<string, SenderChain>;
  /** tell the bridge's outbox publisher that notifications are waiting (best effort: it also polls) */
  wakeOutbox(): void;
  now(): number;
}

/** The transfer-sender's context: the only one with keys. */
export interface SenderContext extends MoneyContext {
  keystore: Keystore;
  /** address leases */
  redis: RedisClient;
  prefix: string;
}

export function senderChains(clients: Record<string, ChainClient>): Map<string, SenderChain> {
  const out = new Map<string, SenderChain>();
  for (const [key, client] of Object.entries(clients)) {
    const reads = createChainReads(client.provider);
    let id: Promise<bigint> | null = null;
    out.set(key, {
      key,
      config: client.config,
      reads,
      chainId() {
        id ??= reads.chainId().then((n) => {
          if (client.config.chain_id !== undefined && BigInt(client.config.chain_id) !== n) {
            throw new Error(`chain ${key}: node reports chain id ${n}, config says ${client.config.chain_id}`);
          }
          return n;
        });
        id.catch(() => (id = null));
        return id;
      },
    });
  }
  return out;
}

/** A wake-up function publishing on the outbox channel; failures are only logged (the publisher polls too). */
export function outboxWaker(redis: RedisClient, prefix: string, logger: Logger): () => void {
  return () => {
    redis.publish(outboxChannel(prefix), "1").catch((err: unknown) => logger.debug({ err: String(err) }, "outbox wake-up not published"));
  };
}

/** Redis key of the per-address send lease. */
export function senderLockKey(prefix: string, chain: string, address: string): string {
  return `${prefix}:lock:sender:${chain}:${address.toLowerCase()}`;
}
