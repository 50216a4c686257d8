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
import { DelayedError, type Job } from "bullmq";
import type { Pool } from "mariadb";
import type { Config } from "../../shared/config/load-config.ts";
import type { Db } from "../../shared/adapters/db/client.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { ChainClient } from "../../shared/adapters/chain.ts";
import type { Handler } from "../../shared/jobs/worker.ts";
import { enqueue, type Queues } from "../../shared/jobs/registry.ts";
import { inTransaction, type Conn } from "../../shared/adapters/db/sql.ts";
import { insertAudit, insertNotifications } from "../../shared/adapters/db/outbox.ts";
import { addToBalance } from "../../shared/adapters/db/balances.ts";
import { formatUnits, trimDecimal } from "../../shared/domain/amount.ts";
import { PermanentError, RetryableError, type ErrorCode } from "../../shared/domain/errors.ts";
import { decideTransferConfirm, type TransferConfirmDecision } from "../../shared/domain/transfer-confirm.ts";
import { senderChains, type SenderChain } from "../transfer-sender/context.ts";
import { loadAttempts, loadTransfer, transferLabel, transferNotes, type AttemptRow, type TransferRow } from "../transfer-sender/transfer-rows.ts";
import { broadcastOne } from "../transfer-sender/broadcast.ts";
import { attemptAgeMs } from "../transfer-sender/replace-tx.ts";
import type { Receipt } from "../transfer-sender/chain-reads.ts";

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
    if (t.state !== "sent" && t.state !== "mined") return { state: t.state };
    const chain = chains.get(t.chain);
    if (!chain) throw new PermanentError("unknown_chain", `chain ${t.chain} is not configured`);
    if (t.nonce === null || t.from_address === null) throw new PermanentError("internal", `transfer ${id} is ${t.state} without a nonce`);
    const attempts = await loadAttempts(pool, [id]);
    if (attempts.length === 0) throw new PermanentError("internal", `transfer ${id} is ${t.state} without a signed transaction`);
    const log = logger.child({ transfer: t.id.toString(), nonce: t.nonce.toString() });
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
    const decision = decideTransferConfirm({
      head: Number(head),
      confirmHeight: cfg.confirm_height,
      blockTimeMs: cfg.block_time_ms,
      stuckAfterMs: cfg.stuck_after_s * 1000,
      state: t.state,
      storedBlockHash: t.block_hash,
      mined: receipt ? { blockNumber: Number(receipt.blockNumber), blockHash: receipt.blockHash, status: receipt.status } : null,
      canonicalHash: canonicalHash?.toLowerCase() ?? null,
      nonceUsed: nonceNow > t.nonce,
      nonceUsedDeep: safe >= 0n && nonceDeep > t.nonce,
      known,
      latestAgeMs: attemptAgeMs(latest, now()),
      wasMinedBefore: await wasMinedBefore(pool, t.id),
    });
    const required = cfg.confirm_height;

    switch (decision.kind) {
      case "wait-depth":
        if (decision.record) await recordMined(t, receipt!, attempts[minedAt]!, decision.confirmations, log);
        else await setConfirmations(t, decision.confirmations);
        return reschedule(job, token, { confirmations: decision.confirmations, required, state: "mined" }, decision.delayMs);
      case "finalize":
        if (decision.record) await recordMined(t, receipt!, attempts[minedAt]!, decision.confirmations, log);
        await finalize(chain, t, receipt!, decision, log);
        await job.updateProgress({ confirmations: decision.confirmations, required, state: decision.reverted ? "reverted" : "confirmed" });
        return { state: decision.reverted ? "failed" : "confirmed", tx_hash: receipt!.hash };
      case "recheck":
        return reschedule(job, token, { confirmations: 0, required, state: t.state }, decision.delayMs);
      case "unmined":
        await unmine(t, log);
        await rebroadcast(chain, attempts, log);
        return reschedule(job, token, { confirmations: 0, required, state: "sent" }, decision.delayMs);
      case "give-up":
        await giveUp(t, decision.code, log);
        return { state: "failed", error: decision.code };
      case "pending":
        if (decision.rebroadcast) await rebroadcast(chain, attempts, log);
        if (decision.bump) {
          // one replacement request per attempt generation; the sender re-checks that it is still stuck
          await enqueue(deps.queues, "send-transfer", { transferId: t.id.toString(), label: `replace ${transferLabel(t)}`.slice(0, 200) }, { jobId: `bump-${t.id}-${attempts.length}` });
        }
        return reschedule(job, token, { confirmations: 0, required, state: "sent" }, decision.delayMs);
    }
  };

  async function reschedule(job: Job, token: string | undefined, progress: Progress, delayMs: number): Promise<never> {
    if (!token) throw new RetryableError("job has no lock token; cannot reschedule");
    await job.updateProgress(progress);
    await job.moveToDelayed(now() + delayMs, token);
    throw new DelayedError();
  }

  async function setConfirmations(t: TransferRow, confirmations: number): Promise<void> {
    if (confirmations === t.confirmations) return;
    await pool.query("UPDATE transfer SET confirmations = ?, updated_at = NOW(3) WHERE id = ? AND state = 'mined'", [confirmations, t.id]);
  }

  async function recordMined(t: TransferRow, r: Receipt, winner: AttemptRow, confirmations: number, log: Logger): Promise<void> {
    await inTransaction(pool, async (conn) => {
      const res = (await conn.query(
        `UPDATE transfer SET state = 'mined', tx_hash = ?, block_number = ?, block_hash = ?, confirmations = ?, updated_at = NOW(3)
         WHERE id = ? AND state IN ('sent', 'mined')`,
        [r.hash, r.blockNumber, r.blockHash, confirmations, t.id],
      )) as { affectedRows: number };
      if (Number(res.affectedRows) !== 1) return;
      await conn.query("UPDATE tx_attempt SET state = 'mined' WHERE id = ?", [winner.id]);
      await conn.query("UPDATE tx_attempt SET state = 'replaced' WHERE transfer_id = ? AND id <> ? AND state IN ('signed', 'broadcast', 'mined')", [t.id, winner.id]);
      await insertAudit(conn, [
        {
          actor: ACTOR,
          event: "transfer.mined",
          queueId: t.queue_id,
          orderId: t.order_id || null,
          address: t.from_address,
          subjectType: "transfer",
          subjectId: t.id,
          data: { tx_hash: r.hash, block: r.blockNumber, block_hash: r.blockHash, status: r.status, replaced: winner.tx_hash !== t.tx_hash },
        },
      ]);
    });
    t.state = "mined";
    t.tx_hash = r.hash;
    t.block_number = r.blockNumber;
    t.block_hash = r.blockHash;
    t.confirmations = confirmations;
    log.info({ tx_hash: r.hash, block: r.blockNumber.toString() }, "confirm-transfer: mined");
  }

  async function unmine(t: TransferRow, log: Logger): Promise<void> {
    await inTransaction(pool, async (conn) => {
      const res = (await conn.query(
        "UPDATE transfer SET state = 'sent', block_number = NULL, block_hash = NULL, confirmations = 0, updated_at = NOW(3) WHERE id = ? AND state = 'mined' AND block_hash <=> ?",
        [t.id, t.block_hash],
      )) as { affectedRows: number };
      if (Number(res.affectedRows) !== 1) return;
      await conn.query("UPDATE tx_attempt SET state = 'broadcast' WHERE transfer_id = ? AND state IN ('mined', 'replaced')", [t.id]);
      await insertAudit(conn, [
        {
          actor: ACTOR,
          event: "transfer.unmined",
          queueId: t.queue_id,
          orderId: t.order_id || null,
          address: t.from_address,
          subjectType: "transfer",
          subjectId: t.id,
          data: { tx_hash: t.tx_hash, block_hash: t.block_hash },
        },
      ]);
    });
    log.warn({ block_hash: t.block_hash }, "confirm-transfer: the transfer's block left the canonical chain; following its transactions again");
  }

  async function finalize(chain: SenderChain, t: TransferRow, r: Receipt, d: Extract<TransferConfirmDecision, { kind: "finalize" }>, log: Logger): Promise<void> {
    const cfg = chain.config;
    const feeWei = r.gasUsed * r.effectiveGasPrice;
    const fee = formatUnits(feeWei, cfg.native_decimals);
    const code: ErrorCode | undefined = d.reverted ? "reverted" : undefined;
    const done = await inTransaction(pool, async (conn) => {
      const res = (await conn.query(
        `UPDATE transfer SET state = ?, error = ?, error_detail = ?, confirmations = ?, gas_used = ?, fee_paid = ?, finalized_at = NOW(3), updated_at = NOW(3)
         WHERE id = ? AND state = 'mined' AND block_hash = ?`,
        [d.reverted ? "failed" : "confirmed", code ?? null, d.reverted ? "the transaction reverted on chain" : null, d.confirmations, r.gasUsed, fee, t.id, r.blockHash],
      )) as { affectedRows: number };
      if (Number(res.affectedRows) !== 1) return false;
      const from = t.from_address!;
      // Book balances move exactly when the final notification is written.
      if (feeWei > 0n) await addToBalance(conn, t.chain, from, cfg.native_symbol, `-${fee}`);
      if (!d.reverted) {
        const amount = trimDecimal(t.amount);
        await addToBalance(conn, t.chain, from, t.symbol, `-${amount}`);
        if (await creditsRecipient(conn, t)) await addToBalance(conn, t.chain, t.to_address, t.symbol, amount);
      }
      await insertNotifications(
        conn,
        transferNotes(t, d.reverted ? 0 : 1, now(), { txHash: r.hash, blockNumber: r.blockNumber, confirmations: d.confirmations }, code, code ? "the transaction reverted on chain" : undefined),
      );
      await insertAudit(conn, [
        {
          actor: ACTOR,
          event: d.reverted ? "transfer.reverted" : "transfer.confirmed",
          queueId: t.queue_id,
          orderId: t.order_id || null,
          address: from,
          subjectType: "transfer",
          subjectId: t.id,
          data: { tx_hash: r.hash, block: r.blockNumber, block_hash: r.blockHash, confirmations: d.confirmations, gas_used: r.gasUsed, fee },
        },
      ]);
      return true;
    });
    if (!done) return;
    deps.metrics.transfers.inc({ chain: t.chain, symbol: t.symbol, status: d.reverted ? "reverted" : "confirmed" });
    wake();
    log.info({ tx_hash: r.hash, reverted: d.reverted }, "confirm-transfer: final");
  }

  async function giveUp(t: TransferRow, code: "dropped" | "reorged", log: Logger): Promise<void> {
    const detail =
      code === "dropped" ? "the transaction was never mined and its nonce was used by another transaction" : "the transaction left the chain and its nonce was used by another transaction";
    const done = await inTransaction(pool, async (conn) => {
      const res = (await conn.query(
        "UPDATE transfer SET state = 'failed', error = ?, error_detail = ?, finalized_at = NOW(3), updated_at = NOW(3) WHERE id = ? AND state = 'sent'",
        [code, detail, t.id],
      )) as { affectedRows: number };
      if (Number(res.affectedRows) !== 1) return false;
      await conn.query("UPDATE tx_attempt SET state = 'dropped' WHERE transfer_id = ? AND state IN ('signed', 'broadcast', 'replaced')", [t.id]);
      await insertNotifications(conn, transferNotes(t, 0, now(), {}, code, detail));
      await insertAudit(conn, [
        { actor: ACTOR, event: `transfer.${code}`, queueId: t.queue_id, orderId: t.order_id || null, address: t.from_address, subjectType: "transfer", subjectId: t.id, data: { nonce: t.nonce } },
      ]);
      return true;
    });
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

async function wasMinedBefore(pool: Pool, id: bigint): Promise<boolean> {
  const rows = (await pool.query("SELECT 1 AS x FROM audit_event WHERE subject_type = 'transfer' AND subject_id = ? AND event = 'transfer.unmined' LIMIT 1", [id])) as unknown[];
  return rows.length > 0;
}

/**
 * Internal movements (sweeps, gas top-ups) land in our own wallets: their
 * book balance rises when final, unless chain-watch reports the same coins
 * as a deposit to a watched address (which credits it itself).
 */
async function creditsRecipient(conn: Conn, t: TransferRow): Promise<boolean> {
  if (t.kind !== "sweep" && t.kind !== "gas_topup") return false;
  const ours = (await conn.query("SELECT 1 AS x FROM wallet WHERE chain = ? AND address = ?", [t.chain, t.to_address])) as unknown[];
  if (ours.length === 0) return false;
  const watched = (await conn.query("SELECT 1 AS x FROM watched_address WHERE chain = ? AND symbol = ? AND address = ? AND active = 1", [
    t.chain,
    t.symbol,
    t.to_address,
  ])) as unknown[];
  return watched.length === 0;
}

