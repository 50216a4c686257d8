/**
 * When the send jobs of newly queued transfers first run.
 *
 * Any one send job of a wallet drains the whole wallet: under the wallet's
 * lease it signs and sends every queued transfer of it, a batch at a time
 * (workers/transfer-sender/send-transfer.ts). The other jobs of that wallet
 * then have nothing left to do but read their row, find it sent (or held,
 * or ended), and report it: their work is bookkeeping. Started at once,
 * nearly every one of them runs twice: once while the drain has not reached
 * it yet (it finds the lease held and puts itself off) and once to end
 * (measured: 2.0 runs per payout of a 2,000-payout burst). So per wallet the
 * first job of a batch of requests starts at once, and the wallet's other
 * jobs (its followers) are put off by FOLLOWER_DELAY_MS; the drain that
 * handles a follower's transfer starts its job as soon as the transfer is
 * sent or ended (it promotes the delayed job), so it runs once, right then.
 *
 * Only timing depends on this, never an outcome: every job still reads its
 * row and acts on what it finds. A follower started before the drain reached
 * it is put off as before. If the first job never drains (its process died,
 * or its own transfer was cancelled before it ran), the followers come at
 * the end of their delay and drain the wallet themselves: that is the
 * longest a payout waits for a sender that is running. The business's
 * notifications come from the drain, not from these jobs.
 */

/**
 * How long a follower waits unless a drain starts it first: about one
 * drain's time budget, so a follower that does come on its own (no drain
 * started it) usually finds the wallet free, and a held transfer whose
 * drain died still reaches the failed list within seconds.
 */
export const FOLLOWER_DELAY_MS = 10_000;

/**
 * The start delay (ms) of each job, given the wallet of each (in the order
 * they were queued): 0 for a wallet's first, FOLLOWER_DELAY_MS for the
 * others of the same wallet.
 */
export function followerDelays(wallets: readonly string[]): number[] {
  const seen = new Set<string>();
  return wallets.map((w) => {
    if (seen.has(w)) return FOLLOWER_DELAY_MS;
    seen.add(w);
    return 0;
  });
}
