/**
 * What every part of the money-out path is handed: config, the pool,
 * queues, the keystore (transfer-sender only), per-chain node access, the
 * Redis client for address leases and outbox wake-ups. Built once per
 * process by `createTransferSender` (or a test) and passed down.
 */
import type { Pool } from "mariadb";
import type { Config } from "../config/load-config.ts";
import type { ChainClient } from "../adapters/chain.ts";
import type { RedisClient } from "../adapters/redis.ts";
import type { Keystore } from "../adapters/keystore.ts";
import type { Queues } from "../jobs/registry.ts";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";
import { outboxChannel } from "../adapters/db/outbox.ts";
import { createChainReads, type ChainReads } from "./chain-reads.ts";

/** The actor of every audit row the transfer-sender writes. */
export const SENDER_ACTOR = "transfer-sender";

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
  /**
   * The BatchExecutor a chain's hot wallets pay through (EIP-7702), or null
   * to send one transaction per transfer: batching resolved "7702" for the
   * chain at start AND this build's executor is recorded for it
   * (`payment contracts deploy`). Absent: never batch.
   */
  batchExecutor?: (chain: string) => Promise<string | null>;
  /**
   * The DepositSweeper of a chain's collection wallet, or null to sweep each
   * deposit wallet by its own transaction (after a gas top-up): same rule
   * as batchExecutor. Absent: never through the sweeper.
   */
  depositSweeper?: (chain: string) => Promise<string | null>;
  /**
   * How many unmined transactions a wallet that delegates (EIP-7702) may
   * have at the chain's node, null for no limit (the chain's
   * `delegated_in_flight`, else 1 except on anvil). Absent: no limit.
   */
  delegatedInFlight?: (chain: string) => Promise<number | null>;
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
