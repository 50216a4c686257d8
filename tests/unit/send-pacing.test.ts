/**
 * When the send jobs of newly queued transfers first run
 * (shared/domain/send-pacing.ts): per wallet the first at once, the others
 * put off until the drain starts them (or FOLLOWER_DELAY_MS ends); wallets
 * do not delay each other.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { followerDelays, FOLLOWER_DELAY_MS } from "../../shared/domain/send-pacing.ts";

test("per wallet: the first at once, the others put off", () => {
  const F = FOLLOWER_DELAY_MS;
  assert.deepEqual(followerDelays(["ETH:a", "ETH:a", "ETH:b", "ETH:a", "ETH:b", "TRX:a"]), [0, F, 0, F, F, 0]);
  assert.deepEqual(followerDelays([]), []);
});

test("property: each wallet has exactly one job at once, the first of it, and other wallets do not count", () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom("w1", "w2", "w3", "w4"), { maxLength: 300 }), (wallets) => {
      const d = followerDelays(wallets);
      assert.equal(d.length, wallets.length);
      for (const w of new Set(wallets)) {
        const mine = d.filter((_, i) => wallets[i] === w);
        assert.deepEqual(mine, followerDelays(wallets.filter((x) => x === w)));
        assert.deepEqual(mine, mine.map((_, i) => (i === 0 ? 0 : FOLLOWER_DELAY_MS)));
      }
    }),
  );
});
