/**
 * Nonce planning: consecutive, never below what we promised or what the
 * chain used, and, replayed as many processes taking turns on one stored
 * counter, gap-free and collision-free.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { planNonces, isGapFree, nonceConsumed } from "../../shared/domain/nonce-plan.ts";

describe("planNonces", () => {
  it("continues from the stored nonce while the chain lags behind it", () => {
    assert.deepEqual(planNonces(10n, 8n, 3), { first: 10n, nonces: [10n, 11n, 12n], next: 13n, skipped: 0n });
  });
  it("skips nonces something else used on chain", () => {
    assert.deepEqual(planNonces(10n, 12n, 1), { first: 12n, nonces: [12n], next: 13n, skipped: 2n });
  });
  it("starts from the chain for a new address", () => {
    assert.deepEqual(planNonces(null, 5n, 2), { first: 5n, nonces: [5n, 6n], next: 7n, skipped: 0n });
  });
  it("plans nothing for zero transactions, leaving the counter where it must be", () => {
    assert.deepEqual(planNonces(4n, 9n, 0), { first: 9n, nonces: [], next: 9n, skipped: 5n });
  });
  it("refuses nonsense", () => {
    assert.throws(() => planNonces(1n, 1n, -1), RangeError);
    assert.throws(() => planNonces(-1n, 1n, 1), RangeError);
  });

  it("property: consecutive from max(stored, chain), next follows the last", () => {
    fc.assert(
      fc.property(fc.option(fc.bigInt({ min: 0n, max: 1n << 40n })), fc.bigInt({ min: 0n, max: 1n << 40n }), fc.integer({ min: 0, max: 300 }), (stored, chain, count) => {
        const p = planNonces(stored, chain, count);
        const floor = stored === null || chain > stored ? chain : stored;
        assert.equal(p.first, floor);
        assert.equal(p.nonces.length, count);
        p.nonces.forEach((n, i) => assert.equal(n, floor + BigInt(i)));
        assert.equal(p.next, floor + BigInt(count));
        assert.ok(p.skipped >= 0n);
      }),
    );
  });

  it("property: processes taking turns on one counter (with external use in between) never collide or leave gaps of their own", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ count: fc.integer({ min: 0, max: 20 }), unseen: fc.integer({ min: 0, max: 5 }), external: fc.integer({ min: 0, max: 3 }) }), { maxLength: 40 }),
        (turns) => {
          let stored: bigint | null = null;
          let onChain = 0n; // next nonce the chain will accept (everything below is used)
          const ours: bigint[] = [];
          const external: bigint[] = [];
          for (const t of turns) {
            // Another wallet using the same key asks the node, which has seen all of ours.
            for (let i = 0; i < t.external; i++) external.push(onChain++);
            // The node may not have seen our last few transactions yet (crash before broadcast).
            const unseen = BigInt(Math.min(t.unseen, t.external > 0 ? 0 : ours.filter((n) => n < onChain).length));
            const plan = planNonces(stored, onChain - unseen, t.count);
            assert.ok(plan.first >= onChain || stored === plan.first, "never below what the chain or we already used");
            ours.push(...plan.nonces);
            stored = plan.next;
            if (onChain < plan.next) onChain = plan.next; // broadcast
          }
          const all = [...ours, ...external];
          assert.equal(new Set(all.map(String)).size, all.length, "no nonce used twice");
          assert.ok(isGapFree(all), "no gap on chain");
        },
      ),
    );
  });
});

describe("isGapFree / nonceConsumed", () => {
  it("tells runs from gaps and repeats", () => {
    assert.ok(isGapFree([]));
    assert.ok(isGapFree([3n, 1n, 2n]));
    assert.ok(!isGapFree([1n, 3n]));
    assert.ok(!isGapFree([1n, 1n, 2n]));
  });
  it("a nonce is consumed once the account's nonce is above it", () => {
    assert.equal(nonceConsumed(5n, 5n), false);
    assert.equal(nonceConsumed(5n, 6n), true);
  });
});
