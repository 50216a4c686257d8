/**
 * Bull Board over every queue of the job registry, as an Express router.
 *
 * Retrying a failed job from the board is safe by construction: every
 * processor re-reads its row and acts on the state it finds (a transfer that
 * already has a signed transaction is followed, never signed again), so a
 * retry can at worst finish what the failed run started.
 *
 * Job data holds row ids and a readable label only (shared/jobs/registry.ts).
 * The data formatter below is a second line of defence: should a secret-like
 * field ever reach a job, the board shows it redacted.
 */
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import type { Router } from "express";
import { QUEUE_NAMES, type QueueName, type Queues } from "../../shared/jobs/registry.ts";

const SECRET_KEY = /key|secret|password|passphrase|mnemonic|authorization|sign|raw/i;

const DESCRIPTIONS: Record<QueueName, string> = {
  transfer: "sign and broadcast withdrawals and payouts (retry is safe: a signed transaction is followed, never re-signed)",
  confirm: "wait for confirm_height, check the block is canonical, finalise deposits and transfers",
  maintenance: "rebuild jobs missing from Redis out of MySQL (reconcile)",
};

/** Copy of job data with secret-looking fields replaced, at any depth. */
export function redactJobData(value: unknown, depth = 0): unknown {
  if (depth > 5 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => redactJobData(v, depth + 1));
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, SECRET_KEY.test(k) ? "[redacted]" : redactJobData(v, depth + 1)]),
  );
}

export function createBullBoardRouter(queues: Queues, opts: { basePath: string; title?: string }): Router {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(opts.basePath);
  const adapters = QUEUE_NAMES.map((name) => {
    const a = new BullMQAdapter(queues[name], { allowRetries: true, readOnlyMode: false, description: DESCRIPTIONS[name] });
    a.setFormatter("data", (data: unknown) => redactJobData(data));
    return a;
  });
  createBullBoard({
    queues: adapters,
    // @bull-board/express pins its own copy of @bull-board/api (9.10.1 vs
    // 9.10.2): same runtime shape, separately declared private fields.
    serverAdapter: serverAdapter as unknown as Parameters<typeof createBullBoard>[0]["serverAdapter"],
    options: { uiConfig: { boardTitle: opts.title ?? "Payment gateway", hideDocsLink: true } },
  });
  return serverAdapter.getRouter() as Router;
}
