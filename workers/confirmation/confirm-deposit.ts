/**
 * `confirm-deposit`: one job per seen deposit that reschedules itself until
 * the deposit is `confirm_height` blocks deep, then checks it is still on
 * the canonical chain and finalises it exactly once (state, book balance,
 * status-1 notification), or ends it `reorged` (status 0).
 *
 * Idempotent: the payload is only the row id; the row is re-read on every
 * run and nothing happens unless it is still `seen`. The final write is one
 * transaction whose guarded update (`WHERE id=? AND state='seen' AND
 * block_hash=? AND log_index=?`) must change exactly one row before the
 * balance moves and the notification is written; the notification's unique
 * dedupe key backs that up. So retries, a second worker, or a job rebuilt
 * after Redis was lost can never credit or report twice.
 *
 * A block's deposits all become due at the same head: the run that finds
 * its deposit final holds the block's named lock and finalises every `seen`
 * sibling that passes the very same checks (./finalize-block.ts), so a block
 * of 10,000 deposits costs a few transactions instead of 10,000 job runs of
 * several round trips each; the siblings' own jobs then find their rows
 * confirmed and stop.
 *
 * Decisions come from shared/domain/confirmations.ts; this file gathers the
 * facts and carries the decision out.
 */
import { DelayedError, type Job } from "bullmq";
import type { Pool } from "mariadb";
import type { ChainConfig } from "../../shared/config/schema.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { Handler } from "../../shared/jobs/worker.ts";
import { inTransaction, tryNamedLock, type NamedLock } from "../../shared/adapters/db/sql.ts";
import { insertAudit, insertNotifications } from "../../shared/adapters/db/outbox.ts";
import { addToBalance } from "../../shared/adapters/db/balances.ts";
import { applyMoveSteps, lockDepositsOfTxs, readDeposit, type DepositRecord } from "../../shared/adapters/db/deposits.ts";
import { decideConfirm, confirmationsOf, confirmDelayMs, type ConfirmDecision, type ConfirmFacts } from "../../shared/domain/confirmations.ts";
import { planDeposits } from "../../shared/domain/deposit-match.ts";
import { depositNotification } from "../../shared/domain/notifications.ts";
import { PermanentError, RetryableError, type ErrorCode } from "../../shared/domain/errors.ts";
import type { DepositChainCheck, RpcReceipt } from "./deposit-chain-check.ts";
import { createBlockFinalizer, depositFacts } from "./finalize-block.ts";

export interface ConfirmDepositChain {
  config: ChainConfig & { key: string };
  check: DepositChainCheck;
}

export interface ConfirmDepositDeps {
  pool: Pool;
  chains: ReadonlyMap<string, ConfirmDepositChain>;
  metrics: Metrics;
  /** tell the outbox publisher new notifications are waiting */
  wakeOutbox: () => Promise<void>;
  now?: () => number;
}

/** Kept in the job's progress between runs (shown on the dashboard too). */
interface Progress {
  confirmations?: number;
  required?: number;
  missingSinceMs?: number | null;
  pendingSinceMs?: number | null;
}

const ACTOR = "confirmation";

/**
 * How long an unmined transaction that the node still holds may wait to be
 * mined again after a reorg before the deposit ends `reorged`.
 */
export const pendingGraceMs = (chain: ChainConfig) => Math.max(60_000, 4 * chain.confirm_height * chain.block_time_ms);

export function createConfirmDepositHandler(deps: ConfirmDepositDeps): Handler<"confirm-deposit"> {
  const now = deps.now ?? Date.now;
  const decimalsOf = (chainKey: string, symbol: string) => {
    const c = deps.chains.get(chainKey)?.config;
    const d = c ? (symbol === c.native_symbol ? c.native_decimals : c.tokens[symbol]?.decimals) : undefined;
    if (d === undefined) throw new PermanentError("unknown_symbol", `no decimals configured for ${chainKey} ${symbol}`);
    return d;
  };

  const blockFinalizer = createBlockFinalizer({
    pool: deps.pool,
    checks: new Map([...deps.chains].map(([k, c]) => [k, c.check])),
    metrics: deps.metrics,
    wakeOutbox: deps.wakeOutbox,
    decimalsOf,
    now,
    finalizeOne: (row, confirmations, log) => finalize(row, confirmations, log),
  });

  return async (data, job, { token, logger }) => {
    const row = await readDeposit(deps.pool, data.depositId, decimalsOf);
    if (!row) {
      logger.warn({ deposit: data.depositId }, "confirm-deposit: no such deposit");
      return { skipped: "missing" };
    }
    if (row.state !== "seen") return { state: row.state };
    const chain = deps.chains.get(row.chain);
    if (!chain) throw new PermanentError("unknown_chain", `chain ${row.chain} is not configured`);
    const log = logger.child({ deposit: row.id, tx: row.txHash, log_index: row.logIndex });
    const cfg = chain.config;
    const progress = (typeof job.progress === "object" && job.progress !== null ? job.progress : {}) as Progress;

    const { head, canonicalHash } = await chain.check.headAndCanonical(row.blockNumber);
    const facts: ConfirmFacts = {
      blockNumber: row.blockNumber,
      blockHash: row.blockHash,
      confirmHeight: cfg.confirm_height,
      head,
      canonicalHash,
      nowMs: now(),
      missingSinceMs: progress.missingSinceMs ?? null,
      pendingSinceMs: progress.pendingSinceMs ?? null,
      blockTimeMs: cfg.block_time_ms,
      pendingGraceMs: pendingGraceMs(cfg),
    };
    const decision = decideConfirm(facts);
    const required = cfg.confirm_height;
    // Due on a canonical block: one run at a time per block finalises the
    // whole block; a sibling's run meeting it looks again a block later
    // (by then its row is normally confirmed) instead of fetching the same
    // receipts and contending for the same rows.
    let blockLock: NamedLock | null = null;
    if (decision.kind === "fetch-receipt" && canonicalHash === row.blockHash && head >= row.blockNumber + required) {
      blockLock = await tryNamedLock(deps.pool, `deposit-block:${row.chain}:${row.blockHash}`);
      if (!blockLock) return reschedule(job, token, { confirmations: confirmationsOf(head, row.blockNumber), required }, confirmDelayMs(1, cfg.block_time_ms));
    }
    try {
      return await decideAndAct(row, chain, job, token, facts, decision, blockLock, log);
    } finally {
      await blockLock?.release();
    }
  };

  async function decideAndAct(
    row: DepositRecord,
    chain: ConfirmDepositChain,
    job: Job,
    token: string | undefined,
    initial: ConfirmFacts,
    first: ConfirmDecision,
    blockLock: NamedLock | null,
    log: Logger,
  ): Promise<unknown> {
    const cfg = chain.config;
    const required = cfg.confirm_height;
    const head = initial.head;
    let facts = initial;
    let decision = first;
    if (blockLock) {
      // the previous holder may have finalised this row while we waited for our turn
      const again = await readDeposit(blockLock.conn, row.id, decimalsOf);
      if (!again || again.state !== "seen") return { state: again?.state ?? "missing" };
      if (again.blockHash !== row.blockHash || again.logIndex !== row.logIndex) throw new RetryableError(`deposit ${row.id} moved meanwhile`);
    }
    let receipt: RpcReceipt | null = null;
    if (decision.kind === "fetch-receipt") {
      receipt = await chain.check.receipt(row.txHash);
      let pending: boolean | undefined;
      let contentMatches: boolean | undefined;
      if (!receipt) pending = await chain.check.isPending(row.txHash);
      else if (receipt.blockHash.toLowerCase() === row.blockHash && BigInt(receipt.status) === 1n) {
        const transfers = await chain.check.transfersOf(row.txHash, row.logIndex, receipt);
        contentMatches = transfers.some(
          (t) => t.logIndex === row.logIndex && t.symbol === row.symbol && t.from === row.from && t.to === row.to && t.units === row.units,
        );
      }
      facts = {
        ...facts,
        receipt: receipt ? { blockNumber: Number(BigInt(receipt.blockNumber)), blockHash: receipt.blockHash.toLowerCase(), status: Number(BigInt(receipt.status)) } : null,
        pending,
        contentMatches,
      };
      decision = decideConfirm(facts);
    }

    switch (decision.kind) {
      case "wait":
        await setConfirmations(row, decision.confirmations);
        return reschedule(job, token, { confirmations: decision.confirmations, required }, decision.delayMs);
      case "wait-missing":
        log.info("confirm-deposit: transaction not found on the node; looking again before calling it reorged");
        return reschedule(job, token, { confirmations: 0, required, missingSinceMs: decision.missingSinceMs }, decision.delayMs);
      case "wait-pending":
        log.info("confirm-deposit: transaction left its block and is pending again; waiting for it to be mined");
        return reschedule(job, token, { confirmations: 0, required, pendingSinceMs: decision.pendingSinceMs }, decision.delayMs);
      case "follow": {
        const followed = await follow(row, receipt!, decision, log);
        if (!followed) return fail(row, "reorged", "the transaction was mined again without this transfer", log);
        const remaining = decision.blockNumber + required - head;
        return reschedule(job, token, { confirmations: confirmationsOf(head, decision.blockNumber), required }, confirmDelayMs(remaining, cfg.block_time_ms));
      }
      case "finalize": {
        // finalize implies due on a canonical block: the block lock is held (see above)
        if (!blockLock) throw new RetryableError(`deposit ${row.id} is due but its block is not locked`);
        const withBlock = await blockFinalizer.finalizeWithBlock(blockLock.conn, row, receipt!, facts, decision.confirmations, log);
        await job.updateProgress({ confirmations: decision.confirmations, required });
        return { state: "confirmed", confirmations: decision.confirmations, ...(withBlock > 1 ? { finalized_with_block: withBlock } : {}) };
      }
      case "reorged":
        return fail(row, "reorged", "the transaction is no longer on the canonical chain", log);
      case "reverted":
        return fail(row, "reverted", "the transaction reverted", log);
      case "mismatch":
        log.error({ block: row.blockNumber }, "confirm-deposit: the chain's transfer at this log index differs from the stored deposit; not finalising");
        throw new RetryableError(`deposit ${row.id} does not match its transaction on chain`);
      case "fetch-receipt":
        throw new RetryableError("confirmation decision incomplete");
    }
  }

  async function reschedule(job: Job, token: string | undefined, progress: Progress, delayMs: number): Promise<never> {
    if (!token) throw new RetryableError("job has no lock token; cannot reschedule");
    await job.updateProgress(progress);
    await job.moveToDelayed(now() + delayMs, token);
    throw new DelayedError();
  }

  async function setConfirmations(row: DepositRecord, confirmations: number): Promise<void> {
    if (confirmations === row.confirmations) return;
    await deps.pool.query("UPDATE deposit SET confirmations = ?, updated_at = NOW(3) WHERE id = ? AND state = 'seen'", [confirmations, row.id]);
  }

  /**
   * The transaction is mined in another (canonical) block: move this row,
   * and its siblings of the same kind, to where their transfers are now.
   * False when the re-mined transaction no longer makes this transfer.
   */
  async function follow(row: DepositRecord, receipt: RpcReceipt, to: Extract<ConfirmDecision, { kind: "follow" }>, log: Logger): Promise<boolean> {
    const chain = deps.chains.get(row.chain)!;
    const transfers = await chain.check.transfersOf(row.txHash, row.logIndex, receipt);
    const found = transfers.map((t) => ({ ...t, blockNumber: to.blockNumber, blockHash: to.blockHash }));
    const moved = await inTransaction(deps.pool, async (conn) => {
      const stored = await lockDepositsOfTxs(conn, row.chain, [row.txHash], (s) => decimalsOf(row.chain, s));
      const me = stored.find((s) => s.id === row.id);
      if (!me || me.state !== "seen" || me.blockHash !== row.blockHash || me.logIndex !== row.logIndex) return "changed" as const;
      const plan = planDeposits(found, stored);
      const mine = plan.moves.find((m) => m.id === row.id);
      if (!mine) return "gone" as const;
      await applyMoveSteps(conn, plan.steps);
      await insertAudit(
        conn,
        plan.moves.map((m) => ({
          actor: ACTOR,
          event: "deposit.followed",
          address: m.to.to,
          subjectType: "deposit",
          subjectId: m.id,
          data: { tx_hash: m.to.txHash, from_block_hash: m.fromBlockHash, from_log_index: m.fromLogIndex, block: m.to.blockNumber, block_hash: m.to.blockHash, log_index: m.to.logIndex },
        })),
      );
      return "moved" as const;
    });
    if (moved === "changed") throw new RetryableError(`deposit ${row.id} changed while following its transaction`);
    if (moved === "moved") log.info({ block: to.blockNumber, block_hash: to.blockHash }, "confirm-deposit: transaction re-mined in another block; following it");
    return moved === "moved";
  }

  async function finalize(row: DepositRecord, confirmations: number, log: Logger): Promise<void> {
    const done = await inTransaction(deps.pool, async (conn) => {
      const res = (await conn.query(
        `UPDATE deposit SET state = 'confirmed', confirmations = ?, finalized_at = NOW(3), updated_at = NOW(3)
         WHERE id = ? AND state = 'seen' AND block_hash = ? AND log_index = ?`,
        [confirmations, row.id, row.blockHash, row.logIndex],
      )) as { affectedRows: number };
      if (Number(res.affectedRows) !== 1) return false;
      await addToBalance(conn, row.chain, row.to, row.symbol, row.amount);
      const written = await insertNotifications(conn, [depositNotification(depositFacts(row, confirmations), 1, now())]);
      // A status-1 notification already there means it was credited before: undo.
      if (written !== 1) throw new PermanentError("internal", `deposit ${row.id} already has a final notification`);
      await insertAudit(conn, [
        {
          actor: ACTOR,
          event: "deposit.confirmed",
          queueId: row.queueId,
          address: row.to,
          subjectType: "deposit",
          subjectId: row.id,
          data: { chain: row.chain, symbol: row.symbol, amount: row.amount, tx_hash: row.txHash, block: row.blockNumber, confirmations },
        },
      ]);
      return true;
    });
    if (!done) {
      log.info("confirm-deposit: deposit changed meanwhile; nothing to do");
      return;
    }
    deps.metrics.deposits.inc({ chain: row.chain, symbol: row.symbol, status: "1" });
    log.info({ confirmations, amount: row.amount, symbol: row.symbol, to: row.to }, "confirm-deposit: deposit confirmed and credited");
    await deps.wakeOutbox();
  }

  async function fail(row: DepositRecord, code: ErrorCode, why: string, log: Logger) {
    const done = await inTransaction(deps.pool, async (conn) => {
      const res = (await conn.query(
        `UPDATE deposit SET state = 'reorged', error = ?, finalized_at = NOW(3), updated_at = NOW(3)
         WHERE id = ? AND state = 'seen' AND block_hash = ? AND log_index = ?`,
        [code, row.id, row.blockHash, row.logIndex],
      )) as { affectedRows: number };
      if (Number(res.affectedRows) !== 1) return false;
      await insertNotifications(conn, [depositNotification(depositFacts(row, 0), 0, now(), code)]);
      await insertAudit(conn, [
        {
          actor: ACTOR,
          event: `deposit.${code}`,
          queueId: row.queueId,
          address: row.to,
          subjectType: "deposit",
          subjectId: row.id,
          data: { chain: row.chain, symbol: row.symbol, amount: row.amount, tx_hash: row.txHash, block: row.blockNumber, block_hash: row.blockHash, why },
        },
      ]);
      return true;
    });
    if (done) {
      deps.metrics.deposits.inc({ chain: row.chain, symbol: row.symbol, status: "0" });
      log.warn({ code, why }, "confirm-deposit: deposit failed");
      await deps.wakeOutbox();
    }
    return { state: done ? "reorged" : "unchanged", error: code };
  }
}
