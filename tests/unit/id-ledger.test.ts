/**
 * decideIds (SPEC §3 "One id, one outcome"): for any batch of candidates
 * against any recorded ledger, at most one message per id takes it, only an
 * id nobody holds can be taken, and a redelivery is only ever the same
 * bytes flagged as one. Checked against an independent oracle.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decideIds, ledgerKey, type IdCandidate, type LedgerEntry } from "../../shared/domain/id-ledger.ts";

const candidate = fc.record({
  kind: fc.constantFrom("withdraw" as const, "pay" as const),
  queueId: fc.option(fc.constantFrom("a", "b", "c"), { nil: null, freq: 5 }),
  rawHash: fc.constantFrom("h1", "h2", "h3"),
  redelivered: fc.boolean(),
});
const ledgerArb = fc.dictionary(fc.constantFrom(ledgerKey("withdraw", "a"), ledgerKey("pay", "b"), ledgerKey("withdraw", "c")), fc.record({ id: fc.bigInt({ min: 1n, max: 99n }), rawHash: fc.constantFrom("h1", "h2"), state: fc.constantFrom("accepted", "rejected") }));

describe("decideIds", () => {
  it("at most one message per id takes it, only when nobody holds it; redeliveries are the same bytes, flagged", () => {
    fc.assert(
      fc.property(fc.array(candidate, { maxLength: 12 }), ledgerArb, (cs: IdCandidate[], entries) => {
        const ledger = new Map<string, LedgerEntry>(Object.entries(entries));
        const ds = decideIds(cs, ledger);
        assert.equal(ds.length, cs.length);
        const holder = new Map<string, string>([...ledger].map(([k, e]) => [k, e.rawHash]));
        cs.forEach((c, i) => {
          const d = ds[i]!;
          if (c.queueId === null) return assert.equal(d.decision, "take", "no id, nothing to take");
          const key = ledgerKey(c.kind, c.queueId);
          const held = holder.get(key);
          if (held === undefined) {
            assert.equal(d.decision, "take");
            holder.set(key, c.rawHash);
          } else if (c.redelivered && held === c.rawHash) {
            assert.deepEqual(d, { decision: "redelivery", priorId: ledger.get(key)?.id ?? null });
          } else {
            assert.equal(d.decision, "duplicate");
            assert.ok(d.decision === "duplicate" && d.sameBytes === (held === c.rawHash));
          }
        });
        const takers = cs.filter((c, i) => c.queueId !== null && ds[i]!.decision === "take").map((c) => ledgerKey(c.kind, c.queueId!));
        assert.equal(new Set(takers).size, takers.length, "one taker per id");
        for (const k of takers) assert.ok(!ledger.has(k), "never an id already recorded");
      }),
      { numRuns: 2000 },
    );
  });

  it("the same id under another kind is another id; a replay without the flag is a duplicate", () => {
    const ds = decideIds(
      [
        { kind: "withdraw", queueId: "x", rawHash: "h", redelivered: false },
        { kind: "pay", queueId: "x", rawHash: "h", redelivered: false },
        { kind: "withdraw", queueId: "x", rawHash: "h", redelivered: false },
        { kind: "withdraw", queueId: "x", rawHash: "h", redelivered: true },
      ],
      new Map(),
    );
    assert.deepEqual(ds.map((d) => d.decision), ["take", "take", "duplicate", "redelivery"]);
    assert.match((ds[2] as { detail: string }).detail, /queue_id x is taken by an earlier message of this batch, with the same bytes; retry under a new queue_id/);
  });
});
