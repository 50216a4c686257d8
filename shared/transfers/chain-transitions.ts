/**
 * The transfer's transitions once a transaction exists for it: signed (its
 * nonce and raw transaction persisted before anything is broadcast), sent,
 * replaced with a higher fee, mined, unmined (its block left the chain),
 * final (confirmed or reverted, with the book balances), dropped/reorged.
 *
 * As in ./transitions.ts: each runs in the caller's transaction, moves the
 * row with a guarded update, and writes its audit row and notification in
 * the same transaction. Exactly once rests here: at most one nonce per
 * transfer (every attempt shares it), and a final is written only by the
 * update that moves `mined` -> final on the block it was verified in.
 */
import type { Pool } from "mariadb";
import { affected, inList, placeholders, type Conn } from "../adapters/db/sql.ts";
import { insertAudit, insertNotifications, type AuditEntry } from "../adapters/db/outbox.ts";
import { addToBalance } from "../adapters/db/balances.ts";
import { formatUnits, trimDecimal } from "../domain/amount.ts";
import type { ErrorCode } from "../domain/errors.ts";
import type { Fees } from "../domain/fees.ts";
import type { Receipt } from "./chain-reads.ts";
import { nativeSwept } from "../adapters/delegation-calls.ts";
import { batchRaw, loadTransfers, transferNotes, type Queryable, type TransferRow } from "./rows.ts";
import { auditOf, type Step } from "./transitions.ts";

export interface SignedAttempt {
  row: TransferRow;
  nonce: bigint;
  hash: string;
  raw: string;
  gasLimit: bigint;
  /** its item in a batch call (BatchExecutor.pay) and the batch's size; absent: a transaction of its own */
  batch?: { index: number; size: number };
  /** audit rows of the decision to sign (the policy's) */
  audit?: { event: string; data: Record<string, unknown> }[];
}

/**
 * queued -> signed: each transfer's one transaction (its nonce and raw
 * bytes) persisted as a tx_attempt, BEFORE anything is broadcast: any retry
 * re-broadcasts these bytes instead of signing anew. All or nothing: the
 * rows are expected locked by the caller, so a transfer that is no longer
 * queued here is a bug and aborts the caller's transaction.
 */
export async function markSigned(conn: Conn, chain: string, from: string, attempts: SignedAttempt[], fees: Fees, step: Step & { fallback: boolean }): Promise<void> {
  if (attempts.length === 0) return;
  await conn.query(
    `INSERT INTO tx_attempt (transfer_id, chain, from_address, nonce, tx_hash, raw_tx, max_fee_per_gas, max_priority_fee_per_gas, gas_limit, state, batch_index, batch_size) VALUES ${placeholders(attempts.length, 12)}`,
    attempts.flatMap((a) => [a.row.id, chain, from, a.nonce, a.hash, batchRaw(a.raw, a.batch?.index), fees.maxFeePerGas, fees.maxPriorityFeePerGas, a.gasLimit, "signed", a.batch?.index ?? null, a.batch?.size ?? null]),
  );
  const ids = attempts.map((a) => a.row.id);
  const moved = await conn.query(
    `UPDATE transfer t JOIN tx_attempt a ON a.transfer_id = t.id
     SET t.state = 'signed', t.from_address = a.from_address, t.nonce = a.nonce, t.tx_hash = a.tx_hash, t.updated_at = NOW(3)
     WHERE t.id IN (${inList(ids.length)}) AND t.state = 'queued'`,
    ids,
  );
  // Never commit a half batch: the caller locked these rows, so this can only fail on a bug.
  if (affected(moved) !== attempts.length) throw new Error(`signed ${attempts.length} transfers but moved ${affected(moved)}`);
  await insertAudit(
    conn,
    attempts.flatMap((a) => [
      ...(a.audit ?? []).map((x) => auditOf(a.row, step.actor, x.event, x.data, a.row.requested_from)),
      auditOf(
        a.row,
        step.actor,
        "transfer.signed",
        {
          nonce: a.nonce,
          tx_hash: a.hash,
          max_fee_per_gas: fees.maxFeePerGas,
          max_priority_fee_per_gas: fees.maxPriorityFeePerGas,
          gas_limit: a.gasLimit,
          fallback: step.fallback,
          ...(a.batch ? { batch_index: a.batch.index, batch_size: a.batch.size } : {}),
        },
        from,
      ),
    ]),
  );
}

/**
 * signed -> sent (the node took the transaction), with the status-2
 * notification. Returns the rows of `ids` as they were and the ones that
 * moved here.
 */
export async function markSent(conn: Conn, ids: bigint[], step: Step): Promise<{ rows: TransferRow[]; moved: TransferRow[] }> {
  const rows = await loadTransfers(conn, ids, { forUpdate: true });
  const moved = rows.filter((r) => r.state === "signed");
  if (moved.length === 0) return { rows, moved };
  const mids = moved.map((r) => r.id);
  await Promise.all([
    conn.query(`UPDATE transfer SET state = 'sent', sent_at = NOW(3), updated_at = NOW(3) WHERE id IN (${inList(mids.length)}) AND state = 'signed'`, mids),
    conn.query(`UPDATE tx_attempt SET state = 'broadcast', broadcast_at = NOW(3) WHERE transfer_id IN (${inList(mids.length)}) AND state = 'signed'`, mids),
    insertNotifications(conn, moved.flatMap((r) => transferNotes(r, 2, step.nowMs))),
    insertAudit(conn, moved.map((r) => auditOf(r, step.actor, "transfer.sent", { tx_hash: r.tx_hash, nonce: r.nonce }))),
  ]);
  return { rows, moved };
}

/** A replacement the node took: its attempt is `broadcast` (the transfer itself is already sent). */
export async function markAttemptBroadcast(db: Queryable, chain: string, hash: string): Promise<void> {
  await db.query("UPDATE tx_attempt SET state = 'broadcast', broadcast_at = NOW(3) WHERE chain = ? AND tx_hash = ? AND state = 'signed'", [chain, hash]);
}

/**
 * A same-nonce replacement with higher fees, persisted before it is
 * broadcast, and only while the transfer is still `sent` and `latestId` is
 * still its latest attempt (a second replacer loses the race: false).
 */
export async function addReplacement(
  conn: Conn,
  t: TransferRow,
  latest: { id: bigint; tx_hash: string; gas_limit: string },
  next: { hash: string; raw: string },
  fees: Fees,
  step: Step,
): Promise<boolean> {
  const row = (await conn.query("SELECT state FROM transfer WHERE id = ? FOR UPDATE", [t.id])) as { state: string }[];
  if (row[0]?.state !== "sent") return false;
  const top = (await conn.query("SELECT MAX(id) AS id FROM tx_attempt WHERE transfer_id = ?", [t.id])) as { id: bigint }[];
  if (top[0]?.id !== latest.id) return false;
  await conn.query(
    `INSERT INTO tx_attempt (transfer_id, chain, from_address, nonce, tx_hash, raw_tx, max_fee_per_gas, max_priority_fee_per_gas, gas_limit, state)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'signed')`,
    [t.id, t.chain, t.from_address, t.nonce, next.hash, next.raw, fees.maxFeePerGas, fees.maxPriorityFeePerGas, latest.gas_limit],
  );
  await conn.query("UPDATE transfer SET tx_hash = ?, updated_at = NOW(3) WHERE id = ? AND state = 'sent'", [next.hash, t.id]);
  await insertAudit(conn, [replacedAudit(t, latest.tx_hash, next.hash, fees, step)]);
  return true;
}

/** The audit row of a replacement: same nonce, new transaction, its fees (and the batch's size for a batch). */
function replacedAudit(t: TransferRow, oldHash: string, newHash: string, fees: Fees, step: Step, extra: Record<string, unknown> = {}) {
  return auditOf(t, step.actor, "transfer.replaced", {
    nonce: t.nonce,
    old_tx_hash: oldHash,
    tx_hash: newHash,
    max_fee_per_gas: fees.maxFeePerGas,
    max_priority_fee_per_gas: fees.maxPriorityFeePerGas,
    ...extra,
  });
}

/**
 * The same for a batch transaction: every member transfer gets the
 * replacement as its new attempt (same nonce, same item, same batch), in
 * one transaction, and only while EVERY member is still `sent` with the
 * replaced transaction as its latest attempt: a second replacer, or a
 * member already seen mined, leaves everything as it is. Returns the
 * members replaced (none: raced).
 */
export async function addBatchReplacement(
  conn: Conn,
  chain: string,
  latest: { tx_hash: string; gas_limit: string },
  next: { hash: string; raw: string },
  fees: Fees,
  step: Step,
): Promise<bigint[]> {
  // the attempt rows of one hash are written once, together, and never change: read them once
  const members = (await conn.query("SELECT id, transfer_id, batch_index, batch_size FROM tx_attempt WHERE chain = ? AND tx_hash = ? ORDER BY transfer_id", [chain, latest.tx_hash])) as {
    id: bigint;
    transfer_id: bigint;
    batch_index: number | null;
    batch_size: number | null;
  }[];
  if (members.length === 0) return [];
  const ids = members.map((m) => m.transfer_id);
  const rows = await loadTransfers(conn, ids, { forUpdate: true });
  if (rows.length !== ids.length || rows.some((r) => r.state !== "sent")) return [];
  const tops = (await conn.query(`SELECT transfer_id, MAX(id) AS id FROM tx_attempt WHERE transfer_id IN (${inList(ids.length)}) GROUP BY transfer_id`, ids)) as { transfer_id: bigint; id: bigint }[];
  const latestIds = new Set(members.map((m) => m.id));
  const byId = new Map(rows.map((r) => [r.id, r]));
  if (tops.length !== ids.length || tops.some((t) => !latestIds.has(t.id))) return [];
  await conn.query(
    `INSERT INTO tx_attempt (transfer_id, chain, from_address, nonce, tx_hash, raw_tx, max_fee_per_gas, max_priority_fee_per_gas, gas_limit, state, batch_index, batch_size) VALUES ${placeholders(members.length, 12)}`,
    members.flatMap((m) => {
      const t = byId.get(m.transfer_id)!;
      return [t.id, chain, t.from_address, t.nonce, next.hash, batchRaw(next.raw, m.batch_index), fees.maxFeePerGas, fees.maxPriorityFeePerGas, latest.gas_limit, "signed", m.batch_index, m.batch_size];
    }),
  );
  await conn.query(`UPDATE transfer SET tx_hash = ?, updated_at = NOW(3) WHERE id IN (${inList(ids.length)}) AND state = 'sent'`, [next.hash, ...ids]);
  await insertAudit(
    conn,
    rows.map((t) => replacedAudit(t, latest.tx_hash, next.hash, fees, step, { batch_size: members.length })),
  );
  return ids;
}

export interface MinedAt {
  receipt: Receipt;
  /** the attempt whose receipt it is */
  attemptId: bigint;
  confirmations: number;
}

/** sent|mined -> mined in the receipt's block (a reorg may move it to another block); the other attempts are `replaced`. */
export async function markMined(conn: Conn, t: TransferRow, m: MinedAt, step: Step): Promise<boolean> {
  const r = m.receipt;
  const res = await conn.query(
    `UPDATE transfer SET state = 'mined', tx_hash = ?, block_number = ?, block_hash = ?, confirmations = ?, updated_at = NOW(3)
     WHERE id = ? AND state IN ('sent', 'mined')`,
    [r.hash, r.blockNumber, r.blockHash, m.confirmations, t.id],
  );
  if (affected(res) !== 1) return false;
  await Promise.all([
    // every attempt shares the nonce: the one mined is the winner, whichever was mined before
    conn.query("UPDATE tx_attempt SET state = IF(id = ?, 'mined', 'replaced') WHERE transfer_id = ? AND state IN ('signed', 'broadcast', 'mined', 'replaced')", [m.attemptId, t.id]),
    insertAudit(conn, [
      auditOf(t, step.actor, "transfer.mined", { tx_hash: r.hash, block: r.blockNumber, block_hash: r.blockHash, status: r.status, replaced: r.hash !== t.tx_hash }),
    ]),
  ]);
  return true;
}

/** The depth seen while waiting (mined, not final); no audit row: it changes nothing but a figure. */
export async function setConfirmations(db: Pool, t: TransferRow, confirmations: number): Promise<void> {
  if (confirmations === t.confirmations) return;
  await db.query("UPDATE transfer SET confirmations = ?, updated_at = NOW(3) WHERE id = ? AND state = 'mined'", [confirmations, t.id]);
}

/**
 * mined -> sent: the block it was mined in left the canonical chain. Its
 * signed transactions are followed (and re-broadcast) again; `unmined_at`
 * remembers that it was mined once (it ends `reorged`, not `dropped`, if
 * another transaction takes its nonce).
 */
export async function unmine(conn: Conn, t: TransferRow, step: Step): Promise<boolean> {
  const res = await conn.query(
    "UPDATE transfer SET state = 'sent', block_number = NULL, block_hash = NULL, confirmations = 0, unmined_at = NOW(3), updated_at = NOW(3) WHERE id = ? AND state = 'mined' AND block_hash <=> ?",
    [t.id, t.block_hash],
  );
  if (affected(res) !== 1) return false;
  await Promise.all([
    conn.query("UPDATE tx_attempt SET state = 'broadcast' WHERE transfer_id = ? AND state IN ('mined', 'replaced')", [t.id]),
    insertAudit(conn, [auditOf(t, step.actor, "transfer.unmined", { tx_hash: t.tx_hash, block_hash: t.block_hash })]),
  ]);
  return true;
}

export interface Final {
  receipt: Receipt;
  confirmations: number;
  reverted: boolean;
  nativeSymbol: string;
  nativeDecimals: number;
  /** the transfer's item in a batch transaction: it books its share of the fee (the first item the remainder) */
  batch?: { index: number; size: number } | null;
}

/** This transfer's part of a transaction's gas: all of it, or an equal share of a batch's (item 0 takes the remainder, so the shares add up exactly). */
export function gasShare(total: bigint, batch: { index: number; size: number } | null | undefined): bigint {
  if (!batch || batch.size <= 1) return total;
  const size = BigInt(batch.size);
  return total / size + (batch.index === 0 ? total % size : 0n);
}

/**
 * mined -> confirmed (status 1) or failed `reverted` (status 0), on the
 * block it was verified in, with the book balances: the fee and (unless it
 * reverted) the amount leave the sending wallet; an internal transfer's
 * amount reaches our own receiving wallet. Balances move exactly when the
 * final notification is written.
 */
export async function finalize(conn: Conn, t: TransferRow, f: Final, step: Step): Promise<boolean> {
  const r = f.receipt;
  // a batch's members share its fee: the wallet's book balance loses the transaction's fee once in all
  const feeWei = gasShare(r.gasUsed * r.effectiveGasPrice, f.batch);
  const gasUsed = gasShare(r.gasUsed, f.batch);
  const fee = formatUnits(feeWei, f.nativeDecimals);
  const code: ErrorCode | undefined = f.reverted ? "reverted" : undefined;
  const detail = f.reverted ? (f.batch ? "its call inside the batch transaction failed (the other payouts of the batch are reported on their own)" : "the transaction reverted on chain") : undefined;
  const res = await conn.query(
    `UPDATE transfer SET state = ?, error = ?, error_detail = ?, confirmations = ?, gas_used = ?, fee_paid = ?, finalized_at = NOW(3), updated_at = NOW(3)
     WHERE id = ? AND state = 'mined' AND block_hash = ?`,
    [f.reverted ? "failed" : "confirmed", code ?? null, detail ?? null, f.confirmations, gasUsed, fee, t.id, r.blockHash],
  );
  if (affected(res) !== 1) return false;
  const from = t.from_address!;
  if (feeWei > 0n) await addToBalance(conn, t.chain, from, f.nativeSymbol, `-${fee}`);
  if (!f.reverted) {
    const amount = trimDecimal(t.amount);
    // a sweep moves its deposit wallet's coins even when the collection wallet's transaction (the DepositSweeper) carries it
    const owner = t.kind === "sweep" ? t.requested_from : from;
    await addToBalance(conn, t.chain, owner, t.symbol, `-${amount}`);
    if (await creditsRecipient(conn, t)) await addToBalance(conn, t.chain, t.to_address, t.symbol, amount);
    if (t.kind === "sweep" && f.batch && owner !== from) {
      // ... and all the ETH the wallet held went along (DepositSweeper.pull), logged by the wallet as NativeSwept
      const wei = nativeSwept(r, [owner]).get(owner.toLowerCase()) ?? 0n;
      if (wei > 0n) {
        const eth = formatUnits(wei, f.nativeDecimals);
        await addToBalance(conn, t.chain, owner, f.nativeSymbol, `-${eth}`);
        await addToBalance(conn, t.chain, t.to_address, f.nativeSymbol, eth);
      }
    }
  }
  await insertNotifications(conn, transferNotes(t, f.reverted ? 0 : 1, step.nowMs, { txHash: r.hash, blockNumber: r.blockNumber, confirmations: f.confirmations }, code, detail));
  await insertAudit(conn, [
    auditOf(t, step.actor, f.reverted ? "transfer.reverted" : "transfer.confirmed", {
      tx_hash: r.hash,
      block: r.blockNumber,
      block_hash: r.blockHash,
      confirmations: f.confirmations,
      gas_used: gasUsed,
      fee,
      ...(f.batch ? { batch_index: f.batch.index, batch_size: f.batch.size, tx_gas_used: r.gasUsed } : {}),
    }),
  ]);
  return true;
}

/**
 * sent -> failed `dropped` (never mined) or `reorged` (mined once, its block
 * gone): another transaction took its nonce, deep enough that no reorg can
 * bring ours back. Its attempts are `dropped`.
 */
export async function drop(conn: Conn, t: TransferRow, code: "dropped" | "reorged", step: Step): Promise<boolean> {
  const detail =
    code === "dropped" ? "the transaction was never mined and its nonce was used by another transaction" : "the transaction left the chain and its nonce was used by another transaction";
  const res = await conn.query(
    "UPDATE transfer SET state = 'failed', error = ?, error_detail = ?, finalized_at = NOW(3), updated_at = NOW(3) WHERE id = ? AND state = 'sent'",
    [code, detail, t.id],
  );
  if (affected(res) !== 1) return false;
  const audit: AuditEntry[] = [auditOf(t, step.actor, `transfer.${code}`, { nonce: t.nonce })];
  await Promise.all([
    conn.query("UPDATE tx_attempt SET state = 'dropped' WHERE transfer_id = ? AND state IN ('signed', 'broadcast', 'replaced')", [t.id]),
    insertNotifications(conn, transferNotes(t, 0, step.nowMs, {}, code, detail)),
    insertAudit(conn, audit),
  ]);
  return true;
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
