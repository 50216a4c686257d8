/**
 * Cursor and reorg decisions of chain-watch: where a fresh cursor starts,
 * what a new head means, and where the common ancestor of a fork is.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { blockWindow, commonAncestor, extendsChain, headAction, initialCursorNumber, lookbackRange, type BlockRef } from "../../shared/domain/reorg.ts";

const h = (branch: string, n: number) => `0x${branch}${n.toString(16).padStart(8, "0")}`;

describe("initialCursorNumber", () => {
  it("latest scans from the head on: the cursor is the block below it", () => {
    assert.equal(initialCursorNumber("latest", 100), 99);
  });
  it("a start block scans from that block on", () => {
    assert.equal(initialCursorNumber(50, 100), 49);
    assert.equal(initialCursorNumber(100, 100), 99);
  });
  it("genesis is never scanned; an empty chain starts at block 0", () => {
    assert.equal(initialCursorNumber(0, 10), 0);
    assert.equal(initialCursorNumber("latest", 0), 0);
  });
  it("waits while the chain is below the start block", () => {
    assert.equal(initialCursorNumber(200, 100), null);
    assert.equal(initialCursorNumber(101, 100), 100);
  });
});

describe("headAction", () => {
  const cursor = { number: 10, hash: h("a", 10) };
  it("a higher head means catching up from the block after the cursor", () => {
    assert.deepEqual(headAction(cursor, { number: 15, hash: h("a", 15) }), { kind: "catch-up", from: 11, to: 15 });
  });
  it("the same block means idle, another block at the same height means reorg", () => {
    assert.deepEqual(headAction(cursor, cursor), { kind: "idle" });
    assert.deepEqual(headAction(cursor, { number: 10, hash: h("b", 10) }), { kind: "reorg" });
  });
  it("a lower head is reported as behind", () => {
    assert.deepEqual(headAction(cursor, { number: 9, hash: h("a", 9) }), { kind: "behind" });
  });
});

describe("extendsChain", () => {
  it("needs the next number and the parent hash", () => {
    const prev = { number: 10, hash: h("a", 10) };
    assert.ok(extendsChain(prev, { number: 11, parentHash: h("a", 10) }));
    assert.ok(!extendsChain(prev, { number: 11, parentHash: h("b", 10) }));
    assert.ok(!extendsChain(prev, { number: 12, parentHash: h("a", 10) }));
  });
});

describe("commonAncestor", () => {
  it("is the highest block both chains share", () => {
    const stored = [5, 6, 7, 8].map((n) => ({ number: n, hash: h("a", n) }));
    const canonical = new Map([5, 6, 7, 8].map((n) => [n, n <= 6 ? h("a", n) : h("b", n)] as const));
    assert.equal(commonAncestor(stored, canonical), 6);
  });
  it("is null when nothing stored is canonical any more (or the node lacks the blocks)", () => {
    const stored = [7, 8].map((n) => ({ number: n, hash: h("a", n) }));
    assert.equal(commonAncestor(stored, new Map([[7, h("b", 7)], [8, null]])), null);
  });

  it("property: for any fork point inside the window, the ancestor is the fork point", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 0, max: 63 }), (base, len, forkOffset) => {
        const fork = base + Math.min(forkOffset, len - 1);
        const stored: BlockRef[] = Array.from({ length: len }, (_, i) => ({ number: base + i, hash: h("a", base + i) }));
        const canonical = new Map(stored.map((b) => [b.number, b.number <= fork ? b.hash : h("b", b.number)] as const));
        assert.equal(commonAncestor(stored, canonical), fork);
        assert.equal(commonAncestor([...stored].reverse(), canonical), fork);
      }),
    );
  });
});

describe("windows", () => {
  it("keeps at least 64 blocks, and more for deep confirmations", () => {
    assert.equal(blockWindow(3, 12), 64);
    assert.equal(blockWindow(64, 12), 140);
  });
  it("lookback covers the last N blocks up to the cursor", () => {
    assert.deepEqual(lookbackRange(100, 12), { from: 89, to: 100 });
    assert.deepEqual(lookbackRange(5, 12), { from: 1, to: 5 });
    assert.equal(lookbackRange(100, 0), null);
  });
});
