/**
 * `payment retry <queue_id> [--order <order_id>] [--kind withdraw|pay|sweep|gas_topup]`:
 * put a transfer whose job gave up (node or database down for longer than
 * its retries) back to work, through the same exactly-once path as always.
 *
 * What runs depends on where the transfer is, read from MySQL:
 *   queued | signed  -> its `send-transfer` job (signs once, or re-broadcasts
 *                       the transaction it already signed)
 *   sent | mined     -> its `confirm-transfer` job
 *   held             -> released to queued (the operator fixed the cause)
 *                       and its `send-transfer` job run again
 * A transfer that ENDED (confirmed, failed with a business code such as
 * insufficient_balance or policy_rejected, cancelled) stays ended: retrying
 * it could only pay twice or repeat the same refusal. Retrying a failed job
 * from Bull Board is equally safe: the processor re-reads the row first.
 *
 * Also home of the small helpers the transfer commands share (finding a
 * request's transfers, re-queueing a job).
 */
import type { Command } from "commander";
import type { Job } from "bullmq";
import type { Pool } from "mariadb";
import { enqueue, jobIdFor, JOB_TYPES, type Queues } from "../../shared/jobs/registry.ts";
import { transferJob, transfersOfRequest, type PaymentFacts, type TransferKind, type TransferRow, type TransferSelector } from "../../shared/transfers/rows.ts";
import { insertAudit } from "../../shared/adapters/db/outbox.ts";
import { inTransaction } from "../../shared/adapters/db/sql.ts";
import { release } from "../../shared/transfers/transitions.ts";
import { operatorName } from "./notify.ts";
import { CliError, CONFIG_OPTION_HELP, EXIT, parseChoice, parseRequestId, runCli, UsageError, type CliContext } from "../context.ts";

export type { TransferSelector };

/** The transfers of a request (one per order of a pay), refusing an ambiguous queue_id. */
export async function findTransfers(pool: Pool, sel: TransferSelector, kinds: TransferKind[] = ["withdraw", "pay", "sweep", "gas_topup"]): Promise<TransferRow[]> {
  if (sel.kind) parseChoice(sel.kind, kinds, "--kind");
  const rows = await transfersOfRequest(pool, sel, kinds);
  if (rows.length === 0) throw new CliError(`no transfer with queue_id ${sel.queueId}${sel.orderId !== undefined ? ` and order_id ${sel.orderId}` : ""}`);
  const found = new Set(rows.map((r) => r.kind));
  if (found.size > 1) throw new UsageError(`queue_id ${sel.queueId} is used by several kinds (${[...found].join(", ")}): add --kind`);
  return rows;
}

export type RequeueResult = "added" | "retried" | "re-added" | "already queued";

/**
 * Make a job of `type` for this transfer run: retry it if it failed (its
 * attempts reset), add it again if it completed or is gone, leave it if it
 * is waiting, delayed or running. Safe because processors re-read the row.
 */
export async function requeueTransferJob(queues: Queues, type: "send-transfer" | "confirm-transfer", t: PaymentFacts): Promise<RequeueResult> {
  const payload = transferJob(t);
  const queue = queues[JOB_TYPES[type].queue];
  const job = (await queue.getJob(jobIdFor(type, payload)!)) as Job | undefined;
  if (!job) {
    await enqueue(queues, type, payload);
    return "added";
  }
  const state = await job.getState();
  if (state === "failed") {
    await job.retry("failed", { resetAttemptsMade: true, resetAttemptsStarted: true });
    return "retried";
  }
  if (state === "completed" || state === "unknown") {
    await job.remove().catch(() => undefined);
    await enqueue(queues, type, payload);
    return "re-added";
  }
  return "already queued";
}

export interface RetryLine {
  transfer: TransferRow;
  action: string;
  /** a job was put back to work (or already was); false: nothing a retry can do */
  runs: boolean;
}

export async function retryTransfers(ctx: Pick<CliContext, "db" | "queues">, sel: TransferSelector, actor: string): Promise<RetryLine[]> {
  const rows = await findTransfers(ctx.db.pool, sel);
  const out: RetryLine[] = [];
  for (const t of rows) {
    let action: string;
    let runs = true;
    switch (t.state) {
      case "queued":
      case "signed":
        action = `send job ${await requeueTransferJob(ctx.queues, "send-transfer", t)}`;
        break;
      case "sent":
      case "mined":
        action = `confirmation job ${await requeueTransferJob(ctx.queues, "confirm-transfer", t)}`;
        break;
      case "held": {
        // the operator says the cause is fixed: back to work through the same path
        const released = await inTransaction(ctx.db.pool, (conn) => release(conn, t, { actor, nowMs: Date.now() }));
        action = released ? `released from hold (${t.error}); send job ${await requeueTransferJob(ctx.queues, "send-transfer", t)}` : "changed meanwhile; left alone";
        break;
      }
      case "awaiting_approval":
        action = "waiting for an operator: use payment approve / payment reject";
        runs = false;
        break;
      default:
        action = `ended ${t.state}${t.error ? ` (${t.error})` : ""}: an ended transfer is never retried`;
        runs = false;
    }
    out.push({ transfer: t, action, runs });
  }
  await insertAudit(
    ctx.db.pool,
    out.map((l) => ({
      actor,
      event: "transfer.retry",
      queueId: l.transfer.queue_id,
      orderId: l.transfer.order_id || null,
      address: l.transfer.from_address ?? l.transfer.requested_from,
      subjectType: "transfer",
      subjectId: l.transfer.id,
      data: { state: l.transfer.state, action: l.action },
    })),
  );
  return out;
}

/** The selector an operator typed, checked: a malformed id is a usage error. */
export function selector(queueId: string, opts: { order?: string | undefined; kind?: string | undefined }): TransferSelector {
  return {
    queueId: parseRequestId(queueId),
    orderId: opts.order === undefined ? undefined : parseRequestId(opts.order, "--order"),
    kind: opts.kind,
  };
}

export const describeTransfer = (t: TransferRow) => `${t.kind} ${t.queue_id}${t.order_id ? `/${t.order_id}` : ""} (#${t.id}, ${t.state})`;

export function register(program: Command): void {
  program
    .command("retry")
    .description("re-run the send or confirmation job of a transfer that is not final (safe: the same exactly-once path)")
    .argument("<queue_id>", "the request's queue_id")
    .option("--order <order_id>", "one order of a pay batch")
    .option("--kind <kind>", "withdraw, pay, sweep or gas_topup (when the queue_id is used by several)")
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .action(async (queueId: string, opts: { order?: string; kind?: string; config?: string }) => {
      await runCli(opts.config, async (ctx) => {
        const sel = selector(queueId, opts);
        const lines = await retryTransfers(ctx, sel, operatorName());
        for (const l of lines) console.log(`${describeTransfer(l.transfer)}: ${l.action}`);
        // exit 1 when the retry could not put anything back to work
        if (!lines.some((l) => l.runs)) process.exitCode = EXIT.failed;
      });
    });
}
