/**
 * validateRequest (SPEC §3): a table of every error code validation can
 * answer, for each request kind, plus the dead-letter cases (unauthenticated,
 * unusable id, limits on input), the number rule, normalisation (lowercase
 * addresses, exact amounts) and number styles. The id ledger (duplicates) is
 * the bridge's: tests/integration/intake-*.test.ts. Property tests are in
 * requests-property.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { LosslessNumber, stringify as stringifyLossless } from "lossless-json";
import { validateRequest, DEAD_LETTER_REASONS, type RequestKind, type ValidationContext, type ValidationResult } from "../../shared/domain/requests.ts";
import { canonicalize, type NumberStyle } from "../../shared/domain/canonical-json.ts";
import { ERROR_CODES } from "../../shared/domain/errors.ts";

const KEY = "test-communication-key-0123456789";
const NOW_S = 1_758_610_297;
const ctx: ValidationContext = {
  key: KEY,
  nowMs: NOW_S * 1000 + 400,
  maxSkewS: 300,
  maxMessageBytes: 4096,
  maxBatch: 5,
  assets: { ETH: { nativeSymbol: "ETH", nativeDecimals: 18, tokens: { USDT: { decimals: 6 } } } },
};

const A1 = "0x1111111111111111111111111111111111111111";
const A2 = "0x2222222222222222222222222222222222222222";
const MIXED = "0xAbCdEf0123456789aBcDeF0123456789ABCDEF01";
const n = (text: string) => new LosslessNumber(text);

type Msg = Record<string, unknown>;

/** JSON text of `msg` with a `sign` made the way a sender would (numbers in `style`). */
function signed(msg: Msg, opts: { key?: string; style?: NumberStyle } = {}): Buffer {
  const { sign: _drop, ...rest } = msg;
  const sign = createHmac("sha256", opts.key ?? KEY).update(canonicalize(rest, opts.style ?? "js"), "utf8").digest("hex");
  return Buffer.from(stringifyLossless({ ...rest, sign })!, "utf8");
}

const base: Record<RequestKind | "payBatch" | "removeTransfer", Msg> = {
  topup: { chain: "ETH", symbol: "USDT", address: A1, queue_id: "topup_1", timestamp: NOW_S },
  withdraw: { queue_id: "withdraw_123", from_address: A1, to_address: A2, amount: "50.0", chain: "ETH", symbol: "USDT", timestamp: NOW_S },
  pay: { queue_id: "pay_456", from_address: A1, to_address: A2, amount: 200, order_id: "order_789", chain: "ETH", symbol: "USDT", timestamp: NOW_S },
  payBatch: {
    queue_id: "pay_457",
    from_address: A1,
    chain: "ETH",
    symbol: "USDT",
    transactions: [
      { order_id: "o1", to_address: A2, amount: "1.5" },
      { order_id: "o2", to_address: MIXED, amount: "2" },
    ],
    timestamp: NOW_S,
  },
  remove: { queue_id: "rm_1", msg_type: "topup", chain: "ETH", symbol: "USDT", address: A1, timestamp: NOW_S },
  removeTransfer: { queue_id: "rm_2", msg_type: "withdraw", timestamp: NOW_S },
};
const kindOf = (name: keyof typeof base): RequestKind =>
  name === "payBatch" ? "pay" : name === "removeTransfer" ? "remove" : (name as RequestKind);

function validate(kind: RequestKind, body: Buffer | string, c: ValidationContext = ctx): ValidationResult {
  return validateRequest(kind, Buffer.isBuffer(body) ? body : Buffer.from(body, "utf8"), c);
}

const show = (r: unknown) => JSON.stringify(r, (_k, v) => (typeof v === "bigint" ? `${v}n` : v));

function expectRejected(r: ValidationResult, code: string, detail?: RegExp) {
  assert.equal(r.outcome, "rejected", show(r));
  if (r.outcome !== "rejected") return;
  assert.equal(r.code, code, r.detail);
  assert.ok((ERROR_CODES as readonly string[]).includes(r.code));
  if (detail) assert.match(r.detail, detail);
}

function expectDead(r: ValidationResult, reason: string, detail?: RegExp) {
  assert.equal(r.outcome, "dead", show(r));
  if (r.outcome !== "dead") return;
  assert.equal(r.reason, reason, r.detail);
  assert.ok((DEAD_LETTER_REASONS as readonly string[]).includes(r.reason));
  if (detail) assert.match(r.detail, detail);
}

function expectValid(r: ValidationResult) {
  assert.equal(r.outcome, "valid", show(r));
  if (r.outcome !== "valid") throw new Error("unreachable");
  return r;
}

const without = (m: Msg, ...keys: string[]) => Object.fromEntries(Object.entries(m).filter(([k]) => !keys.includes(k)));

describe("validateRequest: the base messages of every kind are valid", () => {
  for (const name of Object.keys(base) as (keyof typeof base)[]) {
    it(name, () => {
      const r = expectValid(validate(kindOf(name), signed(base[name]!)));
      assert.equal(r.timestamp, NOW_S);
    });
  }
});

/**
 * The table: [case, message (before signing), expected code, detail pattern],
 * for each kind. Messages are signed correctly unless the case is about the
 * signature. A code `dead:<reason>` means the message is never answered and
 * goes to the dead-letter queue with that reason.
 */
type Case = [name: string, kind: keyof typeof base, msg: Msg | Buffer, code: string, detail?: RegExp];

function casesFor(name: keyof typeof base): Case[] {
  const m = base[name]!;
  const sign = (x: Msg, o: { style?: NumberStyle } = {}) => signed(x, o);
  const cases: Case[] = [
    // bad_signature: checked first, nothing else is trusted before it, and never answered
    ["signed with another key", name, signed(m, { key: KEY + "!" }), "dead:bad_signature"],
    ["no sign field", name, Buffer.from(JSON.stringify(m)), "dead:bad_signature"],
    ["sign is not hex", name, Buffer.from(JSON.stringify({ ...m, sign: "x".repeat(64) })), "dead:bad_signature"],
    ["sign is a number", name, Buffer.from(JSON.stringify({ ...m, sign: 12 })), "dead:bad_signature"],
    ["a field changed after signing", name, Buffer.from(JSON.stringify({ ...JSON.parse(signed(m).toString()), queue_id: "other" })), "dead:bad_signature"],
    ["a field added after signing", name, Buffer.from(JSON.stringify({ ...JSON.parse(signed(m).toString()), extra: 1 })), "dead:bad_signature"],
    ["bad signature beats a malformed body", name, Buffer.from(JSON.stringify({ sign: "00".repeat(32) })), "dead:bad_signature"],
    ["a number whose value a double cannot hold, signed as JSON writes it", name, sign({ ...m, timestamp: n(`${NOW_S}.0000000000000000001`) }), "dead:bad_signature"],
    ["a number whose value a double cannot hold, signed as sent", name, sign({ ...m, timestamp: n(`${NOW_S}.0000000000000000001`) }, { style: "literal" }), "dead:bad_signature"],
    // timestamp
    ["timestamp 301 s in the past", name, sign({ ...m, timestamp: NOW_S - 301 }), "expired", /300 s/],
    ["timestamp 301 s in the future", name, sign({ ...m, timestamp: NOW_S + 302 }), "expired"],
    ["timestamp 0", name, sign({ ...m, timestamp: 0 }), "expired"],
    ["timestamp in milliseconds", name, sign({ ...m, timestamp: NOW_S * 1000 }), "invalid_request", /Unix seconds/],
    ["timestamp missing", name, sign(without(m, "timestamp")), "invalid_request", /timestamp/],
    ["timestamp as a string", name, sign({ ...m, timestamp: String(NOW_S) }), "invalid_request", /timestamp/],
    ["timestamp with a fraction", name, sign({ ...m, timestamp: n(`${NOW_S}.5`) }), "invalid_request", /timestamp/],
    ["timestamp negative", name, sign({ ...m, timestamp: -NOW_S }), "invalid_request", /timestamp/],
    ["timestamp null", name, sign({ ...m, timestamp: null }), "invalid_request", /timestamp/],
    // an unusable id: there is nothing to answer under
    ["queue_id empty", name, sign({ ...m, queue_id: "" }), "dead:invalid_request", /queue_id/],
    ["queue_id of 129 characters", name, sign({ ...m, queue_id: "q".repeat(129) }), "dead:invalid_request", /queue_id/],
    ["queue_id with a control character", name, sign({ ...m, queue_id: "a\nb" }), "dead:invalid_request", /queue_id/],
    ["queue_id with a NUL", name, sign({ ...m, queue_id: "a\u0000b" }), "dead:invalid_request", /queue_id/],
    ["queue_id with a trailing space", name, sign({ ...m, queue_id: "q1 " }), "dead:invalid_request", /queue_id/],
    ["queue_id a number", name, sign({ ...m, queue_id: 5 }), "dead:invalid_request", /queue_id/],
    ["queue_id with a lone surrogate (\\ud800)", name, Buffer.from(signed(m).toString().replace(/"queue_id":"[^"]*"/, '"queue_id":"\\ud800"')), "dead:bad_signature"],
    ["queue_id with a lone surrogate, signed", name, sign({ ...m, queue_id: "a\ud800" }), "dead:invalid_request", /queue_id/],
    ["queue_id not ASCII", name, sign({ ...m, queue_id: "提现-订单-42" }), "dead:invalid_request", /queue_id/],
  ];
  const needsAsset = name !== "removeTransfer";
  if (needsAsset) {
    cases.push(
      ["chain missing", name, sign(without(m, "chain")), "invalid_request", /chain/],
      ["chain a number", name, sign({ ...m, chain: 1 }), "invalid_request", /chain/],
      ["symbol missing", name, sign(without(m, "symbol")), "invalid_request", /symbol/],
      ["unknown chain", name, sign({ ...m, chain: "BTC" }), "unknown_chain", /BTC/],
      ["chain in the wrong case", name, sign({ ...m, chain: "eth" }), "unknown_chain"],
      ["unknown symbol", name, sign({ ...m, symbol: "DOGE" }), "unknown_symbol", /DOGE/],
      ["symbol in the wrong case", name, sign({ ...m, symbol: "usdt" }), "unknown_symbol"],
    );
  }
  const addressFields = name === "topup" || name === "remove" ? ["address"] : name === "removeTransfer" ? [] : name === "payBatch" ? ["from_address"] : ["from_address", "to_address"];
  for (const f of addressFields) {
    cases.push(
      [`${f} missing`, name, sign(without(m, f)), "invalid_request", new RegExp(name === "remove" ? "address" : f)],
      [`${f} of 19 bytes`, name, sign({ ...m, [f]: A1.slice(0, 40) }), "invalid_request", new RegExp(f)],
      [`${f} of 21 bytes`, name, sign({ ...m, [f]: A1 + "11" }), "invalid_request", new RegExp(f)],
      [`${f} without 0x`, name, sign({ ...m, [f]: A1.slice(2) + "11" }), "invalid_request", new RegExp(f)],
      [`${f} not hex`, name, sign({ ...m, [f]: "0x" + "g".repeat(40) }), "invalid_request", new RegExp(f)],
      [`${f} with spaces`, name, sign({ ...m, [f]: ` ${A1}` }), "invalid_request", new RegExp(f)],
      [`${f} with a trailing space`, name, sign({ ...m, [f]: `${A1} ` }), "invalid_request", new RegExp(f)],
      [`${f} of 200 characters`, name, sign({ ...m, [f]: A1 + "1".repeat(158) }), "invalid_request", new RegExp(f)],
    );
  }
  if (name === "withdraw" || name === "pay") {
    cases.push(
      ["queue_id missing", name, sign(without(m, "queue_id")), "dead:invalid_request", /queue_id/],
      ["queue_id null", name, sign({ ...m, queue_id: null }), "dead:invalid_request", /queue_id/],
      ["amount missing", name, sign(without(m, "amount")), "invalid_request", /amount/],
      ["amount null", name, sign({ ...m, amount: null }), "invalid_request", /amount/],
      ["amount a boolean", name, sign({ ...m, amount: true }), "invalid_request", /amount/],
      ["amount zero (string)", name, sign({ ...m, amount: "0" }), "invalid_amount", /greater than zero/],
      ["amount zero (number)", name, sign({ ...m, amount: 0 }), "invalid_amount", /greater than zero/],
      ["amount 0.000 (number)", name, sign({ ...m, amount: n("0.000") }, { style: "literal" }), "invalid_amount"],
      ["amount negative (string)", name, sign({ ...m, amount: "-1" }), "invalid_amount"],
      ["amount negative (number)", name, sign({ ...m, amount: -5 }), "invalid_amount"],
      ["amount with too many decimals for USDT", name, sign({ ...m, amount: "1.0000001" }), "invalid_amount", /6 fractional/],
      ["amount number with too many decimals", name, sign({ ...m, amount: n("0.0000001") }, { style: "literal" }), "invalid_amount", /6 fractional/],
      ["amount with an exponent (string)", name, sign({ ...m, amount: "1e2" }), "invalid_amount"],
      ["amount with a sign (string)", name, sign({ ...m, amount: "+1" }), "invalid_amount"],
      ["amount with a thousands separator", name, sign({ ...m, amount: "1,000" }), "invalid_amount"],
      ["amount with a space", name, sign({ ...m, amount: "1 000" }), "invalid_amount"],
      ["amount non-numeric", name, sign({ ...m, amount: "ten" }), "invalid_amount"],
      ["amount '1.'", name, sign({ ...m, amount: "1." }), "invalid_amount"],
      ["amount '.5'", name, sign({ ...m, amount: ".5" }), "invalid_amount"],
      ["amount too large", name, sign({ ...m, amount: "1".repeat(60) }), "invalid_amount", /too large/],
      ["amount number too large", name, sign({ ...m, amount: n("1e80") }, { style: "literal" }), "invalid_amount"],
      ["amount number with a huge exponent", name, sign({ ...m, amount: n("1e999999999") }, { style: "literal" }), "invalid_amount"],
    );
  }
  if (name === "pay") cases.push(["order_id missing", name, sign(without(m, "order_id")), "invalid_request"]);
  if (name === "payBatch") {
    const txs = m.transactions as Msg[];
    const many = (k: number) => Array.from({ length: k }, (_, i) => ({ order_id: `o${i}`, to_address: A2, amount: "1" }));
    cases.push(
      ["transactions empty", name, sign({ ...m, transactions: [] }), "invalid_request", /transactions/],
      ["transactions not an array", name, sign({ ...m, transactions: { order_id: "o1" } }), "invalid_request", /transactions/],
      ["batch over max_batch", name, sign({ ...m, transactions: many(6) }), "invalid_request", /batch of 6 exceeds the limit of 5/],
      ["duplicate order_id", name, sign({ ...m, transactions: [txs[0], { ...txs[1], order_id: "o1" }] }), "invalid_request", /duplicate order_id o1/],
      ["an order without order_id", name, sign({ ...m, transactions: [txs[0], without(txs[1]!, "order_id")] }), "invalid_request", /order_id/],
      ["an order with a bad to_address", name, sign({ ...m, transactions: [txs[0], { ...txs[1], to_address: "0x12" }] }), "invalid_request", /to_address/],
      ["an order with a zero amount", name, sign({ ...m, transactions: [txs[0], { ...txs[1], amount: "0" }] }), "invalid_amount", /transactions\.1\.amount/],
      ["an order with too many decimals", name, sign({ ...m, transactions: [txs[0], { ...txs[1], amount: 1.0000001 }] }), "invalid_amount", /transactions\.1\.amount/],
      ["an order that is not an object", name, sign({ ...m, transactions: [txs[0], "o2"] }), "invalid_request"],
    );
  }
  if (name === "remove") {
    cases.push(
      ["msg_type unknown", name, sign({ ...m, msg_type: "deposit" }), "invalid_request", /msg_type/],
      ["msg_type missing", name, sign(without(m, "msg_type")), "invalid_request", /msg_type/],
      ["queue_id missing", name, sign(without(m, "queue_id")), "dead:invalid_request", /queue_id/],
      ["topup removal without chain", name, sign(without(m, "chain")), "invalid_request", /chain, symbol and address are required/],
    );
  }
  if (name === "removeTransfer") {
    cases.push(
      ["msg_type unknown", name, sign({ ...m, msg_type: "withdrawal" }), "invalid_request", /msg_type/],
      ["queue_id missing", name, sign(without(m, "queue_id")), "dead:invalid_request", /queue_id/],
      ["a bad address is still checked", name, sign({ ...m, address: "0x1" }), "invalid_request", /address/],
    );
  }
  return cases;
}

for (const name of Object.keys(base) as (keyof typeof base)[]) {
  describe(`validateRequest ${name}: rejections`, () => {
    for (const [title, kind, msg, code, detail] of casesFor(name)) {
      it(`${title} -> ${code}`, () => {
        const body = Buffer.isBuffer(msg) ? msg : signed(msg);
        if (code.startsWith("dead:")) expectDead(validate(kindOf(kind), body), code.slice(5), detail);
        else expectRejected(validate(kindOf(kind), body), code, detail);
      });
    }
  });
}

describe("validateRequest: every SPEC code validation can produce is covered by the table", () => {
  it("expired, invalid_request, invalid_amount, unknown_chain, unknown_symbol, and dead bad_signature, for every kind that can have them", () => {
    const byKind = new Map<string, Set<string>>();
    for (const name of Object.keys(base) as (keyof typeof base)[]) {
      const seen = new Set<string>();
      for (const [, kind, msg] of casesFor(name)) {
        const r = validate(kindOf(kind), Buffer.isBuffer(msg) ? msg : signed(msg));
        if (r.outcome === "rejected") seen.add(r.code);
        if (r.outcome === "dead") seen.add(`dead:${r.reason}`);
      }
      byKind.set(name, seen);
    }
    const all = ["dead:bad_signature", "dead:invalid_request", "expired", "invalid_request", "unknown_chain", "unknown_symbol"];
    for (const name of ["topup", "withdraw", "pay", "payBatch", "remove"]) {
      for (const code of all) assert.ok(byKind.get(name)!.has(code), `${name} lacks ${code}`);
    }
    for (const name of ["withdraw", "pay", "payBatch"]) assert.ok(byKind.get(name)!.has("invalid_amount"), `${name} lacks invalid_amount`);
    for (const code of ["dead:bad_signature", "expired", "invalid_request"]) assert.ok(byKind.get("removeTransfer")!.has(code));
  });
});

describe("validateRequest: dead-letter cases (never answered)", () => {
  const deep = (levels: number) => `${"[".repeat(levels)}${"]".repeat(levels)}`;
  const dead: [string, Buffer, string][] = [
    ["empty body", Buffer.alloc(0), "unparseable"],
    ["not JSON", Buffer.from("hello"), "unparseable"],
    ["truncated JSON", signed(base.withdraw!).subarray(0, 40), "unparseable"],
    ["a JSON array", Buffer.from(`[${signed(base.topup!).toString()}]`), "unparseable"],
    ["a JSON string", Buffer.from('"topup"'), "unparseable"],
    ["a JSON number", Buffer.from("42"), "unparseable"],
    ["JSON null", Buffer.from("null"), "unparseable"],
    ["trailing garbage", Buffer.from(signed(base.topup!).toString() + "x"), "unparseable"],
    ["two objects", Buffer.from(signed(base.topup!).toString() + signed(base.topup!).toString()), "unparseable"],
    ["a NUL byte outside strings", Buffer.from(signed(base.topup!).toString().replace("{", "{\u0000")), "unparseable"],
    ["invalid UTF-8", Buffer.concat([Buffer.from('{"chain":"ETH","x":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]), "unparseable"],
    ["overlong UTF-8 encoding", Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]), "unparseable"],
    ["UTF-16", Buffer.from(signed(base.topup!).toString(), "utf16le"), "unparseable"],
    ["duplicate keys with different values", Buffer.from(signed(base.withdraw!).toString().replace('{"queue_id"', '{"amount":"5000","queue_id"')), "invalid_request"],
    ["duplicate keys with the same value", Buffer.from(signed(base.topup!).toString().replace('{"chain":"ETH"', '{"chain":"ETH","chain":"ETH"')), "invalid_request"],
    ["duplicate keys spelt differently (an escape)", Buffer.from(signed(base.topup!).toString().replace('{"chain":"ETH"', '{"chain":"ETH","\\u0063hain":"ETH"')), "invalid_request"],
    ["duplicate keys in an order", Buffer.from(signed(base.payBatch!).toString().replace('"amount":"1.5"', '"amount":"1500","amount":"1.5"')), "invalid_request"],
    ["nested 9 levels", Buffer.from(`{"a":${deep(8)},"sign":"${"a".repeat(64)}"}`), "invalid_request"],
    ["nested objects that overflowed the stack", Buffer.from(`{"a":${'{"a":'.repeat(3000)}1${"}".repeat(3000)},"sign":"${"a".repeat(64)}"}`), "invalid_request"],
    ["a megabyte of brackets", Buffer.from(`{"a":${deep(500_000)}}`), "invalid_request"],
  ];
  for (const [title, body, reason] of dead) {
    it(`${title} -> ${reason}`, () => {
      const big = { ...ctx, maxMessageBytes: 2 << 20 };
      expectDead(validate("withdraw", body, big), reason);
    });
  }

  it("nested exactly 8 levels is not refused for its depth", () => {
    const r = validate("topup", signed({ ...base.topup!, note: [[[[[[["x"]]]]]]] }));
    expectValid(r);
  });

  it("oversized: more than max_message_bytes", () => {
    const msg = { ...base.topup!, queue_id: "q", pad: "x".repeat(ctx.maxMessageBytes) };
    expectDead(validate("topup", signed(msg)), "too_large", /exceeds 4096/);
  });

  it("exactly max_message_bytes is accepted", () => {
    const body0 = signed({ ...base.topup!, pad: "" });
    const pad = "x".repeat(ctx.maxMessageBytes - body0.length);
    const body = signed({ ...base.topup!, pad });
    assert.equal(body.length, ctx.maxMessageBytes);
    expectValid(validate("topup", body));
  });

  it("brackets and quotes inside strings are not nesting", () => {
    const r = validate("topup", signed({ ...base.topup!, note: `${"[{".repeat(50)}\\"]"` }));
    expectValid(r);
  });

  it("an unauthenticated message names its queue_id for the audit trail only when it is a well-formed id", () => {
    const r = validate("withdraw", Buffer.from(JSON.stringify({ ...base.withdraw!, sign: "00".repeat(32) })));
    assert.ok(r.outcome === "dead" && r.claimedQueueId === "withdraw_123");
    const long = validate("withdraw", Buffer.from(JSON.stringify({ ...base.withdraw!, queue_id: "q".repeat(129) })));
    assert.ok(long.outcome === "dead" && long.claimedQueueId === null);
  });
});

describe("validateRequest: the number rule (SPEC §3 Signatures)", () => {
  it("1.000000000000000001 ETH signed as JSON writes it (1) is refused, not paid as 1 ETH + 1 wei", () => {
    const body = signed({ ...base.withdraw!, symbol: "ETH", amount: n("1.000000000000000001") });
    expectDead(validate("withdraw", body), "bad_signature");
  });

  it("the same signed over \"amount\":1 and sent as 1.000000000000000001 is refused", () => {
    const good = JSON.parse(signed({ ...base.withdraw!, symbol: "ETH", amount: 1 }).toString()) as Msg;
    const text = stringifyLossless({ ...good, amount: n("1.000000000000000001") })!;
    expectDead(validate("withdraw", Buffer.from(text)), "bad_signature");
  });

  it("spellings of the same value are fine: 1.50, 1.5e0, 15E-1", () => {
    for (const a of ["1.50", "1.5e0", "15E-1", "0.15e+1"]) {
      for (const style of ["js", "literal"] as const) {
        const r = expectValid(validate("withdraw", signed({ ...base.withdraw!, amount: n(a) }, { style })));
        assert.ok(r.request.kind === "withdraw" && r.request.units === 1_500_000n, `${a} ${style}`);
      }
    }
  });

  it("more precision than a double is sent as a decimal string", () => {
    const r = expectValid(validate("withdraw", signed({ ...base.withdraw!, symbol: "ETH", amount: "1.000000000000000001" })));
    assert.ok(r.request.kind === "withdraw" && r.request.units === 1_000_000_000_000_000_001n);
  });

  it("applies to numbers anywhere, an order of a batch included", () => {
    const txs = [{ order_id: "o1", to_address: A2, amount: n("2.0000000000000000001") }];
    expectDead(validate("pay", signed({ ...base.payBatch!, symbol: "ETH", transactions: txs })), "bad_signature");
  });
});

describe("validateRequest: normalisation", () => {
  it("addresses are lowercased", () => {
    const t = expectValid(validate("topup", signed({ ...base.topup!, address: MIXED })));
    assert.equal(t.request.kind === "topup" && t.request.address, MIXED.toLowerCase());
    const w = expectValid(validate("withdraw", signed({ ...base.withdraw!, from_address: MIXED, to_address: MIXED.toUpperCase().replace("0X", "0x") })));
    assert.ok(w.request.kind === "withdraw");
    if (w.request.kind !== "withdraw") return;
    assert.equal(w.request.fromAddress, MIXED.toLowerCase());
    assert.equal(w.request.toAddress, MIXED.toLowerCase());
    const b = expectValid(validate("pay", signed(base.payBatch!)));
    assert.ok(b.request.kind === "pay" && b.request.orders[1]!.toAddress === MIXED.toLowerCase());
  });

  it("a rejection echoes the message's fields with addresses lowercased", () => {
    const r = validate("withdraw", signed({ ...base.withdraw!, from_address: MIXED, chain: "BTC" }));
    expectRejected(r, "unknown_chain");
    assert.ok(r.outcome === "rejected");
    if (r.outcome !== "rejected") return;
    assert.equal(r.echo.from_address, MIXED.toLowerCase());
    assert.equal(r.echo.queue_id, "withdraw_123");
    assert.equal(r.echo.amount, "50.0");
    assert.equal(r.timestamp, NOW_S);
  });

  it("a rejected batch names its order_ids (each gets an answer)", () => {
    const r = validate("pay", signed({ ...base.payBatch!, symbol: "DOGE" }));
    expectRejected(r, "unknown_symbol");
    assert.deepEqual(r.outcome === "rejected" && r.orderIds, ["o1", "o2"]);
    const single = validate("pay", signed({ ...base.pay!, amount: "0" }));
    expectRejected(single, "invalid_amount");
    assert.deepEqual(single.outcome === "rejected" && single.orderIds, ["order_789"]);
  });

  it("topup queue_id is optional; remove of a withdraw needs no asset", () => {
    const t = expectValid(validate("topup", signed(without(base.topup!, "queue_id"))));
    assert.equal(t.request.kind === "topup" && t.request.queueId, null);
    const r = expectValid(validate("remove", signed(base.removeTransfer!)));
    assert.deepEqual(r.request, { kind: "remove", queueId: "rm_2", msgType: "withdraw", chain: null, symbol: null, address: null });
    expectValid(validate("remove", signed({ ...base.removeTransfer!, msg_type: "pay" })));
  });

  it("the native coin is a symbol", () => {
    const r = expectValid(validate("withdraw", signed({ ...base.withdraw!, symbol: "ETH", amount: "0.000000000000000001" })));
    assert.ok(r.request.kind === "withdraw" && r.request.units === 1n && r.request.amount === "0.000000000000000001");
  });

  it("timestamp exactly max_clock_skew_s away is still accepted", () => {
    const c = { ...ctx, nowMs: NOW_S * 1000 };
    expectValid(validate("topup", signed({ ...base.topup!, timestamp: NOW_S - 300 }), c));
    expectValid(validate("topup", signed({ ...base.topup!, timestamp: NOW_S + 300 }), c));
    expectRejected(validate("topup", signed({ ...base.topup!, timestamp: NOW_S - 301 }), c), "expired");
  });
});

describe("validateRequest: amounts as JSON numbers and strings, signed in either number style", () => {
  const forms: [label: string, amount: unknown, style: NumberStyle, units: bigint, text: string][] = [
    ['"amount": 200', 200, "js", 200_000_000n, "200"],
    ['"amount": 200 (literal)', n("200"), "literal", 200_000_000n, "200"],
    ['"amount": "200.0"', "200.0", "js", 200_000_000n, "200"],
    ['"amount": 200.0 signed as 200', n("200.0"), "js", 200_000_000n, "200"],
    ['"amount": 200.0 signed as 200.0', n("200.0"), "literal", 200_000_000n, "200"],
    ['"amount": 1e2 signed as 100', n("1e2"), "js", 100_000_000n, "100"],
    ['"amount": 1e2 signed as 1e2', n("1e2"), "literal", 100_000_000n, "100"],
    ['"amount": 1.5E+1', n("1.5E+1"), "literal", 15_000_000n, "15"],
    ['"amount": 1e-6', n("1e-6"), "js", 1n, "0.000001"],
    ['"amount": 100.500001', n("100.500001"), "js", 100_500_001n, "100.500001"],
    ['"amount": "100.500001"', "100.500001", "js", 100_500_001n, "100.500001"],
    ['"amount": 0.1 (a float the sender had)', 0.1, "js", 100_000n, "0.1"],
  ];
  for (const [label, amount, style, units, text] of forms) {
    it(label, () => {
      const r = expectValid(validate("withdraw", signed({ ...base.withdraw!, amount }, { style })));
      assert.ok(r.request.kind === "withdraw");
      if (r.request.kind !== "withdraw") return;
      assert.equal(r.request.units, units);
      assert.equal(r.request.amount, text);
    });
  }

  it("a number that is not exact to the asset's decimals is refused, not rounded", () => {
    expectRejected(validate("withdraw", signed({ ...base.withdraw!, amount: n("1.0000005") }, { style: "literal" })), "invalid_amount");
    expectRejected(validate("withdraw", signed({ ...base.withdraw!, amount: n("1.5e-7") }, { style: "literal" })), "invalid_amount");
  });

  it("a big amount is converted from its text, not from a double", () => {
    const r = expectValid(validate("withdraw", signed({ ...base.withdraw!, symbol: "ETH", amount: "12345678901234567.123456789012345678" })));
    assert.ok(r.request.kind === "withdraw" && r.request.units === 12345678901234567123456789012345678n);
    // as a number literal that a double cannot hold it is not what was signed (the number rule)
    expectDead(validate("withdraw", signed({ ...base.withdraw!, symbol: "ETH", amount: n("12345678901234567.123456789012345678") }, { style: "literal" })), "bad_signature");
  });
});

describe("validateRequest: replay and identity", () => {
  it("a captured valid request replayed after the skew window is expired", () => {
    const body = signed(base.withdraw!);
    expectValid(validate("withdraw", body));
    expectRejected(validate("withdraw", body, { ...ctx, nowMs: ctx.nowMs + 301_000 }), "expired");
  });

  it("a pay batch and its one-order single form are different requests", () => {
    const single = expectValid(validate("pay", signed({ ...base.pay!, amount: "1.5", order_id: "o1" })));
    const batch = expectValid(validate("pay", signed({ ...without(base.pay!, "to_address", "amount", "order_id"), transactions: [{ order_id: "o1", to_address: A2, amount: "1.5" }] })));
    assert.ok(single.request.kind === "pay" && !single.request.batch);
    assert.ok(batch.request.kind === "pay" && batch.request.batch);
  });

  it("exactly max_batch orders are accepted", () => {
    const txs = Array.from({ length: ctx.maxBatch }, (_, i) => ({ order_id: `o${i}`, to_address: A2, amount: `${i + 1}` }));
    const r = expectValid(validate("pay", signed({ ...base.payBatch!, transactions: txs })));
    assert.ok(r.request.kind === "pay" && r.request.orders.length === ctx.maxBatch);
  });
});

describe("validateRequest: answers to a refused batch are bounded", () => {
  it("an unsigned message naming many order_ids gets no answer at all", () => {
    const txs = Array.from({ length: 50 }, (_, i) => ({ order_id: `o${i}` }));
    expectDead(validate("pay", Buffer.from(JSON.stringify({ ...base.payBatch!, transactions: txs, sign: "00".repeat(32) }))), "bad_signature");
  });

  it("an over-size batch is answered once for the whole request, saying why", () => {
    const txs = Array.from({ length: 7 }, (_, i) => ({ order_id: `o${i}`, to_address: A2, amount: "1" }));
    const r = validate("pay", signed({ ...base.payBatch!, transactions: txs }));
    expectRejected(r, "invalid_request", /batch of 7 exceeds the limit of 5/);
    assert.equal(r.outcome === "rejected" && r.orderIds, null);
  });

  it("orders that cannot each be answered (a bad or repeated order_id) make one answer for the request", () => {
    const txs = base.payBatch!.transactions as Msg[];
    const bad = validate("pay", signed({ ...base.payBatch!, transactions: [txs[0], { ...txs[1], order_id: "o".repeat(129) }] }));
    expectRejected(bad, "invalid_request", /order_id/);
    assert.equal(bad.outcome === "rejected" && bad.orderIds, null);
    const twice = validate("pay", signed({ ...base.payBatch!, transactions: [txs[0], { ...txs[1], order_id: "o1" }] }));
    expectRejected(twice, "invalid_request", /duplicate order_id/);
    assert.equal(twice.outcome === "rejected" && twice.orderIds, null);
  });
});

describe("validateRequest: ids", () => {
  it("accepts 128 printable ASCII characters, inner spaces and punctuation included", () => {
    const id = ("a-b_c.d/e:f g~!@#$%^&*()[]{}<>?|'" + '"\\').padEnd(128, "z");
    assert.equal(id.length, 128);
    const r = expectValid(validate("withdraw", signed({ ...base.withdraw!, queue_id: id })));
    assert.equal(r.request.queueId, id);
  });

  it("a topup's queue_id may be absent or null", () => {
    for (const m of [without(base.topup!, "queue_id"), { ...base.topup!, queue_id: null }]) {
      const r = expectValid(validate("topup", signed(m)));
      assert.equal(r.request.queueId, null);
    }
  });
});

describe("validateRequest: what a refusal echoes fits its column", () => {
  it("fields of the wrong shape are left out, never cut", () => {
    const r = validate("withdraw", signed({ ...base.withdraw!, chain: "X".repeat(200), from_address: `${A1} `, to_address: "0x" + "1".repeat(198), amount: "9".repeat(150) }));
    assert.equal(r.outcome, "rejected");
    if (r.outcome !== "rejected") return;
    assert.deepEqual(r.echo, { queue_id: "withdraw_123", symbol: "USDT" });
  });
});
