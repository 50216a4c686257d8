/**
 * `payment retry <queue_id> [--order <order_id>] [--kind withdraw|pay|sweep|gas_topup]`:
 * put a transfer whose job gave up (node or database down for longer than
 * its retries) back to work, through the same exactly-once path as always.
 *
 * What runs depends on where the transfer is, read from MySQL:
 *   queued | signed  -> its `send-transfer` job (signs once, or re-broadcasts
 *                       the transaction it already signed)
 *   sent | mined     -> its `confirm-transfer` job
 * A transfer that ENDED (confirmed, failed with a business code such as
 * insufficient_balance or policy_rejected, cancelled) stays ended: retrying
 * it could only pay twice or repeat the same refusal. Retrying a failed job
 * from Bull Board is equally safe: the processor re-reads the row first.
 *
 * Also home of the small helpers the transfer commands share (opening the
 * config/database/queues, finding a request's transfers, re-queueing a job).
 */
import type { Command } from "commander";
import type { Job } from "bullmq";
import type { Pool } from "mariadb";
import { loadConfig, type Config } from "../../shared/config/load-config.ts";
import { createDb, type Db } from "../../shared/adapters/db/client.ts";
import { createRedisFactory, closeRedis } from "../../shared/adapters/redis.ts";
import { outboxChannel } from "../../shared/adapters/db/outbox.ts";
import { createQueues, enqueue, jobIdFor, JOB_TYPES, type Queues } from "../../shared/jobs/registry.ts";
import { TRANSFER_COLUMNS, transferLabel, type TransferRow } from "../../workers/transfer-sender/transfer-rows.ts";
import { insertAudit } from "../../shared/adapters/db/outbox.ts";
import { operatorName } from "./notify.ts";

export class CliError extends Error {
  override name = "CliError";
}

export interface CliContext {
  config: Config;
  db: Db;
  queues: Queues;
  /** publish an outbox wake-up for a running bridge */
  wakeOutbox(): Promise<void>;
  close(): Promise<void>;
}

export function openCli(configFile: string | undefined): CliContext {
  const config = loadConfig({ file: configFile });
  const db = createDb({ url: config.mysql_url, poolSize: 2 });
  const redis = createRedisFactory(config);
  let queues: Queues | null = null;
  return {
    config,
    db,
    get queues() {
      return (queues ??= createQueues(redis));
    },
    async wakeOutbox() {
      const r = redis.create("cli-wake");
      try {
        await r.publish(outboxChannel(redis.prefix), "1");
      } finally {
        await closeRedis(r);
      }
    },
    async close() {
      await queues?.close().catch(() => undefined);
      await db.close();
    },
  };
}

/** Run a command body, turning expected failures into one line on stderr and exit code 1. */
export async function runCli(configFile: string | undefined, body: (ctx: CliContext) => Promise<void>): Promise<void> {
  const ctx = openCli(configFile);
  try {
    await body(ctx);
  } catch (e) {
    if (e instanceof CliError) {
      console.error(`payment: ${e.message}`);
      process.exitCode = 1;
      return;
    }
    throw e;
  } finally {
    await ctx.close();
  }
}

export interface TransferSelector {
  queueId: string;
  orderId?: string | undefined;
  kind?: string | undefined;
}

/** The transfers of a request (one per order of a pay), refusing an ambiguous queue_id. */
export async function findTransfers(pool: Pool, sel: TransferSelector, kinds: string[] = ["withdraw", "pay", "sweep", "gas_topup"]): Promise<TransferRow[]> {
  if (sel.kind && !kinds.includes(sel.kind)) throw new CliError(`--kind must be one of ${kinds.join(", ")}`);
  const where = ["queue_id = ?", `kind IN (${(sel.kind ? [sel.kind] : kinds).map(() => "?").join(",")})`];
  const args: unknown[] = [sel.queueId, ...(sel.kind ? [sel.kind] : kinds)];
  if (sel.orderId !== undefined) {
    where.push("order_id = ?");
    args.push(sel.orderId);
  }
  const rows = (await pool.query(`SELECT ${TRANSFER_COLUMNS} FROM transfer WHERE ${where.join(" AND ")} ORDER BY id`, args)) as TransferRow[];
  if (rows.length === 0) throw new CliError(`no transfer with queue_id ${sel.queueId}${sel.orderId !== undefined ? ` and order_id ${sel.orderId}` : ""}`);
  const found = new Set(rows.map((r) => r.kind));
  if (found.size > 1) throw new CliError(`queue_id ${sel.queueId} is used by several kinds (${[...found].join(", ")}): add --kind`);
  return rows;
}

export type RequeueResult = "added" | "retried" | "re-added" | "already queued";

/**
 * Make a job of `type` for this transfer run: retry it if it failed (its
 * attempts reset), add it again if it completed or is gone, leave it if it
 * is waiting, delayed or running. Safe because processors re-read the row.
 */
export async function requeueTransferJob(queues: Queues, type: "send-transfer" | "confirm-transfer", t: Pick<TransferRow, "id" | "kind" | "queue_id" | "order_id">): Promise<RequeueResult> {
  const payload = { transferId: t.id.toString(), label: transferLabel(t) };
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
}

export async function retryTransfers(ctx: Pick<CliContext, "db" | "queues">, sel: TransferSelector, actor: string): Promise<RetryLine[]> {
  const rows = await findTransfers(ctx.db.pool, sel);
  const out: RetryLine[] = [];
  for (const t of rows) {
    let action: string;
    switch (t.state) {
      case "queued":
      case "signed":
        action = `send job ${await requeueTransferJob(ctx.queues, "send-transfer", t)}`;
        break;
      case "sent":
      case "mined":
        action = `confirmation job ${await requeueTransferJob(ctx.queues, "confirm-transfer", t)}`;
        break;
      case "awaiting_approval":
        action = "waiting for an operator: use payment approve / payment reject";
        break;
      default:
        action = `ended ${t.state}${t.error ? ` (${t.error})` : ""}: an ended transfer is never retried`;
    }
    out.push({ transfer: t, action });
  }
  const conn = await ctx.db.pool.getConnection();
  try {
    await insertAudit(
      conn,
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
  } finally {
    await conn.release();
  }
  return out;
}

export const describeTransfer = (t: TransferRow) => `${t.kind} ${t.queue_id}${t.order_id ? `/${t.order_id}` : ""} (#${t.id}, ${t.state})`;

export function register(program: Command): void {
  program
    .command("retry")
    .description("re-run the send or confirmation job of a transfer that is not final (safe: the same exactly-once path)")
    .argument("<queue_id>", "the request's queue_id")
    .option("--order <order_id>", "one order of a pay batch")
    .option("--kind <kind>", "withdraw, pay, sweep or gas_topup (when the queue_id is used by several)")
    .option("-c, --config <file>", "configuration file (default: $PAYMENT_CONFIG)")
    .action(async (queueId: string, opts: { order?: string; kind?: string; config?: string }) => {
      await runCli(opts.config, async (ctx) => {
        const lines = await retryTransfers(ctx, { queueId, orderId: opts.order, kind: opts.kind }, operatorName());
        for (const l of lines) console.log(`${describeTransfer(l.transfer)}: ${l.action}`);
      });
    });
}
