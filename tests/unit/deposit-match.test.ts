/**
 * Matching found transfers to stored deposit rows: insert new ones, follow
 * re-mined ones (log indexes change with the block), never create a second
 * deposit for one transfer, and order moves so the unique key never trips.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { orderMoves, planDeposits, type DepositMove, type FoundDeposit, type StoredDeposit } from "../../shared/domain/deposit-match.ts";

const TX = "0x" + "11".repeat(32);
const TX2 = "0x" + "22".repeat(32);
const OLD = "0x" + "0a".repeat(32);
const NEW = "0x" + "0b".repeat(32);
const A = "0x" + "aa".repeat(20);
const B = "0x" + "bb".repeat(20);
const C = "0x" + "cc".repeat(20);

const found = (over: Partial<FoundDeposit> = {}): FoundDeposit => ({
  txHash: TX,
  logIndex: 0,
  symbol: "USDT",
  from: A,
  to: B,
  units: 100n,
  blockNumber: 10,
  blockHash: NEW,
  ...over,
});
const stored = (id: string, over: Partial<StoredDeposit> = {}): StoredDeposit => ({
  id,
  txHash: TX,
  logIndex: 0,
  symbol: "USDT",
  from: A,
  to: B,
  units: 100n,
  blockNumber: 10,
  blockHash: OLD,
  state: "seen",
  ...over,
});

describe("planDeposits", () => {
  it("a new transfer is inserted", () => {
    const f = found();
    const plan = planDeposits([f], []);
    assert.deepEqual(plan.inserts, [f]);
    assert.equal(plan.moves.length + plan.unchanged.length + plan.conflicts.length, 0);
  });

  it("the same transfer in the same block is unchanged (a rescan, the lookback)", () => {
    const plan = planDeposits([found({ blockHash: OLD })], [stored("1")]);
    assert.equal(plan.unchanged.length, 1);
    assert.equal(plan.inserts.length + plan.moves.length, 0);
  });

  it("a re-mined transaction with a new log index moves the row instead of adding a deposit", () => {
    const f = found({ logIndex: 4, blockNumber: 11 });
    const plan = planDeposits([f], [stored("1", { logIndex: 1 })]);
    assert.equal(plan.inserts.length, 0);
    assert.deepEqual(plan.moves, [{ id: "1", fromBlockHash: OLD, fromLogIndex: 1, to: f }]);
    assert.deepEqual(
      plan.steps.map((s) => [s.id, s.fromLogIndex, s.toLogIndex, s.final]),
      [["1", 1, 4, true]],
    );
  });

  it("a native deposit keeps index -1 but still follows the block", () => {
    const f = found({ logIndex: -1, symbol: "ETH" });
    const plan = planDeposits([f], [stored("1", { logIndex: -1, symbol: "ETH" })]);
    assert.equal(plan.moves.length, 1);
    assert.deepEqual(plan.steps.map((s) => [s.fromLogIndex, s.toLogIndex]), [[-1, -1]]);
  });

  it("identical transfers in one transaction pair up in log-index order", () => {
    const plan = planDeposits([found({ logIndex: 7 }), found({ logIndex: 5 })], [stored("2", { logIndex: 3 }), stored("1", { logIndex: 2 })]);
    assert.deepEqual(
      plan.moves.map((m) => [m.id, m.to.logIndex]).sort(),
      [
        ["1", 5],
        ["2", 7],
      ],
    );
  });

  it("a transfer found again after its deposit is final is a conflict, never a second deposit", () => {
    for (const state of ["confirmed", "reorged"] as const) {
      const plan = planDeposits([found({ logIndex: 9 })], [stored("1", { state })]);
      assert.equal(plan.inserts.length, 0);
      assert.deepEqual(
        plan.conflicts.map((c) => [c.storedId, c.reason]),
        [["1", "final-elsewhere"]],
      );
    }
  });

  it("a different transfer in a slot still held by another row is a conflict", () => {
    // re-executed differently: index 0 now pays C, while the row for B stays (final)
    const plan = planDeposits([found({ to: C, blockHash: OLD })], [stored("1", { state: "confirmed" })]);
    assert.equal(plan.inserts.length, 0);
    assert.deepEqual(
      plan.conflicts.map((c) => c.reason),
      ["slot-taken"],
    );
  });

  it("a slot freed by a move can take a new transfer", () => {
    // tx re-mined: B's transfer moves 0 -> 1, and a new transfer to C appears at 0
    const plan = planDeposits([found({ to: C, logIndex: 0 }), found({ logIndex: 1 })], [stored("1", { logIndex: 0 })]);
    assert.deepEqual(plan.moves.map((m) => [m.id, m.to.logIndex]), [["1", 1]]);
    assert.deepEqual(plan.inserts.map((f) => [f.to, f.logIndex]), [[C, 0]]);
  });

  it("a transfer missed by an earlier scan of the same block is inserted next to the stored one", () => {
    const plan = planDeposits([found({ logIndex: 3, blockHash: OLD }), found({ logIndex: 5, blockHash: OLD })], [stored("1", { logIndex: 5 })]);
    assert.deepEqual(plan.inserts.map((f) => f.logIndex), [3]);
    assert.equal(plan.unchanged.length, 1);
  });

  it("transactions are matched separately", () => {
    const plan = planDeposits([found({ txHash: TX2, logIndex: 0 })], [stored("1", { logIndex: 0 })]);
    assert.equal(plan.inserts.length, 1);
    assert.equal(plan.moves.length, 0);
  });

  it("property: a transaction re-mined whole (every log shifted) moves every row and inserts nothing", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ to: fc.constantFrom(A, B, C), units: fc.bigInt({ min: 1n, max: 5n }) }), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 0, max: 50 }),
        fc.integer({ min: -20, max: 20 }),
        (transfers, start, shift) => {
          const newStart = Math.max(0, start + shift);
          const rows = transfers.map((t, i) => stored(String(i + 1), { ...t, logIndex: start + i }));
          const again = transfers.map((t, i) => found({ ...t, logIndex: newStart + i }));
          const plan = planDeposits(again, rows);
          assert.equal(plan.inserts.length, 0);
          assert.equal(plan.conflicts.length, 0);
          assert.equal(plan.moves.length, rows.length);
          // each row lands on the transfer with its own content
          for (const m of plan.moves) {
            const row = rows.find((r) => r.id === m.id)!;
            assert.equal(m.to.to, row.to);
            assert.equal(m.to.units, row.units);
          }
          // applying the steps in order never collides and ends on the targets
          const slots = new Map(rows.map((r) => [r.logIndex, r.id]));
          for (const s of plan.steps) {
            assert.equal(slots.get(s.fromLogIndex), s.id);
            assert.ok(!slots.has(s.toLogIndex) || s.toLogIndex === s.fromLogIndex, `slot ${s.toLogIndex} taken`);
            slots.delete(s.fromLogIndex);
            slots.set(s.toLogIndex, s.id);
          }
          assert.deepEqual(new Set(slots.keys()), new Set(again.map((f) => f.logIndex)));
        },
      ),
    );
  });

  it("property: every found transfer is accounted for exactly once, and no two rows ever share a slot", () => {
    const arb = fc.record({
      to: fc.constantFrom(A, B),
      units: fc.bigInt({ min: 1n, max: 3n }),
      logIndex: fc.integer({ min: 0, max: 6 }),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(arb, { selector: (t) => t.logIndex, maxLength: 6 }),
        fc.uniqueArray(fc.record({ t: arb, state: fc.constantFrom("seen", "confirmed", "reorged" as const), sameBlock: fc.boolean() }), {
          selector: (s) => s.t.logIndex,
          maxLength: 6,
        }),
        (foundList, storedList) => {
          const f = foundList.map((t) => found(t));
          const s = storedList.map((x, i) => stored(String(i + 1), { ...x.t, state: x.state, blockHash: x.sameBlock ? NEW : OLD }));
          const plan = planDeposits(f, s);
          assert.equal(plan.inserts.length + plan.moves.length + plan.unchanged.length + plan.conflicts.length, f.length);
          const used = new Set<FoundDeposit>([...plan.inserts, ...plan.moves.map((m) => m.to), ...plan.unchanged.map((u) => u.found), ...plan.conflicts.map((c) => c.found)]);
          assert.equal(used.size, f.length);
          // only seen rows move
          for (const m of plan.moves) assert.equal(s.find((r) => r.id === m.id)!.state, "seen");
          // final slots: unmoved rows + moved rows + inserts are distinct
          const moved = new Set(plan.moves.map((m) => m.id));
          const finalSlots = [...s.filter((r) => !moved.has(r.id)).map((r) => r.logIndex), ...plan.moves.map((m) => m.to.logIndex), ...plan.inserts.map((i) => i.logIndex)];
          assert.equal(new Set(finalSlots).size, finalSlots.length);
        },
      ),
    );
  });
});

describe("orderMoves", () => {
  const move = (id: string, from: number, to: number): DepositMove => ({ id, fromBlockHash: OLD, fromLogIndex: from, to: found({ logIndex: to }) });

  it("breaks a swap by parking one row first", () => {
    const steps = orderMoves([move("1", 0, 1), move("2", 1, 0)], [{ txHash: TX, logIndex: 0 }, { txHash: TX, logIndex: 1 }]);
    assert.equal(steps.length, 3);
    assert.equal(steps[0]!.final, false);
    assert.ok(steps[0]!.toLogIndex < -1000);
    assert.ok(steps.slice(1).every((s) => s.final));
  });

  it("property: any permutation of slots is reached without a collision", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }).chain((n) => fc.tuple(fc.constant(n), fc.shuffledSubarray([...Array(n * 2).keys()], { minLength: n, maxLength: n }))), ([n, targets]) => {
        const moves = targets.map((to, i) => move(String(i), i, to));
        const steps = orderMoves(moves, [...Array(n).keys()].map((i) => ({ txHash: TX, logIndex: i })));
        const slots = new Map([...Array(n).keys()].map((i) => [i, String(i)]));
        for (const s of steps) {
          assert.equal(slots.get(s.fromLogIndex), s.id);
          assert.ok(!slots.has(s.toLogIndex) || s.toLogIndex === s.fromLogIndex);
          slots.delete(s.fromLogIndex);
          slots.set(s.toLogIndex, s.id);
        }
        targets.forEach((to, i) => assert.equal(slots.get(to), String(i)));
        assert.equal(slots.size, n);
      }),
    );
  });
});
