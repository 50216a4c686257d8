/**
 * When the send jobs of newly queued transfers first run
 * (shared/domain/send-pacing.ts): per wallet the first at once, the others
 * staggered behind it at the drain's pace, capped; wallets do not delay
 * each other.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { followerDelays, FOLLOWER_MAX_DELAY_MS, FOLLOWER_PACE_MS } from "../../shared/domain/send-pacing.ts";

test("per wallet: the first at once, then one pace more each", () => {
  assert.deepEqual(followerDelays(["ETH:a", "ETH:a", "ETH:b", "ETH:a", "ETH:b", "TRX:a"]), [0, FOLLOWER_PACE_MS, 0, 2 * FOLLOWER_PACE_MS, FOLLOWER_PACE_MS, 0]);
  assert.deepEqual(followerDelays([]), []);
});

test("never later than the cap", () => {
  const d = followerDelays(Array.from({ length: 10_000 }, () => "ETH:a"));
  assert.equal(Math.max(...d), FOLLOWER_MAX_DELAY_MS);
  assert.equal(d.filter((x) => x === FOLLOWER_MAX_DELAY_MS).length, 10_000 - FOLLOWER_MAX_DELAY_MS / FOLLOWER_PACE_MS);
});

test("property: each wallet's first is immediate, its delays never fall, and other wallets do not count", () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom("w1", "w2", "w3", "w4"), { maxLength: 300 }), (wallets) => {
      const d = followerDelays(wallets);
      assert.equal(d.length, wallets.length);
      for (const w of new Set(wallets)) {
        const mine = d.filter((_, i) => wallets[i] === w);
        assert.equal(mine[0], 0);
        assert.deepEqual(mine, followerDelays(wallets.filter((x) => x === w)));
        for (let i = 1; i < mine.length; i++) assert.ok(mine[i]! >= mine[i - 1]! && mine[i]! <= FOLLOWER_MAX_DELAY_MS);
      }
    }),
  );
});
