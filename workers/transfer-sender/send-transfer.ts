/**
 * The `send-transfer` job: get one transfer on chain exactly once.
 *
 * The job re-reads its transfer and acts on the state it finds:
 *   awaiting_approval, confirmed, failed, cancelled -> nothing to do
 *   sent | mined  -> replace it if stuck, make sure confirmation follows it
 *   queued        -> under the requesting address's lease, sign a batch
 *   signed        -> under the signing address's lease, re-broadcast the
 *                    stored raw transaction (never a new signature)
 *
 * Leases and batching: per (chain, address) one process at a time holds a
 * Redis lease and "drains" the address: re-broadcasts whatever it has
 * signed but not sent, then signs up to MAX_BATCH queued transfers in one
 * transaction and broadcasts them. Other jobs of the same address retry
 * briefly, then reschedule themselves (freeing their worker slot for other
 * addresses) and, re-reading their row, usually find it already sent by the
 * holder's batch: hundreds of payouts of one wallet cost one lease hold,
 * one transaction and a run of broadcasts, not one lock round each. The
 * lease is an optimisation; the database guards (row locks, guarded
 * updates, the sender_nonce counter) hold even if two holders overlap.
 *
 * Fallback: transfers the wallet cannot pay are retried in the same drain
 * from the collection wallet under ITS lease (lock order is always
 * requesting wallet -> collection wallet; the collection wallet's own drain
 * takes no second lease, so there is no cycle).
 */
import { DelayedError, type Job } from "bullmq";
import type { Logger } from "../../shared/logger.ts";
import { acquire, tryAcquire } from "../../shared/adapters/locks.ts";
import { PermanentError, RetryableError } from "../../shared/domain/errors.ts";
import type { Handler } from "../../shared/jobs/worker.ts";
import { senderLockKey, type SenderChain, type SenderContext } from "./context.ts";
import { loadAttempts, loadTransfer, type TransferRow } from "./transfer-rows.ts";
import { signQueuedBatch, ACTOR, MAX_BATCH, type GasShortSweep } from "./sign-batch.ts";
import { broadcastAndRecord, enqueueConfirm } from "./broadcast.ts";
import { replaceIfStuck } from "./replace-tx.ts";
import { failUnsigned } from "./end-transfer.ts";
import { requestGasTopup } from "./gas-topup.ts";

const LEASE_TTL_MS = 30_000;
/** how long a job keeps re-reading its row after the address's holder is done before retrying later (with BullMQ's backoff) */
const LEASE_WAIT_MS = 25_000;
/**
 * A job that finds its address's lease held tries once more after about
 * ten milliseconds, then reschedules itself (no attempt spent) instead of holding one
 * of the worker's concurrency slots while the holder drains: the holder's
 * batch usually signs, sends and notifies this job's transfer meanwhile, and
 * the freed slots go to other addresses' jobs (a batch of payouts queues
 * hundreds of jobs of one address back to back).
 */
const LEASE_BUSY_POLLS = 1;
const LEASE_BUSY_DELAY_MS = 500;
const COLLECTION_LEASE_WAIT_MS = 10_000;
/** how long one lease hold keeps signing full batches before letting others in */
const DRAIN_BUDGET_MS = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createSendTransferHandler(ctx: SenderContext): Handler<"send-transfer"> {
  return async (data, job, { token, logger }) => {
    const id = BigInt(data.transferId);
    const started = ctx.now();
    let busy = 0;
    for (;;) {
      const t = await loadTransfer(ctx.pool, id);
      if (!t) throw new PermanentError("internal", `transfer ${id} does not exist`);
      const chain = ctx.chains.get(t.chain);
      if (!chain) {
        if (t.state === "queued") {
          await failUnsigned(ctx, t, "unknown_chain", `chain ${t.chain} is not configured`, ACTOR);
          return { state: "failed" };
        }
        if (t.state === "signed" || t.state === "sent" || t.state === "mined") throw new PermanentError("unknown_chain", `chain ${t.chain} of transfer ${id} is not configured`);
        return { state: t.state };
      }
      switch (t.state) {
        case "awaiting_approval":
        case "confirmed":
        case "failed":
        case "cancelled":
          return { state: t.state };
        case "sent":
        case "mined": {
          if (t.state === "sent") {
            const r = await replaceIfStuck(ctx, chain, t, logger);
            if (r !== "not-stuck" && r !== "settled") logger.info({ outcome: r }, "sender: stuck check");
          }
          await enqueueConfirm(ctx, chain, [t]);
          return { state: t.state };
        }
      }
      const sender = t.state === "signed" ? t.from_address! : t.requested_from;
      const lease = await tryAcquire(ctx.redis, senderLockKey(ctx.prefix, chain.key, sender), LEASE_TTL_MS);
      if (!lease) {
        if (++busy > LEASE_BUSY_POLLS) return delay(job, token, LEASE_BUSY_DELAY_MS + Math.random() * (LEASE_BUSY_DELAY_MS / 2));
        await sleep(5 * 2 ** busy + Math.random() * 5);
        continue;
      }
      let waiting: Set<bigint>;
      try {
        waiting = await drain(ctx, chain, sender, logger);
      } finally {
        await lease.release();
      }
      if (waiting.has(id)) return delay(job, token, chain.config.block_time_ms * 2);
      if (ctx.now() - started > LEASE_WAIT_MS) {
        const again = await loadTransfer(ctx.pool, id);
        if (again?.state === "queued" || again?.state === "signed") throw new RetryableError(`transfer ${id} is still ${again.state}; retrying later`);
      }
    }
  };
}

/** Reschedule this job without spending one of its attempts. */
async function delay(job: Job, token: string | undefined, ms: number): Promise<never> {
  await job.moveToDelayed(Date.now() + ms, token);
  throw new DelayedError();
}

/**
 * Everything pending for one address, with its lease held. Returns the ids
 * of transfers that wait on something else (a sweep waiting for gas).
 */
export async function drain(ctx: SenderContext, chain: SenderChain, sender: string, log: Logger): Promise<Set<bigint>> {
  const waiting = new Set<bigint>();

  // 1. signed earlier but never confirmed as broadcast (crash, node down): the same raw transactions again
  const rows = (await ctx.pool.query("SELECT id, nonce FROM transfer WHERE chain = ? AND from_address = ? AND state = 'signed' ORDER BY nonce", [
    chain.key,
    sender,
  ])) as Pick<TransferRow, "id" | "nonce">[];
  if (rows.length > 0) {
    const attempts = await loadAttempts(ctx.pool, rows.map((r) => r.id));
    const latest = new Map(attempts.map((a) => [a.transfer_id, a]));
    const items = rows.flatMap((r) => {
      const a = latest.get(r.id);
      return a ? [{ transferId: r.id, nonce: a.nonce, hash: a.tx_hash, raw: a.raw_tx }] : [];
    });
    log.info({ sender, count: items.length }, "sender: re-broadcasting signed transactions");
    await broadcastAndRecord(ctx, chain, items, log);
  }

  // 2. new transfers requested from this address; while full batches keep
  //    coming, keep the lease (within a time budget) instead of handing it on
  const deferred: bigint[] = [];
  const gasShort: GasShortSweep[] = [];
  const started = ctx.now();
  for (;;) {
    const batch = await signQueuedBatch(ctx, chain, sender, { ids: null, fallback: false, exclude: [...deferred, ...gasShort.map((g) => g.row.id)] }, log);
    if (batch.notified) ctx.wakeOutbox();
    await broadcastAndRecord(ctx, chain, batch.signed, log);
    deferred.push(...batch.deferred);
    gasShort.push(...batch.gasShort);
    if (batch.considered < MAX_BATCH || ctx.now() - started > DRAIN_BUDGET_MS) break;
  }

  // 3. the ones this wallet could not pay, from the collection wallet
  const collection = chain.config.collection_address;
  if (deferred.length > 0 && collection) {
    const lease = await acquire(ctx.redis, senderLockKey(ctx.prefix, chain.key, collection), LEASE_TTL_MS, COLLECTION_LEASE_WAIT_MS);
    if (lease) {
      try {
        const fb = await signQueuedBatch(ctx, chain, collection, { ids: deferred, fallback: true }, log);
        if (fb.notified) ctx.wakeOutbox();
        await broadcastAndRecord(ctx, chain, fb.signed, log);
      } finally {
        await lease.release();
      }
    }
  }

  // 4. sweeps that need gas first
  for (const g of gasShort) {
    if ((await requestGasTopup(ctx, chain, g, log)) === "waiting") waiting.add(g.row.id);
  }
  return waiting;
}
