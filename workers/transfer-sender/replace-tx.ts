/**
 * Replacing a stuck transaction: same nonce, same call, higher fees.
 *
 * Runs in the transfer-sender (the only role holding keys) when a
 * `send-transfer` job finds its transfer `sent` but unmined for longer than
 * `stuck_after_s`; the confirmation worker enqueues that job when it sees
 * the transfer stuck. The new tx_attempt is committed BEFORE it is
 * broadcast, and only if the latest attempt is still the one we bumped
 * from (a second replacer loses the race and does nothing). Because every
 * attempt shares the nonce, at most one of them can ever be mined; the
 * confirmation worker follows all their hashes.
 */
import type { Logger } from "../../shared/logger.ts";
import { inTransaction } from "../../shared/adapters/db/sql.ts";
import { insertAudit } from "../../shared/adapters/db/outbox.ts";
import { bumpFees, capFromGwei, suggestFees } from "../../shared/domain/fees.ts";
import { nonceConsumed } from "../../shared/domain/nonce-plan.ts";
import type { SenderChain, SenderContext } from "./context.ts";
import { loadAttempts, type AttemptRow, type TransferRow } from "./transfer-rows.ts";
import { resignWithFees } from "./tx-build.ts";
import { broadcastOne } from "./broadcast.ts";
import { ACTOR } from "./sign-batch.ts";

export type ReplaceOutcome = "settled" | "not-stuck" | "replaced" | "capped" | "raced";

/** When the latest attempt of a transfer went out (or was signed, if never broadcast). */
export function attemptAgeMs(a: AttemptRow, nowMs: number): number {
  return nowMs - (a.broadcast_at ?? a.created_at).getTime();
}

export async function replaceIfStuck(ctx: SenderContext, chain: SenderChain, t: TransferRow, log: Logger): Promise<ReplaceOutcome> {
  if (t.state !== "sent" || t.nonce === null || t.from_address === null) return "settled";
  const from = t.from_address;
  const attempts = await loadAttempts(ctx.pool, [t.id]);
  const latest = attempts.at(-1);
  if (!latest) return "settled";
  const cfg = chain.config;
  // Cheap test first: most runs of a sent transfer's job are not about a stuck transaction.
  if (attemptAgeMs(latest, ctx.now()) < cfg.stuck_after_s * 1000) return "not-stuck";
  if (nonceConsumed(t.nonce, await chain.reads.nonce(from, "latest"))) return "settled";
  const receipts = await Promise.all(attempts.map((a) => chain.reads.receipt(a.tx_hash)));
  if (receipts.some((r) => r !== null)) return "settled";

  const [head, tip] = await Promise.all([chain.reads.head(), chain.reads.tip()]);
  const cap = capFromGwei(cfg.max_fee_gwei);
  const prev = { maxFeePerGas: BigInt(latest.max_fee_per_gas), maxPriorityFeePerGas: BigInt(latest.max_priority_fee_per_gas) };
  const fees = bumpFees(prev, suggestFees(head.baseFee, tip, cap), cfg.fee_bump_percent, cap);
  if (!fees) {
    log.warn({ transfer: t.id.toString(), max_fee_gwei: cfg.max_fee_gwei }, "sender: stuck transaction cannot be replaced under max_fee_gwei; still following it");
    return "capped";
  }
  const key = await ctx.keystore.signingKey(chain.key, from);
  const next = resignWithFees(key, latest.raw_tx, fees);

  const persisted = await inTransaction(ctx.pool, async (conn) => {
    const row = (await conn.query("SELECT state FROM transfer WHERE id = ? FOR UPDATE", [t.id])) as { state: string }[];
    if (row[0]?.state !== "sent") return false;
    const top = (await conn.query("SELECT MAX(id) AS id FROM tx_attempt WHERE transfer_id = ?", [t.id])) as { id: bigint }[];
    if (top[0]?.id !== latest.id) return false;
    await conn.query(
      `INSERT INTO tx_attempt (transfer_id, chain, from_address, nonce, tx_hash, raw_tx, max_fee_per_gas, max_priority_fee_per_gas, gas_limit, state)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'signed')`,
      [t.id, chain.key, from, t.nonce, next.hash, next.raw, fees.maxFeePerGas, fees.maxPriorityFeePerGas, latest.gas_limit],
    );
    await conn.query("UPDATE transfer SET tx_hash = ?, updated_at = NOW(3) WHERE id = ?", [next.hash, t.id]);
    await insertAudit(conn, [
      {
        actor: ACTOR,
        event: "transfer.replaced",
        queueId: t.queue_id,
        orderId: t.order_id || null,
        address: from,
        subjectType: "transfer",
        subjectId: t.id,
        data: { nonce: t.nonce, old_tx_hash: latest.tx_hash, tx_hash: next.hash, max_fee_per_gas: fees.maxFeePerGas, max_priority_fee_per_gas: fees.maxPriorityFeePerGas },
      },
    ]);
    return true;
  });
  if (!persisted) return "raced";
  log.info({ transfer: t.id.toString(), nonce: t.nonce.toString(), old: latest.tx_hash, new: next.hash }, "sender: replaced a stuck transaction with a higher fee");
  if ((await broadcastOne(chain, next.raw, next.hash, log)) === "out") {
    await ctx.pool.query("UPDATE tx_attempt SET state = 'broadcast', broadcast_at = NOW(3) WHERE chain = ? AND tx_hash = ? AND state = 'signed'", [chain.key, next.hash]);
  }
  return "replaced";
}
