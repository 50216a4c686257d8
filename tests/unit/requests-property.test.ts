/**
 * Property tests of validateRequest (issue 4, "Hostile or broken input";
 * issue 10, "One id, one outcome"): random and adversarial messages never
 * throw, always get one of the three outcomes with a SPEC code or
 * dead-letter reason, never become `valid` unless every field holds, never
 * echo a value that does not fit its column, and a signed request changed in
 * any way is never answered.
 *
 * The strongest property is an oracle: messages are built field by field from
 * good, malformed, unknown and absent values, and the expected answer is
 * derived independently from the SPEC's rules and the documented check order.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import fc from "fast-check";
import { LosslessNumber, stringify as stringifyLossless } from "lossless-json";
import { validateRequest, REQUEST_KINDS, DEAD_LETTER_REASONS, type RequestKind, type ValidationContext, type ValidationResult, type ValidRequest } from "../../shared/domain/requests.ts";
import { canonicalize, type NumberStyle } from "../../shared/domain/canonical-json.ts";
import { formatUnits } from "../../shared/domain/amount.ts";
import { ERROR_CODES } from "../../shared/domain/errors.ts";

const KEY = "test-communication-key-0123456789";
const NOW_S = 1_758_610_297;
const ctx: ValidationContext = {
  key: KEY,
  nowMs: NOW_S * 1000,
  maxSkewS: 300,
  maxMessageBytes: 8192,
  maxBatch: 5,
  assets: { ETH: { nativeSymbol: "ETH", nativeDecimals: 18, tokens: { USDT: { decimals: 6 }, WBTC: { decimals: 8 } } } },
};
const DECIMALS: Record<string, number> = { ETH: 18, USDT: 6, WBTC: 8 };
const RUNS = Number(process.env.PROPERTY_RUNS ?? 400);

function signed(msg: Record<string, unknown>, style: NumberStyle = "js", key = KEY): Buffer {
  const sign = createHmac("sha256", key).update(canonicalize(msg, style), "utf8").digest("hex");
  return Buffer.from(stringifyLossless({ ...msg, sign })!, "utf8");
}

const show = (r: unknown) => JSON.stringify(r, (_k, v) => (typeof v === "bigint" ? `${v}n` : v));

/** Run validation and check the result's shape; it must never throw. */
function check(kind: RequestKind, body: Buffer): ValidationResult {
  const r = validateRequest(kind, body, ctx);
  switch (r.outcome) {
    case "dead":
      assert.ok((DEAD_LETTER_REASONS as readonly string[]).includes(r.reason), r.reason);
      assert.ok(r.claimedQueueId === null || ID.test(r.claimedQueueId));
      break;
    case "rejected":
      assert.ok((ERROR_CODES as readonly string[]).includes(r.code), r.code);
      assert.ok(typeof r.detail === "string" && r.detail.length > 0);
      // an answer is only ever given under a usable id
      assert.ok(r.queueId === null ? kind === "topup" : ID.test(r.queueId));
      // every echoed value fits the column it lands in (ids 128, addresses 42, names 16)
      for (const [k, v] of Object.entries(r.echo)) {
        assert.equal(typeof v, "string");
        const max = k.endsWith("address") ? 42 : k === "chain" || k === "symbol" ? 16 : k === "amount" ? 100 : 128;
        assert.ok(v!.length <= max && /^[\x20-\x7e]+$/.test(v!), `${k}=${v}`);
        if (k.endsWith("address")) assert.match(v!, ADDRESS);
      }
      for (const o of r.orderIds ?? []) assert.match(o, ID);
      break;
    case "valid":
      assertWellFormed(r.request);
      break;
    default:
      assert.fail(`unknown outcome ${show(r)}`);
  }
  return r;
}

const ADDRESS = /^0x[0-9a-f]{40}$/;
// the SPEC-independent oracle: 1-128 printable ASCII characters, no padding
const ID = /^(?! )[ -~]{1,128}(?<! )$/;

/** What `valid` promises to the rest of the gateway, whatever the input was. */
function assertWellFormed(q: ValidRequest) {
  const assetOk = (chain: string | null, symbol: string | null) => {
    assert.ok(chain !== null && ctx.assets[chain], `chain ${chain}`);
    assert.ok(symbol !== null && symbol in DECIMALS, `symbol ${symbol}`);
    return DECIMALS[symbol!]!;
  };
  const amountOk = (amount: string, units: bigint, decimals: number) => {
    assert.ok(units > 0n && units < 1n << 256n);
    assert.equal(amount, formatUnits(units, decimals));
  };
  switch (q.kind) {
    case "topup":
      assetOk(q.chain, q.symbol);
      assert.match(q.address, ADDRESS);
      assert.ok(q.queueId === null || ID.test(q.queueId));
      break;
    case "withdraw":
      amountOk(q.amount, q.units, assetOk(q.chain, q.symbol));
      assert.match(q.fromAddress, ADDRESS);
      assert.match(q.toAddress, ADDRESS);
      assert.match(q.queueId, ID);
      break;
    case "pay": {
      const d = assetOk(q.chain, q.symbol);
      assert.match(q.queueId, ID);
      assert.match(q.fromAddress, ADDRESS);
      assert.ok(q.orders.length >= 1 && q.orders.length <= ctx.maxBatch);
      assert.equal(new Set(q.orders.map((o) => o.orderId)).size, q.orders.length, "order ids unique");
      for (const o of q.orders) {
        assert.match(o.orderId, ID);
        assert.match(o.toAddress, ADDRESS);
        amountOk(o.amount, o.units, d);
      }
      if (!q.batch) assert.equal(q.orders.length, 1);
      break;
    }
    case "remove":
      assert.match(q.queueId, ID);
      assert.ok(["topup", "withdraw", "pay"].includes(q.msgType));
      if (q.msgType === "topup") {
        assetOk(q.chain, q.symbol);
        assert.match(q.address!, ADDRESS);
      }
      break;
  }
}

// ---------------------------------------------------------------- generators

/** a field's value and what the SPEC makes of it */
type Cls = "good" | "bad" | "unknown" | "badAmount";
interface F<T = unknown> {
  v: T;
  cls: Cls;
}
const ABSENT = Symbol("absent");

const good = <T>(a: fc.Arbitrary<T>) => a.map((v): F<T> => ({ v, cls: "good" }));
const bad = (a: fc.Arbitrary<unknown>) => a.map((v): F => ({ v, cls: "bad" }));
const absent = (cls: Cls) => fc.constant<F>({ v: ABSENT, cls });

const junk = fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.constant({}), fc.constant([]), fc.constant([1]));

const idGood = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_.:-]{1,40}$/), fc.string({ unit: "binary-ascii", minLength: 1, maxLength: 30 }).filter((s) => ID.test(s)));
const idBad = fc.oneof(
  junk,
  fc.constant(""),
  fc.constant("x".repeat(129)),
  fc.constant("a\u0000b"),
  fc.constant("tab\there"),
  fc.constant("\u007f"),
  fc.constant(" padded"),
  fc.constant("padded "),
  fc.constantFrom("é", "提现-订单", "😀", "a\ud800"),
);
const id = (required: boolean) =>
  fc.oneof({ weight: 6, arbitrary: good(idGood) }, { weight: 1, arbitrary: bad(idBad) }, { weight: 1, arbitrary: absent(required ? "bad" : "good") });

const hex40 = fc.stringMatching(/^[0-9a-fA-F]{40}$/);
const addressBad = fc.oneof(
  junk,
  hex40.map((h) => h.slice(1)), // no 0x... and 39 digits
  hex40.map((h) => `0x${h.slice(1)}`),
  hex40.map((h) => `0x${h}0`),
  hex40.map((h) => `0X${h}`),
  hex40.map((h) => ` 0x${h}`),
  fc.constant(`0x${"g".repeat(40)}`),
  fc.constant(""),
);
const address = (required: boolean) =>
  fc.oneof({ weight: 6, arbitrary: good(hex40.map((h) => `0x${h}`)) }, { weight: 1, arbitrary: bad(addressBad) }, { weight: 1, arbitrary: absent(required ? "bad" : "good") });

const chainOf = (required: boolean) => fc.oneof(
  { weight: 8, arbitrary: good(fc.constant("ETH")) },
  { weight: 1, arbitrary: fc.constantFrom("BTC", "eth", "TRON", "x".repeat(16)).map((v): F => ({ v, cls: "unknown" })) },
  // not a name at all (the config could never know it): malformed
  { weight: 1, arbitrary: bad(fc.oneof(junk, fc.constantFrom("", "E".repeat(17), "ETH ", "E T", "ÉTH"))) },
  { weight: 1, arbitrary: absent(required ? "bad" : "good") },
);
const chain = chainOf(true);
const symbolOf = (required: boolean) => fc.oneof(
  { weight: 8, arbitrary: good(fc.constantFrom("USDT", "ETH", "WBTC")) },
  { weight: 1, arbitrary: fc.constantFrom("DOGE", "usdt", "Eth").map((v): F => ({ v, cls: "unknown" })) },
  { weight: 1, arbitrary: bad(fc.oneof(junk, fc.constantFrom("", "S".repeat(17), "USDT ", "US\u0000DT"))) },
  { weight: 1, arbitrary: absent(required ? "bad" : "good") },
);
const symbol = symbolOf(true);

/**
 * An amount for an asset whose decimals are only known once the symbol is
 * drawn, so it is a function of the decimals: good ones are exact in every
 * accepted spelling, bad ones are refused `invalid_amount`.
 */
type AmountGen = (decimals: number) => F;
const amount: fc.Arbitrary<AmountGen> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .tuple(fc.bigInt({ min: 1n, max: 10n ** 30n }), fc.constantFrom("string", "number", "exponent", "padded"))
      .map(([units, form]) => (d: number): F => {
        const text = formatUnits(units, d);
        if (form === "string") return { v: text, cls: "good" };
        if (form === "number") return { v: new LosslessNumber(text), cls: "good" };
        if (form === "padded") return { v: `00${text}${text.includes(".") || d === 0 ? "" : ".0"}`, cls: "good" };
        return { v: new LosslessNumber(`${units}e-${d}`), cls: "good" };
      }),
  },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom("0", "0.0", "-1", "+1", "1e2", "1,5", " 1", "1.", ".5", "abc", "", "1".repeat(60), "NaN", "0x10", "-0", "TOO_PRECISE", "NEG_NUMBER", "ZERO_NUMBER", "HUGE_EXP")
      .map((t) => (d: number): F => {
        if (t === "TOO_PRECISE") return { v: `1.${"0".repeat(d)}1`, cls: "badAmount" };
        if (t === "NEG_NUMBER") return { v: new LosslessNumber("-5"), cls: "badAmount" };
        if (t === "ZERO_NUMBER") return { v: new LosslessNumber("0e10"), cls: "badAmount" };
        if (t === "HUGE_EXP") return { v: new LosslessNumber("1e99999"), cls: "badAmount" };
        return { v: t, cls: "badAmount" };
      }),
  },
  // not a number nor a string: malformed (a JSON integer would be a fine amount)
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, {}, [], ["1"]).map((v) => (_d: number): F => ({ v, cls: "bad" })) },
  { weight: 1, arbitrary: fc.constant((_d: number): F => ({ v: ABSENT, cls: "bad" })) },
);

const timestamp = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: -300, max: 300 }).map((o): F => ({ v: NOW_S + o, cls: "good" })) },
  { weight: 1, arbitrary: fc.oneof(fc.integer({ min: 301, max: 10 ** 8 }), fc.integer({ min: -(10 ** 8), max: -301 })).map((o): F => ({ v: NOW_S + o, cls: "unknown" })) },
  { weight: 1, arbitrary: bad(fc.oneof(fc.constant(String(NOW_S)), fc.constant(new LosslessNumber(`${NOW_S}.0`)), fc.constant(-1), fc.constant(null), fc.constant(NOW_S * 1000))) },
  { weight: 1, arbitrary: absent("bad") },
);

const style = fc.constantFrom<NumberStyle>("js", "literal");

function build(fields: Record<string, F>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).filter(([, f]) => f.v !== ABSENT).map(([k, f]) => [k, f.v]));
}

type Expect = { code: string } | { valid: true } | { dead: string };

/**
 * The number rule, test-side: a literal is exact when its value equals that
 * of the text JSON writes for its double (compared by scaled(), not by the
 * code under test); a literal no double can hold keeps its text.
 */
function exactAsDouble(text: string): boolean {
  const d = Number(text);
  if (!Number.isFinite(d)) return true;
  return scaled(text.replace(/^-/, ""), 400) === scaled(JSON.stringify(Math.abs(d)), 400);
}

function numbersIn(v: unknown): string[] {
  if (v instanceof LosslessNumber) return [v.value];
  if (Array.isArray(v)) return v.flatMap(numbersIn);
  if (v && typeof v === "object") return Object.values(v).flatMap(numbersIn);
  return [];
}

/** The answer the SPEC rules give, in validateRequest's documented order. */
function expectFor(fields: Record<string, F>, structure: F[], amounts: () => Expect | null, needsAsset = true, msg?: unknown): Expect {
  if (msg !== undefined && !numbersIn(msg).every(exactAsDouble)) return { dead: "bad_signature" };
  if (fields.queue_id!.cls === "bad") return { dead: "invalid_request" };
  const ts = fields.timestamp!;
  if (ts.cls === "bad") return { code: "invalid_request" };
  if (ts.cls === "unknown") return { code: "expired" };
  if (structure.some((f) => f.cls === "bad")) return { code: "invalid_request" };
  if (needsAsset) {
    if (fields.chain!.cls === "unknown") return { code: "unknown_chain" };
    if (fields.symbol!.cls === "unknown") return { code: "unknown_symbol" };
  }
  return amounts() ?? { valid: true };
}

function assertOutcome(r: ValidationResult, want: Expect, msg: unknown) {
  if ("valid" in want) assert.equal(r.outcome, "valid", `${show(r)}\nfor ${show(msg)}`);
  else if ("dead" in want) assert.equal(r.outcome === "dead" && r.reason, want.dead, `${show(r)}\nfor ${show(msg)}`);
  else {
    assert.equal(r.outcome, "rejected", `${show(r)}\nfor ${show(msg)}`);
    assert.equal(r.outcome === "rejected" && r.code, want.code, `${show(r)}\nfor ${show(msg)}`);
  }
}

const lower = (v: unknown) => (typeof v === "string" ? v.toLowerCase() : v);
const amountText = (f: F) => (f.v instanceof LosslessNumber ? f.v.value : (f.v as string));

// ------------------------------------------------------------------- tests

describe("validateRequest: arbitrary input never crashes and always gets a SPEC answer", () => {
  it("random bytes", () => {
    fc.assert(
      fc.property(fc.constantFrom(...REQUEST_KINDS), fc.uint8Array({ maxLength: 600 }), (kind, bytes) => {
        const r = check(kind, Buffer.from(bytes));
        assert.notEqual(r.outcome, "valid");
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it("random JSON text, including unicode and odd numbers", () => {
    fc.assert(
      fc.property(fc.constantFrom(...REQUEST_KINDS), fc.json({ maxDepth: 6 }), (kind, text) => {
        const r = check(kind, Buffer.from(text));
        assert.notEqual(r.outcome, "valid", "unsigned input is never valid");
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it("adversarial objects: real field names with any values, correctly signed", () => {
    const fieldName = fc.constantFrom(
      "queue_id", "chain", "symbol", "address", "from_address", "to_address", "amount", "order_id", "transactions",
      "msg_type", "timestamp", "__proto__", "constructor", "toString", "sign", "", "é", "😀",
    );
    const value = fc.oneof(
      fc.anything({ maxDepth: 2, withBigInt: false, withBoxedValues: false, withMap: false, withSet: false, withObjectString: false, withNullPrototype: false, withTypedArray: false, withSparseArray: false, withDate: false }),
      fc.constantFrom("ETH", "USDT", "topup", "withdraw", "pay", "0x" + "ab".repeat(20), "1.5", "0", NOW_S),
      fc.array(fc.dictionary(fc.constantFrom("order_id", "to_address", "amount"), fc.constantFrom("o1", "0x" + "cd".repeat(20), "2", 3, null)), { maxLength: 7 }),
    );
    fc.assert(
      fc.property(fc.constantFrom(...REQUEST_KINDS), fc.dictionary(fieldName, value, { maxKeys: 12 }), fc.boolean(), (kind, obj, fixTs) => {
        let text: string | undefined;
        const msg: Record<string, unknown> = { ...obj, ...(fixTs ? { timestamp: NOW_S } : {}) };
        delete msg.sign;
        try {
          text = signed(JSON.parse(JSON.stringify(msg))).toString();
        } catch {
          return; // not representable as JSON (undefined, -0 edge cases...): nothing to send
        }
        check(kind, Buffer.from(text));
      }),
      { numRuns: RUNS * 2 },
    );
  });
});

describe("validateRequest: oracle, field by field", () => {
  it("topup", () => {
    fc.assert(
      fc.property(fc.record({ chain, symbol, address: address(true), queue_id: id(false), timestamp }), style, (fields, st) => {
        const msg = build(fields);
        const r = check("topup", signed(msg, st));
        // a topup's queue_id is optional: null is the same as absent
        const f = fields.queue_id!.v === null ? { ...fields, queue_id: { v: null, cls: "good" as Cls } } : fields;
        const want = expectFor(f, [fields.chain!, fields.symbol!, fields.address!], () => null, true, msg);
        assertOutcome(r, want, msg);
        if (r.outcome === "valid") {
          assert.deepEqual(r.request, {
            kind: "topup",
            queueId: fields.queue_id!.v === ABSENT ? null : fields.queue_id!.v,
            chain: "ETH",
            symbol: fields.symbol!.v,
            address: lower(fields.address!.v),
          });
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("withdraw", () => {
    fc.assert(
      fc.property(
        fc.record({ queue_id: id(true), chain, symbol, from_address: address(true), to_address: address(true), timestamp }),
        amount,
        style,
        (fields, amountGen, st) => {
          const d = DECIMALS[fields.symbol!.v as string] ?? 6;
          const a = amountGen(d);
          const all = { ...fields, amount: a };
          const msg = build(all);
          const r = check("withdraw", signed(msg, st));
          const structure = [fields.queue_id!, fields.chain!, fields.symbol!, fields.from_address!, fields.to_address!, a.cls === "bad" ? a : { v: 0, cls: "good" as Cls }];
          const want = expectFor(all, structure, () => (a.cls === "badAmount" ? { code: "invalid_amount" } : null), true, msg);
          assertOutcome(r, want, msg);
          if (r.outcome === "valid" && r.request.kind === "withdraw") {
            assert.equal(r.request.fromAddress, lower(fields.from_address!.v));
            assert.equal(r.request.toAddress, lower(fields.to_address!.v));
            const text = amountText(a);
            // the amount keeps its exact value whatever its spelling
            assert.equal(r.request.units * 10n ** BigInt(30), scaled(text, 30 + d));
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("pay, single payout", () => {
    fc.assert(
      fc.property(
        fc.record({ queue_id: id(true), chain, symbol, from_address: address(true), to_address: address(true), order_id: id(true), timestamp }),
        amount,
        style,
        (fields, amountGen, st) => {
          const a = amountGen(DECIMALS[fields.symbol!.v as string] ?? 6);
          const all = { ...fields, amount: a };
          const msg = build(all);
          const r = check("pay", signed(msg, st));
          const structure = [fields.queue_id!, fields.chain!, fields.symbol!, fields.from_address!, fields.to_address!, fields.order_id!, a.cls === "bad" ? a : { v: 0, cls: "good" as Cls }];
          const want = expectFor(all, structure, () => (a.cls === "badAmount" ? { code: "invalid_amount" } : null), true, msg);
          assertOutcome(r, want, msg);
          if (r.outcome === "valid" && r.request.kind === "pay") {
            assert.equal(r.request.batch, false);
            assert.deepEqual(r.request.orders.map((o) => [o.orderId, o.toAddress]), [[fields.order_id!.v, lower(fields.to_address!.v)]]);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("pay, batch", () => {
    const order = fc.record({
      order_id: fc.oneof({ weight: 3, arbitrary: id(true) }, { weight: 1, arbitrary: good(fc.constantFrom("dup-a", "dup-b")) }),
      to_address: address(true),
      amount,
    });
    fc.assert(
      fc.property(
        fc.record({ queue_id: id(true), chain, symbol, from_address: address(true), timestamp }),
        fc.array(order, { maxLength: 7 }),
        style,
        (fields, orders, st) => {
          const d = DECIMALS[fields.symbol!.v as string] ?? 6;
          const txs = orders.map((o) => ({ order_id: o.order_id, to_address: o.to_address, amount: o.amount(d) }));
          const msg = { ...build(fields), transactions: txs.map((t) => build(t)) };
          const r = check("pay", signed(msg, st));
          const structure = [
            fields.queue_id!,
            fields.chain!,
            fields.symbol!,
            fields.from_address!,
            { v: 0, cls: txs.length === 0 ? "bad" : "good" } as F,
            ...txs.flatMap((t) => [t.order_id, t.to_address, t.amount.cls === "bad" ? t.amount : ({ v: 0, cls: "good" } as F)]),
          ];
          const want = expectFor(fields, structure, () => {
            if (txs.length > ctx.maxBatch) return { code: "invalid_request" };
            const seen = new Set<unknown>();
            for (const t of txs) {
              if (seen.has(t.order_id.v)) return { code: "invalid_request" };
              seen.add(t.order_id.v);
              if (t.amount.cls === "badAmount") return { code: "invalid_amount" };
            }
            return null;
          }, true, msg);
          assertOutcome(r, want, msg);
          if (r.outcome === "valid" && r.request.kind === "pay") {
            assert.equal(r.request.batch, true);
            assert.deepEqual(
              r.request.orders.map((o) => [o.orderId, o.toAddress]),
              txs.map((t) => [t.order_id.v, lower(t.to_address.v)]),
            );
          }
          if (r.outcome === "rejected") {
            // each order is answered on its own exactly when every order can be: at most
            // max_batch, each with a usable order_id, none twice; otherwise one answer
            const ids = txs.map((t) => t.order_id.v);
            const each = txs.length > 0 && txs.length <= ctx.maxBatch && txs.every((t) => t.order_id.cls === "good") && new Set(ids).size === ids.length;
            assert.deepEqual(r.orderIds, each ? ids : null);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("remove", () => {
    const msgType = fc.oneof(
      { weight: 6, arbitrary: good(fc.constantFrom("topup", "withdraw", "pay")) },
      { weight: 1, arbitrary: bad(fc.oneof(junk, fc.constantFrom("recharge", "Topup", ""))) },
      { weight: 1, arbitrary: absent("bad") },
    );
    fc.assert(
      fc.property(
        fc.record({ queue_id: id(true), msg_type: msgType, chain: chainOf(false), symbol: symbolOf(false), address: address(false), timestamp }),
        style,
        (fields, st) => {
          const msg = build(fields);
          const r = check("remove", signed(msg, st));
          // chain/symbol/address are optional in shape but required to remove a topup
          const present = (f: F) => f.v !== ABSENT;
          const isTopup = fields.msg_type!.v === "topup";
          const structure = [fields.queue_id!, fields.msg_type!, fields.chain!, fields.symbol!, fields.address!];
          const want: Expect = (() => {
            const w = expectFor(fields, structure, () => null, false, msg);
            if (!("valid" in w) || !isTopup) return w;
            if (![fields.chain!, fields.symbol!, fields.address!].every(present)) return { code: "invalid_request" };
            if (fields.chain!.cls === "unknown") return { code: "unknown_chain" };
            if (fields.symbol!.cls === "unknown") return { code: "unknown_symbol" };
            return w;
          })();
          assertOutcome(r, want, msg);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

/** exact decimal text scaled by 10^k as a bigint (test-side, independent of amount.ts) */
function scaled(text: string, k: number): bigint {
  const m = /^0*([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?$/.exec(text);
  assert.ok(m, text);
  const [, i = "", f = "", e = "0"] = m;
  const shift = k - f.length + Number(e);
  const digits = BigInt(`${i}${f}` || "0");
  return shift >= 0 ? digits * 10n ** BigInt(shift) : digits / 10n ** BigInt(-shift);
}

describe("validateRequest: a signed request changed in any way is refused", () => {
  const validMessages = fc.oneof(
    fc.record({ chain: fc.constant("ETH"), symbol: fc.constantFrom("USDT", "ETH"), address: hex40.map((h) => `0x${h}`), queue_id: idGood, timestamp: fc.constant(NOW_S) }).map((m) => ["topup", m] as const),
    fc
      .record({
        queue_id: idGood,
        chain: fc.constant("ETH"),
        symbol: fc.constant("USDT"),
        from_address: hex40.map((h) => `0x${h}`),
        to_address: hex40.map((h) => `0x${h}`),
        amount: fc.bigInt({ min: 1n, max: 10n ** 20n }).map((u) => formatUnits(u, 6)),
        timestamp: fc.constant(NOW_S),
      })
      .map((m) => ["withdraw", m] as const),
    fc
      .record({
        queue_id: idGood,
        chain: fc.constant("ETH"),
        symbol: fc.constant("USDT"),
        from_address: hex40.map((h) => `0x${h}`),
        transactions: fc.uniqueArray(fc.record({ order_id: idGood, to_address: hex40.map((h) => `0x${h}`), amount: fc.integer({ min: 1, max: 10 ** 9 }) }), {
          minLength: 1,
          maxLength: 5,
          selector: (o) => o.order_id,
        }),
        timestamp: fc.constant(NOW_S),
      })
      .map((m) => ["pay", m] as const),
  );

  it("changing, removing or adding a field after signing -> dead-lettered bad_signature, never answered", () => {
    fc.assert(
      fc.property(validMessages, fc.nat(), fc.oneof(fc.string(), fc.integer(), fc.constant(null)), fc.constantFrom("change", "remove", "add"), ([kind, msg], pick, newValue, op) => {
        const body = signed(msg);
        assert.equal(check(kind, body).outcome, "valid");
        const wire = JSON.parse(body.toString()) as Record<string, unknown>;
        const keys = Object.keys(msg);
        const k = keys[pick % keys.length]!;
        if (op === "change") {
          if (JSON.stringify(newValue) === JSON.stringify(wire[k])) return;
          wire[k] = newValue;
        } else if (op === "remove") delete wire[k];
        else wire[`x_${pick}`] = newValue;
        const r = check(kind, Buffer.from(JSON.stringify(wire)));
        assert.equal(r.outcome === "dead" && r.reason, "bad_signature", show(r));
      }),
      { numRuns: RUNS },
    );
  });

  it("a body with any byte inserted, deleted or replaced is dead-lettered or means exactly the same request", () => {
    fc.assert(
      fc.property(validMessages, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom("insert", "delete", "replace"), ([kind, msg], pos, byte, op) => {
        const body = signed(msg);
        const original = check(kind, body);
        assert.ok(original.outcome === "valid");
        const p = pos % body.length;
        const mutated =
          op === "insert"
            ? Buffer.concat([body.subarray(0, p), Buffer.from([byte]), body.subarray(p)])
            : op === "delete"
              ? Buffer.concat([body.subarray(0, p), body.subarray(p + 1)])
              : Buffer.concat([body.subarray(0, p), Buffer.from([byte]), body.subarray(p + 1)]);
        const r = check(kind, mutated);
        // the same meaning can survive (whitespace, hex case of the signature,
        // `e`/`E`), never a different request; and nothing that was tampered
        // with is ever answered: an answer needs the signature to hold
        if (r.outcome === "valid") assert.deepEqual(r.request, original.request, `${mutated.toString("latin1")}`);
        else assert.equal(r.outcome, "dead", `${mutated.toString("latin1")}`);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it("a request signed with another key is refused whatever it says", () => {
    fc.assert(
      fc.property(validMessages, fc.string({ minLength: 1, maxLength: 40 }), ([kind, msg], otherKey) => {
        fc.pre(otherKey !== KEY);
        const r = check(kind, signed(msg, "js", otherKey));
        assert.equal(r.outcome === "dead" && r.reason, "bad_signature");
      }),
      { numRuns: RUNS },
    );
  });
});
