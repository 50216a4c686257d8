/**
 * Confirmation decisions for a seen deposit: wait, verify, follow, finalise
 * or end reorged. The safety properties: nothing is final before
 * confirm_height or on a block that is not canonical; nothing ends reorged
 * but on evidence (its sender's nonce taken deep), never on a timer.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { confirmDelayMs, decideConfirm, type ConfirmFacts } from "../../shared/domain/confirmations.ts";

const BLOCK = "0x" + "0a".repeat(32);
const OTHER = "0x" + "0b".repeat(32);

const base = (over: Partial<ConfirmFacts> = {}): ConfirmFacts => ({
  blockNumber: 100,
  blockHash: BLOCK,
  confirmHeight: 3,
  head: 103,
  canonicalHash: BLOCK,
  blockTimeMs: 200,
  ...over,
});
const mined = { blockNumber: 100, blockHash: BLOCK, status: 1 };

describe("decideConfirm", () => {
  it("waits without asking for the receipt while canonical and not deep enough", () => {
    const d = decideConfirm(base({ head: 101 }));
    assert.equal(d.kind, "wait");
    assert.deepEqual(d, { kind: "wait", confirmations: 1, delayMs: 400 });
  });

  it("asks for the receipt when due, or as soon as the block is not canonical", () => {
    assert.equal(decideConfirm(base()).kind, "fetch-receipt");
    assert.equal(decideConfirm(base({ head: 101, canonicalHash: OTHER })).kind, "fetch-receipt");
  });

  it("finalises when due, canonical, mined successfully in our block with our transfer", () => {
    assert.deepEqual(decideConfirm(base({ receipt: mined, contentMatches: true })), { kind: "finalize", confirmations: 3 });
  });

  it("the boundary: current >= block + confirm_height", () => {
    assert.equal(decideConfirm(base({ head: 102, receipt: mined, contentMatches: true })).kind, "wait");
    assert.equal(decideConfirm(base({ head: 103, receipt: mined, contentMatches: true })).kind, "finalize");
  });

  it("follows a transaction mined again in another block", () => {
    assert.deepEqual(decideConfirm(base({ canonicalHash: OTHER, receipt: { blockNumber: 101, blockHash: OTHER, status: 1 } })), {
      kind: "follow",
      blockNumber: 101,
      blockHash: OTHER,
    });
  });

  it("a reverted receipt, or one whose transfer differs, is never final", () => {
    assert.equal(decideConfirm(base({ receipt: { ...mined, status: 0 } })).kind, "reverted");
    assert.equal(decideConfirm(base({ receipt: mined, contentMatches: false })).kind, "mismatch");
  });

  it("a receipt in our block while the node's canonical block differs: look again, not final", () => {
    assert.equal(decideConfirm(base({ canonicalHash: OTHER, receipt: mined, contentMatches: true })).kind, "wait");
  });

  it("gone from the chain: reorged only once its sender's nonce is taken deep, never on a timer", () => {
    assert.equal(decideConfirm(base({ canonicalHash: OTHER, receipt: null })).kind, "wait-unmined");
    assert.equal(decideConfirm(base({ canonicalHash: OTHER, receipt: null, nonceUsedDeep: false, head: 100_000 })).kind, "wait-unmined");
    assert.equal(decideConfirm(base({ canonicalHash: null, receipt: null, nonceUsedDeep: undefined, head: 100_000 })).kind, "wait-unmined");
    assert.equal(decideConfirm(base({ canonicalHash: OTHER, receipt: null, nonceUsedDeep: true })).kind, "reorged");
  });

  it("no receipt while our block is still canonical is never called reorged", () => {
    const d = decideConfirm(base({ receipt: null, nonceUsedDeep: true, head: 10_000 }));
    assert.equal(d.kind, "wait");
  });

  it("property: final only when deep enough, canonical, in our block, successful and matching", () => {
    const hash = fc.constantFrom(BLOCK, OTHER);
    fc.assert(
      fc.property(
        fc.record({
          blockNumber: fc.integer({ min: 0, max: 1000 }),
          confirmHeight: fc.integer({ min: 1, max: 30 }),
          headDelta: fc.integer({ min: -5, max: 40 }),
          canonicalHash: fc.option(hash),
          receipt: fc.option(fc.record({ blockNumber: fc.integer({ min: 0, max: 1000 }), blockHash: hash, status: fc.constantFrom(0, 1) }), { nil: undefined }),
          nonceUsedDeep: fc.option(fc.boolean(), { nil: undefined }),
          contentMatches: fc.option(fc.boolean(), { nil: undefined }),
        }),
        (r) => {
          const facts = base({
            blockNumber: r.blockNumber,
            confirmHeight: r.confirmHeight,
            head: r.blockNumber + r.headDelta,
            canonicalHash: r.canonicalHash,
            receipt: r.receipt,
            nonceUsedDeep: r.nonceUsedDeep,
            contentMatches: r.contentMatches,
          });
          const d = decideConfirm(facts);
          if (d.kind === "finalize") {
            assert.ok(facts.head >= facts.blockNumber + facts.confirmHeight);
            assert.equal(facts.canonicalHash, BLOCK);
            assert.equal(facts.receipt?.blockHash, BLOCK);
            assert.equal(facts.receipt?.status, 1);
            assert.equal(facts.contentMatches, true);
            assert.equal(d.confirmations, facts.head - facts.blockNumber);
          }
          if (d.kind === "reorged") {
            assert.notEqual(facts.canonicalHash, BLOCK);
            assert.equal(facts.nonceUsedDeep, true, "reorged only on evidence");
          }
          if (d.kind === "wait" || d.kind === "wait-unmined") assert.ok(d.delayMs > 0);
        },
      ),
    );
  });
});

describe("confirmDelayMs", () => {
  it("is the remaining blocks at the block time, within bounds", () => {
    assert.equal(confirmDelayMs(3, 12_000), 36_000);
    assert.equal(confirmDelayMs(0, 200), 200);
    assert.equal(confirmDelayMs(10_000, 12_000), 600_000);
    fc.assert(
      fc.property(fc.integer({ min: -100, max: 100_000 }), fc.integer({ min: 10, max: 60_000 }), (remaining, bt) => {
        const d = confirmDelayMs(remaining, bt);
        assert.ok(d >= 50 && d <= 600_000);
      }),
    );
  });
});
