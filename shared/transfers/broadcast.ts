/**
 * Broadcasting signed transactions and recording that they went out.
 *
 * Order of effects for a batch (each step survives a crash at any point):
 *   [before-broadcast]  rows are `signed`: a retry re-broadcasts the same raw tx
 *   broadcast the raw transactions (JSON-RPC batches in nonce order)
 *   [after-broadcast]   still `signed`: the re-broadcast finds it known/mined
 *   one transaction: `sent` + tx_attempt `broadcast` + status-2 notification
 *   [after-sent-commit] `sent`: the transfer's own send job, re-run, only
 *                       (re)enqueues its confirmation
 *   enqueue confirm-transfer jobs
 *
 * A node's refusal is classified by ethers error code and by asking the node
 * about the transaction, never by message text: the transaction (or another
 * attempt of the same nonce) being known or mined means it is out; a nonce
 * already used hands the transfer to confirmation, which tells "mined" from
 * "dropped" by following every hash of that nonce.
 */
import { isError } from "ethers";
import type { Logger } from "../logger.ts";
import { failpoint } from "../runtime/failpoints.ts";
import { isTransientRpcError } from "../adapters/chain.ts";
import { inTransaction } from "../adapters/db/sql.ts";
import { describeError } from "../domain/errors.ts";
import { enqueueMany, jobIdFor } from "../jobs/registry.ts";
import type { RedisClient } from "../adapters/redis.ts";
import { SENDER_ACTOR, type MoneyContext, type SenderChain } from "./context.ts";
import { transferJob, type PaymentFacts, type TransferRow } from "./rows.ts";
import { markSent } from "./chain-transitions.ts";
import { phaseClock } from "../metrics.ts";
import { logToJobs } from "../jobs/job-log.ts";

export type BroadcastOutcome = "out" | "refused" | "node-down";

/** A transfer's signed transaction, as persisted before broadcasting. */
export interface SignedItem {
  transferId: bigint;
  nonce: bigint;
  hash: string;
  raw: string;
}

const ACTOR = SENDER_ACTOR;

const BROADCAST_CHUNK = 100;

/** Send one raw transaction; "out" when it (or its nonce's use) is now the node's business. */
export async function broadcastOne(chain: SenderChain, raw: string, hash: string, log: Logger): Promise<BroadcastOutcome> {
  try {
    await chain.reads.sendRaw(raw);
    return "out";
  } catch (e) {
    return classifyRefusal(chain, e, hash, log);
  }
}

/**
 * What a failed broadcast of `hash` means, from the error's ethers code and
 * the node's answer about the transaction (never the message text).
 */
async function classifyRefusal(chain: SenderChain, e: unknown, hash: string, log: Logger): Promise<BroadcastOutcome> {
  try {
    // "already known" has no ethers code on every node: ask instead.
    if (await chain.reads.known(hash)) return "out";
  } catch {
    return "node-down";
  }
  if (isError(e, "NONCE_EXPIRED") || isError(e, "REPLACEMENT_UNDERPRICED")) return "out";
  if (isTransientRpcError(e)) {
    log.warn({ tx_hash: hash, err: describeError(e) }, "sender: node unavailable while broadcasting");
    return "node-down";
  }
  log.warn({ tx_hash: hash, err: describeError(e) }, "sender: node refused the transaction; it stays signed and is re-broadcast later");
  return "refused";
}

/**
 * Send raw transactions (one address, nonce order) as one JSON-RPC batch and
 * classify each like `broadcastOne`: a transaction the node refused inside
 * the batch goes through the same questions as a refused single call. When
 * the batch request itself fails with a transient error, every transaction
 * of it is classified with that error (nothing is known: "node-down");
 * when a node answers a batch with something that is not a batch answer,
 * the transactions are sent one call at a time instead.
 */
export async function broadcastMany(chain: SenderChain, items: Pick<SignedItem, "raw" | "hash">[], log: Logger): Promise<BroadcastOutcome[]> {
  let errors: (Error | null)[];
  try {
    errors = await chain.reads.sendRawBatch(items.map((it) => it.raw));
  } catch (e) {
    if (!isTransientRpcError(e)) {
      log.warn({ count: items.length, err: describeError(e) }, "sender: the node did not answer a batch of transactions as a batch; sending them one at a time");
      const out: BroadcastOutcome[] = [];
      for (const it of items) out.push(await broadcastOne(chain, it.raw, it.hash, log));
      return out;
    }
    errors = items.map(() => e as Error);
  }
  return Promise.all(items.map((it, k) => (errors[k] === null ? ("out" as const) : classifyRefusal(chain, errors[k], it.hash, log))));
}

/**
 * Broadcast `items` (one address, nonce order), mark the ones that went
 * out `sent` with their status-2 notification, and enqueue their
 * confirmation. Returns the ids now out of our hands.
 */
export async function broadcastAndRecord(ctx: MoneyContext, chain: SenderChain, items: SignedItem[], log: Logger): Promise<bigint[]> {
  if (items.length === 0) return [];
  // The members of a batch transaction share one signed transaction: it is sent once and goes out for all of them.
  const members = new Map<string, bigint[]>();
  for (const it of items) members.set(it.hash, [...(members.get(it.hash) ?? []), it.transferId]);
  const ordered = [...new Map(items.map((it) => [it.hash, it])).values()].sort((a, b) => (a.nonce < b.nonce ? -1 : a.nonce > b.nonce ? 1 : 0));
  failpoint("before-broadcast");
  const mark = phaseClock(ctx.metrics, chain.key);
  const out: bigint[] = [];
  // Chunks in nonce order, each one JSON-RPC batch in nonce order (the node
  // handles a batch's calls in order; one round trip per transaction would
  // cap a wallet at a few hundred per second).
  for (let i = 0; i < ordered.length; i += BROADCAST_CHUNK) {
    const chunk = ordered.slice(i, i + BROADCAST_CHUNK);
    const results = await broadcastMany(chain, chunk, log);
    chunk.forEach((it, k) => {
      if (results[k] === "out") out.push(...members.get(it.hash)!);
    });
    // The rest stay signed; their jobs re-broadcast them once the node answers again.
    if (results.includes("node-down")) break;
  }
  failpoint("after-broadcast");
  mark("broadcast");
  const rows = await recordSent(ctx, out);
  mark("record");
  failpoint("after-sent-commit");
  const hashOf = new Map(items.map((it) => [it.transferId, it.hash]));
  await logToJobs(ctx.queues, "send-transfer", out.map((id) => ({ id, line: `broadcast: the node took tx ${hashOf.get(id)}; the confirmation job follows it` })), log);
  mark("job-logs");
  await enqueueConfirm(ctx, chain, rows);
  mark("confirm-jobs");
  return out;
}

/** signed -> sent with the status-2 notifications, in one transaction; returns the rows of `ids`. */
export async function recordSent(ctx: MoneyContext, ids: bigint[]): Promise<TransferRow[]> {
  if (ids.length === 0) return [];
  const { rows, moved } = await inTransaction(ctx.pool, (conn) => markSent(conn, ids, { actor: ACTOR, nowMs: ctx.now() }));
  for (const r of moved) ctx.metrics.transfers.inc({ chain: r.chain, symbol: r.symbol, status: "sent" });
  if (moved.some((r) => r.kind === "withdraw" || r.kind === "pay")) ctx.wakeOutbox();
  return rows;
}

/**
 * A sent or mined transfer's job makes sure its confirmation job exists (the
 * drain that sent it may have died between its `sent` commit and adding the
 * job). Usually the drain added it: one EXISTS on the job's key then, instead
 * of BullMQ's add (its script, a Job built and serialized), which would have
 * found the same job and done nothing. Either way the job exists afterwards.
 */
export async function ensureConfirm(ctx: MoneyContext & { redis: RedisClient }, chain: SenderChain, row: PaymentFacts): Promise<void> {
  const jobId = jobIdFor("confirm-transfer", { transferId: row.id.toString() })!;
  if ((await ctx.redis.exists(ctx.queues.confirm.toKey(jobId))) === 1) return;
  await enqueueConfirm(ctx, chain, [row]);
}

/** Hand transfers to the confirmation worker (idempotent: deterministic job ids). */
export async function enqueueConfirm(ctx: MoneyContext, chain: SenderChain, rows: PaymentFacts[]): Promise<void> {
  if (rows.length === 0) return;
  await enqueueMany(
    ctx.queues,
    "confirm-transfer",
    rows.map(transferJob),
    { delay: chain.config.block_time_ms },
  );
}
