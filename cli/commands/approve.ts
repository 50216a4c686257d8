/**
 * `payment approve|reject <queue_id> [--order <id>] [--kind withdraw|pay]`:
 * the operator's decision on transfers the withdrawal policy held in
 * `awaiting_approval` (amount above `policy.approval_threshold`).
 *
 * approve: awaiting_approval -> queued with `approved_by`, and its send job
 *   runs again; the policy is evaluated once more when it is signed (an
 *   approval lifts only the threshold: caps, velocity and the deny/allow
 *   lists still apply).
 * reject: awaiting_approval -> failed `policy_rejected`, or held (no wallet
 *   could pay it, SPEC §7) -> failed with the code it was held for, with the
 *   status-0 notification in the same transaction.
 * Both are guarded updates (a transfer cancelled or decided meanwhile is
 * left alone) and both are written to the audit trail with who decided.
 */
import type { Command } from "commander";
import { inTransaction } from "../../shared/adapters/db/sql.ts";
import type { TransferRow, TransferState } from "../../shared/transfers/rows.ts";
import { approve, reject } from "../../shared/transfers/transitions.ts";
import { describeTransfer, findTransfers, requeueTransferJob, selector, type TransferSelector } from "./retry.ts";
import { CliError, CONFIG_OPTION_HELP, runCli, type CliContext } from "../context.ts";
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
async function decideHeld(
  ctx: Pick<CliContext, "db">,
  sel: TransferSelector,
  decide: (t: TransferRow) => Promise<boolean>,
  doneNote: (t: TransferRow) => string,
  states: TransferState[] = ["awaiting_approval"],
): Promise<Decision[]> {
  const rows = await findTransfers(ctx.db.pool, sel, ["withdraw", "pay"]);
  if (!rows.some((r) => states.includes(r.state))) {
    throw new CliError(`nothing awaits a decision for ${sel.queueId}${sel.orderId !== undefined ? `/${sel.orderId}` : ""} (${rows.map((r) => r.state).join(", ")})`);
  }
  const out: Decision[] = [];
  for (const t of rows) {
    if (!states.includes(t.state)) {
      out.push({ transfer: t, done: false, note: `not awaiting a decision (${t.state})` });
      continue;
    }
    const done = await decide(t);
    out.push({ transfer: t, done, note: done ? doneNote(t) : "changed meanwhile; left alone" });
  }
  return out;
}

export async function approveTransfers(ctx: Pick<CliContext, "db" | "queues">, sel: TransferSelector, actor: string): Promise<Decision[]> {
  return decideHeld(ctx, sel, async (t) => {
    const moved = await inTransaction(ctx.db.pool, (conn) => approve(conn, t, { actor, nowMs: Date.now() }));
    if (moved) await requeueTransferJob(ctx.queues, "send-transfer", t);
    return moved;
  }, () => "approved; it will be sent");
}

export async function rejectTransfers(ctx: Pick<CliContext, "db">, sel: TransferSelector, actor: string, reason: string): Promise<Decision[]> {
  return decideHeld(
    ctx,
    sel,
    (t) => inTransaction(ctx.db.pool, (conn) => reject(conn, t, reason, { actor, nowMs: Date.now() })),
    (t) => `rejected (status 0 ${t.state === "held" ? t.error : "policy_rejected"})`,
    ["awaiting_approval", "held"],
  );
}

export function register(program: Command): void {
  const common = (c: Command) =>
    c
      .argument("<queue_id>", "the request's queue_id")
      .option("--order <order_id>", "one order of a pay batch (default: every held order)")
      .option("--kind <kind>", "withdraw or pay (when the queue_id is used by both)")
      .option("-c, --config <file>", CONFIG_OPTION_HELP);
  common(program.command("approve").description("approve transfers held by the withdrawal policy (awaiting_approval)")).action(
    async (queueId: string, opts: { order?: string; kind?: string; config?: string }) => {
      await runCli(opts.config, async (ctx) => {
        for (const d of await approveTransfers(ctx, selector(queueId, opts), operatorName())) {
          console.log(`${describeTransfer(d.transfer)}: ${d.note}`);
        }
      });
    },
  );
  common(program.command("reject").description("reject transfers held by the withdrawal policy (status 0 policy_rejected) or held for a shortfall (status 0 with its code)"))
    .option("--reason <text>", "why (kept in the audit trail and sent as error_message)", "")
    .action(async (queueId: string, opts: { order?: string; kind?: string; config?: string; reason: string }) => {
      await runCli(opts.config, async (ctx) => {
        const done = await rejectTransfers(ctx, selector(queueId, opts), operatorName(), opts.reason);
        if (done.some((d) => d.done)) await ctx.wakeOutbox().catch(() => undefined);
        for (const d of done) console.log(`${describeTransfer(d.transfer)}: ${d.note}`);
      });
    });
}
