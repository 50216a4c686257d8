/**
 * Redis leases: a key set with NX and a TTL, renewed while held, released
 * only by its owner (compare-and-delete in Lua). Used for the chain-watch
 * leader and per-address send locks.
 *
 * A lease is an optimisation, not the safety net: if Redis is flushed or a
 * holder stalls past its TTL, two holders may briefly overlap. Every path
 * that moves money is also guarded in MySQL (unique keys, guarded updates),
 * so an overlap can waste work but never double-spend.
 */
import { randomUUID } from "node:crypto";
import type { RedisClient } from "./redis.ts";

const RELEASE = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;
const RENEW = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`;

export interface Lease {
  key: string;
  token: string;
  /** false once renewal found the lease taken or expired */
  readonly held: boolean;
  release(): Promise<void>;
}

export async function tryAcquire(redis: RedisClient, key: string, ttlMs: number, opts: { renew?: boolean } = {}): Promise<Lease | null> {
  const token = randomUUID();
  const ok = await redis.set(key, token, "PX", ttlMs, "NX");
  if (ok !== "OK") return null;
  let held = true;
  let timer: NodeJS.Timeout | null = null;
  if (opts.renew !== false) {
    timer = setInterval(async () => {
      try {
        const r = await redis.eval(RENEW, 1, key, token, String(ttlMs));
        if (Number(r) !== 1) {
          held = false;
          if (timer) clearInterval(timer);
        }
      } catch {
        /* Redis unreachable: keep trying; the TTL decides */
      }
    }, Math.max(50, Math.floor(ttlMs / 3)));
    timer.unref();
  }
  return {
    key,
    token,
    get held() {
      return held;
    },
    async release() {
      if (timer) clearInterval(timer);
      held = false;
      await redis.eval(RELEASE, 1, key, token).catch(() => undefined);
    },
  };
}

/** Wait (polling with jitter) until the lease is acquired or `timeoutMs` passes. */
export async function acquire(redis: RedisClient, key: string, ttlMs: number, timeoutMs: number): Promise<Lease | null> {
  const end = Date.now() + timeoutMs;
  for (let i = 0; ; i++) {
    const lease = await tryAcquire(redis, key, ttlMs);
    if (lease) return lease;
    if (Date.now() > end) return null;
    await new Promise((r) => setTimeout(r, Math.min(5 * 2 ** Math.min(i, 5), 100) + Math.random() * 10));
  }
}
