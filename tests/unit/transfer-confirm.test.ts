/**
 * Decisions on a sent transfer: final only deep enough on the canonical
 * chain; followed when it moves; back to `sent` when its block vanishes;
 * dropped only once another transaction with its nonce is itself deep;
 * re-broadcast when the node forgot it; replaced when stuck.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decideTransferConfirm, type TransferConfirmFacts } from "../../shared/domain/transfer-confirm.ts";

const base: TransferConfirmFacts = {
  head: 100,
  confirmHeight: 3,
  blockTimeMs: 1000,
  stuckAfterMs: 60_000,
  state: "sent",
  storedBlockHash: null,
  mined: null,
  canonicalHash: null,
  nonceUsed: false,
  nextNonce: true,
  nonceUsedDeep: false,
  known: true,
  latestAgeMs: 1000,
  wasMinedBefore: false,
  dropCheckedAt: null,
};
const mined = (blockNumber: number, blockHash = "0xb", status = 1) => ({ mined: { blockNumber, blockHash, status }, canonicalHash: blockHash, nonceUsed: true });

describe("decideTransferConfirm", () => {
  it("records a first receipt and waits for depth", () => {
    const d = decideTransferConfirm({ ...base, ...mined(99) });
    assert.deepEqual(d, { kind: "wait-depth", record: true, confirmations: 1, delayMs: 2000 });
  });
  it("finalises at head >= block + confirm_height, success or reverted", () => {
    assert.deepEqual(decideTransferConfirm({ ...base, state: "mined", storedBlockHash: "0xb", ...mined(97) }), { kind: "finalize", record: false, confirmations: 3, reverted: false });
    assert.deepEqual(decideTransferConfirm({ ...base, state: "mined", storedBlockHash: "0xb", ...mined(90, "0xb", 0) }), { kind: "finalize", record: false, confirmations: 10, reverted: true });
  });
  it("follows a receipt that moved to another block", () => {
    const d = decideTransferConfirm({ ...base, state: "mined", storedBlockHash: "0xold", ...mined(99, "0xnew") });
    assert.equal(d.kind, "wait-depth");
    assert.equal((d as { record: boolean }).record, true);
  });
  it("never trusts a receipt whose block is not the canonical one", () => {
    assert.equal(decideTransferConfirm({ ...base, ...mined(90), canonicalHash: "0xother" }).kind, "recheck");
  });
  it("a mined transfer whose receipt vanished goes back to sent", () => {
    assert.equal(decideTransferConfirm({ ...base, state: "mined", storedBlockHash: "0xb" }).kind, "unmined");
  });
  it("gives up only when another transaction's use of the nonce is deep, read anchored there on two runs", () => {
    const deep = { ...base, nonceUsed: true, nonceUsedDeep: true };
    assert.deepEqual(decideTransferConfirm({ ...base, nonceUsed: true }), { kind: "pending", rebroadcast: false, bump: false, delayMs: 1000 });
    assert.deepEqual(decideTransferConfirm(deep), { kind: "verify-drop" });
    assert.deepEqual(decideTransferConfirm({ ...deep, dropConfirmed: false }), { kind: "recheck", delayMs: 500 });
    assert.deepEqual(decideTransferConfirm({ ...deep, dropConfirmed: true }), { kind: "drop-checked", delayMs: 1000 });
    assert.deepEqual(decideTransferConfirm({ ...deep, dropConfirmed: true, dropCheckedAt: 99 }), { kind: "give-up", code: "dropped" });
    assert.deepEqual(decideTransferConfirm({ ...deep, dropConfirmed: true, dropCheckedAt: 99, wasMinedBefore: true }), { kind: "give-up", code: "reorged" });
  });
  it("re-broadcasts what the node forgot and replaces what is stuck", () => {
    assert.deepEqual(decideTransferConfirm({ ...base, known: false }), { kind: "pending", rebroadcast: true, bump: false, delayMs: 1000 });
    assert.deepEqual(decideTransferConfirm({ ...base, latestAgeMs: 60_000 }), { kind: "pending", rebroadcast: false, bump: true, delayMs: 1000 });
    assert.deepEqual(decideTransferConfirm({ ...base, latestAgeMs: 59_800 }), { kind: "pending", rebroadcast: false, bump: false, delayMs: 200 });
  });
  it("never re-prices a transaction queued behind a lower unmined nonce of its wallet", () => {
    assert.deepEqual(decideTransferConfirm({ ...base, nextNonce: false, latestAgeMs: 600_000 }), { kind: "pending", rebroadcast: false, bump: false, delayMs: 1000 });
    assert.deepEqual(decideTransferConfirm({ ...base, nextNonce: false, known: false, latestAgeMs: 600_000 }), { kind: "pending", rebroadcast: true, bump: false, delayMs: 1000 });
  });

  it("property: never final unless mined deep enough on the canonical block; never dropped while unused or shallow", () => {
    fc.assert(
      fc.property(
        fc.record({
          head: fc.integer({ min: 0, max: 1000 }),
          confirmHeight: fc.integer({ min: 1, max: 30 }),
          state: fc.constantFrom("sent" as const, "mined" as const),
          blockNumber: fc.option(fc.integer({ min: 0, max: 1000 })),
          canonicalOk: fc.boolean(),
          nonceUsed: fc.boolean(),
          nonceUsedDeep: fc.boolean(),
          known: fc.boolean(),
          age: fc.integer({ min: 0, max: 200_000 }),
          dropConfirmed: fc.option(fc.boolean(), { nil: undefined }),
          dropCheckedAt: fc.option(fc.integer({ min: 0, max: 1000 })),
        }),
        (r) => {
          const f: TransferConfirmFacts = {
            ...base,
            head: r.head,
            confirmHeight: r.confirmHeight,
            state: r.state,
            storedBlockHash: r.state === "mined" ? "0xb" : null,
            mined: r.blockNumber === null ? null : { blockNumber: r.blockNumber, blockHash: "0xb", status: 1 },
            canonicalHash: r.blockNumber === null ? null : r.canonicalOk ? "0xb" : "0xc",
            nonceUsed: r.nonceUsed || r.nonceUsedDeep,
            nonceUsedDeep: r.nonceUsedDeep,
            known: r.known,
            latestAgeMs: r.age,
            dropConfirmed: r.dropConfirmed,
            dropCheckedAt: r.dropCheckedAt,
          };
          const d = decideTransferConfirm(f);
          if (d.kind === "finalize") assert.ok(f.mined && f.canonicalHash === f.mined.blockHash && r.head >= f.mined.blockNumber + r.confirmHeight);
          if (d.kind === "give-up") {
            assert.ok(!f.mined && f.nonceUsedDeep && r.state === "sent");
            assert.ok(f.dropConfirmed === true && f.dropCheckedAt !== null, "two anchored checks");
          }
          if (d.kind === "pending") {
            assert.ok(!f.mined);
            if (d.rebroadcast || d.bump) assert.ok(!f.nonceUsed, "never re-send for a used nonce");
            assert.ok(d.delayMs >= 50);
          }
        },
      ),
    );
  });
});
