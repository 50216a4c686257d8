/**
 * Turning a RabbitMQ message body into a validated request, or into the SPEC
 * error code that answers it. Pure: no I/O, the clock and keys are passed in.
 *
 * Order of checks (each answers with the first failure):
 *   size / JSON / object  -> not answerable: dead-letter queue
 *   sign                  -> bad_signature (nothing else is trusted before this)
 *   timestamp             -> invalid_request (malformed) / expired (skew)
 *   structure             -> invalid_request
 *   chain / symbol        -> unknown_chain / unknown_symbol
 *   amounts               -> invalid_amount
 * Checks that need the database (unknown_wallet, duplicate) are the bridge's.
 */
import { createHash } from "node:crypto";
import { isLosslessNumber, parse as parseLossless } from "lossless-json";
import { z } from "zod";
import { tryParseAmount, formatUnits, jsonNumberToDecimal } from "./amount.ts";
import { canonicalize } from "./canonical-json.ts";
import type { ErrorCode } from "./errors.ts";
import { verifyMessage } from "./signature.ts";

export const REQUEST_KINDS = ["topup", "withdraw", "pay", "remove"] as const;
export type RequestKind = (typeof REQUEST_KINDS)[number];

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

/** Fields copied from a rejected message into its answer (strings only, trimmed). */
export type Echo = Record<string, string | null>;

export type ValidationResult =
  | { outcome: "dead"; reason: string }
  | { outcome: "rejected"; code: ErrorCode; detail: string; echo: Echo; orderIds: string[]; timestamp: number | null }
  | { outcome: "valid"; request: ValidRequest; bodyHash: string; timestamp: number };

/**
 * 1-128 characters, no control characters and no lone surrogates: JSON's
 * "\ud800" escape yields one, which UTF-8 (and so MySQL) cannot store; two
 * different ids would be saved as the same U+FFFD and collide. No leading or
 * trailing white space either: ids are stored utf8mb4_bin (case-sensitive),
 * but MySQL's PAD SPACE collations compare "a " equal to "a".
 */
const ID_RE = /^(?!\s)[^\u0000-\u001f\u007f\p{Cs}]{1,128}(?<!\s)$/u;
const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/;

const id = z.string().regex(ID_RE, "must be 1-128 printable characters without leading or trailing spaces");
const address = z.string().regex(ADDRESS_RE, "must be 0x followed by 40 hex digits").transform((a) => a.toLowerCase());
/** an amount is decimal text or a JSON number; either way we keep its text */
const amountText = z.union([
  z.string(),
  z
    .custom<{ value: string }>((v) => isLosslessNumber(v), "must be a number or a decimal string")
    .transform((v) => jsonNumberToDecimal(v.value)),
]);
const name = z.string().min(1).max(16);

const schemas = {
  topup: z.object({ chain: name, symbol: name, address, queue_id: id.optional() }),
  withdraw: z.object({ queue_id: id, chain: name, symbol: name, from_address: address, to_address: address, amount: amountText }),
  pay: z.union([
    z.object({
      queue_id: id,
      chain: name,
      symbol: name,
      from_address: address,
      transactions: z.array(z.object({ order_id: id, to_address: address, amount: amountText })).min(1),
    }),
    z.object({ queue_id: id, chain: name, symbol: name, from_address: address, to_address: address, amount: amountText, order_id: id }),
  ]),
  remove: z.object({
    queue_id: id,
    msg_type: z.enum(["topup", "withdraw", "pay"]),
    chain: name.optional(),
    symbol: name.optional(),
    address: address.optional(),
  }),
} as const;

const ECHO_FIELDS = ["queue_id", "chain", "symbol", "address", "from_address", "to_address", "order_id", "msg_type"];

function echoOf(msg: Record<string, unknown>): Echo {
  const echo: Echo = {};
  for (const f of ECHO_FIELDS) {
    const v = msg[f];
    if (typeof v === "string" && v.length <= 200) echo[f] = ADDRESS_RE.test(v) ? v.toLowerCase() : v;
  }
  const amount = msg.amount;
  if (typeof amount === "string" && amount.length <= 100) echo.amount = amount;
  else if (isLosslessNumber(amount)) echo.amount = (amount as { value: string }).value.slice(0, 100);
  return echo;
}

/**
 * The order_ids a refused pay names; each gets its own answer. At most
 * `limit` (max_batch): this runs before the signature is checked, so an
 * unsigned message must not turn into thousands of notifications.
 */
function orderIdsOf(msg: Record<string, unknown>, limit: number): string[] {
  const txs = msg.transactions;
  if (!Array.isArray(txs)) return typeof msg.order_id === "string" && ID_RE.test(msg.order_id) ? [msg.order_id] : [];
  const ids = txs
    .map((t) => (t && typeof t === "object" ? (t as Record<string, unknown>).order_id : undefined))
    .filter((v): v is string => typeof v === "string" && ID_RE.test(v));
  return [...new Set(ids)].slice(0, limit);
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "malformed request";
  // a union failure: report the branch that got furthest
  const inner = (issue as { errors?: z.core.$ZodIssue[][] }).errors;
  const deepest = inner?.flat().sort((a, b) => b.path.length - a.path.length)[0];
  const chosen = deepest ?? issue;
  const path = [...issue.path, ...(deepest ? deepest.path : [])].join(".");
  return `${path || "message"}: ${chosen.message}`;
}

function sha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
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

/**
 * Validate one request message of `kind`.
 *
 * @example
 * validateRequest("withdraw", Buffer.from(json), ctx)
 * // {outcome: "valid", request: {kind: "withdraw", units: 50000000n, ...}, ...}
 */
export function validateRequest(kind: RequestKind, body: Buffer, ctx: ValidationContext): ValidationResult {
  if (body.length > ctx.maxMessageBytes) return { outcome: "dead", reason: `message of ${body.length} bytes exceeds ${ctx.maxMessageBytes}` };
  if (body.length > 0 && !isUtf8(body)) return { outcome: "dead", reason: "message is not UTF-8" };
  if (nestsDeeperThan(body, MAX_DEPTH)) return { outcome: "dead", reason: `message nests deeper than ${MAX_DEPTH} levels` };
  const msg = parseBody(body);
  if (!msg) return { outcome: "dead", reason: "message is not a JSON object" };

  const echo = echoOf(msg);
  const orderIds = orderIdsOf(msg, ctx.maxBatch);
  const reject = (code: ErrorCode, detail: string, timestamp: number | null = null): ValidationResult => ({
    outcome: "rejected",
    code,
    detail,
    echo,
    orderIds,
    timestamp,
  });

  if (!verifyMessage(msg, ctx.key)) return reject("bad_signature", "signature does not match the message");

  const ts = msg.timestamp;
  const tsText = isLosslessNumber(ts) ? (ts as { value: string }).value : null;
  if (tsText === null || !/^[0-9]{1,12}$/.test(tsText)) return reject("invalid_request", "timestamp: must be Unix seconds (an integer)");
  const timestamp = Number(tsText);
  if (Math.abs(ctx.nowMs / 1000 - timestamp) > ctx.maxSkewS) {
    return reject("expired", `timestamp is more than ${ctx.maxSkewS} s away from the server clock`, timestamp);
  }

  // A pay is a batch exactly when it has `transactions`; judging it against
  // that form alone makes the detail name the field that is really wrong
  // (a union reports some branch's complaint, e.g. "transactions" missing
  // for a single payout whose amount is missing).
  const schema = kind === "pay" ? schemas.pay.options["transactions" in msg ? 0 : 1] : schemas[kind];
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
      const y = p as z.output<(typeof schemas.pay)["options"][number]>;
      const batch = "transactions" in y;
      const raw = batch ? y.transactions : [{ order_id: y.order_id, to_address: y.to_address, amount: y.amount }];
      if (raw.length > ctx.maxBatch) return reject("invalid_request", `transactions: batch of ${raw.length} exceeds the limit of ${ctx.maxBatch}`, timestamp);
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
      request = {
        kind,
        queueId: r.queue_id,
        msgType: r.msg_type,
        chain: r.chain ?? null,
        symbol: r.symbol ?? null,
        address: r.address ?? null,
      };
      break;
    }
  }
  return { outcome: "valid", request, bodyHash: requestHash(request), timestamp };
}

/**
 * Identity of a request's meaning, for telling a harmless resend (same hash,
 * new timestamp and signature) from a conflicting reuse of a queue_id.
 */
export function requestHash(request: ValidRequest): string {
  return sha256(canonicalize(request as unknown as Record<string, unknown>));
}

/**
 * A request is at most three levels deep. Deeper input is hostile: the parser
 * and canonicalize() recurse, and a ~12 KB message of nested objects
 * overflowed the stack, which threw out of validateRequest and jammed the
 * bridge's batch in a redelivery loop. Scanned on the raw bytes, before any
 * recursion, skipping brackets inside strings.
 */
const MAX_DEPTH = 32;

function nestsDeeperThan(buf: Buffer, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte (a quote or another backslash)
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

function isUtf8(buf: Buffer): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(buf);
    return true;
  } catch {
    return false;
  }
}

/** The catalogue validation needs, from the loaded config. */
export function assetCatalog(chains: Record<string, { native_symbol: string; native_decimals: number; tokens: Record<string, { decimals: number }> }>): AssetCatalog {
  return Object.fromEntries(
    Object.entries(chains).map(([k, c]) => [k, { nativeSymbol: c.native_symbol, nativeDecimals: c.native_decimals, tokens: c.tokens }]),
  );
}
