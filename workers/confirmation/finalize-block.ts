/**
 * Finalising a due block's deposits together: confirm-deposit's fast path.
 *
 * Every deposit of a block becomes due at the same head. The run of
 * confirm-deposit that finds its deposit final (holding the block's named
 * lock, so one run per block at a time) finalises with it each `seen`
 * sibling of the block that decideConfirm also calls final, on the same head
 * and canonical hash, with the sibling's own receipt and transfer: exactly
 * the single-row rule, with receipts fetched once per transaction instead of
 * once per deposit. The siblings' own jobs then find their rows confirmed.
 *
 * Work is paged: while one page of up to FINAL_CHUNK deposits commits (one
 * transaction: guarded multi-row update, balances, status-1 notifications,
 * audit), the next page is read and verified against the node, and the
 * outbox publishes what has committed.
 *
 * Exactly once: every update is guarded by state 'seen' and the block hash
 * (a row at that block hash has the log index it was verified at: a block
 * hash fixes the block's contents); a chunk in which some row moved meanwhile
 * is rolled back and redone under row locks for the rows still in place; a
 * chunk meeting an existing final notification (never expected) is rolled
 * back, and the caller finalises its own row alone, as the single-row path
 * always did, leaving the rest to their own jobs.
 */
import type { Pool } from "mariadb";
import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import { affected, inList, inTransaction, inTransactionOn, type Conn } from "../../shared/adapters/db/sql.ts";
import { insertNotifications } from "../../shared/adapters/db/outbox.ts";
import { addToBalances } from "../../shared/adapters/db/balances.ts";
import { lockDepositPositions, seenDepositsOfBlock, type DepositRecord } from "../../shared/adapters/db/deposits.ts";
import { decideConfirm, type ConfirmFacts } from "../../shared/domain/confirmations.ts";
import { classOf, type ChainTransfer } from "../../shared/domain/chain-transfers.ts";
import { depositNotification, type DepositFacts } from "../../shared/domain/notifications.ts";
import type { DepositChainCheck, RpcReceipt } from "./deposit-chain-check.ts";

/** deposits finalised per transaction */
export const FINAL_CHUNK = 1_000;
/**
 * chunk transactions at once: one on the lock's connection, one on a pooled
 * one (disjoint rows; balance rows are written in a fixed order, so two
 * chunks crediting the same addresses wait for each other, never deadlock)
 */
const COMMITS_IN_FLIGHT = 2;
/**
 * Pool connections a block's finaliser may wait for beyond its lock's own:
 * the next page's read, and the commit lanes after the first (which runs on
 * the lock's connection). The single-row paths under the lock take one at a
 * time. confirm-deposit takes the block lock with this many (namedLock).
 */
export const BLOCK_LOCK_EXTRA_CONNECTIONS = COMMITS_IN_FLIGHT;

/** The notification facts of a deposit row. */
export function depositFacts(row: DepositRecord, confirmations: number): DepositFacts {
  return {
    id: row.id,
    queueId: row.queueId,
    chain: row.chain,
    symbol: row.symbol,
    toAddress: row.to,
    fromAddress: row.from,
    amount: row.amount,
    txHash: row.txHash,
    logIndex: row.logIndex,
    blockNumber: row.blockNumber,
    confirmations,
  };
}

/** A final notification already exists for a deposit of the chunk: the chunk was undone. */
class FinalConflictError extends Error {
  override name = "FinalConflictError";
}

/** A row of the chunk is no longer where it was verified: redo the chunk under locks. */
class RowsMovedError extends Error {
  override name = "RowsMovedError";
}

export interface BlockFinalizerDeps {
  pool: Pool;
  checks: ReadonlyMap<string, DepositChainCheck>;
  metrics: Metrics;
  wakeOutbox: () => Promise<void>;
  decimalsOf: (chain: string, symbol: string) => number;
  now: () => number;
  /** the single-row path: finalise `row` alone (throws PermanentError if it already has a final) */
  finalizeOne: (row: DepositRecord, confirmations: number, log: Logger) => Promise<void>;
}

interface Page {
  due: DepositRecord[];
  lastId: string | null;
  full: boolean;
}

export function createBlockFinalizer(deps: BlockFinalizerDeps) {
  /**
   * Finalise `row` (found final from `base` and `receipt`) and its block's
   * due siblings; `conn` holds the block's lock and runs the transactions.
   * Returns how many deposits were finalised.
   */
  async function finalizeWithBlock(conn: Conn, row: DepositRecord, receipt: RpcReceipt, base: ConfirmFacts, confirmations: number, log: Logger): Promise<number> {
    const verify = verifier(row, receipt, base);
    const prepare = async (afterId: string): Promise<Page> => {
      const rows = await seenDepositsOfBlock(deps.pool, row.chain, { number: row.blockNumber, hash: row.blockHash }, deps.decimalsOf, { afterId, limit: FINAL_CHUNK });
      return { due: await verify(rows.filter((s) => s.id !== row.id)), lastId: rows.at(-1)?.id ?? null, full: rows.length === FINAL_CHUNK };
    };
    const started = performance.now();
    let next: Promise<Page> | null = prepare("0");
    let done = 0;
    let stop = false;
    let ownConflict = false;
    let failure: unknown = null;
    const inflight = new Set<Promise<void>>();
    const commit = async (chunk: DepositRecord[], first: boolean, lane: number) => {
      let finalized: DepositRecord[];
      try {
        finalized = await finalizeMany(lane === 0 ? conn : null, chunk, confirmations);
      } catch (e) {
        if (!(e instanceof FinalConflictError)) throw e;
        log.warn({ block: row.blockNumber, deposits: chunk.length }, "confirm-deposit: a deposit of the block already has a final notification; finalising one by one");
        stop = true;
        ownConflict ||= first;
        return;
      }
      done += finalized.length;
      log.debug({ block: row.blockNumber, finalized: done, ms: Math.round(performance.now() - started) }, "confirm-deposit: block chunk committed");
      for (const d of finalized) {
        deps.metrics.deposits.inc({ chain: d.chain, symbol: d.symbol, status: "1" });
        log.info({ deposit: d.id, confirmations, amount: d.amount, symbol: d.symbol, to: d.to }, "confirm-deposit: deposit confirmed and credited");
      }
      if (first && !finalized.some((d) => d.id === row.id)) log.info("confirm-deposit: deposit changed meanwhile; nothing to do");
      if (finalized.length > 0) await deps.wakeOutbox();
    };
    for (let first = true, k = 0; next && !stop; first = false) {
      const page: Page = await next;
      // the next page is read and verified while this one commits
      next = page.full && page.lastId ? prepare(page.lastId) : null;
      next?.catch(() => undefined); // awaited on the next turn; an early exit must not leave it unhandled
      const chunk = first ? [row, ...page.due] : page.due;
      if (chunk.length === 0) continue;
      while (inflight.size >= COMMITS_IN_FLIGHT) await Promise.race(inflight);
      if (stop) break;
      const p: Promise<void> = commit(chunk, first, k++ % COMMITS_IN_FLIGHT)
        .catch((e: unknown) => {
          failure ??= e;
          stop = true;
        })
        .finally(() => inflight.delete(p));
      inflight.add(p);
    }
    await Promise.all(inflight);
    if (failure) throw failure;
    if (ownConflict) {
      // as the single-row path always did: a PermanentError if the conflict is this row's own
      await deps.finalizeOne(row, confirmations, log);
      return done + 1;
    }
    if (done > 1) log.info({ block: row.blockNumber, finalized: done, ms: Math.round(performance.now() - started) }, "confirm-deposit: finalised the block's due deposits together");
    return done;
  }

  /** Siblings final by the same rule as `row`; receipts and parsed transfers cached per transaction. */
  function verifier(row: DepositRecord, ownReceipt: RpcReceipt, base: ConfirmFacts) {
    const check = deps.checks.get(row.chain)!;
    const receipts = new Map<string, Promise<RpcReceipt | null>>([[row.txHash, Promise.resolve(ownReceipt)]]);
    const transfers = new Map<string, Promise<Map<number, ChainTransfer[]>>>();
    const receiptOf = (h: string) => {
      let p = receipts.get(h);
      if (!p) receipts.set(h, (p = check.receipt(h)));
      return p;
    };
    const transfersAt = (s: DepositRecord, r: RpcReceipt) => {
      const key = `${s.txHash}|${classOf(s.logIndex)}`;
      let p = transfers.get(key);
      if (!p) {
        p = check.transfersOf(s.txHash, s.logIndex, r).then((list) => {
          const byIndex = new Map<number, ChainTransfer[]>();
          for (const t of list) byIndex.set(t.logIndex, [...(byIndex.get(t.logIndex) ?? []), t]);
          return byIndex;
        });
        transfers.set(key, p);
      }
      return p;
    };
    return async (siblings: DepositRecord[]): Promise<DepositRecord[]> => {
      // all of the page's receipts in flight at once (the provider batches them)
      await Promise.all([...new Set(siblings.map((s) => s.txHash))].map(receiptOf));
      const out: DepositRecord[] = [];
      for (const s of siblings) {
        const r = await receiptOf(s.txHash);
        let contentMatches: boolean | undefined;
        if (r && r.blockHash.toLowerCase() === s.blockHash && BigInt(r.status) === 1n) {
          const at = (await transfersAt(s, r)).get(s.logIndex) ?? [];
          contentMatches = at.some((t) => t.symbol === s.symbol && t.from === s.from && t.to === s.to && t.units === s.units);
        }
        const decision = decideConfirm({
          ...base,
          blockNumber: s.blockNumber,
          blockHash: s.blockHash,
          nonceUsedDeep: undefined,
          receipt: r ? { blockNumber: Number(BigInt(r.blockNumber)), blockHash: r.blockHash.toLowerCase(), status: Number(BigInt(r.status)) } : null,
          contentMatches,
        });
        if (decision.kind === "finalize") out.push(s);
      }
      return out;
    };
  }

  /** One transaction for a chunk (all of one block), on `on` or a pooled connection; redone under row locks if a row moved meanwhile. */
  async function finalizeMany(on: Conn | null, rows: DepositRecord[], confirmations: number): Promise<DepositRecord[]> {
    const tx = (fn: (conn: Conn) => Promise<DepositRecord[]>) => (on ? inTransactionOn(on, fn) : inTransaction(deps.pool, fn));
    try {
      return await tx((conn) => writeFinal(conn, rows, confirmations, false));
    } catch (e) {
      if (!(e instanceof RowsMovedError)) throw e;
      return tx((conn) => writeFinal(conn, rows, confirmations, true));
    }
  }

  async function writeFinal(conn: Conn, rows: DepositRecord[], confirmations: number, lockFirst: boolean): Promise<DepositRecord[]> {
    let ok = rows;
    if (lockFirst) {
      const positions = await lockDepositPositions(conn, rows.map((r) => r.id));
      ok = rows.filter((r) => {
        const at = positions.get(r.id);
        return at && at.state === "seen" && at.blockHash === r.blockHash && at.logIndex === r.logIndex;
      });
      if (ok.length === 0) return [];
    }
    const res = await conn.query(
      `UPDATE deposit SET state = 'confirmed', confirmations = ?, finalized_at = NOW(3), updated_at = NOW(3)
       WHERE id IN (${inList(ok.length)}) AND state = 'seen' AND block_hash = ?`,
      [confirmations, ...ok.map((r) => r.id), ok[0]!.blockHash],
    );
    if (affected(res) !== ok.length) {
      // under locks nothing can differ: that would be a bug, never a half-finalised chunk
      if (lockFirst) throw new Error(`finalising ${ok.length} locked deposits moved ${affected(res)}`);
      throw new RowsMovedError(`${ok.length - affected(res)} deposits of the chunk moved meanwhile`);
    }
    const nowMs = deps.now();
    // independent statements, pipelined on the connection. The status-1
    // notifications are the audit record of these finals (with each row's
    // finalized_at): no separate audit rows, one write per deposit fewer.
    const [, written] = await Promise.all([
      addToBalances(
        conn,
        ok.map((r) => ({ chain: r.chain, address: r.to, symbol: r.symbol, delta: r.amount })).sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.symbol < b.symbol ? -1 : 1)),
      ),
      insertNotifications(conn, ok.map((r) => depositNotification(depositFacts(r, confirmations), 1, nowMs))),
    ]);
    // A status-1 notification already there means one was credited before: undo the chunk.
    if (written !== ok.length) throw new FinalConflictError(`${ok.length - written} deposits of the chunk already have a final notification`);
    return ok;
  }

  return { finalizeWithBlock };
}

export type BlockFinalizer = ReturnType<typeof createBlockFinalizer>;
