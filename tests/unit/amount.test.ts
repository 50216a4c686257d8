/**
 * Exact amounts (SPEC §3): decimal text <-> bigint base units, never a float.
 * A table of accepted and refused texts, then properties over random values.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  tryParseAmount,
  parseAmount,
  formatUnits,
  decimalToUnits,
  trimDecimal,
  toJsonNumber,
  jsonNumberToDecimal,
} from "../../shared/domain/amount.ts";
import { RequestRejected } from "../../shared/domain/errors.ts";

const MAX_UINT256 = (1n << 256n) - 1n;

describe("tryParseAmount: accepted texts", () => {
  const good: [text: string, decimals: number, units: bigint][] = [
    ["1", 6, 1_000_000n],
    ["100.500001", 6, 100_500_001n],
    ["0.000001", 6, 1n],
    ["50.0", 6, 50_000_000n],
    ["50.000000", 6, 50_000_000n],
    ["007.5", 6, 7_500_000n], // leading zeros are harmless digits
    ["00000000000000000000000000000000000000000000000001", 0, 1n], // 50 leading zeros, 1 significant digit
    ["200", 18, 200n * 10n ** 18n],
    ["0.000000000000000001", 18, 1n],
    ["1", 0, 1n],
    ["12345678901234567890", 0, 12345678901234567890n],
    // 47 integer digits (DECIMAL(65,18) keeps 47) with 18 decimals still fits uint256
    ["9".repeat(47), 18, BigInt("9".repeat(47)) * 10n ** 18n],
  ];
  for (const [text, decimals, units] of good) {
    it(`"${text.length > 30 ? text.slice(0, 30) + "…" : text}" @${decimals} -> ${units}`, () => {
      assert.deepEqual(tryParseAmount(text, decimals), { ok: true, units });
      assert.equal(parseAmount(text, decimals), units);
    });
  }
});

describe("tryParseAmount: refused texts (invalid_amount)", () => {
  const bad: [text: string, decimals: number, why: RegExp][] = [
    ["", 6, /no digits/],
    ["0", 6, /greater than zero/],
    ["0.0", 6, /greater than zero/],
    ["000.000000", 6, /greater than zero/],
    ["-1", 6, /plain decimal/],
    ["+1", 6, /plain decimal/],
    ["-0.5", 6, /plain decimal/],
    ["1e2", 6, /plain decimal/], // a decimal *string* has no exponent
    ["1E2", 6, /plain decimal/],
    [" 1", 6, /plain decimal/],
    ["1 ", 6, /plain decimal/],
    ["1\n", 6, /plain decimal/],
    ["1,000", 6, /plain decimal/],
    ["1_000", 6, /plain decimal/],
    ["1'000", 6, /plain decimal/],
    ["1.", 6, /plain decimal/],
    [".5", 6, /plain decimal/],
    [".", 6, /plain decimal/],
    ["1..2", 6, /plain decimal/],
    ["1.2.3", 6, /plain decimal/],
    ["0x10", 6, /plain decimal/],
    ["NaN", 6, /plain decimal/],
    ["Infinity", 6, /plain decimal/],
    ["١٢", 6, /plain decimal/], // Arabic-Indic digits
    ["１", 6, /plain decimal/], // full-width digit
    ["0.0000001", 6, /more than 6 fractional/],
    ["1.5000000", 6, /more than 6 fractional/], // SPEC: more fractional digits than the asset -> invalid
    ["1.5", 0, /more than 0 fractional/],
    ["1.0", 0, /more than 0 fractional/],
    ["1".repeat(48), 0, /too large/],
    ["1".repeat(101), 0, /too long/],
    ["1" + "0".repeat(46) + "." + "1".repeat(36), 36, /too large/], // fits the DB's 47 digits, not uint256
  ];
  for (const [text, decimals, why] of bad) {
    it(`${JSON.stringify(text.length > 30 ? text.slice(0, 30) + "…" : text)} @${decimals}`, () => {
      const r = tryParseAmount(text, decimals);
      assert.equal(r.ok, false);
      assert.match((r as { reason: string }).reason, why);
      assert.throws(
        () => parseAmount(text, decimals),
        (e: unknown) => e instanceof RequestRejected && e.code === "invalid_amount" && !e.retryable,
      );
    });
  }
});

describe("jsonNumberToDecimal: JSON number text to plain decimal text, exactly", () => {
  const table: [string, string][] = [
    ["1e2", "100"],
    ["1E2", "100"],
    ["1e+2", "100"],
    ["1.5e1", "15"],
    ["1.50e1", "15"],
    ["1.5e-7", "0.00000015"],
    ["1e-7", "0.0000001"],
    ["123.456e-2", "1.23456"],
    ["123.456e2", "12345.6"],
    ["0e5", "0"],
    ["0.5e0", "0.5"],
    ["1e+21", "1000000000000000000000"],
    ["100500001e-6", "100.500001"],
    ["-1e2", "-100"],
    // not exponent forms: unchanged, tryParseAmount judges them
    ["200", "200"],
    ["200.0", "200.0"],
    ["-5", "-5"],
    // exponents too large to name a storable amount stay as they are (and are refused)
    ["1e999999999", "1e999999999"],
    ["1e-300", "1e-300"],
  ];
  for (const [input, out] of table) it(`${input} -> ${out}`, () => assert.equal(jsonNumberToDecimal(input), out));

  it("agrees with the exact value for random mantissas and exponents", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 30n }), fc.integer({ min: 0, max: 20 }), fc.integer({ min: -40, max: 40 }), (m, fracLen, exp) => {
        // m / 10^fracLen * 10^exp, written as "<int>.<frac>e<exp>"
        const digits = m.toString().padStart(fracLen + 1, "0");
        const text = `${digits.slice(0, digits.length - fracLen)}${fracLen ? "." + digits.slice(digits.length - fracLen) : ""}e${exp}`;
        const plain = jsonNumberToDecimal(text);
        assert.match(plain, /^[0-9]+(\.[0-9]*[1-9])?$/);
        // compare as exact rationals: plain * 10^fracLen == m * 10^exp (scaled to integers)
        const scale = 80;
        const lhs = decimalToUnits(plain, scale);
        const shift = scale - fracLen + exp;
        assert.equal(lhs, m * 10n ** BigInt(shift));
      }),
      { numRuns: 300 },
    );
  });
});

describe("formatUnits / parse round trips", () => {
  it("examples", () => {
    assert.equal(formatUnits(100_500_001n, 6), "100.500001");
    assert.equal(formatUnits(50_000_000n, 6), "50");
    assert.equal(formatUnits(1n, 6), "0.000001");
    assert.equal(formatUnits(0n, 6), "0");
    assert.equal(formatUnits(7n, 0), "7");
    assert.equal(formatUnits(-1_500_000n, 6), "-1.5");
    assert.equal(formatUnits(MAX_UINT256, 18), "115792089237316195423570985008687907853269984665640564039457.584007913129639935");
  });

  it("formatUnits then parseAmount gives back the units (any positive bigint that fits, decimals 0..36)", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: MAX_UINT256 }), fc.integer({ min: 0, max: 36 }), (units, decimals) => {
        const text = formatUnits(units, decimals);
        assert.match(text, /^[0-9]+(\.[0-9]*[1-9])?$/, "shortest plain decimal text");
        const intDigits = text.split(".")[0]!.length;
        if (intDigits > 47) {
          assert.equal(tryParseAmount(text, decimals).ok, false, "beyond DECIMAL(65,18) is refused");
        } else {
          assert.equal(parseAmount(text, decimals), units);
        }
        assert.equal(decimalToUnits(text, decimals), units);
      }),
      { numRuns: 1000 },
    );
  });

  it("formatUnits handles every bigint, negative too, and decimalToUnits inverts it", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 300n), max: 1n << 300n }), fc.integer({ min: 0, max: 36 }), (units, decimals) => {
        assert.equal(decimalToUnits(formatUnits(units, decimals), decimals), units);
      }),
      { numRuns: 1000 },
    );
  });

  it("parseAmount then formatUnits is the normalised text (leading and trailing zeros dropped)", () => {
    const decimalText = fc
      .tuple(fc.stringMatching(/^[0-9]{1,20}$/), fc.option(fc.stringMatching(/^[0-9]{1,18}$/), { nil: undefined }), fc.integer({ min: 0, max: 36 }))
      .map(([i, f, d]) => ({ text: f === undefined ? i : `${i}.${f}`, frac: f ?? "", decimals: d }));
    fc.assert(
      fc.property(decimalText, ({ text, frac, decimals }) => {
        const r = tryParseAmount(text, decimals);
        const isZero = /^[0.]+$/.test(text);
        if (frac.length > decimals || isZero) {
          assert.equal(r.ok, false);
          return;
        }
        assert.ok(r.ok);
        const normalised = text.replace(/^0+(?=[0-9])/, "").replace(/(\.[0-9]*?)0+$/, "$1").replace(/\.$/, "");
        assert.equal(formatUnits(r.units, decimals), normalised);
        // and parse(format(x)) = x
        assert.equal(parseAmount(formatUnits(r.units, decimals), decimals), r.units);
      }),
      { numRuns: 1000 },
    );
  });

  it("never throws, whatever the text", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 120 }), fc.integer({ min: 0, max: 36 }), (text, decimals) => {
        const r = tryParseAmount(text, decimals);
        if (r.ok) {
          assert.match(text, /^[0-9]+(\.[0-9]+)?$/);
          assert.ok(r.units > 0n && r.units <= MAX_UINT256);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe("decimalToUnits: MySQL DECIMAL(65,18) text", () => {
  it("reads what MariaDB returns", () => {
    assert.equal(decimalToUnits("100.500001000000000000", 6), 100_500_001n);
    assert.equal(decimalToUnits("50.000000000000000000", 6), 50_000_000n);
    assert.equal(decimalToUnits("0.000000000000000001", 18), 1n);
    assert.equal(decimalToUnits("0.000000000000000000", 18), 0n);
    assert.equal(decimalToUnits("-3.250000000000000000", 6), -3_250_000n);
    assert.equal(decimalToUnits("12345678901234567890123456789012345678901234567.000000000000000000", 0), 12345678901234567890123456789012345678901234567n);
    assert.equal(decimalToUnits("42", 6), 42_000_000n);
  });

  it("refuses text more precise than the asset (would silently lose units)", () => {
    assert.throws(() => decimalToUnits("1.000000100000000000", 6), /more than 6 fractional digits/);
  });

  it("round-trips any amount stored as DECIMAL(65,18)", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 47n - 1n }), fc.integer({ min: 0, max: 18 }), (units, decimals) => {
        // what the database returns: 18 fraction digits, zero-padded
        const exact = formatUnits(units, decimals);
        const [i, f = ""] = exact.split(".");
        const dbText = `${i}.${f.padEnd(18, "0")}`;
        assert.equal(decimalToUnits(dbText, decimals), units);
        assert.equal(trimDecimal(dbText), exact);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("trimDecimal", () => {
  const table: [string, string][] = [
    ["50.000000000000000000", "50"],
    ["100.500000000000000000", "100.5"],
    ["0.000000000000000000", "0"],
    ["0.000001000000000000", "0.000001"],
    ["100", "100"], // no dot: trailing zeros are significant
    ["1000", "1000"],
    ["10.10", "10.1"],
  ];
  for (const [input, out] of table) it(`${input} -> ${out}`, () => assert.equal(trimDecimal(input), out));
});

describe("toJsonNumber", () => {
  it("is the nearest double to the exact text (amount_exact carries the exact value)", () => {
    assert.equal(toJsonNumber("100.5"), 100.5);
    assert.equal(toJsonNumber("100.500001"), 100.500001);
    assert.equal(toJsonNumber("0.000000000000000001"), 1e-18);
    assert.equal(toJsonNumber("123456789012345678901"), 123456789012345680000);
  });
});
