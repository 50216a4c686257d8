/**
 * `payment notify redeliver <queue_id|address>`: send the business system
 * the latest state again, for when it lost or mis-processed a notification.
 *
 * For each subject (a transfer, a deposit, a remove or a refusal) the latest
 * notification is put back to `pending` in the outbox; the bridge's outbox
 * publisher then publishes the very same body, with the same
 * `notification_id` and so the same signature, within its poll interval.
 * Consumers that already have it dedupe by notification_id, so redelivering
 * is always safe. Older notifications of a subject (the status 2 before a
 * final status 1) are not re-sent: the consumer needs the current state, and
 * a stale "pending" after a final answer would only confuse it.
 *
 * The change and who made it are written to the audit trail in the same
 * transaction.
 */
import { userInfo } from "node:os";
import type { Command } from "commander";
import type { Pool } from "mariadb";
import { inList, inTransaction } from "../../shared/adapters/db/sql.ts";
import { insertAudit } from "../../shared/adapters/db/outbox.ts";
import { CONFIG_OPTION_HELP, nothingFor, parseSubject, runCli, type Subject } from "../context.ts";

export interface Redelivery {
  id: bigint;
  notificationId: string;
  kind: string;
  status: number;
  /** state before: `sent` is re-queued, `pending` was still waiting anyway */
  was: "pending" | "sent";
}

/**
 * What a notification reports on: `transfer-12-2` and `transfer-12-1` are
 * the same transfer; other keys (remove-N, reject-N[-k]) are one-shot.
 */
export function subjectKey(dedupeKey: string): string {
  const m = /^((?:transfer|deposit)-\d+)-[0-2]$/.exec(dedupeKey);
  return m ? m[1]! : dedupeKey;
}

export async function redeliverNotifications(pool: Pool, subject: Subject, opts: { actor: string; dryRun?: boolean }): Promise<Redelivery[]> {
  return inTransaction(pool, async (conn) => {
    const [column, value] = subject.type === "queue_id" ? ["queue_id", subject.queueId] : ["address", subject.address];
    const rows = (await conn.query(
      `SELECT id, kind, dedupe_key, queue_id, address, status, state FROM notification WHERE ${column} = ? ORDER BY id FOR UPDATE`,
      [value],
    )) as { id: bigint; kind: string; dedupe_key: string; queue_id: string | null; address: string | null; status: number; state: "pending" | "sent" }[];
    const latest = new Map<string, (typeof rows)[number]>();
    for (const r of rows) latest.set(subjectKey(r.dedupe_key), r); // ascending ids: the last one wins
    const chosen = [...latest.values()];
    const toRequeue = chosen.filter((r) => r.state === "sent");
    if (!opts.dryRun && toRequeue.length > 0) {
      const ids = toRequeue.map((r) => r.id);
      // Guarded on state: a row another operator re-queued meanwhile is left as it is.
      await conn.query(
        `UPDATE notification SET state = 'pending', claimed_by = NULL, claimed_until = NULL WHERE id IN (${inList(ids.length)}) AND state = 'sent'`,
        ids,
      );
      await insertAudit(
        conn,
        toRequeue.map((r) => ({
          actor: opts.actor,
          event: "notification.redeliver",
          queueId: r.queue_id,
          address: r.address,
          subjectType: "notification",
          subjectId: r.id,
          data: { notification_id: r.dedupe_key, status: r.status, kind: r.kind },
        })),
      );
    }
    return chosen.map((r) => ({ id: r.id, notificationId: r.dedupe_key, kind: r.kind, status: Number(r.status), was: r.state }));
  });
}

/** Who is acting, for the audit trail (OS user; no secrets). */
export function operatorName(): string {
  let user = "unknown";
  try {
    user = userInfo().username;
  } catch {
    /* no passwd entry (containers) */
  }
  return `operator:${process.env.PAYMENT_OPERATOR ?? user}`.slice(0, 64);
}

export function register(program: Command): void {
  const notify = program.command("notify").description("notification outbox operations");
  notify
    .command("redeliver")
    .description("publish the latest notification of each transfer/deposit/request of a queue_id or address again (same notification_id)")
    .argument("<queue_id|address>", "a request's queue_id, or a 0x address")
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .option("--dry-run", "only list what would be redelivered")
    .action(async (arg: string, opts: { config?: string; dryRun?: boolean }) => {
      const subject = parseSubject(arg);
      await runCli(opts.config, async (ctx) => {
        const done = await redeliverNotifications(ctx.db.pool, subject, { actor: operatorName(), dryRun: opts.dryRun });
        if (done.length === 0) throw nothingFor(subject, "no notification recorded");
        for (const r of done) {
          const what = r.was === "pending" ? "still pending (the bridge will send it)" : opts.dryRun ? "would be re-queued" : "re-queued";
          console.log(`${r.notificationId}  ${r.kind} status ${r.status}: ${what}`);
        }
        const n = done.filter((r) => r.was === "sent").length;
        console.log(opts.dryRun ? `dry run: ${n} would be redelivered` : `${n} notification(s) queued for redelivery; a running bridge publishes them within a second`);
      });
    });
}
