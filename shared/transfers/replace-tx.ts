/**
 * Replacing a stuck transaction: same nonce, same call, higher fees.
 *
 * Runs in the transfer-sender (the only role holding keys) when a
 * `send-transfer` job finds its transfer `sent` but unmined for longer than
 * `stuck_after_s`; the confirmation worker enqueues that job when it sees
 * the transfer stuck. Only the wallet's lowest unmined nonce is ever stuck
 * (the ones after it wait for it), and fees rise at most to the cap
 * (`feeCap`: max_fee_gwei, max_fee_multiple x (base fee + tip)): a
 * transaction that is not mined for another reason is not re-priced
 * without end. The new tx_attempt is committed BEFORE it is
 * broadcast, and only if the latest attempt is still the one we bumped
 * from (a second replacer loses the race and does nothing). Because every
 * attempt shares the nonce, at most one of them can ever be mined; the
 * confirmation worker follows all their hashes.
 */
import type { Logger } from "../logger.ts";
import { inTransaction } from "../adapters/db/sql.ts";
import { logToJobs } from "../jobs/job-log.ts";
import { bumpFees, feeCap, suggestFees } from "../domain/fees.ts";
import { nonceConsumed } from "../domain/nonce-plan.ts";
import { SENDER_ACTOR, type SenderChain, type SenderContext } from "./context.ts";
import { loadAttempts, type AttemptRow, type TransferRow } from "./rows.ts";
import { resignDelegationTx } from "../adapters/eip7702.ts";
import { broadcastOne } from "./broadcast.ts";
import { addBatchReplacement, addReplacement, markAttemptBroadcast } from "./chain-transitions.ts";

const ACTOR = SENDER_ACTOR;

export type ReplaceOutcome = "settled" | "not-stuck" | "queued-behind" | "replaced" | "capped" | "raced";

/** When the latest attempt of a transfer went out (or was signed, if never broadcast). */
export function attemptAgeMs(a: AttemptRow, nowMs: number): number {
  return nowMs - (a.broadcast_at ?? a.created_at).getTime();
}

export async function replaceIfStuck(ctx: SenderContext, chain: SenderChain, t: TransferRow, log: Logger): Promise<ReplaceOutcome> {
  if (t.state !== "sent" || t.nonce === null || t.from_address === null) return "settled";
  const from = t.from_address;
  const cfg = chain.config;
  // Cheapest test first, without reading the attempts (a batch member's read carries the batch's raw
  // bytes): the transfer became sent milliseconds after its first attempt went out, and any later attempt
  // is newer, so while sent_at is younger than stuck_after_s the newest attempt is too (give or take those
  // milliseconds, which the next look at it makes up).
  if (t.sent_at !== null && ctx.now() - t.sent_at.getTime() < cfg.stuck_after_s * 1000) return "not-stuck";
  const attempts = await loadAttempts(ctx.pool, [t.id]);
  const latest = attempts.at(-1);
  if (!latest) return "settled";
  // Cheap test first: most runs of a sent transfer's job are not about a stuck transaction.
  if (attemptAgeMs(latest, ctx.now()) < cfg.stuck_after_s * 1000) return "not-stuck";
  const accountNonce = await chain.reads.nonce(from, "latest");
  if (nonceConsumed(t.nonce, accountNonce)) return "settled";
  // A lower nonce of the wallet is unmined: this one waits behind it, and a higher fee would not help.
  if (accountNonce < t.nonce) return "queued-behind";
  const receipts = await Promise.all(attempts.map((a) => chain.reads.receipt(a.tx_hash)));
  if (receipts.some((r) => r !== null)) return "settled";

  const [head, tip] = await Promise.all([chain.reads.head(), chain.reads.tip()]);
  const cap = feeCap(cfg, head.baseFee, tip);
  const prev = { maxFeePerGas: BigInt(latest.max_fee_per_gas), maxPriorityFeePerGas: BigInt(latest.max_priority_fee_per_gas) };
  const fees = bumpFees(prev, suggestFees(head.baseFee, tip, cap), cfg.fee_bump_percent, cap);
  if (!fees) {
    ctx.metrics.feeCapped.inc({ chain: chain.key });
    log.warn(
      { transfer: t.id.toString(), max_fee_gwei: cfg.max_fee_gwei, max_fee_multiple: cfg.max_fee_multiple, cap: cap?.toString() },
      "sender: stuck transaction not re-priced: the fee cap holds it back; still following it",
    );
    return "capped";
  }
  const key = await ctx.keystore.signingKey(chain.key, from);
  // A batch is replaced whole: same nonce, same items, same authorization, for every member at once.
  const next = resignDelegationTx(key, latest.raw_tx, fees);
  const step = { actor: ACTOR, nowMs: ctx.now() };
  const replaced = await inTransaction(ctx.pool, async (conn) =>
    latest.batch_size !== null ? addBatchReplacement(conn, chain.key, latest, next, fees, step) : (await addReplacement(conn, t, latest, next, fees, step)) ? [t.id] : [],
  );
  if (replaced.length === 0) return "raced";
  log.info({ transfer: t.id.toString(), nonce: t.nonce.toString(), old: latest.tx_hash, new: next.hash, transfers: replaced.length }, "sender: replaced a stuck transaction with a higher fee");
  const batch = replaced.length > 1 ? ` (the whole batch of ${replaced.length})` : "";
  await logToJobs(ctx.queues, "send-transfer", replaced.map((id) => ({ id, line: `replaced (stuck): nonce ${t.nonce}, tx ${latest.tx_hash} -> ${next.hash} with a higher fee${batch}` })), log);
  if ((await broadcastOne(chain, next.raw, next.hash, log)) === "out") {
    await markAttemptBroadcast(ctx.pool, chain.key, next.hash);
  }
  return "replaced";
}
