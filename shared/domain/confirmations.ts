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
 * - a transaction gone from the chain ends `reorged` only on evidence that
 *   it can never be mined: its sender's nonce used by another transaction
 *   confirm_height blocks deep (as the transfer side decides `dropped`).
 *   Never on a timer: a node that forgot it, a transaction pending for
 *   hours, a lagging backend can all still end in it being mined, and a
 *   deposit reported `reorged` and then mined would never be credited. Until
 *   the evidence is there it waits (the overdue gauge and alert show it).
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
  /**
   * with a null receipt off the canonical chain: the transaction's sender
   * has used its nonce in a block confirm_height below the head (undefined:
   * not known, e.g. a row stored before the sender was recorded)
   */
  nonceUsedDeep?: boolean;
  /** with a successful receipt in the row's block: the transfer at the row's index is the row's (required then) */
  contentMatches?: boolean;
  blockTimeMs: number;
}

export type ConfirmDecision =
  | { kind: "wait"; confirmations: number; delayMs: number }
  | { kind: "fetch-receipt" }
  | { kind: "finalize"; confirmations: number }
  | { kind: "follow"; blockNumber: number; blockHash: string }
  /** off the chain, not mined elsewhere, nothing took its nonce deep yet: look again later */
  | { kind: "wait-unmined"; delayMs: number }
  | { kind: "reorged" }
  | { kind: "reverted" }
  /** the chain's transfer at this index is not the row's: never finalise, alert */
  | { kind: "mismatch" };

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
    if (f.nonceUsedDeep === true) return { kind: "reorged" };
    // Mined again, chain-watch follows it at once (it wakes this job); the
    // timer is the fallback, and the evidence needs confirm_height blocks anyway.
    return { kind: "wait-unmined", delayMs: confirmDelayMs(Math.max(Math.ceil(f.confirmHeight / 2), 1), f.blockTimeMs) };
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
