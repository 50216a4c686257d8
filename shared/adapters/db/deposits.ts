/**
 * Deposit rows in raw SQL, inside the caller's transaction: read a block's
 * transactions' rows under lock, insert new deposits, move re-mined ones
 * (plans from shared/domain/deposit-match.ts). Used by chain-watch (block
 * commits, lookback) and confirmation (following a re-mined transaction).
 *
 * Every write is guarded by the row's current state, block hash and log
 * index, and the rows are locked first (`FOR UPDATE`), so a concurrent
 * writer makes the transaction fail and retry, never write on stale data.
 */
import { decimalToUnits, formatUnits } from "../../domain/amount.ts";
import type { DepositState, FoundDeposit, MoveStep, StoredDeposit } from "../../domain/deposit-match.ts";
import type { TxSender } from "../../domain/chain-transfers.ts";
import { affected, inList, type Conn } from "./sql.ts";

/** decimals of a chain's asset, by symbol */
export type DecimalsOf = (symbol: string) => number;

interface DepositDbRow {
  id: bigint;
  tx_hash: string;
  log_index: number;
  symbol: string;
  from_address: string;
  to_address: string;
  amount: string;
  block_number: bigint;
  block_hash: string;
  state: DepositState;
}

const COLUMNS = "id, tx_hash, log_index, symbol, from_address, to_address, amount, block_number, block_hash, state";

function toStored(r: DepositDbRow, decimalsOf: DecimalsOf): StoredDeposit {
  return {
    id: r.id.toString(),
    txHash: r.tx_hash,
    logIndex: Number(r.log_index),
    symbol: r.symbol,
    from: r.from_address,
    to: r.to_address,
    units: decimalToUnits(String(r.amount), decimalsOf(r.symbol)),
    blockNumber: Number(r.block_number),
    blockHash: r.block_hash,
    state: r.state,
  };
}

/** Every deposit row of these transactions, locked until the transaction ends. */
export async function lockDepositsOfTxs(conn: Conn, chain: string, txHashes: string[], decimalsOf: DecimalsOf): Promise<StoredDeposit[]> {
  const unique = [...new Set(txHashes)];
  if (unique.length === 0) return [];
  const rows = (await conn.query(
    `SELECT ${COLUMNS} FROM deposit WHERE chain = ? AND tx_hash IN (${inList(unique.length)}) FOR UPDATE`,
    [chain, ...unique],
  )) as DepositDbRow[];
  return rows.map((r) => toStored(r, decimalsOf));
}

export interface NewDeposit {
  found: FoundDeposit;
  queueId: string | null;
  /** the transaction's sender and nonce, when known */
  tx?: TxSender | null;
  confirmations: number;
}

/** Insert `seen` deposits; returns their ids in order. Amounts are exact decimal text. */
export async function insertDeposits(conn: Conn, chain: string, rows: NewDeposit[], decimalsOf: DecimalsOf): Promise<string[]> {
  if (rows.length === 0) return [];
  const res = (await conn.query(
    `INSERT INTO deposit (chain, symbol, tx_hash, log_index, block_number, block_hash, from_address, to_address, amount, queue_id, tx_from, tx_nonce, state, confirmations, updated_at)
     VALUES ${rows.map(() => "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'seen', ?, NOW(3))").join(", ")} RETURNING id`,
    rows.flatMap(({ found: f, queueId, tx, confirmations }) => [
      chain,
      f.symbol,
      f.txHash,
      f.logIndex,
      f.blockNumber,
      f.blockHash,
      f.from,
      f.to,
      formatUnits(f.units, decimalsOf(f.symbol)),
      queueId,
      tx?.from ?? null,
      tx?.nonce ?? null,
      confirmations,
    ]),
  )) as { id: bigint }[];
  return res.map((r) => r.id.toString());
}

export class StaleDepositError extends Error {
  override name = "StaleDepositError";
}

/**
 * Apply ordered move steps (see orderMoves). Only `seen` rows move; each
 * update is guarded by where the row is now, so a row someone else already
 * moved or finalised makes this throw and the transaction roll back.
 */
export async function applyMoveSteps(conn: Conn, steps: MoveStep[]): Promise<void> {
  for (const s of steps) {
    const res = await conn.query(
      s.final
        ? `UPDATE deposit SET log_index = ?, block_number = ?, block_hash = ?, confirmations = 0, updated_at = NOW(3)
           WHERE id = ? AND state = 'seen' AND log_index = ? AND block_hash = ?`
        : `UPDATE deposit SET log_index = ?, updated_at = NOW(3) WHERE id = ? AND state = 'seen' AND log_index = ? AND block_hash = ?`,
      s.final
        ? [s.toLogIndex, s.move.to.blockNumber, s.move.to.blockHash, s.id, s.fromLogIndex, s.move.fromBlockHash]
        : [s.toLogIndex, s.id, s.fromLogIndex, s.move.fromBlockHash],
    );
    if (affected(res) !== 1) throw new StaleDepositError(`deposit ${s.id} changed while it was being moved`);
  }
}

/** `seen` deposits above a block (the ones a rewind puts in doubt). */
export async function seenDepositsAbove(conn: Conn, chain: string, blockNumber: number): Promise<{ id: string; symbol: string; to: string; txHash: string }[]> {
  const rows = (await conn.query("SELECT id, symbol, to_address, tx_hash FROM deposit WHERE chain = ? AND state = 'seen' AND block_number > ?", [chain, blockNumber])) as {
    id: bigint;
    symbol: string;
    to_address: string;
    tx_hash: string;
  }[];
  return rows.map((r) => ({ id: r.id.toString(), symbol: r.symbol, to: r.to_address, txHash: r.tx_hash }));
}

export interface DepositRecord extends StoredDeposit {
  chain: string;
  /** exact decimal text, shortest form */
  amount: string;
  queueId: string | null;
  confirmations: number;
  /** the transaction's sender and nonce (null on rows stored before they were recorded) */
  tx: TxSender | null;
}

type RecordDbRow = DepositDbRow & { chain: string; queue_id: string | null; confirmations: number; tx_from: string | null; tx_nonce: bigint | null };
const RECORD_COLUMNS = `chain, queue_id, confirmations, tx_from, tx_nonce, ${COLUMNS}`;

function toRecord(r: RecordDbRow, decimalsOf: (chain: string, symbol: string) => number): DepositRecord {
  const decimals = decimalsOf(r.chain, r.symbol);
  const stored = toStored(r, () => decimals);
  return {
    ...stored,
    chain: r.chain,
    amount: formatUnits(stored.units, decimals),
    queueId: r.queue_id,
    confirmations: Number(r.confirmations),
    tx: r.tx_from !== null && r.tx_nonce !== null ? { from: r.tx_from, nonce: Number(r.tx_nonce) } : null,
  };
}

/** One deposit by id (optionally locked), or null. */
export async function readDeposit(conn: Conn | { query: Conn["query"] }, id: string, decimalsOf: (chain: string, symbol: string) => number, lock = false): Promise<DepositRecord | null> {
  const rows = (await conn.query(`SELECT ${RECORD_COLUMNS} FROM deposit WHERE id = ?${lock ? " FOR UPDATE" : ""}`, [id])) as RecordDbRow[];
  return rows[0] ? toRecord(rows[0], decimalsOf) : null;
}


/**
 * The `seen` deposits of one block in id order, a page at a time (a block's
 * deposits all become due at the same head, so confirmation finalises them
 * together). `afterId` "0" starts at the first.
 */
export async function seenDepositsOfBlock(
  conn: Conn | { query: Conn["query"] },
  chain: string,
  block: { number: number; hash: string },
  decimalsOf: (chain: string, symbol: string) => number,
  page: { afterId: string; limit: number },
): Promise<DepositRecord[]> {
  const rows = (await conn.query(
    `SELECT ${RECORD_COLUMNS} FROM deposit WHERE chain = ? AND state = 'seen' AND block_number = ? AND block_hash = ? AND id > ? ORDER BY id LIMIT ?`,
    [chain, block.number, block.hash, page.afterId, page.limit],
  )) as RecordDbRow[];
  return rows.map((r) => toRecord(r, decimalsOf));
}

/** Where these deposits are now (state, block hash, log index), locked until the transaction ends, in id order. */
export async function lockDepositPositions(conn: Conn, ids: string[]): Promise<Map<string, { state: DepositState; blockHash: string; logIndex: number }>> {
  const out = new Map<string, { state: DepositState; blockHash: string; logIndex: number }>();
  if (ids.length === 0) return out;
  const rows = (await conn.query(`SELECT id, state, block_hash, log_index FROM deposit WHERE id IN (${inList(ids.length)}) ORDER BY id FOR UPDATE`, ids)) as {
    id: bigint;
    state: DepositState;
    block_hash: string;
    log_index: number;
  }[];
  for (const r of rows) out.set(r.id.toString(), { state: r.state, blockHash: r.block_hash, logIndex: Number(r.log_index) });
  return out;
}
