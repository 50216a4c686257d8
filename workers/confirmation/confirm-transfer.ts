/**
 * `confirm-transfer`: one job per sent transfer that reschedules itself
 * (delayed, not counted as an attempt) until the transfer is final:
 * confirmed (status 1), reverted, dropped or reorged (status 0).
 *
 * Every attempt of the transfer shares its nonce, so at most one can be
 * mined; the job asks for the receipt of each and reports whichever is. It
 * never signs: a transaction the node forgot is re-broadcast from its
 * stored raw bytes, and one stuck longer than `stuck_after_s` is handed to
 * the transfer-sender (the only role holding keys) as a `send-transfer` job,
 * which replaces it with a higher fee.
 *
 * Idempotent: the payload is the row id; the row is re-read each run and
 * moved only by guarded updates (`WHERE id=? AND state='mined' AND
 * block_hash=?`). The final transaction changes the state, moves the book
 * balances and writes the final notification together, and the
 * notification's unique dedupe key backs that up: nothing is ever
 * finalised, debited or reported twice.
 *
 * Decisions come from shared/domain/transfer-confirm.ts; this file gathers
 * the facts and carries the decision out.
 */

import type { Config } from "../../shared/config/load-config.ts";
import type { Db } from "../../shared/adapters/db/client.ts";
import { lazyChild, type Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { ChainClient } from "../../shared/adapters/chain.ts";
import { reschedule, type Handler } from "../../shared/jobs/worker.ts";
import { enqueue, type Queues } from "../../shared/jobs/registry.ts";
import { inTransaction } from "../../shared/adapters/db/sql.ts";
import { PermanentError, RetryableError } from "../../shared/domain/errors.ts";
import { decideTransferConfirm, type TransferConfirmDecision, type TransferConfirmFacts } from "../../shared/domain/transfer-confirm.ts";
import { senderChains, type SenderChain } from "../../shared/transfers/context.ts";
import { endedError, loadAttempts, loadTransfer, transferJob, type AttemptRow, type TransferRow } from "../../shared/transfers/rows.ts";
import { broadcastOne } from "../../shared/transfers/broadcast.ts";
import { attemptAgeMs } from "../../shared/transfers/replace-tx.ts";
import { batchItemOf, itemStatus, type BatchItem } from "../../shared/transfers/batch-outcome.ts";
import type { Receipt } from "../../shared/transfers/chain-reads.ts";
import { drop, finalize as writeFinal, markMined, setConfirmations as writeConfirmations, unmine as writeUnmine } from "../../shared/transfers/chain-transitions.ts";
import { logToJob } from "../../shared/jobs/job-log.ts";

export interface ConfirmTransferDeps {
  config: Config;
  db: Pick<Db, "pool">;
  queues: Queues;
  metrics: Metrics;
  /** node clients (one per configured chain) */
  clients: ChainClient[];
  /** tell the outbox publisher new notifications are waiting */
  wakeOutbox: () => unknown;
  now?: () => number;
}

const ACTOR = "confirmation";

interface Progress {
  confirmations?: number;
  required?: number;
  state?: string;
  /** the head at which an anchored re-read first found the nonce taken deep and no receipt (the next run's agreeing ends it) */
  dropCheckedAt?: number;
}

export function createConfirmTransferHandler(deps: ConfirmTransferDeps): Handler<"confirm-transfer"> {
  const now = deps.now ?? Date.now;
  const pool = deps.db.pool;
  const chains = senderChains(Object.fromEntries(deps.clients.map((c) => [c.key, c])));
  const wake = () => void Promise.resolve(deps.wakeOutbox()).catch(() => undefined);

  return async (data, job, { token, logger }) => {
    const id = BigInt(data.transferId);
    const t = await loadTransfer(pool, id);
    if (!t) throw new PermanentError("internal", `transfer ${id} does not exist`);
    if (t.state === "failed") throw endedError(t);
    if (t.state !== "sent" && t.state !== "mined") return { state: t.state };
    const chain = chains.get(t.chain);
    if (!chain) throw new PermanentError("unknown_chain", `chain ${t.chain} is not configured`);
    if (t.nonce === null || t.from_address === null) throw new PermanentError("internal", `transfer ${id} is ${t.state} without a nonce`);
    const attempts = await loadAttempts(pool, [id]);
    if (attempts.length === 0) throw new PermanentError("internal", `transfer ${id} is ${t.state} without a signed transaction`);
    const log = lazyChild(logger, { transfer: t.id.toString(), nonce: t.nonce.toString() });
    // the payment's steps on the job's Logs tab (best effort: the step is committed already)
    const note = (line: string) => logToJob(job, line);
    const cfg = chain.config;

    // The nonce is read before the receipts: a transaction mined in between shows up as a receipt.
    const head = await chain.reads.blockNumber();
    const safe = head - BigInt(cfg.confirm_height);
    const [nonceNow, nonceDeep] = await Promise.all([
      chain.reads.nonce(t.from_address, head),
      safe >= 0n ? chain.reads.nonce(t.from_address, safe) : Promise.resolve(0n),
    ]);
    const receipts = await Promise.all(attempts.map((a) => chain.reads.receipt(a.tx_hash)));
    const minedAt = receipts.findIndex((r) => r !== null);
    const receipt = minedAt >= 0 ? receipts[minedAt]! : null;
    const canonicalHash = receipt ? await chain.reads.blockHash(receipt.blockNumber) : null;
    const known = receipt ? true : (await Promise.all(attempts.map((a) => chain.reads.known(a.tx_hash)))).some(Boolean);
    const latest = attempts[attempts.length - 1]!;
    // A member of a batch transaction: its own item's result, not the whole transaction's status.
    const item = minedAt >= 0 ? batchItemOf(attempts[minedAt]!) : null;
    const progress = (typeof job.progress === "object" && job.progress !== null ? job.progress : {}) as Progress;
    const facts: TransferConfirmFacts = {
      head: Number(head),
      confirmHeight: cfg.confirm_height,
      blockTimeMs: cfg.block_time_ms,
      stuckAfterMs: cfg.stuck_after_s * 1000,
      state: t.state,
      storedBlockHash: t.block_hash,
      mined: receipt ? { blockNumber: Number(receipt.blockNumber), blockHash: receipt.blockHash, status: itemStatus(receipt, attempts[minedAt]!, item) } : null,
      canonicalHash: canonicalHash?.toLowerCase() ?? null,
      nonceUsed: nonceNow > t.nonce,
      nextNonce: nonceNow === t.nonce,
      nonceUsedDeep: safe >= 0n && nonceDeep > t.nonce,
      known,
      latestAgeMs: attemptAgeMs(latest, now()),
      wasMinedBefore: t.unmined_at !== null,
      dropCheckedAt: progress.dropCheckedAt ?? null,
    };
    let decision = decideTransferConfirm(facts);
    if (decision.kind === "verify-drop") {
      const anchored = await chain.reads.anchoredReceipts(t.from_address, safe, attempts.map((a) => a.tx_hash));
      const dropConfirmed = anchored !== null && anchored.nonce > t.nonce && anchored.receipts.every((r) => r === null);
      if (!dropConfirmed) log.warn({ anchored: anchored !== null }, "confirm-transfer: the node's answers disagree about a nonce taken deep (a lagging backend?); reading again");
      decision = decideTransferConfirm({ ...facts, dropConfirmed });
    }
    const required = cfg.confirm_height;

    switch (decision.kind) {
      case "wait-depth":
        if (decision.record) {
          await recordMined(t, receipt!, attempts[minedAt]!, decision.confirmations, log, note);
        } else await setConfirmations(t, decision.confirmations);
        if (decision.confirmations !== progress.confirmations) await note(`confirmations ${decision.confirmations}/${required}`);
        return reschedule(job, token, decision.delayMs, { confirmations: decision.confirmations, required, state: "mined" });
      case "finalize":
        if (decision.record) {
          await recordMined(t, receipt!, attempts[minedAt]!, decision.confirmations, log, note);
        }
        await finalize(chain, t, receipt!, decision, item, log);
        await job.updateProgress({ confirmations: decision.confirmations, required, state: decision.reverted ? "reverted" : "confirmed" });
        await note(`final: ${decision.reverted ? "status 0 (reverted)" : "status 1"} after ${decision.confirmations}/${required} confirmations, tx ${receipt!.hash} in block ${receipt!.blockNumber}`);
        if (decision.reverted) throw endedError((await loadTransfer(pool, id)) ?? { ...t, error: "reverted" });
        return { state: "confirmed", tx_hash: receipt!.hash };
      case "recheck":
        return reschedule(job, token, decision.delayMs, { confirmations: 0, required, state: t.state });
      case "unmined":
        await unmine(t, log);
        await note(`block ${t.block_number} left the canonical chain: following the transaction again`);
        await rebroadcast(chain, attempts, log);
        return reschedule(job, token, decision.delayMs, { confirmations: 0, required, state: "sent" });
      case "drop-checked":
        return reschedule(job, token, decision.delayMs, { confirmations: 0, required, state: t.state, dropCheckedAt: progress.dropCheckedAt ?? Number(head) });
      case "give-up":
        await giveUp(t, decision.code, log);
        await note(`final: status 0 (${decision.code})`);
        throw endedError((await loadTransfer(pool, id)) ?? { ...t, error: decision.code });
      case "verify-drop":
        throw new RetryableError("confirmation decision incomplete");
      case "pending":
        if (decision.rebroadcast) await rebroadcast(chain, attempts, log);
        if (decision.bump) {
          await note(`not mined after ${cfg.stuck_after_s} s: asking the sender to replace it with a higher fee (same nonce ${t.nonce})`);
          // one replacement request per attempt generation; the sender re-checks that it is still stuck
          const payment = transferJob(t);
          await enqueue(deps.queues, "send-transfer", { ...payment, label: `replace ${payment.label}`.slice(0, 200) }, { jobId: `bump-${t.id}-${attempts.length}` });
        }
        return reschedule(job, token, decision.delayMs, { confirmations: 0, required, state: "sent" });
    }
  };

  async function setConfirmations(t: TransferRow, confirmations: number): Promise<void> {
    await writeConfirmations(pool, t, confirmations);
  }

  async function recordMined(t: TransferRow, r: Receipt, winner: AttemptRow, confirmations: number, log: Logger, note: (line: string) => Promise<void>): Promise<void> {
    await inTransaction(pool, (conn) => markMined(conn, t, { receipt: r, attemptId: winner.id, confirmations }, { actor: ACTOR, nowMs: now() }));
    t.state = "mined";
    t.tx_hash = r.hash;
    t.block_number = r.blockNumber;
    t.block_hash = r.blockHash;
    t.confirmations = confirmations;
    log.info({ tx_hash: r.hash, block: r.blockNumber.toString() }, "confirm-transfer: mined");
    await note(`mined in block ${r.blockNumber} (tx ${r.hash})`);
  }

  async function unmine(t: TransferRow, log: Logger): Promise<void> {
    await inTransaction(pool, (conn) => writeUnmine(conn, t, { actor: ACTOR, nowMs: now() }));
    log.warn({ block_hash: t.block_hash }, "confirm-transfer: the transfer's block left the canonical chain; following its transactions again");
  }

  async function finalize(chain: SenderChain, t: TransferRow, r: Receipt, d: Extract<TransferConfirmDecision, { kind: "finalize" }>, item: BatchItem | null, log: Logger): Promise<void> {
    const cfg = chain.config;
    const final = { receipt: r, confirmations: d.confirmations, reverted: d.reverted, nativeSymbol: cfg.native_symbol, nativeDecimals: cfg.native_decimals, batch: item };
    const done = await inTransaction(pool, (conn) => writeFinal(conn, t, final, { actor: ACTOR, nowMs: now() }));
    if (!done) return;
    deps.metrics.transfers.inc({ chain: t.chain, symbol: t.symbol, status: d.reverted ? "reverted" : "confirmed" });
    wake();
    log.info({ tx_hash: r.hash, reverted: d.reverted }, "confirm-transfer: final");
  }

  async function giveUp(t: TransferRow, code: "dropped" | "reorged", log: Logger): Promise<void> {
    const done = await inTransaction(pool, (conn) => drop(conn, t, code, { actor: ACTOR, nowMs: now() }));
    if (!done) return;
    deps.metrics.transfers.inc({ chain: t.chain, symbol: t.symbol, status: code });
    wake();
    log.warn({ code }, "confirm-transfer: the transfer will never be mined");
  }

  /** Re-broadcast the stored attempts, highest fee first, until the node takes one. */
  async function rebroadcast(chain: SenderChain, attempts: AttemptRow[], log: Logger): Promise<void> {
    for (const a of [...attempts].reverse()) {
      const r = await broadcastOne(chain, a.raw_tx, a.tx_hash, log);
      if (r === "out") {
        log.info({ tx_hash: a.tx_hash }, "confirm-transfer: the node did not know the transaction; re-broadcast it");
        return;
      }
      if (r === "node-down") return;
    }
  }
}
