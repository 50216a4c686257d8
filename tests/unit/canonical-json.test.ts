/**
 * Canonical JSON for signatures (SPEC §3): keys sorted by code point at every
 * depth, no whitespace, strings and numbers as JSON writes them.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { LosslessNumber, parse as parseLossless } from "lossless-json";
import { canonicalize, compareCodePoints, decimalValueKey, numberSurvivesCanonical } from "../../shared/domain/canonical-json.ts";

describe("canonicalize: examples", () => {
  it("sorts keys at every depth and writes no whitespace", () => {
    assert.equal(canonicalize({ b: 1, a: [true, "x"] }), '{"a":[true,"x"],"b":1}');
    assert.equal(
      canonicalize({ z: { y: [{ d: 1, c: null }], x: {} }, a: [] }),
      '{"a":[],"z":{"x":{},"y":[{"c":null,"d":1}]}}',
    );
    assert.equal(canonicalize([3, 1, 2]), "[3,1,2]", "arrays keep their order");
  });

  it("a request of the SPEC", () => {
    const msg = {
      timestamp: 1758610297,
      symbol: "USDT",
      queue_id: "withdraw_123",
      to_address: "0x2222222222222222222222222222222222222222",
      from_address: "0x1111111111111111111111111111111111111111",
      chain: "ETH",
      amount: "50.0",
    };
    assert.equal(
      canonicalize(msg),
      '{"amount":"50.0","chain":"ETH","from_address":"0x1111111111111111111111111111111111111111","queue_id":"withdraw_123","symbol":"USDT","timestamp":1758610297,"to_address":"0x2222222222222222222222222222222222222222"}',
    );
  });

  it("escapes strings as JSON.stringify does", () => {
    assert.equal(canonicalize({ s: 'a"b\\c\n\t\u0001' }), '{"s":"a\\"b\\\\c\\n\\t\\u0001"}');
    assert.equal(canonicalize({ "k\"ey": "é€😀" }), '{"k\\"ey":"é€😀"}', "non-ASCII is written as is");
    assert.equal(canonicalize("\ud800"), '"\\ud800"', "a lone surrogate is escaped (well-formed JSON.stringify)");
    assert.equal(canonicalize("</script>\u2028"), JSON.stringify("</script>\u2028"));
  });

  it("numbers as JSON writes them", () => {
    assert.equal(canonicalize({ a: 200.0, b: 1e21, c: 0.1, d: -0, e: 1e-7 }), '{"a":200,"b":1e+21,"c":0.1,"d":0,"e":1e-7}');
    assert.equal(canonicalize(12345678901234567890n), "12345678901234567890");
    assert.throws(() => canonicalize(Number.NaN), TypeError);
    assert.throws(() => canonicalize({ a: Infinity }), TypeError);
  });

  it("skips undefined members like JSON.stringify, and refuses what JSON cannot hold", () => {
    assert.equal(canonicalize({ a: undefined, b: 1 }), '{"b":1}');
    assert.throws(() => canonicalize(() => 1), TypeError);
    assert.throws(() => canonicalize(Symbol("x")), TypeError);
  });
});

describe("canonicalize: key order by code point, not UTF-16 unit", () => {
  // U+1F600 (😀) is the surrogate pair D83D DE00; U+FF21 (Ａ) is one unit FF21.
  // By code point Ａ (0xFF21) < 😀 (0x1F600); by UTF-16 unit 😀 (0xD83D) < Ａ.
  const astral = "😀";
  const highBmp = "\uff21";
  const privateUse = "\ue000";

  it("orders a BMP char above U+E000 before an astral char", () => {
    assert.equal(canonicalize({ [astral]: 1, [highBmp]: 2 }), `{"${highBmp}":2,"${astral}":1}`);
    assert.equal(canonicalize({ [astral]: 1, [privateUse]: 2 }), `{"${privateUse}":2,"${astral}":1}`);
    // JavaScript's default sort would put the astral key first: the cases really differ
    assert.deepEqual([highBmp, astral].sort(), [astral, highBmp]);
  });

  it("compareCodePoints matches comparing arrays of code points", () => {
    const cps = (s: string) => [...s].map((c) => c.codePointAt(0)!);
    const reference = (a: string, b: string) => {
      const x = cps(a);
      const y = cps(b);
      for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
      return Math.sign(x.length - y.length);
    };
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 8 }), fc.string({ unit: "grapheme", maxLength: 8 }), (a, b) => {
        assert.equal(compareCodePoints(a, b), reference(a, b));
      }),
      { numRuns: 2000 },
    );
    // lone surrogates and pairs against units above U+D7FF: where UTF-16 order and code point order differ
    const unit = fc.oneof(fc.constantFrom("\ud800", "\udbff", "\udc00", "\udfff", "\ue000", "\uffff", "\ud83d\ude00", "a", "\u00e9"), fc.string({ unit: "binary", maxLength: 1 }));
    fc.assert(
      fc.property(fc.array(unit, { maxLength: 6 }), fc.array(unit, { maxLength: 6 }), (a, b) => {
        assert.equal(compareCodePoints(a.join(""), b.join("")), reference(a.join(""), b.join("")));
      }),
      { numRuns: 5000 },
    );
    // a shared high surrogate, then a low one against a unit above U+DFFF: the pair is the larger code point
    assert.equal(compareCodePoints("\udbff\udc00", "\udbff\ue000"), 1);
    assert.equal(compareCodePoints("\udbff\ue000", "\udbff\udc00"), -1);
    assert.equal(compareCodePoints("ab", "a"), 1);
    assert.equal(compareCodePoints("a", "ab"), -1);
    assert.equal(compareCodePoints("", ""), 0);
  });
});

describe("canonicalize: lossless numbers", () => {
  it('"js" style writes the value as JSON.stringify would; "literal" keeps the received text', () => {
    const parsed = parseLossless('{"amount":200.0,"big":12345678901234567890123,"e":1E2,"neg":-0.50,"t":1758610297}') as Record<string, unknown>;
    assert.ok(parsed.amount instanceof LosslessNumber);
    assert.equal(canonicalize(parsed, "js"), '{"amount":200,"big":1.2345678901234568e+22,"e":100,"neg":-0.5,"t":1758610297}');
    assert.equal(canonicalize(parsed, "literal"), '{"amount":200.0,"big":12345678901234567890123,"e":1E2,"neg":-0.50,"t":1758610297}');
  });

  it("a literal that overflows a double keeps its text in both styles", () => {
    const parsed = parseLossless('{"x":1e400}');
    assert.equal(canonicalize(parsed, "js"), '{"x":1e400}');
    assert.equal(canonicalize(parsed, "literal"), '{"x":1e400}');
  });

  it("js style of a parsed value equals canonicalize of JSON.parse of the same text", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
        const text = JSON.stringify(v);
        assert.equal(canonicalize(parseLossless(text), "js"), canonicalize(JSON.parse(text)));
      }),
      { numRuns: 500 },
    );
  });
});

/** the same value with every object's keys in a shuffled order */
function shuffleKeys(v: unknown, rand: () => number): unknown {
  if (Array.isArray(v)) return v.map((x) => shuffleKeys(x, rand));
  if (v && typeof v === "object") {
    const entries = Object.entries(v).map(([k, x]) => [k, shuffleKeys(x, rand)] as const);
    for (let i = entries.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [entries[i], entries[j]] = [entries[j]!, entries[i]!];
    }
    return Object.fromEntries(entries);
  }
  return v;
}

describe("canonicalize: properties", () => {
  // keys from the whole Unicode range, astral included, to exercise the sort
  const anyJson = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: "small" },
      fc.constant(null),
      fc.boolean(),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.integer(),
      fc.string({ unit: "grapheme" }),
      fc.array(tie("value"), { maxLength: 4 }),
      fc.dictionary(fc.string({ unit: "grapheme", maxLength: 6 }), tie("value"), { maxKeys: 5 }),
    ),
  })).value;

  it("is a fixed point: canonicalize(JSON.parse(canonicalize(v))) === canonicalize(v)", () => {
    fc.assert(
      fc.property(anyJson, (v) => {
        const c = canonicalize(v);
        assert.equal(canonicalize(JSON.parse(c)), c);
        assert.equal(canonicalize(parseLossless(c), "literal"), c, "literal style reproduces canonical text");
      }),
      { numRuns: 1000 },
    );
  });

  it("is valid JSON with no whitespace outside strings, meaning the same value", () => {
    fc.assert(
      fc.property(anyJson, (v) => {
        const c = canonicalize(v);
        assert.deepEqual(JSON.parse(c), JSON.parse(JSON.stringify(v)));
        const outsideStrings = c.replace(/"(?:[^"\\]|\\.)*"/g, "");
        assert.doesNotMatch(outsideStrings, /\s/);
      }),
      { numRuns: 1000 },
    );
  });

  it("does not depend on the input's key order", () => {
    fc.assert(
      fc.property(anyJson, fc.integer(), (v, seed) => {
        let s = seed >>> 0;
        const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
        assert.equal(canonicalize(shuffleKeys(v, rand)), canonicalize(v));
      }),
      { numRuns: 1000 },
    );
  });

  it("object keys appear in code point order", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: "binary", maxLength: 4 }), fc.constant(0), { maxKeys: 12 }), (obj) => {
        const keys = Object.keys(JSON.parse(canonicalize(obj)) as object);
        // JSON.parse keeps insertion order for non-index keys; compare on those
        const plain = keys.filter((k) => !/^(0|[1-9][0-9]*)$/.test(k));
        for (let i = 1; i < plain.length; i++) assert.ok(compareCodePoints(plain[i - 1]!, plain[i]!) < 0, `${plain[i - 1]} < ${plain[i]}`);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("the number rule: numberSurvivesCanonical", () => {
  it("every double, as JSON writes it or spelt with extra zeros, survives", () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (d) => {
        const text = JSON.stringify(d);
        assert.ok(numberSurvivesCanonical(text), text);
        const padded = text.includes("e") ? text.replace("e", "0e") : text.includes(".") ? `${text}00` : `${text}.000`;
        assert.ok(numberSurvivesCanonical(padded), padded);
      }),
    );
  });

  it("a literal survives exactly when its value is that of the text JSON writes for its double", () => {
    // independent oracle: both values as exact fractions of bigints ("0.1" survives: JSON writes 0.1)
    const literal = (text: string): [bigint, bigint] => {
      const [, sign, i, f = "", e = "0"] = /^(-?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$/.exec(text)!;
      const exp = Number(e) - f.length;
      const n = BigInt(`${sign}${i}${f}`);
      return exp >= 0 ? [n * 10n ** BigInt(exp), 1n] : [n, 10n ** BigInt(-exp)];
    };
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 40n }), fc.integer({ min: 0, max: 30 }), fc.integer({ min: -30, max: 30 }), (digits, scale, e) => {
        const s = digits.toString().padStart(scale + 1, "0");
        const text = `${scale === 0 ? s : `${s.slice(0, -scale)}.${s.slice(-scale)}`}e${e}`;
        const [a, b] = literal(text);
        const [c, d] = literal(JSON.stringify(Number(text)));
        assert.equal(numberSurvivesCanonical(text), a * d === c * b, text);
      }),
    );
    for (const t of ["1.000000000000000001", "9007199254740993", "0.10000000000000000001", "12345678901234567.123456789012345678"]) assert.ok(!numberSurvivesCanonical(t), t);
    for (const t of ["1.50", "15e-1", "-0", "0e10", "1e21", "1E+21", "9007199254740992", "1e999999", "-1.5", "0.1"]) assert.ok(numberSurvivesCanonical(t), t);
  });

  it("decimalValueKey is one key per value, whatever the spelling", () => {
    assert.equal(decimalValueKey("1.50"), decimalValueKey("15e-1"));
    assert.equal(decimalValueKey("150"), decimalValueKey("1.5E2"));
    assert.equal(decimalValueKey("-0.0"), "0");
    assert.notEqual(decimalValueKey("1.5"), decimalValueKey("-1.5"));
    assert.equal(decimalValueKey("1.5x"), null);
  });
});
