/**
 * EIP-1559 fees: a fresh offer covers the base fee twice plus the tip; a
 * replacement raises both fields by at least the bump percentage (so nodes
 * accept it), never goes below the market, and respects the cap.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { suggestFees, bumpFees, increaseByPercent, gasLimitFromEstimate, maxGasCost, capFromGwei } from "../../shared/domain/fees.ts";

const GWEI = 1_000_000_000n;
const wei = fc.bigInt({ min: 0n, max: 10n ** 15n });

describe("suggestFees", () => {
  it("offers 2 x base fee + tip", () => {
    assert.deepEqual(suggestFees(GWEI, GWEI), { maxFeePerGas: 3n * GWEI, maxPriorityFeePerGas: GWEI });
  });
  it("caps the fee and keeps the tip under it", () => {
    assert.deepEqual(suggestFees(10n * GWEI, 5n * GWEI, 4n * GWEI), { maxFeePerGas: 4n * GWEI, maxPriorityFeePerGas: 4n * GWEI });
  });
  it("property: tip <= fee cap, and without a cap the fee covers a doubled base fee", () => {
    fc.assert(
      fc.property(wei, wei, fc.option(wei), (base, tip, cap) => {
        const f = suggestFees(base, tip, cap);
        assert.ok(f.maxPriorityFeePerGas <= f.maxFeePerGas);
        if (cap === null) assert.equal(f.maxFeePerGas, 2n * base + tip);
        else assert.ok(f.maxFeePerGas <= cap || f.maxFeePerGas === 2n * base + tip);
      }),
    );
  });
});

describe("bumpFees", () => {
  it("raises both fields by the percentage, rounded up", () => {
    assert.deepEqual(bumpFees({ maxFeePerGas: 3n, maxPriorityFeePerGas: 1n }, { maxFeePerGas: 1n, maxPriorityFeePerGas: 1n }, 20), {
      maxFeePerGas: 4n,
      maxPriorityFeePerGas: 2n,
    });
  });
  it("a zero tip still rises", () => {
    assert.equal(bumpFees({ maxFeePerGas: 10n, maxPriorityFeePerGas: 0n }, { maxFeePerGas: 0n, maxPriorityFeePerGas: 0n }, 10)!.maxPriorityFeePerGas, 1n);
  });
  it("follows the market when it moved further than the bump", () => {
    assert.deepEqual(bumpFees({ maxFeePerGas: 3n * GWEI, maxPriorityFeePerGas: GWEI }, { maxFeePerGas: 50n * GWEI, maxPriorityFeePerGas: 2n * GWEI }, 20), {
      maxFeePerGas: 50n * GWEI,
      maxPriorityFeePerGas: 2n * GWEI,
    });
  });
  it("returns null when the cap leaves no room for a valid replacement", () => {
    assert.equal(bumpFees({ maxFeePerGas: 10n * GWEI, maxPriorityFeePerGas: GWEI }, { maxFeePerGas: GWEI, maxPriorityFeePerGas: GWEI }, 20, 11n * GWEI), null);
  });
  it("property: each field >= prev * (100+p)/100 and >= market; tip <= fee; cap respected", () => {
    fc.assert(
      fc.property(wei, wei, wei, wei, fc.integer({ min: 10, max: 1000 }), fc.option(wei), (pf, pt, mf, mt, pct, cap) => {
        const prev = { maxFeePerGas: pf > pt ? pf : pt, maxPriorityFeePerGas: pt };
        const market = { maxFeePerGas: mf > mt ? mf : mt, maxPriorityFeePerGas: mt };
        const b = bumpFees(prev, market, pct, cap);
        if (b === null) {
          assert.ok(cap !== null);
          return;
        }
        for (const k of ["maxFeePerGas", "maxPriorityFeePerGas"] as const) {
          assert.ok(b[k] * 100n >= prev[k] * BigInt(100 + pct), `${k} raised by ${pct}%`);
          assert.ok(b[k] > prev[k], `${k} strictly higher`);
          assert.ok(b[k] >= market[k], `${k} at least the market`);
        }
        assert.ok(b.maxPriorityFeePerGas <= b.maxFeePerGas);
        if (cap !== null) assert.ok(b.maxFeePerGas <= cap);
      }),
    );
  });
  it("property: repeated bumps keep rising (each replacement is accepted by the node's 10 % rule)", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: GWEI * 100n }), fc.integer({ min: 10, max: 100 }), fc.integer({ min: 1, max: 10 }), (start, pct, rounds) => {
        let f = { maxFeePerGas: start * 2n, maxPriorityFeePerGas: start };
        for (let i = 0; i < rounds; i++) {
          const n = bumpFees(f, { maxFeePerGas: 0n, maxPriorityFeePerGas: 0n }, pct)!;
          assert.ok(n.maxFeePerGas * 10n >= f.maxFeePerGas * 11n && n.maxPriorityFeePerGas * 10n >= f.maxPriorityFeePerGas * 11n);
          f = n;
        }
      }),
    );
  });
});

describe("helpers", () => {
  it("increaseByPercent rounds up", () => {
    assert.equal(increaseByPercent(10n, 15), 12n);
    assert.equal(increaseByPercent(100n, 10), 110n);
  });
  it("gas limit: the larger of +20 % and a storage margin, except an exact plain transfer", () => {
    assert.equal(gasLimitFromEstimate(21_000n), 21_000n);
    // small estimates: the storage margin (a recipient's balance slot may be zero again by inclusion)
    assert.equal(gasLimitFromEstimate(50_000n), 75_000n);
    assert.equal(gasLimitFromEstimate(34_567n), 59_567n);
    // large estimates: 20 %, rounded up
    assert.equal(gasLimitFromEstimate(200_000n), 240_000n);
    assert.equal(gasLimitFromEstimate(200_001n), 240_002n);
    assert.throws(() => gasLimitFromEstimate(0n));
  });
  it("maxGasCost = limit x fee cap", () => {
    assert.equal(maxGasCost(21_000n, { maxFeePerGas: 3n * GWEI, maxPriorityFeePerGas: GWEI }), 63_000n * GWEI);
  });
  it("capFromGwei reads the number's decimal text exactly", () => {
    assert.equal(capFromGwei(0), null);
    assert.equal(capFromGwei(100), 100n * GWEI);
    assert.equal(capFromGwei(0.5), GWEI / 2n);
    assert.equal(capFromGwei(1000), 1000n * GWEI);
    assert.equal(capFromGwei(1.000000001), GWEI + 1n);
  });
});
