/**
 * Nonce planning for one sending address. Pure: the caller reads the stored
 * next nonce (sender_nonce, under a row lock and the address's Redis lease)
 * and the node's pending nonce, and writes the plan back with a guarded
 * update (`WHERE next_nonce = stored`), in the same transaction that
 * persists the signed transactions.
 *
 * Why max(stored, chain): `stored` is ahead of the chain while our signed
 * transactions have not all reached the node (crash before broadcast, node
 * restarted): re-using those nonces would sign a second transaction for a
 * nonce already promised to another transfer. The chain is ahead of `stored`
 * only when something else used the key (an operator's wallet, a lost
 * database row): those nonces are skipped, never reused.
 *
 * @example
 * planNonces(10n, 8n, 3)  // { first: 10n, nonces: [10n, 11n, 12n], next: 13n, skipped: 0n }
 * planNonces(10n, 12n, 1) // { first: 12n, nonces: [12n], next: 13n, skipped: 2n }
 */

export interface NoncePlan {
  /** the first nonce handed out */
  first: bigint;
  /** consecutive nonces, one per transaction, in signing order */
  nonces: bigint[];
  /** the value sender_nonce.next_nonce must hold afterwards */
  next: bigint;
  /** nonces used on chain by something other than this gateway */
  skipped: bigint;
}

export function planNonces(stored: bigint | null, chainPending: bigint, count: number): NoncePlan {
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${count}`);
  if (chainPending < 0n || (stored !== null && stored < 0n)) throw new RangeError("nonces are never negative");
  const base = stored ?? 0n;
  const first = chainPending > base ? chainPending : base;
  const nonces = Array.from({ length: count }, (_, i) => first + BigInt(i));
  // With no stored row the chain is the only truth: nothing was "skipped" by others.
  const skipped = stored === null ? 0n : first - base;
  return { first, nonces, next: first + BigInt(count), skipped };
}

/**
 * Whether a nonce can still be mined for `address`: once the account's
 * nonce at some block is above it, a transaction with that nonce is in
 * that block or an earlier one, and no other transaction with it can be.
 */
export function nonceConsumed(nonce: bigint, accountNonceAtBlock: bigint): boolean {
  return accountNonceAtBlock > nonce;
}

/** True when `nonces` (in any order) are distinct and form one unbroken run. */
export function isGapFree(nonces: readonly bigint[]): boolean {
  if (nonces.length === 0) return true;
  const sorted = [...nonces].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return sorted.every((n, i) => n === sorted[0]! + BigInt(i));
}
