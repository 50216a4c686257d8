/**
 * Turning a RabbitMQ message body into a validated request, a refusal, or a
 * dead letter (SPEC §3, "One id, one outcome" and "Limits on input"). Pure:
 * no I/O, the clock and keys are passed in.
 *
 * Order of checks (each settles the message with the first failure):
 *   size                        -> dead `too_large`
 *   UTF-8 / JSON / object       -> dead `unparseable`
 *   depth, duplicated keys      -> dead `invalid_request` (bounded scan, no recursion)
 *   sign + the number rule      -> dead `bad_signature`: an unauthenticated message is never answered
 *   queue_id                    -> dead `invalid_request` when it is missing or unusable (nothing to answer under)
 *   --- from here on the message is the business's, under an id it may take ---
 *   timestamp                   -> refused invalid_request (malformed) / expired (skew)
 *   structure                   -> refused invalid_request
 *   chain / symbol              -> refused unknown_chain / unknown_symbol
 *   amounts                     -> refused invalid_amount
 * The bridge checks the id ledger (duplicates) before it answers anything
 * after the id step, and `unknown_wallet` against the database.
 *
 * Whatever a refusal echoes has the shape its column has (shared/domain/
 * limits.ts): an id is an id, an address an address, or it is not echoed.
 */
import { isLosslessNumber, parse as parseLossless } from "lossless-json";
import { z } from "zod";
import { tryParseAmount, formatUnits, jsonNumberToDecimal } from "./amount.ts";
import type { RefusalCode } from "./errors.ts";
import { verifyMessage } from "./signature.ts";
import { jsonShapeProblem } from "./json-shape.ts";
import { ADDRESS_RE, ID_RE, LIMITS, NAME_RE, isAddress, isId, isName } from "./limits.ts";
import { REQUEST_KIND_SPECS, type RequestKind, type EchoField } from "./request-kinds.ts";

export { REQUEST_KINDS, type RequestKind } from "./request-kinds.ts";

/** What validation needs to know about the configured chains. */
export interface AssetCatalog {
  [chain: string]: { nativeSymbol: string; nativeDecimals: number; tokens: Record<string, { decimals: number }> };
}

export interface ValidationContext {
  key: string;
  nowMs: number;
  maxSkewS: number;
  maxMessageBytes: number;
  maxBatch: number;
  assets: AssetCatalog;
}

export interface Order {
  orderId: string;
  toAddress: string;
  /** exact decimal text, normalised ("50.0" -> "50") */
  amount: string;
  units: bigint;
}

export type ValidRequest =
  | { kind: "topup"; queueId: string | null; chain: string; symbol: string; address: string }
  | {
      kind: "withdraw";
      queueId: string;
      chain: string;
      symbol: string;
      fromAddress: string;
      toAddress: string;
      amount: string;
      units: bigint;
    }
  | { kind: "pay"; queueId: string; chain: string; symbol: string; fromAddress: string; batch: boolean; orders: Order[] }
  | {
      kind: "remove";
      queueId: string;
      msgType: "topup" | "withdraw" | "pay";
      chain: string | null;
      symbol: string | null;
      address: string | null;
    };

/** Fields copied from a message into its refusal: each well-formed and within its column's width. */
export type Echo = Partial<Record<EchoField, string>>;

/** Reasons a message goes to the dead-letter queue (SPEC §3), in its `x-payment-reason` header. */
export const DEAD_LETTER_REASONS = ["too_large", "unparseable", "invalid_request", "bad_signature", "duplicate", "internal"] as const;
export type DeadReason = (typeof DEAD_LETTER_REASONS)[number];

export type ValidationResult =
  /**
   * Never answered on a response queue. `claimedQueueId` is the message's
   * queue_id when it is a well-formed id (for the audit trail and
   * `payment history`), even when the message is not authenticated.
   */
  | { outcome: "dead"; reason: DeadReason; detail: string; claimedQueueId: string | null }
  /**
   * Authenticated, refused with a SPEC code, answered once; its queue_id is
   * then taken. `orderIds`: the orders of a refused pay, each answered on its
   * own; null when they cannot be listed one by one (the refusal is then
   * answered once for the whole request).
   */
  | { outcome: "rejected"; queueId: string | null; code: RefusalCode; detail: string; echo: Echo; orderIds: string[] | null; timestamp: number | null }
  | { outcome: "valid"; request: ValidRequest; echo: Echo; timestamp: number };

const addressField = z.string().regex(ADDRESS_RE, "must be 0x followed by 40 hex digits").transform((a) => a.toLowerCase());
const idField = z.string().regex(ID_RE, `must be 1-${LIMITS.idChars} printable ASCII characters without leading or trailing spaces`);
/** an amount is decimal text or a JSON number; either way we keep its text */
const amountText = z.union([
  z.string(),
  z
    .custom<{ value: string }>((v) => isLosslessNumber(v), "must be a number or a decimal string")
    .transform((v) => jsonNumberToDecimal(v.value)),
]);
const nameField = z.string().regex(NAME_RE, `must be 1-${LIMITS.nameChars} letters, digits, '_', '-' or '.'`);

const payOrder = z.object({ order_id: idField, to_address: addressField, amount: amountText });
const schemas = {
  topup: z.object({ chain: nameField, symbol: nameField, address: addressField, queue_id: idField.nullish() }),
  withdraw: z.object({ queue_id: idField, chain: nameField, symbol: nameField, from_address: addressField, to_address: addressField, amount: amountText }),
  payBatch: z.object({ queue_id: idField, chain: nameField, symbol: nameField, from_address: addressField, transactions: z.array(payOrder).min(1) }),
  paySingle: z.object({ queue_id: idField, chain: nameField, symbol: nameField, from_address: addressField, to_address: addressField, amount: amountText, order_id: idField }),
  remove: z.object({
    queue_id: idField,
    msg_type: z.enum(["topup", "withdraw", "pay"]),
    chain: nameField.optional(),
    symbol: nameField.optional(),
    address: addressField.optional(),
  }),
} as const;

const AMOUNT_ECHO_RE = new RegExp(`^[0-9A-Za-z.+-]{1,${LIMITS.amountChars}}$`);

/** Each echo field's shape check: anything else is left out of the answer. */
const ECHO_CHECK: Record<EchoField, (v: unknown) => string | null> = {
  queue_id: (v) => (isId(v) ? v : null),
  order_id: (v) => (isId(v) ? v : null),
  chain: (v) => (isName(v) ? v : null),
  symbol: (v) => (isName(v) ? v : null),
  address: (v) => (isAddress(v) ? v.toLowerCase() : null),
  from_address: (v) => (isAddress(v) ? v.toLowerCase() : null),
  to_address: (v) => (isAddress(v) ? v.toLowerCase() : null),
  msg_type: (v) => (v === "topup" || v === "withdraw" || v === "pay" ? v : null),
  amount: (v) => {
    const text = isLosslessNumber(v) ? (v as { value: string }).value : v;
    return typeof text === "string" && AMOUNT_ECHO_RE.test(text) ? text : null;
  },
};

function echoOf(kind: RequestKind, msg: Record<string, unknown>): Echo {
  const echo: Echo = {};
  for (const f of REQUEST_KIND_SPECS[kind].echo) {
    const v = ECHO_CHECK[f](msg[f]);
    if (v !== null) echo[f] = v;
  }
  return echo;
}

/**
 * The orders of a pay as the business named them, when every one can be
 * answered on its own: at most `maxBatch`, each with a well-formed order_id,
 * no order_id twice. Otherwise null (answered once for the whole request).
 */
function orderIdsOf(msg: Record<string, unknown>, maxBatch: number): string[] | null {
  if (!("transactions" in msg)) return isId(msg.order_id) ? [msg.order_id] : null;
  const txs = msg.transactions;
  if (!Array.isArray(txs) || txs.length === 0 || txs.length > maxBatch) return null;
  const ids: string[] = [];
  for (const t of txs) {
    const id = t && typeof t === "object" && !Array.isArray(t) ? (t as Record<string, unknown>).order_id : undefined;
    if (!isId(id)) return null;
    ids.push(id);
  }
  return new Set(ids).size === ids.length ? ids : null;
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "malformed request";
  const path = issue.path.join(".");
  return `${path || "message"}: ${issue.message}`;
}

/** Parse a message body losslessly; null when it is not a JSON object at all. */
export function parseBody(body: Buffer | string): Record<string, unknown> | null {
  try {
    const v = parseLossless(typeof body === "string" ? body : body.toString("utf8"));
    // a bare number parses to a LosslessNumber, which is an object too
    return v && typeof v === "object" && !Array.isArray(v) && !isLosslessNumber(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Validate one request message of `kind`.
 *
 * @example
 * validateRequest("withdraw", Buffer.from(json), ctx)
 * // {outcome: "valid", request: {kind: "withdraw", units: 50000000n, ...}, ...}
 */
export function validateRequest(kind: RequestKind, body: Buffer, ctx: ValidationContext): ValidationResult {
  const dead = (reason: DeadReason, detail: string, claimedQueueId: string | null = null): ValidationResult => ({ outcome: "dead", reason, detail, claimedQueueId });
  if (body.length > ctx.maxMessageBytes) return dead("too_large", `message of ${body.length} bytes exceeds ${ctx.maxMessageBytes}`);
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return dead("unparseable", "message is not UTF-8");
  }
  const shape = jsonShapeProblem(text, LIMITS.depth);
  if (shape) return dead("invalid_request", `message ${shape.detail}`);
  const msg = parseBody(text);
  if (!msg) return dead("unparseable", "message is not a JSON object");
  const claimed = isId(msg.queue_id) ? msg.queue_id : null;

  if (!verifyMessage(msg, ctx.key)) return dead("bad_signature", "signature does not match the message (or a number in it is not exact as a double)", claimed);

  // The id the answer goes under. Without a usable one there is nothing to
  // answer to: the business's own bug, dead-lettered (never a guess).
  const spec = REQUEST_KIND_SPECS[kind];
  const absent = msg.queue_id === undefined || msg.queue_id === null;
  if (absent ? spec.queueIdRequired : claimed === null) {
    return dead("invalid_request", `queue_id: ${absent ? "required" : `must be 1-${LIMITS.idChars} printable ASCII characters without leading or trailing spaces`}`);
  }
  const queueId = claimed;
  const echo = echoOf(kind, msg);
  const orderIds = kind === "pay" ? orderIdsOf(msg, ctx.maxBatch) : null;
  const reject = (code: RefusalCode, detail: string, timestamp: number | null = null): ValidationResult => ({
    outcome: "rejected",
    queueId,
    code,
    detail,
    echo,
    orderIds,
    timestamp,
  });

  const ts = msg.timestamp;
  const tsText = isLosslessNumber(ts) ? (ts as { value: string }).value : null;
  if (tsText === null || !/^[0-9]{1,12}$/.test(tsText)) return reject("invalid_request", "timestamp: must be Unix seconds (an integer)");
  const timestamp = Number(tsText);
  if (Math.abs(ctx.nowMs / 1000 - timestamp) > ctx.maxSkewS) {
    return reject("expired", `timestamp is more than ${ctx.maxSkewS} s away from the server clock`, timestamp);
  }

  // A pay is a batch exactly when it has `transactions`; judging it against
  // that form alone makes the detail name the field that is really wrong.
  const batch = kind === "pay" && "transactions" in msg;
  if (batch && Array.isArray(msg.transactions) && msg.transactions.length > ctx.maxBatch) {
    return reject("invalid_request", `transactions: batch of ${msg.transactions.length} exceeds the limit of ${ctx.maxBatch}`, timestamp);
  }
  const schema = kind === "pay" ? (batch ? schemas.payBatch : schemas.paySingle) : schemas[kind];
  const parsed = schema.safeParse(msg);
  if (!parsed.success) return reject("invalid_request", firstIssue(parsed.error), timestamp);
  const p = parsed.data as Record<string, unknown> & { chain?: string; symbol?: string };

  // remove of a withdraw/pay needs no asset; everything else names one.
  const needsAsset = kind !== "remove" || p.msg_type === "topup";
  let decimals = 0;
  if (needsAsset) {
    if (kind === "remove" && (!p.chain || !p.symbol || !p.address)) {
      return reject("invalid_request", "chain, symbol and address are required to remove a topup", timestamp);
    }
    const chain = ctx.assets[p.chain!];
    if (!chain) return reject("unknown_chain", `chain ${p.chain} is not configured`, timestamp);
    if (p.symbol === chain.nativeSymbol) decimals = chain.nativeDecimals;
    else if (chain.tokens[p.symbol!]) decimals = chain.tokens[p.symbol!]!.decimals;
    else return reject("unknown_symbol", `symbol ${p.symbol} is not configured on ${p.chain}`, timestamp);
  }

  const amount = (text: string, field: string): { amount: string; units: bigint } | { error: string } => {
    const r = tryParseAmount(text, decimals);
    if (!r.ok) return { error: `${field}: ${r.reason}` };
    return { amount: formatUnits(r.units, decimals), units: r.units };
  };

  let request: ValidRequest;
  switch (kind) {
    case "topup": {
      const t = p as z.output<typeof schemas.topup>;
      request = { kind, queueId: t.queue_id ?? null, chain: t.chain, symbol: t.symbol, address: t.address };
      break;
    }
    case "withdraw": {
      const w = p as z.output<typeof schemas.withdraw>;
      const a = amount(w.amount, "amount");
      if ("error" in a) return reject("invalid_amount", a.error, timestamp);
      request = { kind, queueId: w.queue_id, chain: w.chain, symbol: w.symbol, fromAddress: w.from_address, toAddress: w.to_address, ...a };
      break;
    }
    case "pay": {
      const y = p as z.output<typeof schemas.payBatch> | z.output<typeof schemas.paySingle>;
      const raw = "transactions" in y ? y.transactions : [{ order_id: y.order_id, to_address: y.to_address, amount: y.amount }];
      const seen = new Set<string>();
      const orders: Order[] = [];
      for (const [i, o] of raw.entries()) {
        if (seen.has(o.order_id)) return reject("invalid_request", `transactions.${i}.order_id: duplicate order_id ${o.order_id}`, timestamp);
        seen.add(o.order_id);
        const a = amount(o.amount, batch ? `transactions.${i}.amount` : "amount");
        if ("error" in a) return reject("invalid_amount", a.error, timestamp);
        orders.push({ orderId: o.order_id, toAddress: o.to_address, ...a });
      }
      request = { kind, queueId: y.queue_id, chain: y.chain, symbol: y.symbol, fromAddress: y.from_address, batch, orders };
      break;
    }
    case "remove": {
      const r = p as z.output<typeof schemas.remove>;
      request = { kind, queueId: r.queue_id, msgType: r.msg_type, chain: r.chain ?? null, symbol: r.symbol ?? null, address: r.address ?? null };
      break;
    }
  }
  return { outcome: "valid", request, echo, timestamp };
}

/** The catalogue validation needs, from the loaded config. */
export function assetCatalog(chains: Record<string, { native_symbol: string; native_decimals: number; tokens: Record<string, { decimals: number }> }>): AssetCatalog {
  return Object.fromEntries(
    Object.entries(chains).map(([k, c]) => [k, { nativeSymbol: c.native_symbol, nativeDecimals: c.native_decimals, tokens: c.tokens }]),
  );
}
