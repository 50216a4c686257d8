/**
 * The chain-watch role: for each configured chain, one active scanner across
 * all processes. Processes compete for a Redis lease per chain
 * (`<prefix>:chain-watch:leader:<chain>`); the holder renews it and scans,
 * the others retry to take over when it lapses (holder killed, Redis lost).
 * The lease only avoids wasted work: block commits are guarded in MySQL
 * (see block-store.ts), so two scanners at once cannot double-report.
 *
 * The holder follows the head over WebSocket when `ws_url` is set and polls
 * every `poll_interval_ms` while the socket is absent or down (and slowly
 * even when it is up, in case it silently stalls).
 *
 * `stop()` (SIGTERM) lets the block being committed finish, releases the
 * lease so a standby takes over at once, and closes sockets.
 */
import { Network } from "ethers";
import { closeRedis, type RedisClient } from "../../shared/adapters/redis.ts";
import { createChainClient, type ChainClient } from "../../shared/adapters/chain.ts";
import { tryAcquire, type Lease } from "../../shared/adapters/locks.ts";
import { outboxChannel } from "../../shared/adapters/db/outbox.ts";
import { describeError } from "../../shared/domain/errors.ts";
import type { ChainConfig } from "../../shared/config/schema.ts";
import { blockWindow } from "../../shared/domain/reorg.ts";
import { assetOf } from "../../shared/domain/assets.ts";
import { createBlockSource } from "./block-source.ts";
import { createBlockStore, CursorMovedError } from "./block-store.ts";
import { createChainScanner } from "./scanner.ts";
import { createHeadWatcher, type HeadWatcher } from "./head-watcher.ts";
import type { RoleDeps } from "../../shared/runtime/role-deps.ts";

export type ChainWatchDeps = RoleDeps;

/** Lease time-to-live: a few poll intervals, so a dead holder is replaced quickly but a busy one is not. */
export const leaseTtlMs = (chain: ChainConfig) => Math.min(Math.max(5 * chain.poll_interval_ms, 3_000), 30_000);

/** Sleeps that end early on wake() (a new head, or stop). */
function createWaker() {
  let pending = false;
  let resolve: (() => void) | null = null;
  return {
    wake() {
      pending = true;
      resolve?.();
    },
    async sleep(ms: number) {
      if (pending) {
        pending = false;
        return;
      }
      await new Promise<void>((r) => {
        const timer = setTimeout(() => r(), ms);
        resolve = () => {
          clearTimeout(timer);
          r();
        };
      });
      resolve = null;
      pending = false;
    },
  };
}

function createChainFollower(deps: ChainWatchDeps, chain: ChainConfig & { key: string }, redisClient: RedisClient, publisher: RedisClient) {
  const logger = deps.logger.child({ component: "chain-watch", chain: chain.key });
  const leaseKey = `${deps.redis.prefix}:chain-watch:leader:${chain.key}`;
  const ttl = leaseTtlMs(chain);
  const waker = createWaker();
  let stopping = false;
  let loop: Promise<void> | null = null;

  async function lead(lease: Lease, client: ChainClient) {
    const source = createBlockSource(client.provider, chain);
    const store = createBlockStore({
      pool: deps.db.pool,
      chain: chain.key,
      window: blockWindow(chain.confirm_height, chain.lookback_blocks),
      decimalsOf: (symbol) => {
        const d = assetOf(chain, symbol)?.decimals;
        if (d === undefined) throw new Error(`no decimals known for ${chain.key} ${symbol}`);
        return d;
      },
    });
    const scanner = createChainScanner({
      chain,
      source,
      store,
      queues: deps.queues,
      logger,
      metrics: deps.metrics,
      wakeOutbox: async () => {
        await publisher.publish(outboxChannel(deps.redis.prefix), "1").catch((e: unknown) => logger.warn({ err: describeError(e) }, "chain-watch: outbox wake failed"));
      },
    });
    let heads: HeadWatcher | null = null;
    if (chain.ws_url) {
      const network = chain.chain_id ? Network.from(chain.chain_id) : await client.provider.getNetwork();
      heads = createHeadWatcher({ url: chain.ws_url, network, logger, onHead: () => waker.wake() });
      heads.start();
    }
    let failures = 0;
    try {
      while (!stopping && lease.held) {
        try {
          await scanner.tick(() => stopping || !lease.held);
          failures = 0;
        } catch (e) {
          failures++;
          if (e instanceof CursorMovedError) {
            scanner.reset();
            logger.info("chain-watch: cursor moved by another scanner; re-reading it");
          } else {
            logger.warn({ err: describeError(e), failures }, "chain-watch: scan failed; retrying");
          }
        }
        const idle = heads?.connected ? chain.poll_interval_ms * 5 : chain.poll_interval_ms;
        const backoff = failures > 0 ? Math.min(chain.poll_interval_ms * 2 ** Math.min(failures, 8), 30_000) : idle;
        await waker.sleep(backoff);
      }
    } finally {
      await heads?.stop();
    }
  }

  async function run() {
    let client: ChainClient | null = null;
    while (!stopping) {
      let lease: Lease | null = null;
      try {
        lease = await tryAcquire(redisClient, leaseKey, ttl);
      } catch (e) {
        logger.warn({ err: describeError(e) }, "chain-watch: cannot reach Redis for the leader lease");
      }
      if (!lease) {
        await waker.sleep(Math.max(Math.floor(ttl / 3), chain.poll_interval_ms));
        continue;
      }
      logger.info({ lease: leaseKey }, "chain-watch: leading this chain");
      try {
        client ??= createChainClient(chain);
        await lead(lease, client);
      } catch (e) {
        logger.error({ err: describeError(e) }, "chain-watch: scanner stopped with an error; stepping down");
        await waker.sleep(chain.poll_interval_ms);
      } finally {
        await lease.release();
        if (!stopping) logger.warn("chain-watch: lost the leader lease; standing by");
      }
    }
    client?.close();
  }

  return {
    start() {
      stopping = false;
      loop = run();
    },
    async stop() {
      stopping = true;
      waker.wake();
      await loop;
    },
  };
}

export function createChainWatch(deps: ChainWatchDeps) {
  let redisClient: RedisClient | null = null;
  let publisher: RedisClient | null = null;
  let followers: ReturnType<typeof createChainFollower>[] = [];
  return {
    async start() {
      redisClient = deps.redis.create("chain-watch-lease");
      publisher = deps.redis.create("chain-watch-publish");
      followers = Object.values(deps.config.chains).map((c) => createChainFollower(deps, c, redisClient!, publisher!));
      followers.forEach((f) => f.start());
      deps.logger.info({ chains: Object.keys(deps.config.chains) }, "chain-watch: started");
    },
    async stop() {
      await Promise.all(followers.map((f) => f.stop()));
      followers = [];
      if (redisClient) await closeRedis(redisClient);
      if (publisher) await closeRedis(publisher);
      redisClient = publisher = null;
      deps.logger.info("chain-watch: stopped");
    },
  };
}
