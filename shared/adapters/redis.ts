/**
 * Redis connections (BullMQ's store, locks, pub/sub wake-ups). Single node,
 * Sentinel or Cluster, from config. Redis is NOT the source of truth: it may
 * be flushed or restart empty, and the reconciler rebuilds every job from
 * MySQL, so nothing here needs persistence to be correct.
 *
 * Failure modes: while Redis is down, commands wait (BullMQ connections use
 * `maxRetriesPerRequest: null`) and ioredis reconnects with backoff.
 */
import { Redis, Cluster, type RedisOptions } from "ioredis";
import type { Config } from "../config/load-config.ts";

export type RedisClient = Redis | Cluster;

export interface RedisFactory {
  /** a new connection (each BullMQ Worker/Queue and subscriber needs its own) */
  /**
   * `autoPipelining`: commands issued in one turn of the event loop go out
   * in one write (ioredis enableAutoPipelining). Only for connections of our
   * own (leases, lookups): never hand one to BullMQ, whose scripts and
   * blocking commands assume a connection of their own.
   */
  create(purpose: string, opts?: { autoPipelining?: boolean }): RedisClient;
  prefix: string;
}

const retryStrategy = (times: number) => Math.min(100 * 2 ** Math.min(times, 6), 5_000);

export function createRedisFactory(cfg: Pick<Config, "redis_url" | "redis">): RedisFactory {
  const shared: RedisOptions = {
    // BullMQ requires null for blocking connections; it also suits the rest:
    // a command waits for Redis to come back instead of failing a job.
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy,
    lazyConnect: false,
  };
  return {
    prefix: cfg.redis.prefix,
    create(purpose, opts = {}) {
      const connectionName = `payment:${purpose}`;
      const base = { ...shared, enableAutoPipelining: opts.autoPipelining === true };
      if (cfg.redis.cluster_nodes?.length) {
        return new Cluster(
          cfg.redis.cluster_nodes.map((u) => {
            const url = new URL(u);
            return { host: url.hostname, port: Number(url.port || 6379) };
          }),
          { redisOptions: { ...base, connectionName }, clusterRetryStrategy: retryStrategy, enableAutoPipelining: base.enableAutoPipelining },
        );
      }
      if (cfg.redis.sentinels?.length) {
        return new Redis({ ...base, connectionName, sentinels: cfg.redis.sentinels, name: cfg.redis.sentinel_name ?? "mymaster" });
      }
      return new Redis(cfg.redis_url, { ...base, connectionName });
    },
  };
}

/** Close a connection without waiting on a dead server for ever. */
export async function closeRedis(client: RedisClient): Promise<void> {
  try {
    await Promise.race([client.quit(), new Promise((r) => setTimeout(r, 1000))]);
  } catch {
    /* already closed */
  }
  client.disconnect();
}
