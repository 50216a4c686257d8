/**
 * The positive signal a test waits for before asserting that something did
 * NOT happen (a second notification, a second transfer): the gateway has
 * nothing left to do or say. No job waiting, active or delayed on the
 * transfer and confirmation queues (or only the named ones done), no
 * notification pending in the outbox, and every notification the outbox
 * marked sent received by the business client. Whatever would have happened
 * has happened by then; nothing can happen late.
 */
import type { TestEnv } from "./env.ts";
import { eventually, type BusinessClient, type Kind } from "./rabbit.ts";

export interface QuietOptions {
  /** wait for these jobs (ids on the transfer or confirm queue) to be completed or failed, instead of both queues being empty */
  jobs?: string[];
  timeoutMs?: number;
}

export async function quiescent(env: Pick<TestEnv, "db" | "queues">, biz?: BusinessClient, opts: QuietOptions = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  if (opts.jobs) {
    for (const id of opts.jobs) {
      await eventually(async () => {
        const job = (await env.queues.confirm.getJob(id)) ?? (await env.queues.transfer.getJob(id));
        const state = job ? await job.getState() : "missing";
        return state === "completed" || state === "failed";
      }, timeoutMs);
    }
  } else {
    await eventually(async () => {
      const counts = await Promise.all([env.queues.transfer, env.queues.confirm].map((q) => q.getJobCounts("waiting", "active", "delayed", "prioritized")));
      return counts.every((c) => Object.values(c).every((n) => n === 0));
    }, timeoutMs);
  }
  await eventually(async () => (await env.db.prisma.notification.count({ where: { state: "pending" } })) === 0, timeoutMs);
  if (biz) {
    await eventually(async () => {
      const sent = await env.db.prisma.notification.groupBy({ by: ["kind"], where: { state: "sent" }, _count: true });
      return sent.every((g) => !["topup", "withdraw", "pay", "remove"].includes(g.kind) || biz.received(g.kind as Kind).length >= g._count);
    }, timeoutMs);
  }
}
