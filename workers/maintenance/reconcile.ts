/**
 * Rebuilds BullMQ work from MySQL, the source of truth. Redis may lose jobs
 * (flushed, restarted empty: it keeps nothing on disk here) or a job may have
 * ended while its row still needs work; this pass finds every non-final row
 * and makes sure its job exists and can run:
 *   transfer queued          -> send-transfer
 *   transfer held            -> send-transfer (it fails, showing the reason)
 *   transfer signed          -> send-transfer (re-broadcasts the stored tx)
 *   transfer sent | mined    -> confirm-transfer
 *   deposit seen             -> confirm-deposit
 * Jobs have deterministic ids, so adding one that exists is a no-op; a
 * completed job whose row still needs work, or one orphaned in no queue
 * list, is removed and added again.
 * Failed jobs are left alone: they wait for an operator's retry (Bull Board
 * or `payment retry`). Processors are idempotent, so an extra run is harmless.
 *
 * Held transfers nobody touched for their chain's `hold_s` end here, status
 * 0 with the code they were held for (SPEC §7).
 */
import type { Job } from "bullmq";
import type { Pool } from "mariadb";
import type { Logger } from "../../shared/logger.ts";
import type { Config } from "../../shared/config/load-config.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { ErrorCode } from "../../shared/domain/errors.ts";
import { inTransaction } from "../../shared/adapters/db/sql.ts";
import { enqueueMany, jobIdFor, JOB_TYPES, type JobPayload, type Queues } from "../../shared/jobs/registry.ts";
import { expiredHolds, PAYMENT_COLUMNS, transferJob, type PaymentFacts } from "../../shared/transfers/rows.ts";
import { fail } from "../../shared/transfers/transitions.ts";

export interface ReconcileResult {
  checked: number;
  added: Record<string, number>;
  /** held transfers ended after hold_s */
  expired: number;
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

export interface ReconcileDeps {
  pool: Pool;
  queues: Queues;
  logger: Logger;
  config: Config;
  metrics: Metrics;
  now?: () => number;
}

export async function reconcileJobs(deps: ReconcileDeps): Promise<ReconcileResult> {
  const result: ReconcileResult = { checked: 0, added: {}, expired: 0 };
  const add = (type: Kind, n: number) => (result.added[type] = (result.added[type] ?? 0) + n);

  let after = 0n;
  for (;;) {
    const rows = (await deps.pool.query(
      `SELECT ${PAYMENT_COLUMNS}, state FROM transfer
       WHERE state IN ('queued', 'held', 'signed', 'sent', 'mined') AND id > ? ORDER BY id LIMIT ?`,
      [after, PAGE],
    )) as (PaymentFacts & { state: string })[];
    if (rows.length === 0) break;
    after = rows[rows.length - 1]!.id;
    result.checked += rows.length;
    const toSend = rows.filter((r) => r.state === "queued" || r.state === "held" || r.state === "signed").map(transferJob);
    const toConfirm = rows.filter((r) => r.state === "sent" || r.state === "mined").map(transferJob);
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
  result.expired = await endExpiredHolds(deps);
  const total = Object.values(result.added).reduce((a, b) => a + b, 0);
  (total > 0 ? deps.logger.warn.bind(deps.logger) : deps.logger.debug.bind(deps.logger))(
    { checked: result.checked, added: result.added },
    total > 0 ? "reconcile: rebuilt missing jobs from MySQL" : "reconcile: every non-final row has its job",
  );
  return result;
}

/** Held transfers nobody retried or rejected within their chain's hold_s: status 0 with the code they were held for. */
async function endExpiredHolds(deps: ReconcileDeps): Promise<number> {
  let n = 0;
  for (const chain of Object.values(deps.config.chains)) {
    if (chain.hold_s === 0) continue;
    for (const t of await expiredHolds(deps.pool, chain.key, chain.hold_s, PAGE)) {
      const code = (t.error as ErrorCode | null) ?? "internal";
      const detail = `${t.error_detail ?? code}; held ${chain.hold_s} s and nobody retried it`;
      const ended = await inTransaction(deps.pool, (conn) => fail(conn, [{ row: t, code, detail }], { actor: "maintenance", nowMs: (deps.now ?? Date.now)() }));
      for (const e of ended) deps.metrics.transfers.inc({ chain: e.chain, symbol: e.symbol, status: code });
      n += ended.length;
    }
  }
  if (n > 0) deps.logger.warn({ ended: n }, "reconcile: held transfers ended after hold_s (status 0 with their code)");
  return n;
}
