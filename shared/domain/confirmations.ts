/**
 * What a confirmation check concludes for a seen deposit, from what the node
 * says now. Pure; the worker gathers the facts in two steps (cheap head +
 * canonical-hash check first, receipt only when due or when the block left
 * the canonical chain) and acts on the decision.
 *
 * Invariants this encodes (SPEC §1, §5):
 * - final only when head >= block + confirm_height AND the receipt is in the
 *   row's block AND that block is the node's canonical block at its height
 *   AND the transfer at the row's log index matches the row;
 * - a transaction found in another block is followed there (and waits again);
 * - a transaction gone from the chain ends `reorged`, after a short grace
 *   when the node no longer knows it at all (a node briefly loses
 *   transactions while re-injecting a reorged block's ones into its pool)
 *   and a bounded one while it is still pending.
 */

export interface ReceiptFacts {
  blockNumber: number;
  blockHash: string;
  /** 1 success, 0 reverted */
  status: number;
}

export interface ConfirmFacts {
  blockNumber: number;
  blockHash: string;
  confirmHeight: number;
  head: number;
  /** the node's block hash at `blockNumber`; null when it has none */
  canonicalHash: string | null;
  /** undefined: not fetched yet; null: no receipt (not mined) */
  receipt?: ReceiptFacts | null;
  /** with a null receipt: the node still has the transaction, unmined */
  pending?: boolean;
  /** with a successful receipt in the row's block: the transfer at the row's index is the row's (required then) */
  contentMatches?: boolean;
  nowMs: number;
  /** when the transaction was first found missing / pending (job progress) */
  missingSinceMs?: number | null;
  pendingSinceMs?: number | null;
  blockTimeMs: number;
  /** how long an unmined, still pending transaction may wait before `reorged` */
  pendingGraceMs: number;
}

export type ConfirmDecision =
  | { kind: "wait"; confirmations: number; delayMs: number }
  | { kind: "fetch-receipt" }
  | { kind: "finalize"; confirmations: number }
  | { kind: "follow"; blockNumber: number; blockHash: string }
  | { kind: "wait-missing"; missingSinceMs: number; delayMs: number }
  | { kind: "wait-pending"; pendingSinceMs: number; delayMs: number }
  | { kind: "reorged" }
  | { kind: "reverted" }
  /** the chain's transfer at this index is not the row's: never finalise, alert */
  | { kind: "mismatch" };

/** How long a missing transaction is given before it counts as gone. */
export const missingGraceMs = (blockTimeMs: number) => Math.max(2 * blockTimeMs, 500);

/**
 * Delay before the next check: the remaining blocks at the typical block
 * time, at least half a block (no busy loop), at most 10 minutes (a long
 * sleep would delay noticing a reorg; chain-watch also wakes jobs early).
 */
export function confirmDelayMs(remainingBlocks: number, blockTimeMs: number): number {
  const raw = Math.max(remainingBlocks, 1) * blockTimeMs;
  return Math.min(Math.max(raw, Math.ceil(blockTimeMs / 2), 50), 10 * 60_000);
}

export const confirmationsOf = (head: number, blockNumber: number) => Math.max(head - blockNumber, 0);

export function decideConfirm(f: ConfirmFacts): ConfirmDecision {
  const confirmations = confirmationsOf(f.head, f.blockNumber);
  const remaining = f.blockNumber + f.confirmHeight - f.head;
  const canonical = f.canonicalHash === f.blockHash;
  const wait = (): ConfirmDecision => ({ kind: "wait", confirmations, delayMs: confirmDelayMs(remaining, f.blockTimeMs) });

  if (f.receipt === undefined) {
    // Not due and still canonical: nothing to verify yet.
    if (canonical && remaining > 0) return wait();
    return { kind: "fetch-receipt" };
  }
  if (f.receipt === null) {
    // The node still shows our block at its height yet has no receipt: its
    // indexes disagree (mid-reorg, or receipts not indexed yet). Never call
    // a deposit gone while its block is canonical; look again shortly.
    if (canonical) return { kind: "wait", confirmations, delayMs: confirmDelayMs(1, f.blockTimeMs) };
    if (f.pending) {
      const since = f.pendingSinceMs ?? f.nowMs;
      if (f.nowMs - since >= f.pendingGraceMs) return { kind: "reorged" };
      return { kind: "wait-pending", pendingSinceMs: since, delayMs: confirmDelayMs(1, f.blockTimeMs) };
    }
    const since = f.missingSinceMs ?? f.nowMs;
    if (f.nowMs - since >= missingGraceMs(f.blockTimeMs)) return { kind: "reorged" };
    return { kind: "wait-missing", missingSinceMs: since, delayMs: Math.min(missingGraceMs(f.blockTimeMs), confirmDelayMs(1, f.blockTimeMs)) };
  }
  if (f.receipt.blockHash !== f.blockHash) return { kind: "follow", blockNumber: f.receipt.blockNumber, blockHash: f.receipt.blockHash };
  if (f.receipt.status !== 1) return { kind: "reverted" };
  if (f.contentMatches !== true) return { kind: "mismatch" };
  if (remaining > 0) return wait();
  // The receipt names our block but the node's block at that height is
  // another one: answers from both sides of a reorg. Look again shortly.
  if (!canonical) return { kind: "wait", confirmations, delayMs: confirmDelayMs(1, f.blockTimeMs) };
  return { kind: "finalize", confirmations };
}
