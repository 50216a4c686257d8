/**
 * Splitting payouts into EIP-7702 batch transactions (BatchExecutor.pay:
 * one transaction of one wallet moves many payouts of one asset). Pure: the
 * caller supplies each payout's gas inside a batch (estimated from the
 * chain) and the budget per transaction; the plan says which payouts share
 * a transaction and which must go alone, the plain way.
 *
 * Invariants (tests/unit/delegation-batch-plan.test.ts checks them on random input):
 * - every payout is in exactly one batch or in `singles`, never two places;
 * - a batch holds one wallet and one asset, between `minItems` and
 *   `maxItems` payouts, and `baseGas` + its payouts' gas <= `gasBudget`;
 * - per (wallet, asset) the batches keep the payouts' order, and each batch
 *   is as full as it can be: the payout after its last one did not fit;
 * - a payout goes alone only when it cannot be batched: its amount does not
 *   fit the contracts' 96 bits, its gas alone breaks the budget, or the
 *   batch it landed in closed with fewer than `minItems` payouts.
 *
 * @example
 * planBatches(payouts, { gasBudget: 10_000_000n, baseGas: 100_000n, maxItems: 200 })
 * // { batches: [{ wallet, asset, ids: [...200 ids], gas }, ...], singles: [] }
 */

/** BatchExecutor and DepositSweeper pack `amount << 160 | address` into one word. */
export const MAX_BATCH_AMOUNT = (1n << 96n) - 1n;

export interface PayoutToPlan<Id> {
  id: Id;
  /** the sending wallet (lowercase) */
  wallet: string;
  /** asset key: a token address or the native symbol */
  asset: string;
  amount: bigint;
  /** gas this payout adds to a batch transaction */
  gas: bigint;
}

export interface BatchPlanOptions {
  /** most gas one batch transaction may use */
  gasBudget: bigint;
  /** gas of a batch transaction before any payout: intrinsic, call overhead, result event, last item's reserve */
  baseGas: bigint;
  /** most payouts per batch */
  maxItems: number;
  /** fewest payouts worth a batch (default 1): a smaller remainder goes alone */
  minItems?: number;
}

export interface PlannedBatch<Id> {
  wallet: string;
  asset: string;
  ids: Id[];
  /** baseGas + the payouts' gas, at most gasBudget */
  gas: bigint;
}

export interface BatchPlan<Id> {
  batches: PlannedBatch<Id>[];
  /** payouts to send one per transaction, in input order */
  singles: Id[];
}

export function planBatches<Id>(payouts: readonly PayoutToPlan<Id>[], opts: BatchPlanOptions): BatchPlan<Id> {
  const minItems = opts.minItems ?? 1;
  if (!Number.isInteger(opts.maxItems) || opts.maxItems < 1) throw new RangeError(`maxItems must be a positive integer, got ${opts.maxItems}`);
  if (!Number.isInteger(minItems) || minItems < 1 || minItems > opts.maxItems) throw new RangeError(`minItems must be between 1 and maxItems, got ${minItems}`);
  if (opts.baseGas < 0n || opts.gasBudget <= opts.baseGas) throw new RangeError("gasBudget must exceed baseGas");
  for (const p of payouts) {
    if (p.amount <= 0n || p.gas <= 0n) throw new RangeError(`payout ${String(p.id)}: amount and gas must be positive`);
  }

  const single = new Set<PayoutToPlan<Id>>();
  // groups in order of first appearance, each in input order
  const groups = new Map<string, PayoutToPlan<Id>[]>();
  for (const p of payouts) {
    if (p.amount > MAX_BATCH_AMOUNT || opts.baseGas + p.gas > opts.gasBudget) {
      single.add(p);
      continue;
    }
    const key = `${p.wallet}\u0000${p.asset}`;
    const g = groups.get(key);
    if (g) g.push(p);
    else groups.set(key, [p]);
  }

  const batches: PlannedBatch<Id>[] = [];
  for (const group of groups.values()) {
    let current: PayoutToPlan<Id>[] = [];
    let gas = opts.baseGas;
    const close = () => {
      if (current.length >= minItems) batches.push({ wallet: current[0]!.wallet, asset: current[0]!.asset, ids: current.map((p) => p.id), gas });
      else for (const p of current) single.add(p);
      current = [];
      gas = opts.baseGas;
    };
    for (const p of group) {
      if (current.length === opts.maxItems || gas + p.gas > opts.gasBudget) close();
      current.push(p);
      gas += p.gas;
    }
    close();
  }
  return { batches, singles: payouts.filter((p) => single.has(p)).map((p) => p.id) };
}

/**
 * Gas a token payout adds inside BatchExecutor.pay, from the node's estimate
 * of the same transfer sent alone: the estimate less the 21,000 every
 * transaction pays once (its calldata, the token's own work and its cold
 * storage stay), plus the loop, the item's 32 bytes of calldata and a warm
 * CALL. Errs high: the token's account turns warm after the first item and
 * the sender's balance slot too (the first item's cold costs are in
 * BATCH_BASE_GAS).
 */
export function batchItemGas(plainEstimate: bigint): bigint {
  return (plainEstimate > 21_000n ? plainEstimate - 21_000n : 0n) + BATCH_ITEM_OVERHEAD_GAS;
}

export const BATCH_ITEM_OVERHEAD_GAS = 3_000n;

/** The gas each item's call may use (BatchExecutor's gasPerItem); payouts needing more than BATCH_ITEM_MAX_GAS of it go alone. */
export const BATCH_GAS_PER_ITEM = 100_000;
/** a payout whose own work (estimate less 21,000) exceeds this is sent alone: its call inside a batch might run out of gasPerItem */
export const BATCH_ITEM_MAX_GAS = 60_000n;

/**
 * A batch transaction before any item: 21,000 intrinsic, the wallet's own
 * authorization (25,000 charged, part refunded when the account exists),
 * the call's overhead (calldata header, the token's cold account and the
 * sender's cold balance slot on the first item, the result event), and the
 * reserve BatchExecutor demands left before its LAST item
 * (gasPerItem * 64/63 + 40,000): without it the whole transaction reverts
 * GasTooLow instead of paying.
 */
export const BATCH_BASE_GAS = 21_000n + 25_000n + 35_000n + (BigInt(BATCH_GAS_PER_ITEM) * 64n) / 63n + 40_000n;

/** Fewest payouts worth a batch: below about three, one transaction each costs no more gas. */
export const BATCH_MIN_ITEMS = 4;

export interface PayoutTx<Id> {
  id: Id;
  /** withdraw/pay (sweeps and gas top-ups always go alone) */
  business: boolean;
  /** the token paid; null for the native coin (never batched: a CALL with value to a fresh account costs more than a plain transfer) */
  token: string | null;
  units: bigint;
  /** the node's gas estimate of the transfer sent alone */
  estimate: bigint;
  /** the gas limit it would have alone (what the funds check reserved for it) */
  plainGasLimit: bigint;
}

export type TxUnit<Id> = { kind: "single"; id: Id } | { kind: "batch"; token: string; ids: Id[]; gasLimit: bigint };

export interface PayoutTxOptions {
  wallet: string;
  gasBudget: bigint;
  maxItems: number;
  maxFeePerGas: bigint;
  /** wei left free once every payout's plain worst-case cost is reserved: a batch whose gas limit exceeds its members' plain ones must fit in it */
  ethSpare: bigint;
}

/**
 * The transactions that carry already-decided payouts of one wallet: token
 * payouts of the business in batches (planBatches: gas budget, one asset
 * each, at least BATCH_MIN_ITEMS), everything else alone, in the order of
 * each transaction's first payout. When the batches' worst-case gas would
 * need more ETH than is spare, every payout goes alone (the funds check
 * reserved exactly that).
 *
 * @example
 * planPayoutTxs(payouts, { wallet, gasBudget: 12_000_000n, maxItems: 200, maxFeePerGas, ethSpare })
 * // [{ kind: "batch", token, ids: [...], gasLimit }, { kind: "single", id }]
 */
export function planPayoutTxs<Id>(payouts: readonly PayoutTx<Id>[], opts: PayoutTxOptions): TxUnit<Id>[] {
  const singles = (): TxUnit<Id>[] => payouts.map((p) => ({ kind: "single", id: p.id }));
  if (opts.maxItems < BATCH_MIN_ITEMS) return singles();
  const pos = new Map(payouts.map((p, i) => [p.id, i]));
  const batchable = payouts.filter((p) => p.business && p.token !== null && p.estimate - 21_000n <= BATCH_ITEM_MAX_GAS && p.units <= MAX_BATCH_AMOUNT);
  if (batchable.length < BATCH_MIN_ITEMS) return singles();
  const plan = planBatches(
    batchable.map((p) => ({ id: p.id, wallet: opts.wallet, asset: p.token!, amount: p.units, gas: batchItemGas(p.estimate) })),
    { gasBudget: opts.gasBudget, baseGas: BATCH_BASE_GAS, maxItems: opts.maxItems, minItems: BATCH_MIN_ITEMS },
  );
  if (plan.batches.length === 0) return singles();
  const plainOf = new Map(payouts.map((p) => [p.id, p.plainGasLimit]));
  let extra = 0n;
  for (const b of plan.batches) extra += b.gas - b.ids.reduce((s, id) => s + plainOf.get(id)!, 0n);
  if (extra > 0n && extra * opts.maxFeePerGas > opts.ethSpare) return singles();

  const inBatch = new Set(plan.batches.flatMap((b) => b.ids));
  const units: { first: number; unit: TxUnit<Id> }[] = [
    ...plan.batches.map((b) => ({ first: Math.min(...b.ids.map((id) => pos.get(id)!)), unit: { kind: "batch" as const, token: b.asset, ids: b.ids, gasLimit: b.gas } })),
    ...payouts.filter((p) => !inBatch.has(p.id)).map((p) => ({ first: pos.get(p.id)!, unit: { kind: "single" as const, id: p.id } })),
  ];
  return units.sort((a, b) => a.first - b.first).map((u) => u.unit);
}

/** The gas each deposit wallet's `pull` may use inside DepositSweeper.sweep (its gasPerItem). */
export const SWEEP_GAS_PER_ITEM = 100_000;

/**
 * A sweeper transaction before any wallet: 21,000 intrinsic, the call's
 * overhead (calldata header, the token's cold account, the collector's cold
 * balance slot on the first item, the result event) and the reserve
 * DepositSweeper demands left before its last wallet
 * (gasPerItem * 64/63 + 10,000).
 */
export const SWEEP_BASE_GAS = 21_000n + 35_000n + (BigInt(SWEEP_GAS_PER_ITEM) * 64n) / 63n + 10_000n;

/**
 * Gas a deposit wallet adds to a sweeper transaction, from the estimate of
 * its own transfer to the collection wallet: the token's work (as for a
 * batch payout), the call into the wallet (cold account and its delegation)
 * and, while it does not delegate to the sweeper yet, its authorization
 * (25,000 for an account that never sent anything: no refund).
 */
export function sweepItemGas(plainEstimate: bigint, withAuthorization: boolean): bigint {
  return batchItemGas(plainEstimate) + 8_000n + (withAuthorization ? 25_000n : 0n);
}
