/**
 * A corpus of hostile and broken request messages (SPEC §3 "Limits on
 * input"): oversize ids and addresses, deep nesting, duplicated keys, NUL
 * bytes, non-objects, oversize batches and messages, a number the signature
 * does not cover; signed and unsigned. Used by the poison fault test and the
 * intake benchmark.
 */
import { createHmac, randomBytes } from "node:crypto";
import { nowS } from "./rabbit.ts";
import { signMessage } from "../../shared/domain/signature.ts";
import { canonicalize } from "../../shared/domain/canonical-json.ts";

type Kind = "topup" | "withdraw" | "pay" | "remove";
const randomAddress = () => `0x${randomBytes(20).toString("hex")}`;

/** One poison message: what it is, its bytes, and the one outcome it must have. */
export interface Poison {
  name: string;
  kind: Kind;
  bytes: Buffer;
  /** dead-lettered with this reason ... */
  dead?: string;
  /** ... or refused once under this id with this code */
  refused?: { queueId: string; code: string };
}

export interface PoisonOptions {
  key: string;
  /** makes every message of the corpus unique (ids and bodies) */
  round: number;
  /** a wallet of the gateway, so that only the poison is wrong */
  from: string;
  maxBatch: number;
  maxBytes: number;
}

/** Twenty-one hostile or broken messages, signed and unsigned, each with the outcome SPEC §3 gives it. */
export function poisonCorpus({ key, round, from, maxBatch: MAX_BATCH, maxBytes: MAX_BYTES }: PoisonOptions): Poison[] {
  const ts = nowS();
  const sign = (m: Record<string, unknown>) => Buffer.from(JSON.stringify(signMessage(m, key)));
  const w = (over: Record<string, unknown>) => ({ queue_id: `p${round}-w`, from_address: from, to_address: randomAddress(), amount: "1", chain: "ETH", symbol: "USDT", timestamp: ts, ...over });
  const id = (n: string) => `p${round}-${n}`;
  const orders = (k: number) => Array.from({ length: k }, (_, i) => ({ order_id: `o${i}`, to_address: randomAddress(), amount: "1" }));
  // a body signed over `amount: 1` and sent as 1.000000000000000001 ETH
  const numberRule = (() => {
    const m = { ...w({ queue_id: id("number"), symbol: "ETH" }), amount: 1 };
    const sig = createHmac("sha256", key).update(canonicalize(m), "utf8").digest("hex");
    return Buffer.from(JSON.stringify({ ...m, sign: sig }).replace('"amount":1,', '"amount":1.000000000000000001,'));
  })();
  return [
    { name: "signed withdraw, queue_id of 129 characters", kind: "withdraw", bytes: sign(w({ queue_id: `${id("long")}-${"q".repeat(129)}` })), dead: "invalid_request" },
    { name: "signed withdraw, queue_id of 10,000 characters", kind: "withdraw", bytes: sign(w({ queue_id: "q".repeat(10_000) })), dead: "invalid_request" },
    { name: "unsigned withdraw, queue_id of 200 characters", kind: "withdraw", bytes: Buffer.from(JSON.stringify(w({ queue_id: "u".repeat(200) }))), dead: "bad_signature" },
    { name: "signed withdraw, NUL in queue_id", kind: "withdraw", bytes: sign(w({ queue_id: `${id("nul")}\u0000x` })), dead: "invalid_request" },
    { name: "signed topup, address with a trailing space", kind: "topup", bytes: sign({ queue_id: id("space"), chain: "ETH", symbol: "USDT", address: `${randomAddress()} `, timestamp: ts }), refused: { queueId: id("space"), code: "invalid_request" } },
    { name: "signed topup, address of 200 characters", kind: "topup", bytes: sign({ queue_id: id("addr200"), chain: "ETH", symbol: "USDT", address: `0x${"a".repeat(198)}`, timestamp: ts }), refused: { queueId: id("addr200"), code: "invalid_request" } },
    { name: "signed withdraw, chain of 200 characters", kind: "withdraw", bytes: sign(w({ queue_id: id("chain"), chain: "C".repeat(200) })), refused: { queueId: id("chain"), code: "invalid_request" } },
    { name: "signed withdraw, amount of 10,000 digits", kind: "withdraw", bytes: sign(w({ queue_id: id("amount"), amount: "9".repeat(10_000) })), refused: { queueId: id("amount"), code: "invalid_amount" } },
    { name: "signed pay, one order more than max_batch", kind: "pay", bytes: sign({ ...w({ queue_id: id("batch") }), to_address: undefined, amount: undefined, transactions: orders(MAX_BATCH + 1) }), refused: { queueId: id("batch"), code: "invalid_request" } },
    { name: "signed pay, an order_id of 129 characters", kind: "pay", bytes: sign({ ...w({ queue_id: id("order") }), to_address: undefined, amount: undefined, transactions: [{ order_id: "o".repeat(129), to_address: randomAddress(), amount: "1" }] }), refused: { queueId: id("order"), code: "invalid_request" } },
    { name: "signed, nested 9 levels", kind: "withdraw", bytes: sign(w({ queue_id: id("deep"), note: [[[[[[[[["x"]]]]]]]]] })), dead: "invalid_request" },
    { name: "nested 100,000 levels", kind: "withdraw", bytes: Buffer.from(`{"queue_id":"${id("deeper")}","a":${"[".repeat(100_000).slice(0, MAX_BYTES - 100)}`), dead: "invalid_request" },
    { name: "signed, a duplicated key", kind: "withdraw", bytes: Buffer.from(sign(w({ queue_id: id("dupkey"), amount: "1" })).toString().replace('"amount":"1"', '"amount":"1000","amount":"1"')), dead: "invalid_request" },
    { name: "a NUL byte outside strings", kind: "withdraw", bytes: Buffer.from(`{\u0000"queue_id":"${id("nulbyte")}"}`), dead: "unparseable" },
    { name: "a JSON array", kind: "pay", bytes: Buffer.from(`[${sign(w({ queue_id: id("array") })).toString()}]`), dead: "unparseable" },
    { name: "JSON null", kind: "remove", bytes: Buffer.from(`null${" ".repeat(round)}`), dead: "unparseable" },
    { name: "a JSON number", kind: "topup", bytes: Buffer.from(String(round)), dead: "unparseable" },
    { name: "a JSON string", kind: "withdraw", bytes: Buffer.from(`"${id("string")}"`), dead: "unparseable" },
    { name: "invalid UTF-8", kind: "withdraw", bytes: Buffer.concat([Buffer.from(`{"queue_id":"${id("utf8")}","x":"`), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]), dead: "unparseable" },
    { name: "over max_message_bytes", kind: "withdraw", bytes: sign(w({ queue_id: id("big"), pad: "x".repeat(MAX_BYTES) })), dead: "too_large" },
    { name: "signed over amount 1, sent as 1.000000000000000001 ETH", kind: "withdraw", bytes: numberRule, dead: "bad_signature" },
  ];
}

