/**
 * Reading transfer and tx_attempt rows, and turning a row into its
 * notification and audit facts. Raw SQL on the shared pool: DECIMAL comes
 * back as exact text, BIGINT as bigint (see shared/adapters/db/client.ts).
 */
import type { Pool } from "mariadb";
import type { Conn } from "../../shared/adapters/db/sql.ts";
import { trimDecimal } from "../../shared/domain/amount.ts";
import { transferNotification, type NotificationDraft, type NotificationStatus } from "../../shared/domain/notifications.ts";
import type { ErrorCode } from "../../shared/domain/errors.ts";

export type TransferKind = "withdraw" | "pay" | "sweep" | "gas_topup";
export type TransferState = "queued" | "awaiting_approval" | "signed" | "sent" | "mined" | "confirmed" | "failed" | "cancelled";

export interface TransferRow {
  id: bigint;
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
  nonce: bigint | null;
  tx_hash: string | null;
  block_number: bigint | null;
  block_hash: string | null;
  confirmations: number;
  approved_by: string | null;
}

export const TRANSFER_COLUMNS =
  "id, kind, queue_id, order_id, chain, symbol, requested_from, from_address, to_address, amount, state, error, nonce, tx_hash, block_number, block_hash, confirmations, approved_by";

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
  state: "signed" | "broadcast" | "mined" | "replaced" | "dropped";
  created_at: Date;
  broadcast_at: Date | null;
}

const ATTEMPT_COLUMNS =
  "id, transfer_id, from_address, nonce, tx_hash, raw_tx, max_fee_per_gas, max_priority_fee_per_gas, gas_limit, state, created_at, broadcast_at";

type Queryable = Pool | Conn;

export async function loadTransfer(db: Queryable, id: bigint, opts: { forUpdate?: boolean } = {}): Promise<TransferRow | null> {
  const rows = (await db.query(`SELECT ${TRANSFER_COLUMNS} FROM transfer WHERE id = ?${opts.forUpdate ? " FOR UPDATE" : ""}`, [id])) as TransferRow[];
  return rows[0] ?? null;
}

export async function loadTransfers(db: Queryable, ids: bigint[], opts: { forUpdate?: boolean } = {}): Promise<TransferRow[]> {
  if (ids.length === 0) return [];
  return (await db.query(
    `SELECT ${TRANSFER_COLUMNS} FROM transfer WHERE id IN (${ids.map(() => "?").join(",")}) ORDER BY id${opts.forUpdate ? " FOR UPDATE" : ""}`,
    ids,
  )) as TransferRow[];
}

/** Every attempt of the given transfers, oldest first (the last one per transfer is the latest). */
export async function loadAttempts(db: Queryable, transferIds: bigint[]): Promise<AttemptRow[]> {
  if (transferIds.length === 0) return [];
  return (await db.query(
    `SELECT ${ATTEMPT_COLUMNS} FROM tx_attempt WHERE transfer_id IN (${transferIds.map(() => "?").join(",")}) ORDER BY id`,
    transferIds,
  )) as AttemptRow[];
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
