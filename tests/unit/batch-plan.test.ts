/**
 * The batch planner (shared/domain/batch-plan.ts): a few exact cases, then
 * properties over random batches: it never overspends what the wallet has
 * free, never signs what the policy refuses or keeps for an operator (cap
 * and threshold on the request's total, velocity on the running sums), and
 * decides every transfer exactly once, in order.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { planBatch, spendOf, type PlanCandidate, type PlanFacts } from "../../shared/domain/batch-plan.ts";
import { gasLimitFromEstimate, maxGasCost } from "../../shared/domain/fees.ts";
import { policyLimits, type PolicyConfig, type PolicyLimits } from "../../shared/domain/policy.ts";
import type { Asset } from "../../shared/domain/assets.ts";

const ETH: Asset = { native: true, symbol: "ETH", decimals: 18 };
const USDT = { native: false as const, symbol: "USDT", token: "0x" + "a1".repeat(20), decimals: 6 };
const DAI = { native: false as const, symbol: "DAI", token: "0x" + "b2".repeat(20), decimals: 18 };
const ASSETS: Asset[] = [ETH, USDT, DAI];
const TO = ["0x" + "01".repeat(20), "0x" + "02".repeat(20), "0x" + "03".repeat(20)];
const noPolicy: PolicyConfig = { per_request_cap: {}, velocity_24h_per_wallet: {}, velocity_24h_total: {}, approval_threshold: {}, deny_list: [] };
const fees = { maxFeePerGas: 10n ** 9n, maxPriorityFeePerGas: 10n ** 8n };

function facts(over: Partial<PlanFacts> = {}, policy: PolicyConfig = noPolicy): PlanFacts {
  return {
    sender: "0x" + "ee".repeat(20),
    nativeSymbol: "ETH",
    nativeDecimals: 18,
    fees,
    ethFree: 10n ** 18n,
    tokenFree: new Map([[USDT.token, 10n ** 12n]]),
    limits: (symbol) => policyLimits(policy, "ETH", symbol, ASSETS.find((a) => a.symbol === symbol)!.decimals),
    usage: new Map(),
    requestTotals: new Map(),
    fallback: false,
    fallbackOpen: false,
    holdShortfalls: false,
    ...over,
  };
}

const order = (id: number, units: bigint, request = "r1", over: Partial<PlanCandidate> = {}): PlanCandidate => ({
  id: BigInt(id),
  business: true,
  sweep: false,
  asset: USDT,
  units,
  to: TO[0]!,
  approved: false,
  request,
  estimate: { ok: 40_000n },
  ...over,
});

describe("planBatch: cases", () => {
  it("three orders of 60 under a threshold of 100 all wait for an operator (the request's total is 180)", () => {
    const policy = { ...noPolicy, approval_threshold: { USDT: "100" } };
    const batch = [order(1, 60_000_000n), order(2, 60_000_000n), order(3, 60_000_000n)];
    const plan = planBatch(facts({ requestTotals: new Map([["r1", 180_000_000n]]) }, policy), batch);
    assert.deepEqual(plan.map((d) => d.action), ["await-approval", "await-approval", "await-approval"]);
  });

  it("an order of a request over the cap is refused even when the order alone is under it", () => {
    const policy = { ...noPolicy, per_request_cap: { USDT: "100" } };
    const plan = planBatch(facts({ requestTotals: new Map([["r1", 150_000_000n]]) }, policy), [order(1, 50_000_000n)]);
    assert.equal(plan[0]!.action, "fail");
    assert.equal((plan[0] as { rule?: string }).rule, "per_request_cap");
  });

  it("balances run down in order: the order that no longer fits is short, the later smaller one still goes", () => {
    const plan = planBatch(facts({ tokenFree: new Map([[USDT.token, 100n]]) }), [order(1, 60n, "a"), order(2, 60n, "b"), order(3, 40n, "c")]);
    assert.deepEqual(plan.map((d) => d.action), ["sign", "fail", "sign"]);
    assert.equal((plan[1] as { code: string }).code, "insufficient_balance");
  });

  it("a wallet short everywhere: held for an operator when holding is on, deferred to the collection wallet when it can pay", () => {
    const short = [order(1, 10n ** 13n)];
    assert.equal(planBatch(facts({ holdShortfalls: true }), short)[0]!.action, "hold");
    assert.equal(planBatch(facts({ holdShortfalls: true, fallbackOpen: true }), short)[0]!.action, "defer");
    assert.match((planBatch(facts({ holdShortfalls: true }), short)[0] as { detail: string }).detail, /too little USDT: needs 10000000, has 1000000 free/);
  });

  it("a transfer that would revert fails reverted; one short of gas money is insufficient_gas; a sweep short of gas asks for a top-up", () => {
    assert.deepEqual(planBatch(facts(), [order(1, 1n, "r", { estimate: { fail: "reverts" } })])[0], {
      id: 1n,
      action: "fail",
      code: "reverted",
      detail: "the transfer would revert on chain (gas estimation failed); nothing was sent",
    });
    assert.equal((planBatch(facts({ ethFree: 1000n }), [order(1, 1n)])[0] as { code: string }).code, "insufficient_gas");
    const sweep = planBatch(facts({ ethFree: 1000n }), [order(1, 1n, "s", { business: false, sweep: true })])[0]!;
    assert.equal(sweep.action, "gas-short");
  });
});

// ---------------------------------------------------------------- properties

// Small ranges on purpose: amounts, limits, balances and gas costs of the same
// magnitude, so batches often sit right at a limit or a balance.
const amount = fc.bigInt({ min: 1n, max: 1_000n });
const limit = fc.option(fc.bigInt({ min: 1n, max: 5_000n }), { nil: null });
const limitsArb = fc.record({
  perRequestCap: limit,
  velocityPerWallet: limit,
  velocityTotal: limit,
  approvalThreshold: limit,
  deny: fc.subarray(TO, { maxLength: 1 }),
  allow: fc.option(fc.subarray(TO, { minLength: 1 }), { nil: null }),
});
const candidateArb = fc.record({
  business: fc.boolean(),
  sweep: fc.boolean(),
  asset: fc.constantFrom(...ASSETS),
  units: amount,
  to: fc.constantFrom(...TO),
  approved: fc.boolean(),
  request: fc.constantFrom("r1", "r2", "r3", "r4"),
  estimate: fc.oneof(
    { weight: 8, arbitrary: fc.bigInt({ min: 21_000n, max: 100_000n }).map((ok) => ({ ok })) },
    { weight: 1, arbitrary: fc.constant({ fail: "reverts" as const }) },
    { weight: 1, arbitrary: fc.constant({ fail: "funds" as const }) },
  ),
});
const batchArb = fc.record({
  candidates: fc.array(candidateArb, { maxLength: 12 }),
  limits: fc.record({ ETH: limitsArb, USDT: limitsArb, DAI: limitsArb }),
  ethFree: fc.bigInt({ min: -100_000n, max: 3_000_000n }),
  usdtFree: fc.bigInt({ min: -100n, max: 5_000n }),
  daiFree: fc.bigInt({ min: 0n, max: 5_000n }),
  usage: fc.record({ wallet: fc.bigInt({ min: 0n, max: 2_000n }), total: fc.bigInt({ min: 0n, max: 3_000n }) }),
  /** orders of each request that are not in this batch */
  elsewhere: fc.bigInt({ min: 0n, max: 500n }),
  maxFee: fc.bigInt({ min: 1n, max: 3n }),
  fallback: fc.boolean(),
  fallbackOpen: fc.boolean(),
  holdShortfalls: fc.boolean(),
});

type Batch = typeof batchArb extends fc.Arbitrary<infer T> ? T : never;

function build(b: Batch) {
  const candidates: PlanCandidate[] = b.candidates.map((c, i) => ({ id: BigInt(i + 1), ...c, sweep: !c.business && c.sweep }));
  const totals = new Map<string, bigint>();
  for (const c of candidates) if (c.business) totals.set(c.request, (totals.get(c.request) ?? b.elsewhere) + c.units);
  const limits = new Map<string, PolicyLimits>(
    Object.entries(b.limits).map(([symbol, l]) => [
      symbol,
      { decimals: 0, ...l, deny: new Set(l.deny), allow: l.allow ? new Set(l.allow) : null },
    ]),
  );
  const f = facts({
    fees: { maxFeePerGas: b.maxFee, maxPriorityFeePerGas: b.maxFee / 2n },
    ethFree: b.ethFree,
    tokenFree: new Map([
      [USDT.token, b.usdtFree],
      [DAI.token, b.daiFree],
    ]),
    limits: (symbol) => limits.get(symbol)!,
    usage: new Map(ASSETS.map((a) => [a.symbol, b.usage])),
    requestTotals: totals,
    fallback: b.fallback,
    fallbackOpen: b.fallbackOpen && !b.fallback,
    holdShortfalls: b.holdShortfalls,
  });
  return { candidates, facts: f, limits, totals };
}

describe("planBatch: properties", () => {
  it("decides every transfer exactly once, in order", () => {
    fc.assert(
      fc.property(batchArb, (b) => {
        const { candidates, facts: f } = build(b);
        assert.deepEqual(planBatch(f, candidates).map((d) => d.id), candidates.map((c) => c.id));
      }),
      { numRuns: 500 },
    );
  });

  it("never overspends: amounts plus worst-case gas of what it signs fit in what the wallet has free", () => {
    fc.assert(
      fc.property(batchArb, (b) => {
        const { candidates, facts: f } = build(b);
        const plan = planBatch(f, candidates);
        const spend = spendOf(plan, candidates, f.fees);
        if (plan.some((d) => d.action === "sign")) assert.ok(spend.eth <= f.ethFree, `eth ${spend.eth} > ${f.ethFree}`);
        for (const [token, n] of spend.tokens) assert.ok(n <= f.tokenFree.get(token)!, `${token} ${n} > ${f.tokenFree.get(token)}`);
        for (const d of plan) {
          if (d.action !== "sign") continue;
          const c = candidates.find((x) => x.id === d.id)!;
          assert.ok("ok" in c.estimate, "never signs what would revert or cannot be estimated");
          assert.equal(d.gasLimit, gasLimitFromEstimate(c.estimate.ok));
          assert.ok(maxGasCost(d.gasLimit, f.fees) > 0n);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("never bypasses the policy: cap and threshold on the request's total, velocity on running sums, destinations checked", () => {
    fc.assert(
      fc.property(batchArb, (b) => {
        const { candidates, facts: f, limits, totals } = build(b);
        const plan = planBatch(f, candidates);
        const used = new Map<string, { wallet: bigint; total: bigint }>();
        for (const d of plan) {
          const c = candidates.find((x) => x.id === d.id)!;
          if (!c.business) continue;
          const l = limits.get(c.asset.symbol)!;
          const total = totals.get(c.request)!;
          if (d.action === "sign") {
            assert.ok(!l.deny.has(c.to) && (l.allow === null || l.allow.has(c.to)), "destination allowed");
            if (l.perRequestCap !== null) assert.ok(total <= l.perRequestCap, "request total under the cap");
            if (l.approvalThreshold !== null && !c.approved) assert.ok(total <= l.approvalThreshold, "request total under the threshold unless approved");
            const u = used.get(c.asset.symbol) ?? { wallet: b.usage.wallet, total: b.usage.total };
            const next = { wallet: u.wallet + c.units, total: u.total + c.units };
            if (l.velocityPerWallet !== null) assert.ok(next.wallet <= l.velocityPerWallet, "wallet velocity");
            if (l.velocityTotal !== null) assert.ok(next.total <= l.velocityTotal, "total velocity");
            used.set(c.asset.symbol, next);
          }
          if (d.action === "await-approval") assert.ok(!c.approved && l.approvalThreshold !== null && total > l.approvalThreshold);
          if (d.action === "hold") assert.ok(f.holdShortfalls);
          if (d.action === "defer") assert.ok(f.fallbackOpen);
        }
        // no order of a request over the cap is signed, whatever its own amount
        for (const c of candidates) {
          const l = limits.get(c.asset.symbol)!;
          if (c.business && l.perRequestCap !== null && totals.get(c.request)! > l.perRequestCap) {
            assert.notEqual(plan.find((d) => d.id === c.id)!.action, "sign");
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});
