/**
 * Batch planning for EIP-7702 payouts: a partition of the payouts into
 * batches of one wallet and one asset within the gas budget, in order and
 * as full as possible, and payouts sent alone only when they cannot join.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  planBatches,
  planPayoutTxs,
  batchItemGas,
  MAX_BATCH_AMOUNT,
  BATCH_BASE_GAS,
  BATCH_MIN_ITEMS,
  BATCH_ITEM_MAX_GAS,
  type PayoutToPlan,
  type BatchPlanOptions,
  type PayoutTx,
} from "../../shared/domain/delegation-batch-plan.ts";
import { gasShare } from "../../shared/transfers/chain-transitions.ts";

const p = (id: number, wallet: string, gas: bigint, amount = 1n, asset = "usdt"): PayoutToPlan<number> => ({ id, wallet, asset, amount, gas });

describe("planBatches", () => {
  it("fills a batch up to the gas budget, then starts the next", () => {
    const plan = planBatches([p(1, "a", 30n), p(2, "a", 30n), p(3, "a", 30n), p(4, "a", 30n)], { gasBudget: 100n, baseGas: 10n, maxItems: 10 });
    assert.deepEqual(plan, {
      batches: [
        { wallet: "a", asset: "usdt", ids: [1, 2, 3], gas: 100n },
        { wallet: "a", asset: "usdt", ids: [4], gas: 40n },
      ],
      singles: [],
    });
  });

  it("keeps wallets and assets apart, and caps the number of payouts", () => {
    const plan = planBatches([p(1, "a", 1n), p(2, "b", 1n), p(3, "a", 1n), p(4, "a", 1n, 1n, "eth"), p(5, "a", 1n)], { gasBudget: 1000n, baseGas: 0n, maxItems: 2 });
    assert.deepEqual(
      plan.batches.map((b) => [b.wallet, b.asset, b.ids]),
      [
        ["a", "usdt", [1, 3]],
        ["a", "usdt", [5]],
        ["b", "usdt", [2]],
        ["a", "eth", [4]],
      ],
    );
  });

  it("sends alone what cannot join a batch: an amount above 96 bits, a payout whose gas alone breaks the budget, a remainder below minItems", () => {
    const plan = planBatches([p(1, "a", 10n, MAX_BATCH_AMOUNT + 1n), p(2, "a", 95n), p(3, "a", 10n), p(4, "a", 10n), p(5, "b", 10n)], {
      gasBudget: 100n,
      baseGas: 10n,
      maxItems: 10,
      minItems: 2,
    });
    assert.deepEqual(plan.batches.map((b) => b.ids), [[3, 4]]);
    assert.deepEqual(plan.singles, [1, 2, 5]);
  });

  it("refuses nonsense options and payouts", () => {
    const ok: BatchPlanOptions = { gasBudget: 100n, baseGas: 10n, maxItems: 2 };
    assert.throws(() => planBatches([], { ...ok, maxItems: 0 }), RangeError);
    assert.throws(() => planBatches([], { ...ok, minItems: 3 }), RangeError);
    assert.throws(() => planBatches([], { ...ok, gasBudget: 10n }), RangeError);
    assert.throws(() => planBatches([p(1, "a", 0n)], ok), RangeError);
    assert.throws(() => planBatches([p(1, "a", 5n, 0n)], ok), RangeError);
  });

  const arbPayouts = fc
    .array(
      fc.record({
        wallet: fc.constantFrom("w1", "w2", "w3"),
        asset: fc.constantFrom("usdt", "eth"),
        amount: fc.oneof(fc.bigInt({ min: 1n, max: 10n ** 30n }), fc.constant(MAX_BATCH_AMOUNT), fc.constant(MAX_BATCH_AMOUNT + 1n)),
        gas: fc.bigInt({ min: 1n, max: 120_000n }),
      }),
      { maxLength: 300 },
    )
    .map((xs) => xs.map((x, id) => ({ ...x, id })));
  const arbOptions = fc
    .record({ baseGas: fc.bigInt({ min: 0n, max: 100_000n }), span: fc.bigInt({ min: 1n, max: 2_000_000n }), maxItems: fc.integer({ min: 1, max: 50 }), minFrac: fc.double({ min: 0, max: 1, noNaN: true }) })
    .map(({ baseGas, span, maxItems, minFrac }) => ({ baseGas, gasBudget: baseGas + span, maxItems, minItems: 1 + Math.floor(minFrac * (maxItems - 1)) }));

  it("property: a partition into in-budget, in-order, single-wallet single-asset batches as full as they can be", () => {
    fc.assert(
      fc.property(arbPayouts, arbOptions, (payouts, opts) => {
        const plan = planBatches(payouts, opts);
        const byId = new Map(payouts.map((x) => [x.id, x]));
        // partition
        const placed = [...plan.batches.flatMap((b) => b.ids), ...plan.singles].sort((a, b) => a - b);
        assert.deepEqual(placed, payouts.map((x) => x.id));
        for (const b of plan.batches) {
          const items = b.ids.map((id) => byId.get(id)!);
          assert.ok(items.every((x) => x.wallet === b.wallet && x.asset === b.asset && x.amount <= MAX_BATCH_AMOUNT));
          assert.ok(b.ids.length >= opts.minItems && b.ids.length <= opts.maxItems);
          assert.equal(b.gas, opts.baseGas + items.reduce((s, x) => s + x.gas, 0n));
          assert.ok(b.gas <= opts.gasBudget);
          // in order, and full: the next batchable payout of the group did not fit
          assert.deepEqual(b.ids, [...b.ids].sort((x, y) => x - y));
          const group = payouts.filter((x) => x.wallet === b.wallet && x.asset === b.asset && x.amount <= MAX_BATCH_AMOUNT && opts.baseGas + x.gas <= opts.gasBudget);
          const next = group[group.findIndex((x) => x.id === b.ids.at(-1)) + 1];
          if (next) assert.ok(b.ids.length === opts.maxItems || b.gas + next.gas > opts.gasBudget, `batch ending ${b.ids.at(-1)} could have taken ${next.id}`);
        }
        // batches of one group follow each other in payout order
        const seen = new Map<string, number>();
        for (const b of plan.batches) {
          const key = `${b.wallet}/${b.asset}`;
          assert.ok((seen.get(key) ?? -1) < b.ids[0]!);
          seen.set(key, b.ids.at(-1)!);
        }
        // alone only for a reason
        const inSmallBatch = (id: number) => {
          const x = byId.get(id)!;
          return x.amount > MAX_BATCH_AMOUNT || opts.baseGas + x.gas > opts.gasBudget || opts.minItems > 1;
        };
        assert.ok(plan.singles.every(inSmallBatch));
        assert.deepEqual(plan.singles, [...plan.singles].sort((a, b) => a - b));
      }),
      { numRuns: 300 },
    );
  });

  it("property: with minItems 1 only unbatchable payouts go alone", () => {
    fc.assert(
      fc.property(arbPayouts, arbOptions, (payouts, opts) => {
        const plan = planBatches(payouts, { ...opts, minItems: 1 });
        const expected = payouts.filter((x) => x.amount > MAX_BATCH_AMOUNT || opts.baseGas + x.gas > opts.gasBudget).map((x) => x.id);
        assert.deepEqual(plan.singles, expected);
      }),
    );
  });
});

describe("planPayoutTxs", () => {
  const USDT = "0xusdt";
  const tx = (id: number, over: Partial<PayoutTx<number>> = {}): PayoutTx<number> => ({
    id,
    business: true,
    token: USDT,
    units: 1_000_000n,
    estimate: 51_524n,
    plainGasLimit: 61_829n,
    ...over,
  });
  const opts = { wallet: "0xw", gasBudget: 12_000_000n, maxItems: 200, maxFeePerGas: 10n, ethSpare: 10n ** 18n };

  it("puts 200 token payouts of one wallet in one transaction whose gas limit covers the base and every item", () => {
    const units = planPayoutTxs(Array.from({ length: 200 }, (_, i) => tx(i)), opts);
    assert.equal(units.length, 1);
    const u = units[0]!;
    assert.equal(u.kind, "batch");
    if (u.kind !== "batch") return;
    assert.deepEqual(u.ids, Array.from({ length: 200 }, (_, i) => i));
    assert.equal(u.gasLimit, BATCH_BASE_GAS + 200n * batchItemGas(51_524n));
    assert.ok(u.gasLimit <= opts.gasBudget);
  });

  it("sends alone: ETH, sweeps and top-ups, gas-hungry payouts, amounts over 96 bits, and a remainder below the minimum", () => {
    const payouts = [
      ...Array.from({ length: BATCH_MIN_ITEMS }, (_, i) => tx(i)),
      tx(10, { token: null, estimate: 21_000n, plainGasLimit: 21_000n }),
      tx(11, { business: false }),
      tx(12, { estimate: 21_000n + BATCH_ITEM_MAX_GAS + 1n }),
      tx(13, { units: MAX_BATCH_AMOUNT + 1n }),
      ...Array.from({ length: BATCH_MIN_ITEMS - 1 }, (_, i) => tx(20 + i, { token: "0xother" })),
    ];
    const units = planPayoutTxs(payouts, opts);
    assert.deepEqual(units[0], { kind: "batch", token: USDT, ids: [0, 1, 2, 3], gasLimit: BATCH_BASE_GAS + 4n * batchItemGas(51_524n) });
    assert.deepEqual(
      units.slice(1).map((u) => (u.kind === "single" ? u.id : -1)),
      [10, 11, 12, 13, 20, 21, 22],
    );
  });

  it("falls back to one transaction each when the batches' worst-case gas exceeds the spare ETH", () => {
    const payouts = Array.from({ length: 4 }, (_, i) => tx(i));
    // 4 items: the batch's limit is above the four plain limits (the base's reserve), by `extra`
    const extra = BATCH_BASE_GAS + 4n * batchItemGas(51_524n) - 4n * 61_829n;
    assert.ok(extra > 0n);
    assert.equal(planPayoutTxs(payouts, { ...opts, ethSpare: extra * 10n - 1n }).every((u) => u.kind === "single"), true);
    assert.equal(planPayoutTxs(payouts, { ...opts, ethSpare: extra * 10n })[0]!.kind, "batch");
  });

  it("property: every payout is in exactly one transaction, in order of first payout, batches only of business token payouts within budget", () => {
    const arb = fc.array(
      fc.record({
        business: fc.boolean(),
        token: fc.constantFrom(USDT, "0xother", null),
        units: fc.bigInt({ min: 1n, max: MAX_BATCH_AMOUNT + 10n }),
        estimate: fc.bigInt({ min: 21_000n, max: 120_000n }),
      }),
      { maxLength: 60 },
    );
    fc.assert(
      fc.property(arb, fc.integer({ min: 1, max: 30 }), fc.bigInt({ min: 1_000_000n, max: 3_000_000n }), (raw, maxItems, gasBudget) => {
        const payouts = raw.map((r, id) => ({ id, ...r, plainGasLimit: r.estimate + r.estimate / 5n }));
        const units = planPayoutTxs(payouts, { ...opts, maxItems, gasBudget });
        const ids = units.flatMap((u) => (u.kind === "single" ? [u.id] : u.ids));
        assert.deepEqual([...ids].sort((a, b) => a - b), payouts.map((p) => p.id));
        const firsts = units.map((u) => (u.kind === "single" ? u.id : Math.min(...u.ids)));
        assert.deepEqual(firsts, [...firsts].sort((a, b) => a - b));
        for (const u of units) {
          if (u.kind !== "batch") continue;
          assert.ok(u.ids.length >= BATCH_MIN_ITEMS && u.ids.length <= maxItems);
          assert.ok(u.gasLimit <= gasBudget);
          for (const id of u.ids) {
            const p = payouts[id]!;
            assert.ok(p.business && p.token === u.token && p.units <= MAX_BATCH_AMOUNT && p.estimate - 21_000n <= BATCH_ITEM_MAX_GAS);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("gasShare", () => {
  it("property: the members' shares of a batch's gas add up exactly to it; a transaction of its own keeps all", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 24n }), fc.integer({ min: 1, max: 300 }), (total, size) => {
        let sum = 0n;
        for (let index = 0; index < size; index++) sum += gasShare(total, { index, size });
        assert.equal(sum, total);
        assert.equal(gasShare(total, null), total);
      }),
    );
  });
});
