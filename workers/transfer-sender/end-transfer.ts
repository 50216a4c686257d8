/**
 * Ending a transfer the sender cannot send at all (status 0 with a SPEC
 * code) through the lifecycle's guarded `fail`, then counting it and waking
 * the outbox. Nothing was signed for it, so nothing can be on chain.
 */
import { inTransaction } from "../../shared/adapters/db/sql.ts";
import type { ErrorCode } from "../../shared/domain/errors.ts";
import type { MoneyContext } from "../../shared/transfers/context.ts";
import type { TransferRow } from "../../shared/transfers/rows.ts";
import { fail } from "../../shared/transfers/transitions.ts";

/** queued|awaiting_approval|held -> failed; false when the transfer had already moved on. */
export async function endUnsigned(ctx: MoneyContext, t: TransferRow, code: ErrorCode, detail: string, actor: string): Promise<boolean> {
  const ended = await inTransaction(ctx.pool, (conn) => fail(conn, [{ row: t, code, detail }], { actor, nowMs: ctx.now() }));
  if (ended.length === 0) return false;
  ctx.metrics.transfers.inc({ chain: t.chain, symbol: t.symbol, status: code });
  ctx.wakeOutbox();
  return true;
}
