/**
 * EIP-1559 fee maths, exact in wei (bigint). Pure.
 *
 * A new transaction offers `maxFeePerGas = 2 * baseFee + tip`: the base fee
 * can rise 12.5 % per full block, so this survives about six full blocks in
 * a row before the transaction stops being includable. What it pays is
 * `baseFee + tip` of the block that includes it; the rest is never spent but
 * must be in the wallet, which is why balance checks reserve
 * `gasLimit * maxFeePerGas`.
 *
 * A replacement (same nonce) must raise BOTH the fee cap and the tip by at
 * least the node's minimum (10 % on geth and anvil), else it is refused as
 * underpriced; `fee_bump_percent` (>= 10) is applied to both, and never
 * ends below what a fresh transaction would offer now.
 *
 * @example
 * suggestFees(1_000_000_000n, 1_000_000_000n)               // { maxFeePerGas: 3 gwei, maxPriorityFeePerGas: 1 gwei }
 * bumpFees({ maxFeePerGas: 3n, maxPriorityFeePerGas: 1n }, { maxFeePerGas: 3n, maxPriorityFeePerGas: 1n }, 20) // { 4n, 2n }
 */

export interface Fees {
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
}

/** Percent increase, rounded up so a bump is never below the percentage. */
export function increaseByPercent(value: bigint, percent: number): bigint {
  if (!Number.isInteger(percent) || percent < 0) throw new RangeError("percent must be a non-negative integer");
  const scaled = value * BigInt(100 + percent);
  return (scaled + 99n) / 100n;
}

/**
 * Fees for a new transaction from the latest base fee and the node's tip
 * suggestion, capped at `capWei` (null = no cap). Under a cap the tip is
 * lowered too, so that maxPriorityFeePerGas <= maxFeePerGas always holds.
 */
export function suggestFees(baseFee: bigint, tip: bigint, capWei: bigint | null = null): Fees {
  if (baseFee < 0n || tip < 0n) throw new RangeError("fees are never negative");
  let maxFeePerGas = 2n * baseFee + tip;
  let maxPriorityFeePerGas = tip;
  if (capWei !== null && maxFeePerGas > capWei) maxFeePerGas = capWei;
  if (maxPriorityFeePerGas > maxFeePerGas) maxPriorityFeePerGas = maxFeePerGas;
  return { maxFeePerGas, maxPriorityFeePerGas };
}

/**
 * Fees for a same-nonce replacement of `prev`: each field at least
 * `prev * (100 + percent) / 100` (rounded up, and at least +1 wei so a zero
 * tip still rises) and at least what `market` offers now. Returns null when
 * the cap does not leave room for a valid replacement: the caller keeps
 * following the transaction already sent rather than sending one the node
 * would refuse.
 */
export function bumpFees(prev: Fees, market: Fees, percent: number, capWei: bigint | null = null): Fees | null {
  const raise = (v: bigint) => {
    const up = increaseByPercent(v, percent);
    return up > v ? up : v + 1n;
  };
  const max = (a: bigint, b: bigint) => (a > b ? a : b);
  const maxPriorityFeePerGas = max(raise(prev.maxPriorityFeePerGas), market.maxPriorityFeePerGas);
  let maxFeePerGas = max(raise(prev.maxFeePerGas), market.maxFeePerGas);
  if (maxFeePerGas < maxPriorityFeePerGas) maxFeePerGas = maxPriorityFeePerGas;
  if (capWei !== null && maxFeePerGas > capWei) return null;
  return { maxFeePerGas, maxPriorityFeePerGas };
}

/** The most a transaction can cost in gas: what the wallet must hold for it (plus its value). */
export function maxGasCost(gasLimit: bigint, fees: Fees): bigint {
  return gasLimit * fees.maxFeePerGas;
}

/**
 * Gas limit from a node's estimate: +20 % (rounded up) against state moving
 * between estimate and inclusion (a recipient's token balance going from
 * zero to non-zero or back changes a token transfer's cost). A plain ETH
 * transfer to an account without code costs exactly 21000 and stays so.
 */
export function gasLimitFromEstimate(estimate: bigint): bigint {
  if (estimate <= 0n) throw new RangeError("gas estimate must be positive");
  if (estimate === 21_000n) return estimate;
  return (estimate * 120n + 99n) / 100n;
}

/** `max_fee_gwei` from the config (a JSON number, 0 = no cap) as a wei cap. */
export function capFromGwei(gwei: number): bigint | null {
  if (!(gwei > 0)) return null;
  // Config numbers are read as their shortest decimal text, never multiplied as floats.
  const text = gwei.toFixed(9).replace(/\.?0+$/, "");
  const [int = "0", frac = ""] = text.split(".");
  return BigInt(int) * 1_000_000_000n + BigInt(frac.padEnd(9, "0"));
}
