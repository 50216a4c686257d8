/**
 * The transfer's transitions while nothing is on chain for it: created
 * (queued), held for an operator's approval or for a cause an operator can
 * fix, released, approved, rejected, failed, cancelled. The on-chain ones
 * (signed, sent, mined, unmined, final, dropped) are in ./chain-transitions.ts.
 *
 * Every transition runs in the CALLER's transaction (`conn`) and writes, in
 * it, the guarded update (`WHERE id = ? AND state IN (...)`), its audit row
 * and, for withdraw/pay, its notification: the three commit together or not
 * at all. A row that moved meanwhile is left alone and reported as not moved
 * (the caller re-reads, or tells its user). Counters and the outbox wake-up
 * are the caller's business, after its commit.
 *
 * @example
 * await inTransaction(pool, (conn) => fail(conn, [{ row, code: "insufficient_balance", detail }], { actor: "transfer-sender", nowMs: Date.now() }));
 */
import { affected, inList, type Conn } from "../adapters/db/sql.ts";
import { insertAudit, insertNotifications, type AuditEntry } from "../adapters/db/outbox.ts";
import type { ErrorCode } from "../domain/errors.ts";
import { TRANSFER_COLUMNS, UNSIGNED_STATES, transferNotes, type TransferKind, type TransferRow } from "./rows.ts";

/** Who acts and when (the notification's timestamp). */
export interface Step {
  actor: string;
  nowMs: number;
}

/** An audit entry about this transfer (queue_id, order_id, address and subject filled in). */
export function auditOf(t: TransferRow, actor: string, event: string, data?: Record<string, unknown>, address?: string | null): AuditEntry {
  return {
    actor,
    event,
    queueId: t.queue_id,
    orderId: t.order_id || null,
    address: address ?? t.from_address ?? t.requested_from,
    subjectType: "transfer",
    subjectId: t.id,
    data: data ?? null,
  };
}

const UNSIGNED = inList(UNSIGNED_STATES.length);

export interface NewTransfer {
  requestId?: bigint | null;
  kind: TransferKind;
  queueId: string;
  /** "" for everything but an order of a pay */
  orderId?: string;
  chain: string;
  symbol: string;
  from: string;
  to: string;
  /** exact decimal text */
  amount: string;
  /** more facts for the audit row (what a sweep is for, ...) */
  audit?: Record<string, unknown>;
}

/**
 * New `queued` transfers with their `transfer.queued` audit rows. Returns
 * each row's id, in order. With `ignoreDuplicates` a transfer whose (kind,
 * queue_id, order_id) exists already is skipped (null in its place);
 * without, the duplicate key error aborts the caller's transaction (the
 * bridge relies on that to redo a batch that raced another process).
 */
export async function createTransfers(conn: Conn, rows: NewTransfer[], step: Step, opts: { ignoreDuplicates?: boolean } = {}): Promise<(bigint | null)[]> {
  if (rows.length === 0) return [];
  const values = (r: NewTransfer) => [r.requestId ?? null, r.kind, r.queueId, r.orderId ?? "", r.chain, r.symbol, r.from, r.to, r.amount];
  const insert = (n: number) =>
    `INSERT${opts.ignoreDuplicates ? " IGNORE" : ""} INTO transfer (request_id, kind, queue_id, order_id, chain, symbol, requested_from, to_address, amount, state, updated_at) VALUES ${Array(n)
      .fill("(?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', NOW(3))")
      .join(", ")} RETURNING id`;
  let ids: (bigint | null)[];
  if (opts.ignoreDuplicates) {
    // one at a time: RETURNING leaves skipped rows out, so a multi-row insert could not say which were
    ids = [];
    for (const r of rows) ids.push(((await conn.query(insert(1), values(r))) as { id: bigint }[])[0]?.id ?? null);
  } else {
    ids = ((await conn.query(insert(rows.length), rows.flatMap(values))) as { id: bigint }[]).map((r) => r.id);
  }
  await insertAudit(
    conn,
    rows.flatMap((r, i) =>
      ids[i] === null
        ? []
        : [
            {
              actor: step.actor,
              event: "transfer.queued",
              queueId: r.queueId,
              orderId: r.orderId || null,
              address: r.from,
              subjectType: "transfer",
              subjectId: ids[i],
              data: { kind: r.kind, to: r.to, amount: r.amount, symbol: r.symbol, ...r.audit },
            },
          ],
    ),
  );
  return ids;
}

/** A transfer to end, with why, and any other audit facts of the decision. */
export interface Ending {
  row: TransferRow;
  code: ErrorCode;
  detail: string;
  /** the wallet that tried (the notification's from_address) */
  from?: string;
  /** audit rows of the decision itself (e.g. the policy rule that refused it) */
  audit?: { event: string; data: Record<string, unknown> }[];
}

/**
 * queued | awaiting_approval | held -> failed (status 0 with a SPEC code).
 * Returns the transfers that ended here; one that moved meanwhile is skipped.
 */
export async function fail(conn: Conn, endings: Ending[], step: Step): Promise<TransferRow[]> {
  const ended: TransferRow[] = [];
  const audit: AuditEntry[] = [];
  for (const e of endings) {
    const res = await conn.query(
      `UPDATE transfer SET state = 'failed', error = ?, error_detail = ?, held_at = NULL, finalized_at = NOW(3), updated_at = NOW(3) WHERE id = ? AND state IN (${UNSIGNED})`,
      [e.code, e.detail.slice(0, 512), e.row.id, ...UNSIGNED_STATES],
    );
    if (affected(res) !== 1) continue;
    ended.push(e.row);
    for (const a of e.audit ?? []) audit.push(auditOf(e.row, step.actor, a.event, a.data, e.row.requested_from));
    audit.push(auditOf(e.row, step.actor, "transfer.failed", { error: e.code, detail: e.detail }, e.row.requested_from));
  }
  const byId = new Map(endings.map((e) => [e.row.id, e]));
  await insertNotifications(
    conn,
    ended.flatMap((t) => {
      const e = byId.get(t.id)!;
      return transferNotes(t, 0, step.nowMs, e.from ? { fromAddress: e.from } : {}, e.code, e.detail);
    }),
  );
  await insertAudit(conn, audit);
  return ended;
}

/**
 * queued -> awaiting_approval: the withdrawal policy wants an operator's
 * approval (`payment approve` / `payment reject`). Nothing is reported to
 * the business while it waits.
 */
export async function awaitApproval(conn: Conn, held: { row: TransferRow; rule: string; detail: string }[], step: Step): Promise<TransferRow[]> {
  const moved: TransferRow[] = [];
  for (const h of held) {
    const res = await conn.query("UPDATE transfer SET state = 'awaiting_approval', error_detail = ?, updated_at = NOW(3) WHERE id = ? AND state = 'queued'", [
      h.detail.slice(0, 512),
      h.row.id,
    ]);
    if (affected(res) === 1) moved.push(h.row);
  }
  await insertAudit(
    conn,
    held.filter((h) => moved.includes(h.row)).map((h) => auditOf(h.row, step.actor, "policy.held", { rule: h.rule, detail: h.detail }, h.row.requested_from)),
  );
  return moved;
}

/**
 * queued -> held: the transfer cannot be sent for a reason an operator can
 * fix (SPEC §7: a wallet short of the asset or of gas). `code` is the SPEC
 * code it ends with if nobody fixes it; `detail` says what is short (wallet,
 * asset, needed, available). Nothing is reported to the business yet.
 */
export async function hold(conn: Conn, t: TransferRow, code: ErrorCode, detail: string, step: Step): Promise<boolean> {
  const res = await conn.query(
    "UPDATE transfer SET state = 'held', error = ?, error_detail = ?, held_at = NOW(3), updated_at = NOW(3) WHERE id = ? AND state = 'queued'",
    [code, detail.slice(0, 512), t.id],
  );
  if (affected(res) !== 1) return false;
  await insertAudit(conn, [auditOf(t, step.actor, "transfer.held", { error: code, detail }, t.requested_from)]);
  return true;
}

/** held -> queued: an operator retries it (the cause is fixed); it goes through the exactly-once path again. */
export async function release(conn: Conn, t: TransferRow, step: Step): Promise<boolean> {
  const res = await conn.query("UPDATE transfer SET state = 'queued', error = NULL, error_detail = NULL, held_at = NULL, updated_at = NOW(3) WHERE id = ? AND state = 'held'", [t.id]);
  if (affected(res) !== 1) return false;
  await insertAudit(conn, [auditOf(t, step.actor, "transfer.released", { was: t.error, detail: t.error_detail }, t.requested_from)]);
  return true;
}

/** awaiting_approval -> queued with `approved_by`: signed once its job runs (the other policy limits still apply). */
export async function approve(conn: Conn, t: TransferRow, step: Step): Promise<boolean> {
  const res = await conn.query("UPDATE transfer SET state = 'queued', approved_by = ?, updated_at = NOW(3) WHERE id = ? AND state = 'awaiting_approval'", [
    step.actor.slice(0, 128),
    t.id,
  ]);
  if (affected(res) !== 1) return false;
  await insertAudit(conn, [auditOf(t, step.actor, "policy.approved", { amount: t.amount, to: t.to_address }, t.requested_from)]);
  return true;
}

/**
 * An operator's refusal: awaiting_approval -> failed `policy_rejected`, or
 * held -> failed with the code it was held for (SPEC §7), with the status-0
 * notification.
 */
export async function reject(conn: Conn, t: TransferRow, reason: string, step: Step): Promise<boolean> {
  if (t.state !== "awaiting_approval" && t.state !== "held") return false;
  const code: ErrorCode = t.state === "held" ? ((t.error as ErrorCode | null) ?? "internal") : "policy_rejected";
  const detail = (t.state === "held" ? `${t.error_detail ?? code}; rejected by an operator${reason ? `: ${reason}` : ""}` : `rejected by an operator${reason ? `: ${reason}` : ""}`).slice(0, 512);
  const res = await conn.query(
    "UPDATE transfer SET state = 'failed', error = ?, error_detail = ?, approved_by = ?, held_at = NULL, finalized_at = NOW(3), updated_at = NOW(3) WHERE id = ? AND state = ?",
    [code, detail, step.actor.slice(0, 128), t.id, t.state],
  );
  if (affected(res) !== 1) return false;
  await insertNotifications(conn, transferNotes(t, 0, step.nowMs, {}, code, detail));
  await insertAudit(conn, [auditOf(t, step.actor, t.state === "held" ? "transfer.rejected_by_operator" : "policy.rejected_by_operator", { reason, error: code }, t.requested_from)]);
  return true;
}

export type CancelOutcome = { kind: "none" } | { kind: "already_sent" } | { kind: "cancelled"; rows: TransferRow[] };

/**
 * `remove` of a withdraw/pay: cancel every transfer of the request, all or
 * nothing. Once any of them may be on chain (signed or beyond), nothing is
 * cancelled and the answer is `already_sent`. The transfers are locked first
 * (a sender signing them waits, or skips what this cancelled).
 */
export async function cancelRequest(conn: Conn, kind: "withdraw" | "pay", queueId: string, step: Step): Promise<CancelOutcome> {
  const rows = (await conn.query(`SELECT ${TRANSFER_COLUMNS} FROM transfer WHERE kind = ? AND queue_id = ? FOR UPDATE`, [kind, queueId])) as TransferRow[];
  if (rows.length === 0) return { kind: "none" };
  const unsigned = new Set<string>(UNSIGNED_STATES);
  if (rows.some((t) => !unsigned.has(t.state) && t.state !== "failed" && t.state !== "cancelled")) {
    await insertAudit(conn, [{ actor: step.actor, event: "transfer.cancel_refused", queueId, data: { msg_type: kind } }]);
    return { kind: "already_sent" };
  }
  const toCancel = rows.filter((t) => unsigned.has(t.state));
  if (toCancel.length > 0) {
    const res = await conn.query(
      `UPDATE transfer SET state = 'cancelled', error = 'cancelled', held_at = NULL, finalized_at = NOW(3), updated_at = NOW(3) WHERE id IN (${inList(toCancel.length)}) AND state IN (${UNSIGNED})`,
      [...toCancel.map((t) => t.id), ...UNSIGNED_STATES],
    );
    // locked above: nothing can have moved
    if (affected(res) !== toCancel.length) throw new Error(`cancelled ${affected(res)} of ${toCancel.length} locked transfers`);
    await insertNotifications(
      conn,
      toCancel.flatMap((t) => transferNotes(t, 0, step.nowMs, { fromAddress: t.requested_from, txHash: null, blockNumber: null, confirmations: 0 }, "cancelled", "cancelled by a remove request")),
    );
    await insertAudit(conn, toCancel.map((t) => auditOf(t, step.actor, "transfer.cancelled", undefined, t.requested_from)));
  }
  return { kind: "cancelled", rows: toCancel };
}
