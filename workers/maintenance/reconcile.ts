/**
 * Rebuilds BullMQ work from MySQL, the source of truth. Redis may lose jobs
 * (flushed, restarted empty: it keeps nothing on disk here) or a job may have
 * ended while its row still needs work; this pass finds every non-final row
 * and makes sure its job exists and can run:
 *   transfer queued          -> send-transfer
 *   transfer signed          -> send-transfer (re-broadcasts the stored tx)
 *   transfer sent | mined    -> confirm-transfer
 *   deposit seen             -> confirm-deposit
 * Jobs have deterministic ids, so adding one that exists is a no-op; a
 * completed job whose row still needs work, or one orphaned in no queue
 * list, is removed and added again.
 * Failed jobs are left alone: they wait for an operator's retry (Bull Board
 * or `payment retry`). Processors are idempotent, so an extra run is harmless.
 */
import type { Job } from "bullmq";
import type { Pool } from "mariadb";
import type { Logger } from "../../shared/logger.ts";
import { enqueueMany, jobIdFor, JOB_TYPES, type JobPayload, type Queues } from "../../shared/jobs/registry.ts";

export interface ReconcileResult {
  checked: number;
  added: Record<string, number>;
}

type Kind = "send-transfer" | "confirm-transfer" | "confirm-deposit";

const PAGE = 1000;

async function ensureJobs<T extends Kind>(queues: Queues, type: T, payloads: JobPayload<T>[]): Promise<number> {
  const queue = queues[JOB_TYPES[type].queue];
  const missing: JobPayload<T>[] = [];
  const jobs = await Promise.all(payloads.map((p) => queue.getJob(jobIdFor(type, p)!)));
  await Promise.all(
    payloads.map(async (p, i) => {
      const job = jobs[i] as Job | undefined;
      if (!job) {
        missing.push(p);
        return;
      }
      const state = await job.getState();
      // "unknown": the job's hash outlived its queue's lists (keys lost one by
      // one, e.g. evicted); no worker will ever see it, so it counts as missing.
      if (state === "completed" || state === "unknown") {
        await job.remove().catch(() => undefined);
        missing.push(p);
      }
    }),
  );
  await enqueueMany(queues, type, missing);
  return missing.length;
}

export async function reconcileJobs(deps: { pool: Pool; queues: Queues; logger: Logger }): Promise<ReconcileResult> {
  const result: ReconcileResult = { checked: 0, added: {} };
  const add = (type: Kind, n: number) => (result.added[type] = (result.added[type] ?? 0) + n);

  let after = 0n;
  for (;;) {
    const rows = (await deps.pool.query(
      `SELECT id, kind, queue_id, order_id, state FROM transfer
       WHERE state IN ('queued', 'signed', 'sent', 'mined') AND id > ? ORDER BY id LIMIT ?`,
      [after, PAGE],
    )) as { id: bigint; kind: string; queue_id: string; order_id: string; state: string }[];
    if (rows.length === 0) break;
    after = rows[rows.length - 1]!.id;
    result.checked += rows.length;
    const label = (r: (typeof rows)[number]) => (r.order_id ? `${r.kind} ${r.queue_id}/${r.order_id}` : `${r.kind} ${r.queue_id}`);
    const toSend = rows.filter((r) => r.state === "queued" || r.state === "signed").map((r) => ({ transferId: r.id.toString(), label: label(r) }));
    const toConfirm = rows.filter((r) => r.state === "sent" || r.state === "mined").map((r) => ({ transferId: r.id.toString(), label: label(r) }));
    add("send-transfer", await ensureJobs(deps.queues, "send-transfer", toSend));
    add("confirm-transfer", await ensureJobs(deps.queues, "confirm-transfer", toConfirm));
  }

  after = 0n;
  for (;;) {
    const rows = (await deps.pool.query(
      "SELECT id, symbol, tx_hash FROM deposit WHERE state = 'seen' AND id > ? ORDER BY id LIMIT ?",
      [after, PAGE],
    )) as { id: bigint; symbol: string; tx_hash: string }[];
    if (rows.length === 0) break;
    after = rows[rows.length - 1]!.id;
    result.checked += rows.length;
    add(
      "confirm-deposit",
      await ensureJobs(
        deps.queues,
        "confirm-deposit",
        rows.map((r) => ({ depositId: r.id.toString(), label: `${r.symbol} deposit ${r.tx_hash.slice(0, 12)}` })),
      ),
    );
  }
  const total = Object.values(result.added).reduce((a, b) => a + b, 0);
  (total > 0 ? deps.logger.warn.bind(deps.logger) : deps.logger.debug.bind(deps.logger))(
    { checked: result.checked, added: result.added },
    total > 0 ? "reconcile: rebuilt missing jobs from MySQL" : "reconcile: every non-final row has its job",
  );
  return result;
}
