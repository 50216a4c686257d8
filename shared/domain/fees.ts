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
 * Storage that may change between estimate and inclusion: writing a slot
 * that was zero costs 20,000 gas against 2,900 for one that was not (EIP-2929
 * / EIP-3529). A token transfer estimated while the recipient held a balance
 * (about 38k gas for a USDT-like token) needs about 56k if the recipient
 * empties it before ours is mined: more than a percentage margin covers.
 */
export const STORAGE_SET_MARGIN_GAS = 25_000n;

/**
 * Gas limit from a node's estimate: the estimate plus the larger of 20 %
 * (rounded up) and STORAGE_SET_MARGIN_GAS, against state moving between
 * estimate and inclusion. Only gas used is paid; the limit matters for the
 * balance check (limit x max fee must be there). A plain ETH transfer to an
 * account without code costs exactly 21000 and stays so.
 */
export function gasLimitFromEstimate(estimate: bigint): bigint {
  if (estimate <= 0n) throw new RangeError("gas estimate must be positive");
  if (estimate === 21_000n) return estimate;
  const percent = (estimate * 20n + 99n) / 100n;
  return estimate + (percent > STORAGE_SET_MARGIN_GAS ? percent : STORAGE_SET_MARGIN_GAS);
}

/**
 * The highest max fee per gas the gateway offers now, or null for none: the
 * lower of `max_fee_gwei` (absolute, 0 = none) and `max_fee_multiple` times
 * the current base fee plus tip (relative, 0 = none). A fresh transaction
 * offers 2 x base fee + tip, so a multiple of at least 2 never holds back a
 * new one; it stops replacements from re-pricing a transaction without end
 * (each bump is +fee_bump_percent over the last) when the reason it is not
 * mined is not its price.
 */
export function feeCap(cfg: { max_fee_gwei: number; max_fee_multiple: number }, baseFee: bigint, tip: bigint): bigint | null {
  const absolute = capFromGwei(cfg.max_fee_gwei);
  const relative = cfg.max_fee_multiple > 0 ? BigInt(cfg.max_fee_multiple) * (baseFee + tip) : null;
  if (absolute === null) return relative;
  if (relative === null) return absolute;
  return absolute < relative ? absolute : relative;
}

/** `max_fee_gwei` from the config (a JSON number, 0 = no cap) as a wei cap. */
export function capFromGwei(gwei: number): bigint | null {
  if (!(gwei > 0)) return null;
  // Config numbers are read as their shortest decimal text, never multiplied as floats.
  const text = gwei.toFixed(9).replace(/\.?0+$/, "");
  const [int = "0", frac = ""] = text.split(".");
  return BigInt(int) * 1_000_000_000n + BigInt(frac.padEnd(9, "0"));
}
