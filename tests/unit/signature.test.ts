/**
 * HMAC-SHA256 over canonical JSON (SPEC §3 "Signatures").
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import fc from "fast-check";
import { parse as parseLossless } from "lossless-json";
import { computeSignature, signMessage, verifyMessage } from "../../shared/domain/signature.ts";

const KEY = "test-communication-key-0123456789";

const withdraw = {
  queue_id: "withdraw_123",
  from_address: "0x1111111111111111111111111111111111111111",
  to_address: "0x2222222222222222222222222222222222222222",
  amount: "50.0",
  chain: "ETH",
  symbol: "USDT",
  timestamp: 1758610297,
};

describe("signatures: examples", () => {
  it("is lowercase hex HMAC-SHA256 of the canonical text without sign", () => {
    const canonical =
      '{"amount":"50.0","chain":"ETH","from_address":"0x1111111111111111111111111111111111111111","queue_id":"withdraw_123","symbol":"USDT","timestamp":1758610297,"to_address":"0x2222222222222222222222222222222222222222"}';
    const expected = createHmac("sha256", KEY).update(canonical, "utf8").digest("hex");
    assert.equal(computeSignature(withdraw, KEY), expected);
    assert.equal(computeSignature({ ...withdraw, sign: "whatever" }, KEY), expected, "sign itself is not signed");
    assert.match(expected, /^[0-9a-f]{64}$/);
  });

  it("sign then verify round-trips; a Buffer key is the same key", () => {
    const signed = signMessage(withdraw, KEY);
    assert.equal(verifyMessage(signed, KEY), true);
    assert.equal(verifyMessage(signed, Buffer.from(KEY)), true);
    assert.equal(verifyMessage(signed, KEY + "x"), false, "another key");
  });

  it("accepts the signature in uppercase hex", () => {
    const signed = signMessage(withdraw, KEY);
    assert.equal(verifyMessage({ ...signed, sign: signed.sign.toUpperCase() }, KEY), true);
  });

  it("rejects malformed signatures without throwing", () => {
    const good = signMessage(withdraw, KEY).sign;
    const bad: unknown[] = [
      undefined,
      null,
      "",
      good.slice(0, 63),
      good + "0",
      good.slice(0, 62) + "zz",
      " " + good.slice(1),
      "0x" + good.slice(2),
      good.slice(0, 32), // 16 bytes: a short buffer must not reach timingSafeEqual
      Number.parseInt(good.slice(0, 8), 16),
      [good],
      { sign: good },
      "é".repeat(32),
    ];
    for (const sign of bad) assert.equal(verifyMessage({ ...withdraw, sign } as Record<string, unknown>, KEY), false, String(sign));
    const { sign: _omit, ...unsigned } = signMessage(withdraw, KEY);
    assert.equal(verifyMessage(unsigned, KEY), false, "no sign field");
  });

  it("numbers signed in js style or in literal style both verify", () => {
    const text = '{"amount":200.0,"chain":"ETH","timestamp":1758610297}';
    const literalSig = createHmac("sha256", KEY).update(text, "utf8").digest("hex");
    const jsSig = createHmac("sha256", KEY).update('{"amount":200,"chain":"ETH","timestamp":1758610297}', "utf8").digest("hex");
    const parsed = parseLossless(text) as Record<string, unknown>;
    assert.equal(verifyMessage({ ...parsed, sign: literalSig }, KEY), true, "literal");
    assert.equal(verifyMessage({ ...parsed, sign: jsSig }, KEY), true, "js");
    assert.equal(verifyMessage({ ...parsed, sign: createHmac("sha256", KEY).update('{"amount":"200.0","chain":"ETH","timestamp":1758610297}').digest("hex") }, KEY), false, "a string is not a number");
  });
});

/** a message-like object: string / number / boolean / null fields, maybe nested */
const fieldValue = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(fc.string(), fc.integer()), { maxKeys: 3 }), { maxLength: 3 }),
);
const message = fc
  .dictionary(
    fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 }).filter((k) => k !== "sign" && k !== "__proto__"),
    fieldValue,
    { minKeys: 1, maxKeys: 8 },
  );

describe("signatures: properties", () => {
  it("round-trips for any message and key", () => {
    fc.assert(
      fc.property(message, fc.string({ minLength: 1, maxLength: 64 }), (msg, key) => {
        assert.equal(verifyMessage(signMessage(msg, key), key), true);
      }),
      { numRuns: 500 },
    );
  });

  it("survives a trip through JSON text (what the wire does)", () => {
    fc.assert(
      fc.property(message, (msg) => {
        const wire = JSON.stringify(signMessage(msg, KEY));
        assert.equal(verifyMessage(parseLossless(wire) as Record<string, unknown>, KEY), true);
      }),
      { numRuns: 500 },
    );
  });

  it("any single-field change breaks it: a changed value, a removed field, an added field", () => {
    fc.assert(
      fc.property(message, fc.nat(), fieldValue, fc.string({ minLength: 1, maxLength: 8 }), (msg, pick, newValue, newKey) => {
        const signed = signMessage(msg, KEY);
        const keys = Object.keys(msg);
        const k = keys[pick % keys.length]!;
        if (JSON.stringify(newValue) !== JSON.stringify(msg[k])) {
          assert.equal(verifyMessage({ ...signed, [k]: newValue }, KEY), false, `changed ${k}`);
        }
        const { [k]: _gone, ...removed } = signed;
        assert.equal(verifyMessage(removed, KEY), false, `removed ${k}`);
        if (!(newKey in signed) && newKey !== "__proto__") {
          assert.equal(verifyMessage({ ...signed, [newKey]: 1 }, KEY), false, `added ${newKey}`);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("any flipped signature character is refused", () => {
    fc.assert(
      fc.property(message, fc.integer({ min: 0, max: 63 }), fc.integer({ min: 1, max: 15 }), (msg, pos, delta) => {
        const signed = signMessage(msg, KEY);
        const c = ((Number.parseInt(signed.sign[pos]!, 16) + delta) % 16).toString(16);
        const sign = signed.sign.slice(0, pos) + c + signed.sign.slice(pos + 1);
        assert.equal(verifyMessage({ ...signed, sign }, KEY), false);
      }),
      { numRuns: 500 },
    );
  });

  it("never throws on arbitrary sign values and messages", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.anything({ maxDepth: 2 })), fc.anything({ maxDepth: 1 }), (msg, sign) => {
        let r: unknown;
        try {
          r = verifyMessage({ ...msg, sign }, KEY);
        } catch (e) {
          // only values JSON cannot hold (undefined in arrays, NaN, functions...) may throw a TypeError
          assert.ok(e instanceof TypeError, String(e));
          return;
        }
        assert.equal(typeof r, "boolean");
      }),
      { numRuns: 500 },
    );
  });
});
