/**
 * The `send-transfer` job: get one transfer on chain exactly once.
 *
 * The job re-reads its transfer and acts on the state it finds:
 *   awaiting_approval, confirmed, failed, cancelled -> nothing to do
 *   held          -> the job fails with the reason (an operator fixes the
 *                    cause and retries it, or rejects it; SPEC §7); run
 *                    again by that retry, it releases the transfer
 *   sent | mined  -> replace it if stuck, make sure confirmation follows it
 *   queued        -> under the requesting address's lease, sign a batch
 *   signed        -> under the signing address's lease, re-broadcast the
 *                    stored raw transaction (never a new signature)
 *
 * Leases and batching: per (chain, address) one process at a time holds a
 * Redis lease and "drains" the address: re-broadcasts whatever it has
 * signed but not sent, then signs up to MAX_BATCH queued transfers in one
 * transaction and broadcasts them. The bridge puts a wallet's other jobs
 * off (shared/domain/send-pacing.ts) and the drain starts each once it has
 * sent or ended its transfer (startJobs); one that runs earlier retries
 * briefly, then reschedules itself (freeing its worker slot for other
 * addresses) and, re-reading its row, usually finds it already sent by the
 * holder's batch: hundreds of payouts of one wallet cost one lease hold,
 * one transaction and a run of broadcasts, not one lock round each. The
 * lease is an optimisation; the database guards (row locks, guarded
 * updates, the sender_nonce counter) hold even if two holders overlap.
 *
 * EIP-7702 (chains whose batching resolves "7702" with the contracts
 * recorded): token payouts of a wallet go out in batch transactions
 * (sign-batch.ts), and a deposit wallet's drain hands every queued sweep of
 * the chain to the collection wallet's DepositSweeper transaction
 * (sweep-batch.ts), under the collection wallet's lease.
 *
 * Fallback: transfers the wallet cannot pay are retried in the same drain
 * from the collection wallet under ITS lease (lock order is always
 * requesting wallet -> collection wallet; the collection wallet's own drain
 * takes no second lease, so there is no cycle).
 */
import type { Job } from "bullmq";
import type { Logger } from "../../shared/logger.ts";
import { acquire, tryAcquire } from "../../shared/adapters/locks.ts";
import { PermanentError, RetryableError, type ErrorCode } from "../../shared/domain/errors.ts";
import { inTransaction } from "../../shared/adapters/db/sql.ts";
import type { JobData } from "../../shared/jobs/registry.ts";
import { reschedule, type Handler } from "../../shared/jobs/worker.ts";
import { senderLockKey, type SenderChain, type SenderContext } from "../../shared/transfers/context.ts";
import { coalescedTransferLoader, endedError, queuedFrom, signedFrom, transferJob, type TransferRow } from "../../shared/transfers/rows.ts";
import { release } from "../../shared/transfers/transitions.ts";
import { endUnsigned } from "./end-transfer.ts";
import { broadcastAndRecord, ensureConfirm, type SignedItem } from "../../shared/transfers/broadcast.ts";
import { replaceIfStuck } from "../../shared/transfers/replace-tx.ts";
import { signQueuedBatch, ACTOR, MAX_BATCH, type GasShortSweep } from "./sign-batch.ts";
import { requestGasTopup } from "./gas-topup.ts";
import { queuedSweepSymbols, signSweeperBatch } from "./sweep-batch.ts";
import { logToJob } from "../../shared/jobs/job-log.ts";
import { jobIdFor } from "../../shared/jobs/registry.ts";

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
/** when a job that met its wallet's lease held runs again: jittered, so a crowd of them does not come back at once */
const busyDelayMs = (random = Math.random) => LEASE_BUSY_DELAY_MS + random() * (LEASE_BUSY_DELAY_MS / 2);
/** the longest an early look puts its job off */
const EARLY_LOOK_MAX_DELAY_MS = 10_000;

/**
 * When a job that found its wallet's lease held looks again, or null to
 * read its row now. Nothing waits on these jobs meanwhile: the holder
 * signs their transfers, notifies them and enqueues their confirmations;
 * each look costs BullMQ round trips the drain's own work waits behind on
 * the same cores. The holder publishes its progress after each batch
 * (`lastId:msPerId`, see drain): a drain takes queued transfers in id
 * order, so a transfer at or below `lastId` has been handled (read the row
 * now) and one above it is reached in about (id - lastId) x msPerId (look
 * then, jittered). Without progress (the first batch is still being
 * signed), the delay doubles with each run of the job: 0.5, 1, 2, 4 s.
 * Only the timing of a look depends on this: every decision is taken after
 * reading the row.
 */
export function earlyLookDelay(transferId: bigint, progress: string | null, runs: number, random = Math.random): number | null {
  const m = progress ? /^(\d+):(\d+(?:\.\d+)?)$/.exec(progress) : null;
  if (m) {
    const ahead = transferId - BigInt(m[1]!);
    if (ahead <= 0n) return null;
    const eta = Math.min(EARLY_LOOK_MAX_DELAY_MS, Number(ahead) * Number(m[2]!));
    return Math.max(100, eta) * (1 + random() / 5) + 50 * random();
  }
  return busyDelayMs(random) * 2 ** Math.min(3, Math.max(0, runs - 1));
}

/** where a wallet's drain publishes its progress for the early looks of the wallet's jobs */
const progressKey = (leaseKey: string) => `${leaseKey}:progress`;
const COLLECTION_LEASE_WAIT_MS = 10_000;
/** how long after its creation a job may put off reading its row while its wallet is being drained (see the handler) */
const EARLY_LOOK_MS = 60_000;
/** how long one lease hold keeps signing full batches before letting others in */
const DRAIN_BUDGET_MS = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createSendTransferHandler(ctx: SenderContext): Handler<"send-transfer"> {
  // the jobs of a drained wallet come back in crowds: their row reads share queries
  const load = coalescedTransferLoader(ctx.pool);
  return async (data, job, { token, logger }) => {
    const id = BigInt(data.transferId);
    const started = ctx.now();
    // A look before the row, in a job's first minute: while the requesting wallet's lease is held, its
    // holder is draining that wallet's queued transfers (this one among them, or soon) and enqueues the
    // confirmation of each it sends. Come back later without reading MySQL: a drain of a thousand
    // payouts otherwise meets a thousand jobs each reading its row only to reschedule itself (the send
    // bench). Nothing is decided here: whatever the job does next, it does after reading its row. Past
    // the first minute every run reads it, so a stuck transaction's replacement (stuck_after_s, minutes)
    // never waits on a wallet that is always busy.
    const p = data.payment;
    if (p?.from && p.chain && ctx.now() - job.timestamp < EARLY_LOOK_MS) {
      const leaseKey = senderLockKey(ctx.prefix, p.chain, p.from);
      const [held, progress] = await ctx.redis.mget(leaseKey, progressKey(leaseKey));
      const delay = held === null ? null : earlyLookDelay(id, progress ?? null, job.attemptsStarted ?? 1);
      if (delay !== null) return reschedule(job, token, delay);
    }
    let busy = 0;
    for (;;) {
      const t = await load(id);
      if (!t) throw new PermanentError("internal", `transfer ${id} does not exist`);
      const chain = ctx.chains.get(t.chain);
      if (!chain) {
        if (t.state === "queued") {
          await endUnsigned(ctx, t, "unknown_chain", `chain ${t.chain} is not configured`, ACTOR);
          continue;
        }
        if (t.state === "failed") throw endedError(t);
        if (t.state === "signed" || t.state === "sent" || t.state === "mined") throw new PermanentError("unknown_chain", `chain ${t.chain} of transfer ${id} is not configured`);
        return { state: t.state };
      }
      switch (t.state) {
        case "awaiting_approval":
        case "confirmed":
          return { state: t.state };
        case "cancelled":
          // cancelled before it was signed: this may be the job its wallet's followers wait behind (send-pacing)
          if (t.nonce === null) await handOn(ctx, chain.key, t.requested_from, logger);
          return { state: t.state };
        case "failed":
          throw endedError(t);
        case "held": {
          // This job reported this very hold before (its data says so): it is being
          // retried by an operator (Bull Board), so the transfer goes back to work.
          if (data.heldAt !== undefined && data.heldAt === String(t.held_at?.getTime())) {
            await inTransaction(ctx.pool, (conn) => release(conn, t, { actor: "operator:bull-board", nowMs: ctx.now() }));
            await logToJob(job, `released by an operator's retry: sending it through the exactly-once path`);
            continue;
          }
          return reportHold(job, data, t);
        }
        case "sent":
        case "mined": {
          if (t.state === "sent") {
            const r = await replaceIfStuck(ctx, chain, t, logger);
            if (r !== "not-stuck" && r !== "settled") logger.info({ outcome: r }, "sender: stuck check");
          }
          await ensureConfirm(ctx, chain, t);
          return { state: t.state };
        }
      }
      const sender = t.state === "signed" ? t.from_address! : t.requested_from;
      const lease = await tryAcquire(ctx.redis, senderLockKey(ctx.prefix, chain.key, sender), LEASE_TTL_MS);
      if (!lease) {
        if (++busy > LEASE_BUSY_POLLS) return reschedule(job, token, busyDelayMs());
        await sleep(5 * 2 ** busy + Math.random() * 5);
        continue;
      }
      let drained: Drained;
      try {
        drained = await drain(ctx, chain, sender, logger);
      } finally {
        await lease.release();
      }
      // The drain stopped at its time budget with transfers of the wallet still queued: the job of the
      // next one goes now (it is usually a follower put off for FOLLOWER_DELAY_MS) and drains the rest.
      if (drained.more) await handOn(ctx, chain.key, sender, logger);
      if (drained.waiting.has(id)) return reschedule(job, token, chain.config.block_time_ms * 2);
      const again = await load(id);
      // Still signed after a drain re-broadcast it: the node refused it (or is down). Not
      // again at once: the job's backoff spaces the next tries, and after its attempts it
      // waits in the failed list for an operator (the unbroadcast metric alerts).
      if (again?.state === "signed") throw new RetryableError(`transfer ${id} is still signed: the node has not taken its transaction; broadcasting it again later`);
      if (again?.state === "queued" && ctx.now() - started > LEASE_WAIT_MS) throw new RetryableError(`transfer ${id} is still queued; retrying later`);
    }
  };
}

/**
 * A held transfer's job fails with the reason (Bull Board's failed list,
 * SPEC §7), after recording in its data which hold it reported and the
 * payment it is about (never a secret): a retry of this job from the board
 * then sends it back to work.
 */
async function reportHold(job: Job, data: JobData<"send-transfer">, t: TransferRow): Promise<never> {
  await job.updateData({ ...data, heldAt: String(t.held_at?.getTime()), payment: transferJob(t).payment });
  await logToJob(job, `held (${t.error}): ${t.error_detail ?? ""}`);
  throw new PermanentError((t.error as ErrorCode | null) ?? "internal", `held: ${t.error_detail ?? t.error}; retry once the cause is fixed, or reject it (payment retry / payment reject)`);
}

export interface Drained {
  /** transfers that wait on something else (a sweep waiting for gas, a payout waiting for the batch that installs its wallet's delegation) */
  waiting: Set<bigint>;
  /** the drain stopped at its time budget after a full batch: more of the wallet may be queued */
  more: boolean;
}

/**
 * Start the send jobs of transfers a drain has decided, now: the bridge puts
 * a wallet's followers off (shared/domain/send-pacing.ts) so that they run
 * once, after their transfer was handled, and the drain tells them when that
 * is. A job that is not delayed (already run, waiting, active, or gone) is
 * left as it is. Best effort: only when a job runs depends on this, and a job
 * not started here runs at the end of its delay anyway.
 */
async function startJobs(ctx: SenderContext, ids: bigint[], log: Logger): Promise<void> {
  if (ids.length === 0) return;
  const backend = ctx.queues.transfer.backend;
  const results = await Promise.allSettled(ids.map((id) => backend.promote(jobIdFor("send-transfer", { transferId: id.toString() })!)));
  // mostly "not delayed" (the job's delay ran out first, or it already ran); anything else only costs its job that delay
  const notStarted = results.filter((r) => r.status === "rejected").length;
  if (notStarted > 0) log.debug({ jobs: ids.length, not_started: notStarted }, "sender: some send jobs were not started (not delayed, or Redis did not answer)");
}

/**
 * Start the job of the wallet's next queued transfer, when the job that ran
 * will not drain the rest: its drain stopped at its time budget, or its own
 * transfer was cancelled before it was sent. The followers of the wallet are
 * put off (shared/domain/send-pacing.ts) and would otherwise wait out their
 * delay.
 */
async function handOn(ctx: SenderContext, chain: string, wallet: string, log: Logger): Promise<void> {
  await startJobs(ctx, (await queuedFrom(ctx.pool, chain, wallet, 1)).map((r) => r.id), log);
}

/** Everything pending for one address, with its lease held. */
export async function drain(ctx: SenderContext, chain: SenderChain, sender: string, log: Logger): Promise<Drained> {
  const waiting = new Set<bigint>();
  let more = false;

  // 1. signed earlier but never confirmed as broadcast (crash, node down): the same raw transactions again
  const items = await signedFrom(ctx.pool, chain.key, sender);
  if (items.length > 0) {
    log.info({ sender, count: items.length }, "sender: re-broadcasting signed transactions");
    await broadcastAndRecord(ctx, chain, items, log);
  }

  // 1b. sweeps of this deposit wallet through the DepositSweeper (EIP-7702): the collection wallet
  //     carries them, with every other queued sweep of the chain, in one transaction of its own (under
  //     ITS lease: lock order deposit wallet -> collection wallet, as for the fallback below); what it
  //     leaves queued is swept the old way in step 2
  const collectionWallet = chain.config.collection_address;
  if (collectionWallet && sender !== collectionWallet && ctx.depositSweeper) {
    const symbols = await queuedSweepSymbols(ctx, chain.key, sender);
    const sweeper = symbols.length > 0 ? await ctx.depositSweeper(chain.key) : null;
    if (sweeper) {
      const lease = await acquire(ctx.redis, senderLockKey(ctx.prefix, chain.key, collectionWallet), LEASE_TTL_MS, COLLECTION_LEASE_WAIT_MS);
      if (lease) {
        try {
          for (const symbol of symbols) await broadcastAndRecord(ctx, chain, await signSweeperBatch(ctx, chain, collectionWallet, sweeper, symbol, log), log);
        } finally {
          await lease.release();
        }
      }
    }
  }

  // 2. new transfers requested from this address; while full batches keep
  //    coming, keep the lease (within a time budget) instead of handing it on.
  //    The next batch is read, planned, signed and committed while the one
  //    before it is broadcast and recorded (the node and MySQL answer one
  //    while this process works on the other). Every promise holds as before:
  //    a batch is committed `signed` before its broadcast starts; broadcasts
  //    go out in nonce order (a batch's starts after the one before it ended);
  //    at most one batch is behind the one being signed; what reads the funds
  //    and nonces for the next batch counts a signed one as in flight exactly
  //    as a sent one. A batch whose broadcast has not ended when the drain
  //    stops is waited for, so the lease is never let go with one under way.
  const deferred: bigint[] = [];
  const gasShort: GasShortSweep[] = [];
  const started = ctx.now();
  const progress = drainProgress(ctx, senderLockKey(ctx.prefix, chain.key, sender), started);
  let behind: Promise<void> | null = null;
  let awaited: bigint | null = null;
  const sendBehind = (signed: SignedItem[], handled: bigint[]) => {
    const p = (async () => {
      await broadcastAndRecord(ctx, chain, signed, log);
      await progress([...signed.map((x) => x.transferId), ...handled]);
      // their rows are final for this drain (sent, or ended): their jobs need only report them
      await startJobs(ctx, handled, log);
    })();
    // seen by the await that follows it in the loop or after it; meanwhile not an unhandled rejection
    p.catch(() => undefined);
    return p;
  };
  try {
    for (;;) {
      const batch = await signQueuedBatch(ctx, chain, sender, { ids: null, fallback: false, exclude: [...deferred, ...gasShort.map((g) => g.row.id)] }, log);
      if (batch.notified) ctx.wakeOutbox();
      if (behind) await behind;
      behind = sendBehind(batch.signed, batch.handled);
      deferred.push(...batch.deferred);
      gasShort.push(...batch.gasShort);
      // Waiting for a transaction of the wallet to be mined (the one installing its delegation, or the last
      // one a node that limits delegated wallets takes): nothing more can be signed from it until then. It
      // went out moments ago (this drain, or the one before), so watch for it here, lease held, for a couple
      // of blocks: handing the lease on instead parks every payout of the wallet until some job of it comes
      // back (measured: about half a second of a 2,000-payout drain on a 250 ms chain). Not mined by then (a
      // slow node, fees too low), the jobs come back later as before.
      // Once per awaited nonce: a node whose head lags its `latest` (load-balanced) could otherwise have the
      // drain re-plan the same batch over and over until its budget ends.
      if (batch.waitFor && batch.waiting.length > 0 && batch.waitFor.nonce !== awaited && ctx.now() - started < DRAIN_BUDGET_MS) {
        awaited = batch.waitFor.nonce;
        await behind;
        if (await nonceReached(chain, sender, batch.waitFor.nonce)) continue;
      }
      for (const id of batch.waiting) waiting.add(id);
      if (batch.waiting.length > 0 || batch.considered < MAX_BATCH) break;
      if (ctx.now() - started > DRAIN_BUDGET_MS) {
        more = true;
        break;
      }
    }
    await behind;
  } finally {
    // a batch signing failed with one still being broadcast: let that end first (its own failure, if any,
    // leaves its transfers signed, re-broadcast by the next drain)
    await behind?.catch(() => undefined);
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
        await startJobs(ctx, fb.handled, log);
      } finally {
        await lease.release();
      }
    }
  }

  // 4. sweeps that need gas first
  for (const g of gasShort) {
    if ((await requestGasTopup(ctx, chain, g, log)) === "waiting") waiting.add(g.row.id);
  }
  return { waiting, more };
}

/**
 * Whether `wallet`'s account nonce at the node's head reaches `nonce` (the
 * transaction below it is mined) within about two block times (never
 * longer than one drain's budget), looking four times a block. A node error
 * is a "no": the waiting jobs come back later.
 */
async function nonceReached(chain: SenderChain, wallet: string, nonce: bigint): Promise<boolean> {
  const blockMs = chain.config.block_time_ms;
  const until = Date.now() + Math.min(2 * blockMs, DRAIN_BUDGET_MS);
  for (;;) {
    try {
      if ((await chain.reads.nonce(wallet, "latest")) >= nonce) return true;
    } catch {
      return false;
    }
    if (Date.now() >= until) return false;
    await sleep(Math.max(25, blockMs / 4));
  }
}

/**
 * After each batch of a drain: publish the highest transfer id handled so
 * far and the drain's pace in milliseconds per id, for the early looks of
 * the wallet's jobs (earlyLookDelay). Ids of other wallets interleave with
 * this wallet's; the pace is measured over ids, so it counts them too.
 * Best effort: without it the jobs look again on their own schedule.
 */
function drainProgress(ctx: SenderContext, leaseKey: string, started: number) {
  let first: bigint | null = null;
  let last: bigint | null = null;
  return async (ids: bigint[]) => {
    for (const id of ids) {
      if (first === null || id < first) first = id;
      if (last === null || id > last) last = id;
    }
    if (first === null || last === null) return;
    const msPerId = (ctx.now() - started) / Number(last - first + 1n);
    await ctx.redis.set(progressKey(leaseKey), `${last}:${msPerId.toFixed(3)}`, "PX", LEASE_TTL_MS).catch(() => undefined);
  };
}
