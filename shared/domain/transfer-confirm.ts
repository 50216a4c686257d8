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
 *   reorg could still bring ours back. And never on one round of null
 *   receipts: behind a load balancer a lagging backend answers null for a
 *   mined transaction. Every attempt's receipt is read again anchored to
 *   that depth (one backend answers the nonce there and the receipts), on
 *   two checks (two runs of the job, a block time apart), before giving up;
 * - an unmined transaction the node forgot is re-broadcast; one older than
 *   `stuck_after_s` is replaced with a higher fee (by the sender, which
 *   holds the key), but only when its nonce is the wallet's next one: the
 *   transactions after it are queued behind it, not stuck, and re-pricing
 *   them would only raise what they cost.
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
  /** the account's nonce at head is ours: this is the wallet's lowest unmined transaction */
  nextNonce: boolean;
  /** ... and already at head - confirm_height */
  nonceUsedDeep: boolean;
  /** some attempt is known to the node (pending in its pool) */
  known: boolean;
  /** how long ago the latest attempt went out */
  latestAgeMs: number;
  /** this transfer was seen mined before and lost its block since */
  wasMinedBefore: boolean;
  /**
   * the anchored re-read (one backend: the nonce at head - confirm_height and
   * every attempt's receipt) found the nonce used there and no receipt;
   * undefined: not read yet
   */
  dropConfirmed?: boolean;
  /** the head at which an earlier run's anchored check found the same (job progress), or null */
  dropCheckedAt: number | null;
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
  /** the nonce is taken deep and no receipt was read: read them again, anchored at that depth */
  | { kind: "verify-drop" }
  /** a first anchored check agrees: remember it, check again on the next run */
  | { kind: "drop-checked"; delayMs: number }
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
  if (f.nonceUsedDeep) {
    if (f.dropConfirmed === undefined) return { kind: "verify-drop" };
    if (!f.dropConfirmed) return { kind: "recheck", delayMs: soon };
    // A second run agreeing: a chain that stops (a dev chain without traffic) must not stall this.
    if (f.dropCheckedAt !== null) return { kind: "give-up", code: f.wasMinedBefore ? "reorged" : "dropped" };
    return { kind: "drop-checked", delayMs: f.blockTimeMs };
  }
  if (f.nonceUsed) return { kind: "pending", rebroadcast: false, bump: false, delayMs: f.blockTimeMs };
  const bump = f.nextNonce && f.latestAgeMs >= f.stuckAfterMs;
  const untilStuck = Math.max(f.stuckAfterMs - f.latestAgeMs, 0);
  return { kind: "pending", rebroadcast: !f.known, bump, delayMs: Math.max(Math.min(f.blockTimeMs, bump ? f.blockTimeMs : untilStuck || f.blockTimeMs), 50) };
}
