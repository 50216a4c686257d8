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
import type { Logger } from "../../shared/logger.ts";
import { failpoint } from "../../shared/runtime/failpoints.ts";
import { isTransientRpcError } from "../../shared/adapters/chain.ts";
import { inTransaction } from "../../shared/adapters/db/sql.ts";
import { insertAudit, insertNotifications } from "../../shared/adapters/db/outbox.ts";
import { describeError } from "../../shared/domain/errors.ts";
import { enqueueMany } from "../../shared/jobs/registry.ts";
import type { MoneyContext, SenderChain } from "./context.ts";
import { TRANSFER_COLUMNS, transferLabel, transferNotes, type TransferRow } from "./transfer-rows.ts";
import { ACTOR, type SignedItem } from "./sign-batch.ts";

export type BroadcastOutcome = "out" | "refused" | "node-down";

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
  const ordered = [...items].sort((a, b) => (a.nonce < b.nonce ? -1 : a.nonce > b.nonce ? 1 : 0));
  failpoint("before-broadcast");
  const out: bigint[] = [];
  // Chunks in nonce order, each one JSON-RPC batch in nonce order (the node
  // handles a batch's calls in order; one round trip per transaction would
  // cap a wallet at a few hundred per second).
  for (let i = 0; i < ordered.length; i += BROADCAST_CHUNK) {
    const chunk = ordered.slice(i, i + BROADCAST_CHUNK);
    const results = await broadcastMany(chain, chunk, log);
    chunk.forEach((it, k) => {
      if (results[k] === "out") out.push(it.transferId);
    });
    // The rest stay signed; their jobs re-broadcast them once the node answers again.
    if (results.includes("node-down")) break;
  }
  failpoint("after-broadcast");
  const rows = await markSent(ctx, out);
  failpoint("after-sent-commit");
  await enqueueConfirm(ctx, chain, rows);
  return out;
}

/** signed -> sent, with the status-2 notification, in one transaction; returns the rows of `ids`. */
export async function markSent(ctx: MoneyContext, ids: bigint[]): Promise<TransferRow[]> {
  if (ids.length === 0) return [];
  const list = ids.map(() => "?").join(",");
  let moved: TransferRow[] = [];
  const all = await inTransaction(ctx.pool, async (conn) => {
    const rows = (await conn.query(`SELECT ${TRANSFER_COLUMNS} FROM transfer WHERE id IN (${list}) ORDER BY id FOR UPDATE`, ids)) as TransferRow[];
    moved = rows.filter((r) => r.state === "signed");
    if (moved.length === 0) return rows;
    const mlist = moved.map(() => "?").join(",");
    const mids = moved.map((r) => r.id);
    await conn.query(`UPDATE transfer SET state = 'sent', sent_at = NOW(3), updated_at = NOW(3) WHERE id IN (${mlist}) AND state = 'signed'`, mids);
    await conn.query(`UPDATE tx_attempt SET state = 'broadcast', broadcast_at = NOW(3) WHERE transfer_id IN (${mlist}) AND state = 'signed'`, mids);
    const nowMs = ctx.now();
    await insertNotifications(conn, moved.flatMap((r) => transferNotes(r, 2, nowMs)));
    await insertAudit(
      conn,
      moved.map((r) => ({
        actor: ACTOR,
        event: "transfer.sent",
        queueId: r.queue_id,
        orderId: r.order_id || null,
        address: r.from_address,
        subjectType: "transfer",
        subjectId: r.id,
        data: { tx_hash: r.tx_hash, nonce: r.nonce },
      })),
    );
    return rows;
  });
  for (const r of moved) ctx.metrics.transfers.inc({ chain: r.chain, symbol: r.symbol, status: "sent" });
  if (moved.some((r) => r.kind === "withdraw" || r.kind === "pay")) ctx.wakeOutbox();
  return all;
}

/** Hand transfers to the confirmation worker (idempotent: deterministic job ids). */
export async function enqueueConfirm(ctx: MoneyContext, chain: SenderChain, rows: Pick<TransferRow, "id" | "kind" | "queue_id" | "order_id">[]): Promise<void> {
  if (rows.length === 0) return;
  await enqueueMany(
    ctx.queues,
    "confirm-transfer",
    rows.map((r) => ({ transferId: r.id.toString(), label: transferLabel(r) })),
    { delay: chain.config.block_time_ms },
  );
}
