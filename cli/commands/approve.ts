/**
 * `payment approve|reject <queue_id> [--order <id>] [--kind withdraw|pay]`:
 * the operator's decision on transfers the withdrawal policy held in
 * `awaiting_approval` (amount above `policy.approval_threshold`).
 *
 * approve: awaiting_approval -> queued with `approved_by`, and its send job
 *   runs again; the policy is evaluated once more when it is signed (an
 *   approval lifts only the threshold: caps, velocity and the deny/allow
 *   lists still apply).
 * reject: awaiting_approval -> failed `policy_rejected`, with the status-0
 *   notification in the same transaction.
 * Both are guarded updates (a transfer cancelled or decided meanwhile is
 * left alone) and both are written to the audit trail with who decided.
 */
import type { Command } from "commander";
import { inTransaction } from "../../shared/adapters/db/sql.ts";
import { insertAudit, insertNotifications } from "../../shared/adapters/db/outbox.ts";
import { transferNotes, type TransferRow } from "../../workers/transfer-sender/transfer-rows.ts";
import { CliError, describeTransfer, findTransfers, requeueTransferJob, runCli, type CliContext, type TransferSelector } from "./retry.ts";
import { operatorName } from "./notify.ts";

export interface Decision {
  transfer: TransferRow;
  done: boolean;
  note: string;
}

/**
 * Apply `decide` to every held transfer of the selection. `decide` makes a
 * guarded update (state = 'awaiting_approval'), so a transfer another
 * operator decided meanwhile is left alone; `false` reports that.
 */
async function decideHeld(ctx: Pick<CliContext, "db">, sel: TransferSelector, decide: (t: TransferRow) => Promise<boolean>, doneNote: string): Promise<Decision[]> {
  const rows = await findTransfers(ctx.db.pool, sel, ["withdraw", "pay"]);
  if (!rows.some((r) => r.state === "awaiting_approval")) {
    throw new CliError(`nothing awaits approval for ${sel.queueId}${sel.orderId !== undefined ? `/${sel.orderId}` : ""} (${rows.map((r) => r.state).join(", ")})`);
  }
  const out: Decision[] = [];
  for (const t of rows) {
    if (t.state !== "awaiting_approval") {
      out.push({ transfer: t, done: false, note: `not awaiting approval (${t.state})` });
      continue;
    }
    const done = await decide(t);
    out.push({ transfer: t, done, note: done ? doneNote : "changed meanwhile; left alone" });
  }
  return out;
}

export async function approveTransfers(ctx: Pick<CliContext, "db" | "queues">, sel: TransferSelector, actor: string): Promise<Decision[]> {
  return decideHeld(ctx, sel, async (t) => {
    const moved = await inTransaction(ctx.db.pool, async (conn) => {
      const res = (await conn.query(
        "UPDATE transfer SET state = 'queued', approved_by = ?, updated_at = NOW(3) WHERE id = ? AND state = 'awaiting_approval'",
        [actor.slice(0, 128), t.id],
      )) as { affectedRows: number };
      if (Number(res.affectedRows) !== 1) return false;
      await insertAudit(conn, [
        { actor, event: "policy.approved", queueId: t.queue_id, orderId: t.order_id || null, address: t.requested_from, subjectType: "transfer", subjectId: t.id, data: { amount: t.amount, to: t.to_address } },
      ]);
      return true;
    });
    if (moved) await requeueTransferJob(ctx.queues, "send-transfer", t);
    return moved;
  }, "approved; it will be sent");
}

export async function rejectTransfers(ctx: Pick<CliContext, "db">, sel: TransferSelector, actor: string, reason: string): Promise<Decision[]> {
  return decideHeld(ctx, sel, async (t) => {
    const detail = `rejected by an operator${reason ? `: ${reason}` : ""}`.slice(0, 512);
    const moved = await inTransaction(ctx.db.pool, async (conn) => {
      const res = (await conn.query(
        "UPDATE transfer SET state = 'failed', error = 'policy_rejected', error_detail = ?, approved_by = ?, finalized_at = NOW(3), updated_at = NOW(3) WHERE id = ? AND state = 'awaiting_approval'",
        [detail, actor.slice(0, 128), t.id],
      )) as { affectedRows: number };
      if (Number(res.affectedRows) !== 1) return false;
      await insertNotifications(conn, transferNotes(t, 0, Date.now(), {}, "policy_rejected", detail));
      await insertAudit(conn, [
        { actor, event: "policy.rejected_by_operator", queueId: t.queue_id, orderId: t.order_id || null, address: t.requested_from, subjectType: "transfer", subjectId: t.id, data: { reason } },
      ]);
      return true;
    });
    return moved;
  }, "rejected (status 0 policy_rejected)");
}

export function register(program: Command): void {
  const common = (c: Command) =>
    c
      .argument("<queue_id>", "the request's queue_id")
      .option("--order <order_id>", "one order of a pay batch (default: every held order)")
      .option("--kind <kind>", "withdraw or pay (when the queue_id is used by both)")
      .option("-c, --config <file>", "configuration file (default: $PAYMENT_CONFIG)");
  common(program.command("approve").description("approve transfers held by the withdrawal policy (awaiting_approval)")).action(
    async (queueId: string, opts: { order?: string; kind?: string; config?: string }) => {
      await runCli(opts.config, async (ctx) => {
        for (const d of await approveTransfers(ctx, { queueId, orderId: opts.order, kind: opts.kind }, operatorName())) {
          console.log(`${describeTransfer(d.transfer)}: ${d.note}`);
        }
      });
    },
  );
  common(program.command("reject").description("reject transfers held by the withdrawal policy: status 0 policy_rejected"))
    .option("--reason <text>", "why (kept in the audit trail and sent as error_message)", "")
    .action(async (queueId: string, opts: { order?: string; kind?: string; config?: string; reason: string }) => {
      await runCli(opts.config, async (ctx) => {
        const done = await rejectTransfers(ctx, { queueId, orderId: opts.order, kind: opts.kind }, operatorName(), opts.reason);
        if (done.some((d) => d.done)) await ctx.wakeOutbox().catch(() => undefined);
        for (const d of done) console.log(`${describeTransfer(d.transfer)}: ${d.note}`);
      });
    });
}
