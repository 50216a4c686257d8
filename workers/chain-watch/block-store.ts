/**
 * chain-watch's MySQL side: the cursor, the window of recent canonical
 * blocks, and committing a scanned block's deposits.
 *
 * Correctness does not rest on the Redis leader lease: every write starts
 * by locking the cursor row and checking it is where this scanner thinks it
 * is, and the cursor moves with a guarded update
 * (`WHERE chain=? AND block_number=? AND block_hash=?`). Two scanners that
 * overlap therefore serialise on that row; the loser's transaction rolls
 * back with CursorMovedError and it re-reads the cursor. Deposit inserts
 * are planned against the locked rows of the same transactions, and the
 * unique (chain, tx_hash, log_index) key backs that up.
 */
import type { Pool } from "mariadb";
import { affected, inList, inTransaction, placeholders, type Conn } from "../../shared/adapters/db/sql.ts";
import { PAYMENT_COLUMNS, transferJob, type PaymentFacts } from "../../shared/transfers/rows.ts";

type TransferJob = ReturnType<typeof transferJob>;
import { insertAudit, insertNotifications, type AuditEntry } from "../../shared/adapters/db/outbox.ts";
import { applyMoveSteps, insertDeposits, lockDepositsOfTxs, seenDepositsAbove, type DecimalsOf } from "../../shared/adapters/db/deposits.ts";
import { planDeposits, type Conflict, type FoundDeposit, type StoredDeposit } from "../../shared/domain/deposit-match.ts";
import { depositNotification } from "../../shared/domain/notifications.ts";
import { formatUnits } from "../../shared/domain/amount.ts";
import type { TxSender } from "../../shared/domain/chain-transfers.ts";
import type { BlockRef } from "../../shared/domain/reorg.ts";

export class CursorMovedError extends Error {
  override name = "CursorMovedError";
}

/** A found deposit with the watch that makes it ours, and its transaction's sender and nonce. */
export interface MatchedDeposit extends FoundDeposit {
  queueId: string | null;
  tx: TxSender | null;
}

export interface ScannedBlock {
  number: number;
  hash: string;
  parentHash: string;
  deposits: MatchedDeposit[];
}

export interface DepositWrite {
  /** new deposits, with their row ids */
  inserted: { id: string; deposit: MatchedDeposit }[];
  /** rows that followed their transaction into this block */
  moved: { id: string; deposit: MatchedDeposit }[];
  conflicts: Conflict[];
}

const ACTOR = "chain-watch";
/** rows per IN (...) of the watched-address lookup */
const LOOKUP_CHUNK = 2_000;

export interface BlockStoreOptions {
  pool: Pool;
  chain: string;
  decimalsOf: DecimalsOf;
  /** how many recent blocks chain_block keeps */
  window: number;
  now?: () => number;
}

export function createBlockStore(opts: BlockStoreOptions) {
  const { pool, chain, decimalsOf } = opts;
  const now = opts.now ?? Date.now;

  async function lockCursor(conn: Conn, expected: BlockRef): Promise<void> {
    const rows = (await conn.query("SELECT block_number, block_hash FROM chain_cursor WHERE chain = ? FOR UPDATE", [chain])) as { block_number: bigint; block_hash: string }[];
    const c = rows[0];
    if (!c || Number(c.block_number) !== expected.number || c.block_hash !== expected.hash) {
      throw new CursorMovedError(`cursor of ${chain} is not at ${expected.number} ${expected.hash}`);
    }
  }

  async function moveCursor(conn: Conn, from: BlockRef, to: BlockRef): Promise<void> {
    const res = await conn.query(
      "UPDATE chain_cursor SET block_number = ?, block_hash = ?, updated_at = NOW(3) WHERE chain = ? AND block_number = ? AND block_hash = ?",
      [to.number, to.hash, chain, from.number, from.hash],
    );
    if (affected(res) !== 1) throw new CursorMovedError(`cursor of ${chain} moved under us`);
  }

  /**
   * Plan and write deposits found in canonical blocks: follow re-mined
   * rows, insert new ones with their status-2 notification, audit all.
   */
  async function writeDeposits(conn: Conn, found: MatchedDeposit[], head: number, locked?: StoredDeposit[]): Promise<DepositWrite> {
    const out: DepositWrite = { inserted: [], moved: [], conflicts: [] };
    if (found.length === 0) return out;
    const stored = locked ?? (await lockDepositsOfTxs(conn, chain, found.map((f) => f.txHash), decimalsOf));
    const plan = planDeposits(found, stored);
    const byFound = new Map<FoundDeposit, MatchedDeposit>(found.map((f) => [f, f]));
    await applyMoveSteps(conn, plan.steps);
    const ids = await insertDeposits(
      conn,
      chain,
      plan.inserts.map((f) => ({ found: f, queueId: byFound.get(f)!.queueId, tx: byFound.get(f)!.tx, confirmations: Math.max(head - f.blockNumber, 0) })),
      decimalsOf,
    );
    const nowMs = now();
    const audit: AuditEntry[] = [];
    // A new deposit's status-2 notification is its audit record (history shows it with the row): no
    // separate audit row, one write per deposit fewer. Moves and conflicts are audited below.
    const notes = plan.inserts.map((f, i) => {
      const d = byFound.get(f)!;
      const id = ids[i]!;
      out.inserted.push({ id, deposit: d });
      const amount = formatUnits(d.units, decimalsOf(d.symbol));
      return depositNotification(
        { id, queueId: d.queueId, chain, symbol: d.symbol, toAddress: d.to, fromAddress: d.from, amount, txHash: d.txHash, logIndex: d.logIndex, blockNumber: d.blockNumber, confirmations: Math.max(head - d.blockNumber, 0) },
        2,
        nowMs,
      );
    });
    for (const m of plan.moves) {
      const d = byFound.get(m.to)!;
      out.moved.push({ id: m.id, deposit: d });
      audit.push({
        actor: ACTOR,
        event: "deposit.followed",
        address: d.to,
        subjectType: "deposit",
        subjectId: m.id,
        data: { tx_hash: d.txHash, from_block_hash: m.fromBlockHash, from_log_index: m.fromLogIndex, block: d.blockNumber, block_hash: d.blockHash, log_index: d.logIndex },
      });
    }
    for (const c of plan.conflicts) {
      out.conflicts.push(c);
      audit.push({
        actor: ACTOR,
        event: "deposit.conflict",
        address: c.found.to,
        subjectType: "deposit",
        subjectId: c.storedId,
        data: { reason: c.reason, tx_hash: c.found.txHash, log_index: c.found.logIndex, block: c.found.blockNumber, block_hash: c.found.blockHash },
      });
    }
    // independent statements: pipelined on the connection (one round trip, not two)
    await Promise.all([insertNotifications(conn, notes), insertAudit(conn, audit)]);
    return out;
  }

  return {
    async readCursor(): Promise<BlockRef | null> {
      const rows = (await pool.query("SELECT block_number, block_hash FROM chain_cursor WHERE chain = ?", [chain])) as { block_number: bigint; block_hash: string }[];
      return rows[0] ? { number: Number(rows[0].block_number), hash: rows[0].block_hash } : null;
    },

    /** Place a fresh cursor (no-op when another process placed one first); returns the stored one. */
    async initCursor(at: BlockRef, parentHash: string): Promise<BlockRef> {
      await inTransaction(pool, async (conn) => {
        await conn.query("INSERT IGNORE INTO chain_cursor (chain, block_number, block_hash, updated_at) VALUES (?, ?, ?, NOW(3))", [chain, at.number, at.hash]);
        await conn.query("INSERT IGNORE INTO chain_block (chain, number, hash, parent_hash) VALUES (?, ?, ?, ?)", [chain, at.number, at.hash, parentHash]);
      });
      const c = await this.readCursor();
      if (!c) throw new Error(`cursor of ${chain} vanished`);
      return c;
    },

    /** Recent stored blocks at or below `top`, newest first. */
    async recentBlocks(top: number, limit: number): Promise<BlockRef[]> {
      const rows = (await pool.query("SELECT number, hash FROM chain_block WHERE chain = ? AND number <= ? ORDER BY number DESC LIMIT ?", [chain, top, limit])) as {
        number: bigint;
        hash: string;
      }[];
      return rows.map((r) => ({ number: Number(r.number), hash: r.hash }));
    },

    /**
     * One `seen` deposit per block in (after, upTo]: the blocks whose
     * deposits became due when the head reached upTo + confirm_height.
     */
    async firstSeenOfBlocks(after: number, upTo: number): Promise<{ id: string; symbol: string; to: string; txHash: string }[]> {
      const rows = (await pool.query(
        `SELECT d.id, d.symbol, d.to_address, d.tx_hash FROM deposit d JOIN (
           SELECT MIN(id) AS id FROM deposit WHERE chain = ? AND state = 'seen' AND block_number > ? AND block_number <= ? GROUP BY block_hash
         ) f ON f.id = d.id`,
        [chain, after, upTo],
      )) as { id: bigint; symbol: string; to_address: string; tx_hash: string }[];
      return rows.map((r) => ({ id: r.id.toString(), symbol: r.symbol, to: r.to_address, txHash: r.tx_hash }));
    },

    /** Active watches among these recipients: key `${symbol}|${address}` -> queue_id. */
    async watchedAmong(addresses: string[]): Promise<Map<string, string | null>> {
      const out = new Map<string, string | null>();
      for (let i = 0; i < addresses.length; i += LOOKUP_CHUNK) {
        const chunk = addresses.slice(i, i + LOOKUP_CHUNK);
        const rows = (await pool.query(
          `SELECT symbol, address, queue_id FROM watched_address WHERE chain = ? AND address IN (${inList(chunk.length)}) AND active = 1`,
          [chain, ...chunk],
        )) as { symbol: string; address: string; queue_id: string | null }[];
        for (const r of rows) out.set(`${r.symbol}|${r.address}`, r.queue_id);
      }
      return out;
    },

    /** Our transfers still `sent` with one of these transactions (any attempt): mined now, their confirmation can look at once. */
    async sentTransfersAmong(txHashes: string[]): Promise<TransferJob[]> {
      if (txHashes.length === 0) return [];
      const rows = (await pool.query(
        `SELECT ${PAYMENT_COLUMNS.split(", ").map((c) => `t.${c}`).join(", ")} FROM tx_attempt a JOIN transfer t ON t.id = a.transfer_id
         WHERE a.chain = ? AND a.tx_hash IN (${inList(txHashes.length)}) AND t.state = 'sent'`,
        [chain, ...txHashes],
      )) as PaymentFacts[];
      return rows.map(transferJob);
    },

    /** Our transfers mined in a block in (after, upTo]: due once the head reaches upTo + confirm_height. */
    async minedTransfersOfBlocks(after: number, upTo: number): Promise<TransferJob[]> {
      const rows = (await pool.query(`SELECT ${PAYMENT_COLUMNS} FROM transfer WHERE chain = ? AND state = 'mined' AND block_number > ? AND block_number <= ?`, [
        chain,
        after,
        upTo,
      ])) as PaymentFacts[];
      return rows.map(transferJob);
    },

    /** Which of these transaction hashes are gas top-ups the gateway signed (any attempt, replacements included). */
    async ownGasTopups(txHashes: string[]): Promise<Set<string>> {
      if (txHashes.length === 0) return new Set();
      const rows = (await pool.query(
        `SELECT a.tx_hash FROM tx_attempt a JOIN transfer t ON t.id = a.transfer_id
         WHERE a.chain = ? AND a.tx_hash IN (${inList(txHashes.length)}) AND t.kind = 'gas_topup'`,
        [chain, ...txHashes.map((h) => h.toLowerCase())],
      )) as { tx_hash: string }[];
      return new Set(rows.map((r) => r.tx_hash));
    },

    /**
     * Consecutive blocks (each the parent of the next, the first a child of
     * the cursor), one transaction: their deposits and notifications, the
     * blocks in the window (older ones pruned) and the cursor onto the last.
     * Nothing is skipped and nothing half-written: the cursor moves over
     * exactly the blocks whose deposits commit with it.
     */
    async commitBlocks(cursor: BlockRef, blocks: ScannedBlock[], head: number): Promise<DepositWrite> {
      const last = blocks.at(-1);
      if (!last) throw new Error("commitBlocks needs at least one block");
      const found = blocks.flatMap((b) => b.deposits);
      return inTransaction(pool, async (conn) => {
        // pipelined: the cursor check and the deposit-row locks go out together
        const [, stored] = await Promise.all([lockCursor(conn, cursor), lockDepositsOfTxs(conn, chain, found.map((f) => f.txHash), decimalsOf)]);
        const written = await writeDeposits(conn, found, head, stored);
        // pipelined; any failure rolls the whole transaction back
        await Promise.all([
          conn.query(
            `INSERT INTO chain_block (chain, number, hash, parent_hash) VALUES ${placeholders(blocks.length, 4)}
             ON DUPLICATE KEY UPDATE hash = VALUES(hash), parent_hash = VALUES(parent_hash), created_at = NOW(3)`,
            blocks.flatMap((b) => [chain, b.number, b.hash, b.parentHash]),
          ),
          conn.query("DELETE FROM chain_block WHERE chain = ? AND number <= ?", [chain, last.number - opts.window]),
          moveCursor(conn, cursor, { number: last.number, hash: last.hash }),
        ]);
        return written;
      });
    },

    /** One block, one transaction (see commitBlocks). */
    async commitBlock(cursor: BlockRef, block: ScannedBlock, head: number): Promise<DepositWrite> {
      return this.commitBlocks(cursor, [block], head);
    },

    /**
     * Rewind to the common ancestor after a reorg: forget the abandoned
     * blocks, move the cursor back, and return the `seen` deposits above it
     * (to be re-checked by confirmation at once).
     */
    async rewind(cursor: BlockRef, ancestor: BlockRef & { parentHash?: string }): Promise<{ id: string; symbol: string; to: string; txHash: string }[]> {
      return inTransaction(pool, async (conn) => {
        await lockCursor(conn, cursor);
        await conn.query("DELETE FROM chain_block WHERE chain = ? AND number > ?", [chain, ancestor.number]);
        if (ancestor.parentHash) {
          // an ancestor below the window (a reorg deeper than it): keep it as the new base
          await conn.query(
            "INSERT INTO chain_block (chain, number, hash, parent_hash) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE hash = VALUES(hash), parent_hash = VALUES(parent_hash)",
            [chain, ancestor.number, ancestor.hash, ancestor.parentHash],
          );
        }
        await moveCursor(conn, cursor, { number: ancestor.number, hash: ancestor.hash });
        const doubted = await seenDepositsAbove(conn, chain, ancestor.number);
        await insertAudit(conn, [
          {
            actor: ACTOR,
            event: "chain.reorg",
            data: { chain, from_block: cursor.number, from_hash: cursor.hash, to_block: ancestor.number, to_hash: ancestor.hash, deposits_to_recheck: doubted.map((d) => d.id) },
          },
        ]);
        return doubted;
      });
    },

    /**
     * Lookback: deposits found by re-fetching logs of blocks already scanned.
     * Only blocks still in the window with the same hash count (a block
     * replaced meanwhile is the main loop's business).
     */
    async commitLookback(cursor: BlockRef, blocks: { ref: BlockRef; deposits: MatchedDeposit[] }[], head: number): Promise<DepositWrite> {
      return inTransaction(pool, async (conn) => {
        await lockCursor(conn, cursor);
        const numbers = blocks.map((b) => b.ref.number);
        const kept = new Set<string>();
        if (numbers.length > 0) {
          const rows = (await conn.query(`SELECT number, hash FROM chain_block WHERE chain = ? AND number IN (${inList(numbers.length)})`, [chain, ...numbers])) as {
            number: bigint;
            hash: string;
          }[];
          for (const r of rows) kept.add(`${Number(r.number)}|${r.hash}`);
        }
        const found = blocks.filter((b) => kept.has(`${b.ref.number}|${b.ref.hash}`)).flatMap((b) => b.deposits);
        return writeDeposits(conn, found, head);
      });
    },
  };
}

export type BlockStore = ReturnType<typeof createBlockStore>;
