/**
 * When the send jobs of newly queued transfers first run.
 *
 * Any one send job of a wallet drains the whole wallet: under the wallet's
 * lease it signs and sends every queued transfer of it, a batch at a time
 * (workers/transfer-sender/send-transfer.ts). The other jobs of that wallet
 * then have nothing left to do but read their row, find it sent, and end:
 * their work is bookkeeping. Started at once, nearly every one of them runs
 * twice: once while the drain has not reached it yet (it finds the lease
 * held and puts itself off) and once to end (measured: 2.0 runs per payout
 * of a 2,000-payout burst). So per wallet the first job of a batch of
 * requests starts at once, and the wallet's other jobs start later, staggered
 * at about the pace a drain goes (FOLLOWER_PACE_MS per transfer, never more
 * than FOLLOWER_MAX_DELAY_MS): by then the drain has usually handled theirs,
 * and they run once.
 *
 * Only timing depends on this, never an outcome: every job still reads its
 * row and acts on what it finds. A follower that comes before the drain
 * reached it is put off as before; if the first job never drains (its
 * process died), the followers come anyway and drain the wallet themselves;
 * the business's notifications come from the drain, not from these jobs.
 */

/** a drain's pace, rounded up: about 1 ms per payout one transaction each, under 0.5 ms in EIP-7702 batches (BENCHMARKS.md, send) */
export const FOLLOWER_PACE_MS = 2;
/** the latest a follower starts: a held transfer's job reports its hold (SPEC §7) within this */
export const FOLLOWER_MAX_DELAY_MS = 5_000;

/**
 * The start delay (ms) of each job, given the wallet of each (in the order
 * they were queued): 0 for a wallet's first, then FOLLOWER_PACE_MS more for
 * each further one of the same wallet, up to FOLLOWER_MAX_DELAY_MS.
 */
export function followerDelays(wallets: readonly string[]): number[] {
  const seen = new Map<string, number>();
  return wallets.map((w) => {
    const n = seen.get(w) ?? 0;
    seen.set(w, n + 1);
    return Math.min(n * FOLLOWER_PACE_MS, FOLLOWER_MAX_DELAY_MS);
  });
}
