/**
 * Handing deposits to the confirmation worker through the job registry.
 *
 * New deposits get a `confirm-deposit` job delayed until a margin after
 * they are due (remaining blocks x block time, plus a block and at least
 * FALLBACK_MARGIN_MS): chain-watch wakes one job per block as soon as the
 * confirming head arrives and that run finalises the whole block, so the
 * timers are only the fallback (chain-watch down, a lost wake-up) and must
 * not fire, thousands at once, while that run is still busy with the block
 * (on a fast chain one block is not enough). Deposits a reorg put in doubt must be
 * re-checked at once: their existing job is promoted (delayed), retried
 * (failed) or added again (missing, e.g. Redis was flushed). Adding is
 * idempotent (deterministic job id) and the processor re-reads the row, so
 * a stray extra run is harmless.
 */
import type { Job } from "bullmq";
import { enqueue, enqueueMany, jobIdFor, type JobPayload, type Queues } from "../../shared/jobs/registry.ts";
import { confirmDelayMs } from "../../shared/domain/confirmations.ts";

const short = (s: string) => `${s.slice(0, 10)}…`;

/** how long after the expected due time a job's own timer fires (the head-driven wake-up comes first) */
const FALLBACK_MARGIN_MS = 5_000;
const MAX_DELAY_MS = 10 * 60_000;

/** Dashboard name of a deposit's job: `USDT 0x4e5b2e1d… tx 0x12ab34cd…`. */
export const depositJobLabel = (d: { symbol: string; to: string; txHash: string }) => `${d.symbol} ${short(d.to)} tx ${short(d.txHash)}`;

export interface NewDepositJob {
  id: string;
  symbol: string;
  to: string;
  txHash: string;
  blockNumber: number;
  /** what the deposit is, for the operator on the dashboard (display only) */
  payment?: Record<string, string>;
}

/** Enqueue confirmation of new deposits, each delayed until about due. */
export async function enqueueConfirmations(queues: Queues, deposits: NewDepositJob[], head: number, confirmHeight: number, blockTimeMs: number): Promise<void> {
  const byDelay = new Map<number, NewDepositJob[]>();
  for (const d of deposits) {
    const remaining = d.blockNumber + confirmHeight - head;
    const delay = remaining > 0 ? Math.min(confirmDelayMs(remaining, blockTimeMs) + Math.max(blockTimeMs, FALLBACK_MARGIN_MS), MAX_DELAY_MS) : 0;
    byDelay.set(delay, [...(byDelay.get(delay) ?? []), d]);
  }
  for (const [delay, group] of byDelay) {
    await enqueueMany(
      queues,
      "confirm-deposit",
      group.map((d) => ({ depositId: d.id, label: depositJobLabel(d), ...(d.payment ? { payment: d.payment } : {}) })),
      delay > 0 ? { delay } : {},
    );
  }
}

/** Make the confirmation jobs of these deposits run now. */
export async function recheckNow(queues: Queues, deposits: { id: string; symbol: string; to: string; txHash: string }[]): Promise<void> {
  for (const d of deposits) await runNow(queues, "confirm-deposit", { depositId: d.id, label: depositJobLabel(d) });
}

/** Make the confirmation jobs of these transfers run now (their transaction is in a block, or their block is due). */
export async function recheckTransfersNow(queues: Queues, transfers: JobPayload<"confirm-transfer">[]): Promise<void> {
  for (const t of transfers) await runNow(queues, "confirm-transfer", t);
}

/**
 * Run a confirmation job now: promote it (delayed), retry it (failed), or add
 * it again (completed while its row still waits, or missing, e.g. Redis was
 * flushed). Waiting or active, it runs soon and re-reads its row anyway.
 */
async function runNow<T extends "confirm-deposit" | "confirm-transfer">(queues: Queues, type: T, payload: JobPayload<T>): Promise<void> {
  const job = (await queues.confirm.getJob(jobIdFor(type, payload)!)) as Job | undefined;
  try {
    const state = job ? await job.getState() : "unknown";
    if (job && state === "delayed") await job.promote();
    else if (job && state === "failed") await job.retry("failed");
    else if (job && state === "completed") {
      await job.remove();
      await enqueue(queues, type, payload);
    } else if (!job || state === "unknown") await enqueue(queues, type, payload);
  } catch {
    // the job changed state under us (became active, finished): it re-reads the row anyway
  }
}
