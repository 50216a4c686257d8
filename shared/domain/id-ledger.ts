/**
 * The id ledger's decision (SPEC §3 "One id, one outcome"), pure: which
 * message of a batch takes its (kind, queue_id), which is a duplicate, and
 * which is a redelivery of bytes already recorded. Only authenticated
 * messages with a usable id are candidates (the bridge never offers an
 * unauthenticated one, so a forgery cannot take an id).
 *
 * Rules, in batch order:
 * - an id not in the ledger and not taken earlier in the batch: taken by
 *   this message (whether it is then accepted or refused);
 * - the same bytes as the message that took the id, flagged as a possible
 *   redelivery (RabbitMQ's redelivered flag, or our retry of a batch whose
 *   commit may have landed): a redelivery, acked silently;
 * - anything else under a taken id: a duplicate. It changes nothing and is
 *   never answered (another body, the same bytes sent again, a replay after
 *   the window, a retry after the cause of a refusal was fixed).
 * Messages without an id (a topup may have none) take nothing.
 */
import type { RequestKind } from "./request-kinds.ts";

export interface LedgerEntry {
  id: bigint;
  /** sha256 of the exact bytes of the message that took the id */
  rawHash: string;
  /** the request's state (accepted, rejected, done) */
  state: string;
}

export interface IdCandidate {
  kind: RequestKind;
  queueId: string | null;
  rawHash: string;
  redelivered: boolean;
}

export type IdDecision =
  | { decision: "take" }
  | { decision: "redelivery"; priorId: bigint | null }
  | { decision: "duplicate"; detail: string; sameBytes: boolean; first: string };

export const ledgerKey = (kind: string, queueId: string) => `${kind}\u0000${queueId}`;

/** One decision per candidate, in order; `ledger` holds the recorded ids of the batch's candidates. */
export function decideIds(candidates: IdCandidate[], ledger: ReadonlyMap<string, LedgerEntry>): IdDecision[] {
  const takenInBatch = new Map<string, string>(); // ledger key -> raw hash of the message that took it
  return candidates.map((c): IdDecision => {
    if (c.queueId === null) return { decision: "take" };
    const key = ledgerKey(c.kind, c.queueId);
    const prior = ledger.get(key);
    const priorHash = prior?.rawHash ?? takenInBatch.get(key);
    if (priorHash === undefined) {
      takenInBatch.set(key, c.rawHash);
      return { decision: "take" };
    }
    const sameBytes = priorHash === c.rawHash;
    if (c.redelivered && sameBytes) return { decision: "redelivery", priorId: prior?.id ?? null };
    const first = prior ? `an earlier ${c.kind} request (${prior.state})` : "an earlier message of this batch";
    return {
      decision: "duplicate",
      detail: `queue_id ${c.queueId} is taken by ${first}${sameBytes ? ", with the same bytes" : ""}; retry under a new queue_id`,
      sameBytes,
      first: prior?.state ?? "in this batch",
    };
  });
}
