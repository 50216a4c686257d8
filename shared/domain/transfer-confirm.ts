/**
 * What a confirmation check concludes for a sent transfer, from what the
 * node says now. Pure; workers/confirmation/confirm-transfer.ts gathers the
 * facts (every attempt hash of the transfer's nonce is followed: at most
 * one can be mined) and carries the decision out.
 *
 * Invariants this encodes (SPEC §1, §4, §5):
 * - final only when head >= block + confirm_height AND the block holding
 *   the receipt is the node's canonical block at that height;
 * - a receipt that moved to another block is followed there (its depth is
 *   counted again); one that vanished sends the transfer back to `sent`
 *   (the same signed transactions are re-broadcast, so it can only be
 *   mined again with the same nonce, never paid twice);
 * - `dropped` (or `reorged`, if it had been mined before) only once another
 *   transaction with our nonce is itself confirm_height deep: until then a
 *   reorg could still bring ours back;
 * - an unmined transaction the node forgot is re-broadcast; one older than
 *   `stuck_after_s` is replaced with a higher fee (by the sender, which
 *   holds the key).
 */
import { confirmationsOf, confirmDelayMs } from "./confirmations.ts";

export interface MinedFacts {
  blockNumber: number;
  blockHash: string;
  /** 1 success, 0 reverted */
  status: number;
}

export interface TransferConfirmFacts {
  head: number;
  confirmHeight: number;
  blockTimeMs: number;
  stuckAfterMs: number;
  state: "sent" | "mined";
  /** the block the row says it was mined in (state mined) */
  storedBlockHash: string | null;
  /** the receipt of whichever attempt is mined, or null */
  mined: MinedFacts | null;
  /** the node's canonical block hash at mined.blockNumber */
  canonicalHash: string | null;
  /** the account's nonce at head is above ours (some transaction used it) */
  nonceUsed: boolean;
  /** ... and already at head - confirm_height */
  nonceUsedDeep: boolean;
  /** some attempt is known to the node (pending in its pool) */
  known: boolean;
  /** how long ago the latest attempt went out */
  latestAgeMs: number;
  /** this transfer was seen mined before and lost its block since */
  wasMinedBefore: boolean;
}

export type TransferConfirmDecision =
  /** mined, not deep enough yet; `record` = the row must be updated to this block first */
  | { kind: "wait-depth"; record: boolean; confirmations: number; delayMs: number }
  | { kind: "finalize"; record: boolean; confirmations: number; reverted: boolean }
  /** the row's block is gone and no attempt is mined now */
  | { kind: "unmined"; delayMs: number }
  /** the node's answers disagree (reorg in progress): look again shortly */
  | { kind: "recheck"; delayMs: number }
  | { kind: "give-up"; code: "dropped" | "reorged" }
  | { kind: "pending"; rebroadcast: boolean; bump: boolean; delayMs: number };

export function decideTransferConfirm(f: TransferConfirmFacts): TransferConfirmDecision {
  const soon = Math.max(Math.ceil(f.blockTimeMs / 2), 50);
  if (f.mined) {
    if (f.canonicalHash !== f.mined.blockHash) return { kind: "recheck", delayMs: soon };
    const record = f.state !== "mined" || f.storedBlockHash !== f.mined.blockHash;
    const confirmations = confirmationsOf(f.head, f.mined.blockNumber);
    const remaining = f.mined.blockNumber + f.confirmHeight - f.head;
    if (remaining > 0) return { kind: "wait-depth", record, confirmations, delayMs: confirmDelayMs(remaining, f.blockTimeMs) };
    return { kind: "finalize", record, confirmations, reverted: f.mined.status !== 1 };
  }
  if (f.state === "mined") return { kind: "unmined", delayMs: soon };
  if (f.nonceUsedDeep) return { kind: "give-up", code: f.wasMinedBefore ? "reorged" : "dropped" };
  if (f.nonceUsed) return { kind: "pending", rebroadcast: false, bump: false, delayMs: f.blockTimeMs };
  const bump = f.latestAgeMs >= f.stuckAfterMs;
  const untilStuck = Math.max(f.stuckAfterMs - f.latestAgeMs, 0);
  return { kind: "pending", rebroadcast: !f.known, bump, delayMs: Math.max(Math.min(f.blockTimeMs, bump ? f.blockTimeMs : untilStuck || f.blockTimeMs), 50) };
}
