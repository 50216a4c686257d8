/**
 * Notification bodies (SPEC §3 "Notifications"), built unsigned; the bridge
 * signs them when it publishes. Each has a stable `notification_id` (its
 * outbox dedupe key) that consumers can dedupe by, and that the outbox's
 * unique index uses to guarantee one notification per subject and status:
 * a deposit or transfer can never be reported final twice.
 */
import type { ErrorCode, RefusalCode } from "./errors.ts";
import { clip } from "./limits.ts";
import { toJsonNumber } from "./amount.ts";
import type { Echo, RequestKind } from "./requests.ts";

export type NotificationStatus = 0 | 1 | 2;

/** A row for the outbox. */
export interface NotificationDraft {
  kind: RequestKind;
  dedupeKey: string;
  queueId: string | null;
  address: string | null;
  status: NotificationStatus;
  body: Record<string, unknown>;
}

const nowS = (nowMs: number) => Math.floor(nowMs / 1000);

export interface DepositFacts {
  id: bigint | string;
  queueId: string | null;
  chain: string;
  symbol: string;
  toAddress: string;
  fromAddress: string;
  /** exact decimal text */
  amount: string;
  txHash: string;
  logIndex: number;
  blockNumber: bigint | number;
  confirmations: number;
}

export function depositNotification(d: DepositFacts, status: NotificationStatus, nowMs: number, error?: ErrorCode): NotificationDraft {
  const dedupeKey = `deposit-${d.id}-${status}`;
  return {
    kind: "topup",
    dedupeKey,
    queueId: d.queueId,
    address: d.toAddress,
    status,
    body: {
      notification_id: dedupeKey,
      queue_id: d.queueId,
      chain: d.chain,
      symbol: d.symbol,
      address: d.toAddress,
      from_address: d.fromAddress,
      amount: toJsonNumber(d.amount),
      amount_exact: d.amount,
      tx_hash: d.txHash,
      log_index: d.logIndex,
      block_height: Number(d.blockNumber),
      confirmations: d.confirmations,
      status,
      ...(error ? { error } : {}),
      timestamp: nowS(nowMs),
    },
  };
}

export interface TransferFacts {
  id: bigint | string;
  kind: "withdraw" | "pay";
  queueId: string;
  orderId: string;
  chain: string;
  symbol: string;
  /** the wallet actually used (or the requested one when nothing was sent) */
  fromAddress: string;
  toAddress: string;
  amount: string;
  txHash: string | null;
  blockNumber: bigint | number | null;
  confirmations: number;
}

export function transferNotification(
  t: TransferFacts,
  status: NotificationStatus,
  nowMs: number,
  error?: ErrorCode,
  detail?: string,
): NotificationDraft {
  const dedupeKey = `transfer-${t.id}-${status}`;
  return {
    kind: t.kind,
    dedupeKey,
    queueId: t.queueId,
    address: t.fromAddress,
    status,
    body: {
      notification_id: dedupeKey,
      queue_id: t.queueId,
      ...(t.kind === "pay" ? { order_id: t.orderId } : {}),
      chain: t.chain,
      symbol: t.symbol,
      from_address: t.fromAddress,
      to_address: t.toAddress,
      amount: toJsonNumber(t.amount),
      amount_exact: t.amount,
      tx_hash: t.txHash,
      block_height: t.blockNumber === null ? null : Number(t.blockNumber),
      confirmations: t.confirmations,
      status,
      ...(error ? { error } : {}),
      ...(detail ? { error_message: detail } : {}),
      timestamp: nowS(nowMs),
    },
  };
}

export function removeNotification(
  requestId: bigint | string,
  r: { queueId: string; msgType: string; chain: string | null; symbol: string | null; address: string | null },
  status: 0 | 1,
  nowMs: number,
  error?: ErrorCode,
  detail?: string,
): NotificationDraft {
  const dedupeKey = `remove-${requestId}`;
  return {
    kind: "remove",
    dedupeKey,
    queueId: r.queueId,
    address: r.address,
    status,
    body: {
      notification_id: dedupeKey,
      queue_id: r.queueId,
      msg_type: r.msgType,
      chain: r.chain,
      symbol: r.symbol,
      address: r.address,
      status,
      ...(error ? { error } : {}),
      ...(detail ? { error_message: detail } : {}),
      timestamp: nowS(nowMs),
    },
  };
}

/**
 * The answer to a refused request: status 0 with the code, echoing what the
 * message said (only well-formed fields: see requests.ts). A refused pay
 * gets one answer per order when its orders could be listed one by one
 * (`orderIds`), otherwise one answer for the whole request.
 */
export function rejectionNotifications(
  requestId: bigint | string,
  kind: RequestKind,
  echo: Echo,
  orderIds: string[] | null,
  code: RefusalCode,
  detail: string,
  nowMs: number,
): NotificationDraft[] {
  const make = (orderId: string | null, n: number): NotificationDraft => {
    const dedupeKey = orderId === null ? `reject-${requestId}` : `reject-${requestId}-${n}`;
    const body: Record<string, unknown> = {
      notification_id: dedupeKey,
      queue_id: echo.queue_id ?? null,
      ...echo,
      ...(orderId !== null ? { order_id: orderId } : {}),
      status: 0,
      error: code,
      error_message: clip(detail),
      timestamp: nowS(nowMs),
    };
    if (typeof echo.amount === "string") {
      // the refused amount is echoed as text only: it may not even be a number
      body.amount_exact = echo.amount;
      delete body.amount;
    }
    return {
      kind,
      dedupeKey,
      queueId: echo.queue_id ?? null,
      address: echo.address ?? echo.from_address ?? null,
      status: 0,
      body,
    };
  };
  if (kind === "pay" && orderIds && orderIds.length > 0) return orderIds.map((o, i) => make(o, i));
  return [make(null, 0)];
}

/**
 * The dedupe key of the `2` (pending) that must reach the business before
 * the notification keyed `dedupeKey`, or null when it follows nothing: a
 * transfer's or a deposit's final (`1` or `0`) follows its own `2`, if it
 * had one (SPEC §3: per id, `2` then one final). The outbox publisher holds
 * a final back while that `2` is pending in another process's hands.
 */
export function pendingPredecessorKey(dedupeKey: string): string | null {
  const m = /^(transfer|deposit)-(\d+)-[01]$/.exec(dedupeKey);
  return m ? `${m[1]}-${m[2]}-2` : null;
}
