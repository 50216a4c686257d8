/**
 * Ending a transfer that was never signed (status 0 with a SPEC code), with
 * a guarded update so it can only happen while nothing is on chain for it,
 * and its notification and audit row in the same transaction.
 */
import { inTransaction } from "../../shared/adapters/db/sql.ts";
import { insertAudit, insertNotifications } from "../../shared/adapters/db/outbox.ts";
import type { ErrorCode } from "../../shared/domain/errors.ts";
import type { MoneyContext } from "./context.ts";
import { transferNotes, type TransferRow } from "./transfer-rows.ts";

/** queued|awaiting_approval -> failed; returns false when the transfer had already moved on. */
export async function failUnsigned(ctx: MoneyContext, t: TransferRow, code: ErrorCode, detail: string, actor: string): Promise<boolean> {
  const done = await inTransaction(ctx.pool, async (conn) => {
    const res = (await conn.query(
      `UPDATE transfer SET state = 'failed', error = ?, error_detail = ?, finalized_at = NOW(3), updated_at = NOW(3)
       WHERE id = ? AND state IN ('queued', 'awaiting_approval')`,
      [code, detail.slice(0, 512), t.id],
    )) as { affectedRows: number };
    if (Number(res.affectedRows) !== 1) return false;
    await insertNotifications(conn, transferNotes(t, 0, ctx.now(), {}, code, detail));
    await insertAudit(conn, [
      { actor, event: "transfer.failed", queueId: t.queue_id, orderId: t.order_id || null, address: t.requested_from, subjectType: "transfer", subjectId: t.id, data: { error: code, detail } },
    ]);
    return true;
  });
  if (done) {
    ctx.metrics.transfers.inc({ chain: t.chain, symbol: t.symbol, status: code });
    ctx.wakeOutbox();
  }
  return done;
}
