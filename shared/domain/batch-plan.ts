/**
 * What to do with each queued transfer of one sending wallet's batch, from
 * facts read at one block: the withdrawal policy, whether the transfer would
 * revert, and whether the wallet can pay it, cumulatively in id order. Pure;
 * workers/transfer-sender/sign-batch.ts gathers the facts (inside the
 * transaction that locks the rows and the nonce counter) and carries the
 * plan out through shared/transfers.
 *
 * Invariants (property-tested in tests/unit/batch-plan.test.ts):
 * - never overspends: what the signed transfers can take, amounts plus their
 *   worst-case gas (gas limit x max fee), never exceeds what the wallet has
 *   free (its balance at the block minus what our unmined transactions will
 *   still take);
 * - never bypasses the policy: the per-request cap and the approval
 *   threshold apply to the REQUEST's total (a pay batch split into small
 *   orders is one request, SPEC §7), velocity to the running 24 h sum
 *   including everything signed before it in the batch, the deny/allow lists
 *   to each destination; an approval lifts the threshold only.
 *
 * Order of the checks for one transfer: policy (refuse / wait for an
 * operator), then would the wallet have enough of the asset, then would it
 * revert, then enough ETH for gas.
 */
import { formatUnits } from "./amount.ts";
import type { Asset } from "./assets.ts";
import { gasLimitFromEstimate, maxGasCost, type Fees } from "./fees.ts";
import { decide, type PolicyLimits, type PolicyRule, type PolicyUsage } from "./policy.ts";
import type { ErrorCode } from "./errors.ts";

export type Estimate = { ok: bigint } | { fail: "reverts" | "funds" };

export interface PlanCandidate {
  id: bigint;
  /** withdraw/pay: the business's transfers (policy applies, reported) */
  business: boolean;
  /** a sweep (gets gas from the collection wallet when short of it) */
  sweep: boolean;
  asset: Asset;
  units: bigint;
  to: string;
  /** an operator approved it (it waited for approval before) */
  approved: boolean;
  /** the request it belongs to (policy totals are per request) */
  request: string;
  estimate: Estimate;
}

export interface PlanFacts {
  sender: string;
  nativeSymbol: string;
  nativeDecimals: number;
  fees: Fees;
  /** wei the wallet has at the block, minus what our unmined transactions will still take */
  ethFree: bigint;
  /** token units free per token address, likewise */
  tokenFree: ReadonlyMap<string, bigint>;
  /** policy limits of a business transfer's asset */
  limits: (symbol: string) => PolicyLimits;
  /** 24 h usage per symbol before this batch (transfers not in it) */
  usage: ReadonlyMap<string, PolicyUsage>;
  /** base units of every order of each request (policy totals) */
  requestTotals: ReadonlyMap<string, bigint>;
  /** this is the collection wallet paying for transfers short elsewhere */
  fallback: boolean;
  /** a business transfer short here may be paid by the collection wallet */
  fallbackOpen: boolean;
  /** a business transfer no wallet can pay waits for an operator (hold_s > 0) instead of failing */
  holdShortfalls: boolean;
}

export type PlanAction =
  | { action: "sign"; gasLimit: bigint }
  | { action: "fail"; code: ErrorCode; detail: string; rule?: PolicyRule }
  | { action: "await-approval"; rule: PolicyRule; detail: string }
  | { action: "hold"; code: "insufficient_balance" | "insufficient_gas"; detail: string }
  /** short here: retry from the collection wallet */
  | { action: "defer" }
  /** a sweep short of gas: the collection wallet tops the wallet up first */
  | { action: "gas-short"; need: bigint; have: bigint };

export type PlanDecision = { id: bigint } & PlanAction;

/** Gas assumed for a sweep whose estimate failed for lack of funds (a token transfer with margin). */
const SWEEP_GAS_GUESS = 100_000n;

export function planBatch(facts: PlanFacts, candidates: readonly PlanCandidate[]): PlanDecision[] {
  let ethFree = facts.ethFree;
  const tokenFree = new Map(facts.tokenFree);
  const usage = new Map(facts.usage);
  const out: PlanDecision[] = [];

  for (const c of candidates) {
    const asset = c.asset;
    if (c.business) {
      const limits = facts.limits(asset.symbol);
      const u = usage.get(asset.symbol) ?? { wallet: 0n, total: 0n };
      const total = facts.requestTotals.get(c.request) ?? c.units;
      const d = decide({ amount: c.units, requestTotal: total, to: c.to, approved: c.approved }, limits, u);
      if (d.action === "reject") {
        out.push({ id: c.id, action: "fail", code: "policy_rejected", detail: d.detail, rule: d.rule });
        continue;
      }
      if (d.action === "hold") {
        out.push({ id: c.id, action: "await-approval", rule: d.rule, detail: d.detail });
        continue;
      }
    }

    const tokenHave = asset.native ? ethFree : (tokenFree.get(asset.token) ?? 0n);
    let short: "insufficient_balance" | "insufficient_gas" | null = null;
    let gasLimit = 0n;
    let needEth = 0n;
    if (c.units > tokenHave) short = "insufficient_balance";
    else if ("fail" in c.estimate && c.estimate.fail === "reverts") {
      out.push({ id: c.id, action: "fail", code: "reverted", detail: "the transfer would revert on chain (gas estimation failed); nothing was sent" });
      continue;
    } else if ("fail" in c.estimate) short = "insufficient_gas";
    else {
      gasLimit = gasLimitFromEstimate(c.estimate.ok);
      needEth = maxGasCost(gasLimit, facts.fees) + (asset.native ? c.units : 0n);
      if (needEth > ethFree) short = asset.native && c.units > ethFree ? "insufficient_balance" : "insufficient_gas";
    }

    if (short) {
      if (facts.fallbackOpen && c.business) out.push({ id: c.id, action: "defer" });
      else if (c.sweep && short === "insufficient_gas" && !facts.fallback) {
        out.push({ id: c.id, action: "gas-short", need: needEth > 0n ? needEth : maxGasCost(SWEEP_GAS_GUESS, facts.fees), have: ethFree > 0n ? ethFree : 0n });
      } else {
        const free = (n: bigint) => (n > 0n ? n : 0n);
        const what =
          short === "insufficient_balance"
            ? `${asset.symbol}: needs ${formatUnits(c.units, asset.decimals)}, has ${formatUnits(free(tokenHave), asset.decimals)} free`
            : `${facts.nativeSymbol} for gas: needs ${formatUnits(needEth, facts.nativeDecimals)}, has ${formatUnits(free(ethFree), facts.nativeDecimals)} free`;
        const detail = `${facts.sender} has too little ${what}${facts.fallback ? " (collection wallet fallback)" : ""}`;
        out.push(facts.holdShortfalls && c.business ? { id: c.id, action: "hold", code: short, detail } : { id: c.id, action: "fail", code: short, detail });
      }
      continue;
    }

    ethFree -= needEth;
    if (!asset.native) tokenFree.set(asset.token, tokenHave - c.units);
    if (c.business) {
      const u = usage.get(asset.symbol) ?? { wallet: 0n, total: 0n };
      usage.set(asset.symbol, { wallet: u.wallet + c.units, total: u.total + c.units });
    }
    out.push({ id: c.id, action: "sign", gasLimit });
  }
  return out;
}

/** What the signed transfers of a plan take from the wallet at most: wei (gas and native amounts) and units per token. */
export function spendOf(plan: readonly PlanDecision[], candidates: readonly PlanCandidate[], fees: Fees): { eth: bigint; tokens: Map<string, bigint> } {
  const byId = new Map(candidates.map((c) => [c.id, c]));
  let eth = 0n;
  const tokens = new Map<string, bigint>();
  for (const d of plan) {
    if (d.action !== "sign") continue;
    const c = byId.get(d.id)!;
    eth += maxGasCost(d.gasLimit, fees);
    if (c.asset.native) eth += c.units;
    else tokens.set(c.asset.token, (tokens.get(c.asset.token) ?? 0n) + c.units);
  }
  return { eth, tokens };
}
