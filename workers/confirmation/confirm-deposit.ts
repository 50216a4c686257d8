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
import type { Job } from "bullmq";
import type { Pool } from "mariadb";
import type { ChainConfig } from "../../shared/config/schema.ts";
import { lazyChild, type Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import { reschedule, type Handler } from "../../shared/jobs/worker.ts";
import { affected, inTransaction, tryNamedLock, type NamedLock } from "../../shared/adapters/db/sql.ts";
import { insertAudit, insertNotifications } from "../../shared/adapters/db/outbox.ts";
import { addToBalance } from "../../shared/adapters/db/balances.ts";
import { applyMoveSteps, lockDepositsOfTxs, readDeposit, type DepositRecord } from "../../shared/adapters/db/deposits.ts";
import { decideConfirm, confirmationsOf, confirmDelayMs, type ConfirmDecision, type ConfirmFacts } from "../../shared/domain/confirmations.ts";
import { planDeposits } from "../../shared/domain/deposit-match.ts";
import { assetOf } from "../../shared/domain/assets.ts";
import { depositNotification } from "../../shared/domain/notifications.ts";
import { PermanentError, RetryableError, type ErrorCode } from "../../shared/domain/errors.ts";
import type { DepositChainCheck, RpcReceipt } from "./deposit-chain-check.ts";
import { BLOCK_LOCK_EXTRA_CONNECTIONS, createBlockFinalizer, depositFacts } from "./finalize-block.ts";
import { logToJob } from "../../shared/jobs/job-log.ts";

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
  /** when this job first found the transaction off the chain (its audit row is written once) */
  unminedSinceMs?: number;
}

const ACTOR = "confirmation";
/** how soon a run that found its block's lock busy looks again (at most a block later) */
const BLOCK_BUSY_DELAY_MS = 1_000;

export function createConfirmDepositHandler(deps: ConfirmDepositDeps): Handler<"confirm-deposit"> {
  const now = deps.now ?? Date.now;
  const decimalsOf = (chainKey: string, symbol: string) => {
    const c = deps.chains.get(chainKey)?.config;
    const d = c ? assetOf(c, symbol)?.decimals : undefined;
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
    // a deposit that ended status 0 is never a green completion on the dashboard (SPEC §7)
    if (row.state === "reorged") throw new PermanentError("reorged", `deposit ${row.txHash} #${row.logIndex} ended status 0`);
    if (row.state !== "seen") return { state: row.state };
    const chain = deps.chains.get(row.chain);
    if (!chain) throw new PermanentError("unknown_chain", `chain ${row.chain} is not configured`);
    const log = lazyChild(logger, { deposit: row.id, tx: row.txHash, log_index: row.logIndex });
    const cfg = chain.config;
    const progress = (typeof job.progress === "object" && job.progress !== null ? job.progress : {}) as Progress;

    const { head, canonicalHash } = await chain.check.headAndCanonical(row.blockNumber);
    const facts: ConfirmFacts = {
      blockNumber: row.blockNumber,
      blockHash: row.blockHash,
      confirmHeight: cfg.confirm_height,
      head,
      canonicalHash,
      blockTimeMs: cfg.block_time_ms,
    };
    const decision = decideConfirm(facts);
    const required = cfg.confirm_height;
    // Due on a canonical block: one run at a time per block finalises the
    // whole block; a sibling's run meeting it looks again a little later
    // (by then its row is normally confirmed) instead of fetching the same
    // receipts and contending for the same rows. The lock also answers
    // "busy" while this pool has as many block finalisers as it can serve
    // (namedLock's extraConnections): after an outage, blocks due by the
    // hundred go through a few at a time instead of jamming the pool.
    let blockLock: NamedLock | null = null;
    if (decision.kind === "fetch-receipt" && canonicalHash === row.blockHash && head >= row.blockNumber + required) {
      blockLock = await tryNamedLock(deps.pool, `deposit-block:${row.chain}:${row.blockHash}`, { extraConnections: BLOCK_LOCK_EXTRA_CONNECTIONS });
      if (!blockLock) {
        const again = Math.min(confirmDelayMs(1, cfg.block_time_ms), BLOCK_BUSY_DELAY_MS + Math.random() * BLOCK_BUSY_DELAY_MS);
        return reschedule(job, token, again, { confirmations: confirmationsOf(head, row.blockNumber), required });
      }
    }
    try {
      return await decideAndAct(row, chain, job, token, progress, facts, decision, blockLock, log);
    } finally {
      await blockLock?.release();
    }
  };

  async function decideAndAct(
    row: DepositRecord,
    chain: ConfirmDepositChain,
    job: Job,
    token: string | undefined,
    progress: Progress,
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
      let nonceUsedDeep: boolean | undefined;
      let contentMatches: boolean | undefined;
      if (!receipt && facts.canonicalHash !== row.blockHash) {
        nonceUsedDeep = await nonceTakenDeep(row, chain, head);
        // the nonce was read after the receipt: read the receipt again, a transaction mined meanwhile shows up
        if (nonceUsedDeep) receipt = await chain.check.receipt(row.txHash);
      }
      if (receipt && receipt.blockHash.toLowerCase() === row.blockHash && BigInt(receipt.status) === 1n) {
        const transfers = await chain.check.transfersOf(row.txHash, row.logIndex, receipt);
        contentMatches = transfers.some(
          (t) => t.logIndex === row.logIndex && t.symbol === row.symbol && t.from === row.from && t.to === row.to && t.units === row.units,
        );
      }
      facts = {
        ...facts,
        receipt: receipt ? { blockNumber: Number(BigInt(receipt.blockNumber)), blockHash: receipt.blockHash.toLowerCase(), status: Number(BigInt(receipt.status)) } : null,
        nonceUsedDeep: receipt ? undefined : nonceUsedDeep,
        contentMatches,
      };
      decision = decideConfirm(facts);
    }

    switch (decision.kind) {
      case "wait":
        await setConfirmations(row, decision.confirmations);
        if (decision.confirmations !== progress.confirmations) await logToJob(job, `confirmations ${decision.confirmations}/${required}`);
        return reschedule(job, token, decision.delayMs, { confirmations: decision.confirmations, required });
      case "wait-unmined": {
        if (progress.unminedSinceMs === undefined) await noteUnmined(row, log);
        return reschedule(job, token, decision.delayMs, { confirmations: 0, required, unminedSinceMs: progress.unminedSinceMs ?? now() });
      }
      case "follow": {
        const followed = await follow(row, receipt!, decision, log);
        if (!followed) return fail(row, "reorged", "the transaction was mined again without this transfer", log);
        const remaining = decision.blockNumber + required - head;
        return reschedule(job, token, confirmDelayMs(remaining, cfg.block_time_ms), { confirmations: confirmationsOf(head, decision.blockNumber), required });
      }
      case "finalize": {
        // finalize implies due on a canonical block: the block lock is held (see above)
        if (!blockLock) throw new RetryableError(`deposit ${row.id} is due but its block is not locked`);
        const withBlock = await blockFinalizer.finalizeWithBlock(blockLock.conn, row, receipt!, facts, decision.confirmations, log);
        await job.updateProgress({ confirmations: decision.confirmations, required });
        await logToJob(job, `final: status 1 after ${decision.confirmations}/${required} confirmations`);
        return { state: "confirmed", confirmations: decision.confirmations, ...(withBlock > 1 ? { finalized_with_block: withBlock } : {}) };
      }
      case "reorged":
        return fail(row, "reorged", `the transaction left the chain and its sender's nonce ${row.tx?.nonce ?? "?"} was used by another transaction ${required} blocks deep`, log);
      case "reverted":
        return fail(row, "reverted", "the transaction reverted", log);
      case "mismatch":
        log.error({ block: row.blockNumber }, "confirm-deposit: the chain's transfer at this log index differs from the stored deposit; not finalising");
        throw new RetryableError(`deposit ${row.id} does not match its transaction on chain`);
      case "fetch-receipt":
        throw new RetryableError("confirmation decision incomplete");
    }
  }

  /**
   * Whether the deposit's transaction can never be mined: its sender has used
   * its nonce in a block confirm_height below the head (that block can no
   * longer be reorged away, by the same assumption that makes a deposit
   * final). Undefined when the sender is not known (a row stored before it
   * was recorded, and a node that no longer has the transaction).
   */
  async function nonceTakenDeep(row: DepositRecord, chain: ConfirmDepositChain, head: number): Promise<boolean | undefined> {
    const safe = head - chain.config.confirm_height;
    if (safe < 0) return false;
    const sender = row.tx ?? (await chain.check.txSender(row.txHash));
    if (!sender) return undefined;
    return (await chain.check.nonceAt(sender.from, safe)) > sender.nonce;
  }

  /** The audit trail says once that the deposit's transaction left the chain (it waits for evidence, never a timer). */
  async function noteUnmined(row: DepositRecord, log: Logger): Promise<void> {
    await insertAudit(deps.pool, [
      {
        actor: ACTOR,
        event: "deposit.unmined",
        queueId: row.queueId,
        address: row.to,
        subjectType: "deposit",
        subjectId: row.id,
        data: { tx_hash: row.txHash, block: row.blockNumber, block_hash: row.blockHash, tx_from: row.tx?.from ?? null, tx_nonce: row.tx?.nonce ?? null },
      },
    ]);
    log.warn("confirm-deposit: the transaction left the chain; pending until it is mined again or its sender's nonce is taken deep");
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
      const res = await conn.query(
        `UPDATE deposit SET state = 'confirmed', confirmations = ?, finalized_at = NOW(3), updated_at = NOW(3)
         WHERE id = ? AND state = 'seen' AND block_hash = ? AND log_index = ?`,
        [confirmations, row.id, row.blockHash, row.logIndex],
      );
      if (affected(res) !== 1) return false;
      await addToBalance(conn, row.chain, row.to, row.symbol, row.amount);
      // The status-1 notification is the audit record of the final (history shows it with the row's
      // finalized_at); a second one already there means it was credited before: undo.
      const written = await insertNotifications(conn, [depositNotification(depositFacts(row, confirmations), 1, now())]);
      if (written !== 1) throw new PermanentError("internal", `deposit ${row.id} already has a final notification`);
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
      const res = await conn.query(
        `UPDATE deposit SET state = 'reorged', error = ?, finalized_at = NOW(3), updated_at = NOW(3)
         WHERE id = ? AND state = 'seen' AND block_hash = ? AND log_index = ?`,
        [code, row.id, row.blockHash, row.logIndex],
      );
      if (affected(res) !== 1) return false;
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
    if (!done) return { state: "unchanged", error: code };
    // status 0: the job fails with it, never a green completion on the dashboard
    throw new PermanentError(code, `deposit ${row.txHash} #${row.logIndex} ended status 0 (${code}): ${why}`);
  }
}
