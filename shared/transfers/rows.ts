/**
 * The transfer's states and rows: reading transfer and tx_attempt rows, and
 * turning a row into its notification. Raw SQL on the shared pool or the
 * caller's connection: DECIMAL comes back as exact text, BIGINT as bigint
 * (see shared/adapters/db/client.ts). Writes are in ./transitions.ts and
 * ./chain-transitions.ts, nowhere else.
 *
 *   queued ─▶ signed ─▶ sent ─▶ mined ─▶ confirmed
 *     │  ▲                │  ▲    │
 *     │  └─ approve ──┐   │  └────┘ unmine (its block left the chain)
 *     ├▶ awaiting_approval ─▶ failed (reject)
 *     ├▶ held ─▶ queued (release) | failed (reject, hold_s)
 *     ├▶ failed (a business refusal)            sent ─▶ failed (dropped, reorged)
 *     └▶ cancelled (remove; also from awaiting_approval and held)
 */
import type { Pool } from "mariadb";
import { inList, type Conn } from "../adapters/db/sql.ts";
import { trimDecimal } from "../domain/amount.ts";
import { transferNotification, type NotificationDraft, type NotificationStatus } from "../domain/notifications.ts";
import { PermanentError, type ErrorCode } from "../domain/errors.ts";

export type TransferKind = "withdraw" | "pay" | "sweep" | "gas_topup";
export type TransferState = "queued" | "awaiting_approval" | "held" | "signed" | "sent" | "mined" | "confirmed" | "failed" | "cancelled";

/** Nothing is on chain for these: they can still be cancelled, failed or held without a trace on chain. */
export const UNSIGNED_STATES = ["queued", "awaiting_approval", "held"] as const satisfies readonly TransferState[];
/** A transaction is out for these: only the chain decides how they end. */

export interface TransferRow {
  id: bigint;
  request_id: bigint | null;
  kind: TransferKind;
  queue_id: string;
  order_id: string;
  chain: string;
  symbol: string;
  requested_from: string;
  from_address: string | null;
  to_address: string;
  /** exact DECIMAL text as MySQL returns it ("50.000000000000000000") */
  amount: string;
  state: TransferState;
  error: string | null;
  error_detail: string | null;
  nonce: bigint | null;
  tx_hash: string | null;
  block_number: bigint | null;
  block_hash: string | null;
  confirmations: number;
  approved_by: string | null;
  held_at: Date | null;
  unmined_at: Date | null;
  /** when it first went `sent` (its first broadcast the node took) */
  sent_at: Date | null;
}

export const TRANSFER_COLUMNS =
  "id, request_id, kind, queue_id, order_id, chain, symbol, requested_from, from_address, to_address, amount, state, error, error_detail, nonce, tx_hash, block_number, block_hash, confirmations, approved_by, held_at, unmined_at, sent_at";

export type AttemptState = "signed" | "broadcast" | "mined" | "replaced" | "dropped";

export interface AttemptRow {
  id: bigint;
  transfer_id: bigint;
  from_address: string;
  nonce: bigint;
  tx_hash: string;
  raw_tx: string;
  max_fee_per_gas: string;
  max_priority_fee_per_gas: string;
  gas_limit: string;
  state: AttemptState;
  created_at: Date;
  broadcast_at: Date | null;
  /** the transfer's item in a batch call and the batch's size; null: a transaction of its own */
  batch_index: number | null;
  batch_size: number | null;
}

/**
 * A batch transaction's raw bytes are stored once, on its item 0's attempt
 * row; its other members store "" (see batchRaw) and read them from there:
 * same chain and tx_hash, one transaction (a 200-order batch is about 13 KB
 * of raw bytes: 2.6 MB when every member carried a copy).
 */
const ATTEMPT_COLUMNS =
  "id, transfer_id, from_address, nonce, tx_hash, " +
  "COALESCE(NULLIF(raw_tx, ''), (SELECT b.raw_tx FROM tx_attempt b WHERE b.chain = tx_attempt.chain AND b.tx_hash = tx_attempt.tx_hash AND b.batch_index = 0 LIMIT 1)) AS raw_tx, " +
  "max_fee_per_gas, max_priority_fee_per_gas, gas_limit, state, created_at, broadcast_at, batch_index, batch_size";

/** The raw_tx an attempt row stores: the bytes for a transaction of its own and for a batch's item 0, "" for the batch's other members. */
export const batchRaw = (raw: string, batchIndex: number | null | undefined): string => (batchIndex != null && batchIndex > 0 ? "" : raw);

export type Queryable = Pool | Conn;

export async function loadTransfer(db: Queryable, id: bigint, opts: { forUpdate?: boolean } = {}): Promise<TransferRow | null> {
  const rows = (await db.query(`SELECT ${TRANSFER_COLUMNS} FROM transfer WHERE id = ?${opts.forUpdate ? " FOR UPDATE" : ""}`, [id])) as TransferRow[];
  return rows[0] ?? null;
}

/**
 * A transfer row read the way loadTransfer reads it, with the reads that
 * concurrent callers ask for in one turn of the event loop made as one
 * `id IN (...)` query: the send-transfer jobs of a drained wallet come back
 * in crowds (dozens per worker at once), and one query each cost a MySQL
 * round trip and a socket write apiece. Each read still starts after it was
 * asked for, so it sees every commit that preceded the call, as a read of
 * its own would. A failed query fails every read it carried.
 */
export function coalescedTransferLoader(db: Queryable, maxPerQuery = 500): (id: bigint) => Promise<TransferRow | null> {
  let pending = new Map<bigint, { resolve: (r: TransferRow | null) => void; reject: (e: unknown) => void }[]>();
  const flush = async () => {
    const batch = pending;
    pending = new Map();
    const ids = [...batch.keys()];
    for (let i = 0; i < ids.length; i += maxPerQuery) {
      const chunk = ids.slice(i, i + maxPerQuery);
      try {
        const rows = new Map((await loadTransfers(db, chunk)).map((r) => [r.id, r]));
        for (const id of chunk) for (const w of batch.get(id)!) w.resolve(rows.get(id) ?? null);
      } catch (e) {
        for (const id of chunk) for (const w of batch.get(id)!) w.reject(e);
      }
    }
  };
  return (id) =>
    new Promise((resolve, reject) => {
      if (pending.size === 0) setImmediate(() => void flush());
      const waiting = pending.get(id);
      if (waiting) waiting.push({ resolve, reject });
      else pending.set(id, [{ resolve, reject }]);
    });
}

/** These transfers (in id order), optionally only in `states`, optionally locked. */
export async function loadTransfers(db: Queryable, ids: bigint[], opts: { states?: readonly TransferState[]; forUpdate?: boolean } = {}): Promise<TransferRow[]> {
  if (ids.length === 0) return [];
  const states = opts.states ? ` AND state IN (${inList(opts.states.length)})` : "";
  return (await db.query(`SELECT ${TRANSFER_COLUMNS} FROM transfer WHERE id IN (${inList(ids.length)})${states} ORDER BY id${opts.forUpdate ? " FOR UPDATE" : ""}`, [
    ...ids,
    ...(opts.states ?? []),
  ])) as TransferRow[];
}

/** Every attempt of the given transfers, oldest first (the last one per transfer is the latest). */
export async function loadAttempts(db: Queryable, transferIds: bigint[]): Promise<AttemptRow[]> {
  if (transferIds.length === 0) return [];
  return (await db.query(`SELECT ${ATTEMPT_COLUMNS} FROM tx_attempt WHERE transfer_id IN (${inList(transferIds.length)}) ORDER BY id`, transferIds)) as AttemptRow[];
}

/** The queued transfers requested from one address, oldest first, leaving out `exclude`. */
export async function queuedFrom(db: Queryable, chain: string, address: string, limit: number, exclude: bigint[] = []): Promise<TransferRow[]> {
  return (await db.query(
    `SELECT ${TRANSFER_COLUMNS} FROM transfer WHERE chain = ? AND requested_from = ? AND state = 'queued'${exclude.length ? ` AND id NOT IN (${inList(exclude.length)})` : ""} ORDER BY id LIMIT ?`,
    [chain, address, ...exclude, limit],
  )) as TransferRow[];
}

/** Transfers signed by `address` but not yet taken by the node, in nonce order, with their latest attempt. */
export async function signedFrom(db: Queryable, chain: string, address: string): Promise<{ transferId: bigint; nonce: bigint; hash: string; raw: string }[]> {
  const rows = (await db.query("SELECT id FROM transfer WHERE chain = ? AND from_address = ? AND state = 'signed' ORDER BY nonce", [chain, address])) as { id: bigint }[];
  const attempts = await loadAttempts(db, rows.map((r) => r.id));
  const latest = new Map(attempts.map((a) => [a.transfer_id, a]));
  return rows.flatMap((r) => {
    const a = latest.get(r.id);
    return a ? [{ transferId: r.id, nonce: a.nonce, hash: a.tx_hash, raw: a.raw_tx }] : [];
  });
}

/** Held transfers of a chain whose hold began more than `holdS` seconds ago (oldest first). */
export async function expiredHolds(db: Queryable, chain: string, holdS: number, limit: number): Promise<TransferRow[]> {
  return (await db.query(
    `SELECT ${TRANSFER_COLUMNS} FROM transfer WHERE state = 'held' AND chain = ? AND held_at < NOW(3) - INTERVAL ? SECOND ORDER BY held_at LIMIT ?`,
    [chain, holdS, limit],
  )) as TransferRow[];
}

export interface TransferSelector {
  queueId: string;
  orderId?: string | undefined;
  kind?: string | undefined;
}

/** The transfers of one request id (one per order of a pay), in id order, of the given kinds. */
export async function transfersOfRequest(db: Queryable, sel: TransferSelector, kinds: readonly TransferKind[]): Promise<TransferRow[]> {
  const wanted = sel.kind ? [sel.kind] : [...kinds];
  const args: unknown[] = [sel.queueId, ...wanted];
  let where = `queue_id = ? AND kind IN (${inList(wanted.length)})`;
  if (sel.orderId !== undefined) {
    where += " AND order_id = ?";
    args.push(sel.orderId);
  }
  return (await db.query(`SELECT ${TRANSFER_COLUMNS} FROM transfer WHERE ${where} ORDER BY id`, args)) as TransferRow[];
}

/** Transfers of the business (withdraw/pay) are reported; sweeps and gas top-ups are internal. */
export function isBusinessKind(kind: TransferKind): kind is "withdraw" | "pay" {
  return kind === "withdraw" || kind === "pay";
}

export interface TransferUpdate {
  fromAddress?: string | null;
  txHash?: string | null;
  blockNumber?: bigint | null;
  confirmations?: number;
}

/** The notification for a transfer's new status (none for internal kinds). */
export function transferNotes(
  t: TransferRow,
  status: NotificationStatus,
  nowMs: number,
  over: TransferUpdate = {},
  error?: ErrorCode,
  detail?: string,
): NotificationDraft[] {
  if (!isBusinessKind(t.kind)) return [];
  return [
    transferNotification(
      {
        id: t.id,
        kind: t.kind,
        queueId: t.queue_id,
        orderId: t.order_id,
        chain: t.chain,
        symbol: t.symbol,
        fromAddress: over.fromAddress ?? t.from_address ?? t.requested_from,
        toAddress: t.to_address,
        amount: trimDecimal(t.amount),
        txHash: over.txHash !== undefined ? over.txHash : t.tx_hash,
        blockNumber: over.blockNumber !== undefined ? over.blockNumber : t.block_number,
        confirmations: over.confirmations ?? t.confirmations,
      },
      status,
      nowMs,
      error,
      detail,
    ),
  ];
}

/** A dashboard-readable label for jobs: kind and queue_id/order_id. */
export function transferLabel(t: Pick<TransferRow, "kind" | "queue_id" | "order_id">): string {
  return t.order_id ? `${t.kind} ${t.queue_id}/${t.order_id}`.slice(0, 200) : `${t.kind} ${t.queue_id}`.slice(0, 200);
}

/** The columns transferJob reads, for SELECTs that only feed jobs. */
export const PAYMENT_COLUMNS = "id, kind, queue_id, order_id, chain, symbol, amount, requested_from, to_address";
export type PaymentFacts = Pick<TransferRow, "id" | "kind" | "queue_id" | "order_id" | "chain" | "symbol" | "amount" | "requested_from" | "to_address">;

/**
 * A transfer job's payload: its row id (what the processor trusts: it
 * re-reads the row), a readable name, and the payment it is about as the
 * operator reads it on the dashboard (SPEC §7). Display only, never used to
 * move money, never a secret.
 */
export function transferJob(t: PaymentFacts): { transferId: string; label: string; payment: Record<string, string> } {
  const payment: Record<string, string> = { kind: t.kind, queue_id: t.queue_id };
  if (t.order_id) payment.order_id = t.order_id;
  Object.assign(payment, { chain: t.chain, asset: t.symbol, amount: trimDecimal(t.amount), from: t.requested_from, to: t.to_address });
  // the name says what it pays: "withdraw q-17: 12.5 USDT to 0x5aeda56215…"
  const label = `${transferLabel(t)}: ${payment.amount} ${t.symbol} to ${t.to_address.slice(0, 12)}…`.slice(0, 200);
  return { transferId: t.id.toString(), label, payment };
}

/**
 * What a job of a transfer that ended `status 0` fails with: business-level
 * failures are never green completions on the dashboard (SPEC §7). The
 * error is permanent (no retry); a Retry from the board runs the job again,
 * which re-reads the row and fails the same way: a failed transfer is never
 * sent again.
 */
export function endedError(t: Pick<TransferRow, "id" | "kind" | "queue_id" | "order_id" | "error" | "error_detail">): PermanentError {
  const code = (t.error as ErrorCode | null) ?? "internal";
  return new PermanentError(code, `${transferLabel(t)} ended status 0 (${code}${t.error_detail ? `: ${t.error_detail}` : ""}); a failed transfer is never sent again`);
}
