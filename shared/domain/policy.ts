/**
 * The withdrawal policy (SPEC §7, issue 4), as custody platforms have it:
 * a destination deny list and optional allow list, a per-request cap,
 * rolling 24 h velocity limits per sending wallet and across all wallets,
 * and an approval threshold above which an operator must approve.
 *
 * Pure: the sender reads the 24 h usage inside the transaction that signs
 * (so two processes cannot both spend the same headroom) and passes it in;
 * every decision it gets back is written to the audit trail.
 *
 * The per-request cap and the approval threshold apply to the request's
 * TOTAL (SPEC §7: a pay batch is one request; splitting it into small
 * orders bypasses nothing); velocity to each transfer as it adds to the
 * rolling 24 h sums.
 *
 * Limits are configured per asset under `policy.*` as decimal text, keyed by
 * symbol ("USDT") or by chain and symbol ("ETH:USDT", which wins). A missing
 * key means no limit of that kind for that asset.
 *
 * @example
 * const limits = policyLimits(config.policy, "ETH", "USDT", 6);
 * decide({ amount: 5_000_000n, requestTotal: 5_000_000n, to, approved: false }, limits, { wallet: 0n, total: 0n })
 * // { action: "allow" } | { action: "reject", rule, detail } | { action: "hold", rule, detail }
 */
import { decimalToUnits, formatUnits } from "./amount.ts";

export interface PolicyConfig {
  per_request_cap: Readonly<Record<string, string>>;
  velocity_24h_per_wallet: Readonly<Record<string, string>>;
  velocity_24h_total: Readonly<Record<string, string>>;
  approval_threshold: Readonly<Record<string, string>>;
  deny_list: readonly string[];
  allow_list?: readonly string[] | undefined;
}

export interface PolicyLimits {
  decimals: number;
  perRequestCap: bigint | null;
  velocityPerWallet: bigint | null;
  velocityTotal: bigint | null;
  approvalThreshold: bigint | null;
  deny: ReadonlySet<string>;
  /** null = every destination not denied is allowed */
  allow: ReadonlySet<string> | null;
}

export type PolicyRule = "deny_list" | "allow_list" | "per_request_cap" | "velocity_24h_per_wallet" | "velocity_24h_total" | "approval_threshold";

export type PolicyDecision =
  | { action: "allow" }
  | { action: "reject"; rule: PolicyRule; detail: string }
  | { action: "hold"; rule: "approval_threshold"; detail: string };

export interface PolicySubject {
  /** base units of this transfer */
  amount: bigint;
  /** base units of every transfer of its request (the orders of a pay batch; = amount for a withdraw) */
  requestTotal: bigint;
  /** lowercase destination address */
  to: string;
  /** an operator approved this transfer (it was held before) */
  approved: boolean;
}

/** Base units already moved (or moving) in the last 24 h, this transfer excluded. */
export interface PolicyUsage {
  wallet: bigint;
  total: bigint;
}

function lookup(table: Readonly<Record<string, string>>, chain: string, symbol: string, decimals: number): bigint | null {
  const text = table[`${chain}:${symbol}`] ?? table[symbol];
  if (text === undefined) return null;
  return decimalToUnits(text, decimals);
}

/** The limits that apply to one asset; throws if a limit has more decimals than the asset. */
export function policyLimits(cfg: PolicyConfig, chain: string, symbol: string, decimals: number): PolicyLimits {
  return {
    decimals,
    perRequestCap: lookup(cfg.per_request_cap, chain, symbol, decimals),
    velocityPerWallet: lookup(cfg.velocity_24h_per_wallet, chain, symbol, decimals),
    velocityTotal: lookup(cfg.velocity_24h_total, chain, symbol, decimals),
    approvalThreshold: lookup(cfg.approval_threshold, chain, symbol, decimals),
    deny: new Set(cfg.deny_list.map((a) => a.toLowerCase())),
    allow: cfg.allow_list ? new Set(cfg.allow_list.map((a) => a.toLowerCase())) : null,
  };
}

/**
 * Decide one transfer. Order: where it goes, how much at once, how much in
 * 24 h, then whether a human must look. Velocity is checked before holding,
 * so an operator is never asked to approve what would be refused anyway;
 * an approval only lifts the approval threshold, never the other limits.
 */
export function decide(subject: PolicySubject, limits: PolicyLimits, usage: PolicyUsage): PolicyDecision {
  const fmt = (u: bigint) => formatUnits(u, limits.decimals);
  const to = subject.to.toLowerCase();
  if (limits.deny.has(to)) return { action: "reject", rule: "deny_list", detail: `destination ${to} is on the deny list` };
  if (limits.allow !== null && !limits.allow.has(to)) {
    return { action: "reject", rule: "allow_list", detail: `destination ${to} is not on the allow list` };
  }
  if (limits.perRequestCap !== null && subject.requestTotal > limits.perRequestCap) {
    return { action: "reject", rule: "per_request_cap", detail: `${what(subject, fmt)} is above the per-request cap ${fmt(limits.perRequestCap)}` };
  }
  if (limits.velocityPerWallet !== null && usage.wallet + subject.amount > limits.velocityPerWallet) {
    return {
      action: "reject",
      rule: "velocity_24h_per_wallet",
      detail: `the sending wallet's 24 h total would be ${fmt(usage.wallet + subject.amount)}, above ${fmt(limits.velocityPerWallet)}`,
    };
  }
  if (limits.velocityTotal !== null && usage.total + subject.amount > limits.velocityTotal) {
    return {
      action: "reject",
      rule: "velocity_24h_total",
      detail: `the 24 h total of all wallets would be ${fmt(usage.total + subject.amount)}, above ${fmt(limits.velocityTotal)}`,
    };
  }
  if (!subject.approved && limits.approvalThreshold !== null && subject.requestTotal > limits.approvalThreshold) {
    return { action: "hold", rule: "approval_threshold", detail: `${what(subject, fmt)} is above the approval threshold ${fmt(limits.approvalThreshold)}` };
  }
  return { action: "allow" };
}

/** "amount 150" for a transfer alone, "the request's total 180" for one order of several. */
function what(s: PolicySubject, fmt: (u: bigint) => string): string {
  return s.requestTotal === s.amount ? `amount ${fmt(s.amount)}` : `the request's total ${fmt(s.requestTotal)}`;
}
